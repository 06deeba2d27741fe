//! Proof that the local broker keeps offsets: produce in batches with the idempotent
//! producer, consume in a group, commit, restart the broker, resume exactly there.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::time::{Duration, Instant};

use cdc_kafka::{ensure_topics, KafkaSettings, Producer, TopicSpec};
use cdc_testkit::KafkaBroker;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::Message;

const RECORDS: usize = 20_000;
const PARTITIONS: i32 = 3;

fn consumer(settings: &KafkaSettings, group: &str, topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = settings
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// Creates `topic` with [`PARTITIONS`] partitions on the one broker.
async fn create_topic(settings: &KafkaSettings, topic: &str) {
    ensure_topics(settings, &[TopicSpec::new(topic, PARTITIONS).replicated(1)])
        .await
        .unwrap();
}

/// Sends the numbers of `values` to `topic` (keys `k0`..`k<keys>` in turn) and waits until
/// the broker acknowledged every one.
async fn send_numbered(producer: &Producer, topic: &str, values: Range<u64>, keys: u64) {
    let mut deliveries = Vec::new();
    for i in values {
        let key = format!("k{}", i % keys);
        deliveries.push(
            producer
                .send(topic, key.as_bytes(), Some(i.to_string().as_bytes()))
                .await
                .unwrap(),
        );
    }
    for delivery in deliveries {
        delivery.await.unwrap();
    }
}

/// Reads up to `n` records (or until `idle` passes without one): (partition, offset, key, value).
async fn read(consumer: &StreamConsumer, n: usize, idle: Duration) -> Vec<(i32, i64, String, u64)> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(idle, consumer.recv()).await {
            Err(_) => break,
            Ok(message) => {
                let message = message.unwrap();
                let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
                let value: u64 = std::str::from_utf8(message.payload().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                out.push((message.partition(), message.offset(), key, value));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_survive_batches_group_commits_and_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = KafkaBroker::start(dir.path()).unwrap();
    let settings = KafkaSettings::new(broker.bootstrap());
    let topic = "proof";
    create_topic(&settings, topic).await;

    let producer = Producer::new(&settings).unwrap();
    let started = Instant::now();
    for batch in 0..(RECORDS / 1000) as u64 {
        send_numbered(&producer, topic, batch * 1000..(batch + 1) * 1000, 97).await;
    }
    println!("produced {RECORDS} records in {:?}", started.elapsed());

    let first = consumer(&settings, "proof-group", topic);
    let (mut low_sum, mut high_sum) = (0, 0);
    for partition in 0..PARTITIONS {
        let (low, high) = first
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap();
        low_sum += low;
        high_sum += high;
    }
    assert_eq!(
        (low_sum, high_sum),
        (0, RECORDS as i64),
        "watermarks count every record once"
    );

    let part_one = read(&first, 8_000, Duration::from_secs(20)).await;
    assert_eq!(part_one.len(), 8_000);
    first.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(first);

    broker.restart().unwrap();

    let second = consumer(&settings, "proof-group", topic);
    let part_two = read(&second, RECORDS, Duration::from_secs(10)).await;

    let one: HashSet<u64> = part_one.iter().map(|r| r.3).collect();
    let two: HashSet<u64> = part_two.iter().map(|r| r.3).collect();
    assert_eq!(
        part_two.len(),
        RECORDS - 8_000,
        "resumed exactly at the committed offsets"
    );
    assert!(one.is_disjoint(&two), "nothing read twice");
    assert_eq!(one.len() + two.len(), RECORDS, "nothing lost");

    // Per key, values arrive in the order they were produced.
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (_, _, key, value) in part_one.iter().chain(&part_two) {
        by_key.entry(key.clone()).or_default().push(*value);
    }
    assert!(by_key
        .values()
        .all(|values| values.windows(2).all(|w| w[0] < w[1])));
}

/// Every record of `topic` from the beginning, as (partition, offset, value).
fn read_all(settings: &KafkaSettings, topic: &str) -> Vec<(i32, i64, u64)> {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = settings
        .client_config()
        .set("group.id", "read-all")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut highs = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap();
        highs.insert(partition, high);
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut next: BTreeMap<i32, i64> = highs.keys().map(|p| (*p, 0)).collect();
    let mut out = Vec::new();
    let start = Instant::now();
    while next.iter().any(|(p, n)| *n < highs[p]) && start.elapsed() < Duration::from_secs(30) {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            next.insert(message.partition(), message.offset() + 1);
            let value = std::str::from_utf8(message.payload().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            out.push((message.partition(), message.offset(), value));
        }
    }
    out
}

/// Records acknowledged before a broker crash are still there, at their offsets, after
/// more records are produced following the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_a_crash_while_production_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = KafkaBroker::start(dir.path()).unwrap();
    let mut settings = KafkaSettings::new(broker.bootstrap());
    settings.set("linger.ms", "1");
    let topic = "crash-proof";
    create_topic(&settings, topic).await;
    let producer = Producer::new(&settings).unwrap();
    let send = |from: u64, to: u64| {
        let producer = producer.clone();
        async move { send_numbered(&producer, topic, from..to, 13).await }
    };
    send(0, 500).await;
    // A topic created just before the crash keeps its records too.
    let late = "crash-proof-late";
    create_topic(&settings, late).await;
    for i in 0..100u64 {
        producer
            .send(late, b"k", Some(i.to_string().as_bytes()))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    broker.kill();
    let resumed = tokio::spawn(send(500, 1_000));
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.restart().unwrap();
    resumed.await.unwrap();
    let fresh = Producer::new(&settings).unwrap();
    for i in 1_000..1_200u64 {
        fresh
            .send(topic, b"k", Some(i.to_string().as_bytes()))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let late_records = read_all(&settings, late);
    assert_eq!(
        late_records.len(),
        100,
        "records of a topic created just before the crash"
    );
    let records = read_all(&settings, topic);
    let values: HashSet<u64> = records.iter().map(|r| r.2).collect();
    let missing: Vec<u64> = (0..1_200).filter(|v| !values.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(records.len(), 1_200, "no record twice");
}
