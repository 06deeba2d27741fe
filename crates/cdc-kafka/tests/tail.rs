//! `read_tail` on a real broker: the committed records at a partition's end, past the
//! records of a transaction that a killed producer left behind.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use cdc_kafka::{ensure_topics, read_tail, KafkaSettings, Producer, TopicSpec};
use cdc_testkit::KafkaBroker;

const TIMEOUT: Duration = Duration::from_secs(60);

async fn send_all(producer: &Producer, topic: &str, values: impl Iterator<Item = String>) {
    let mut deliveries = Vec::new();
    for value in values {
        deliveries.push(
            producer
                .send_to(topic, Some(0), None, Some(value.as_bytes()))
                .await
                .unwrap(),
        );
    }
    for delivery in deliveries {
        delivery.await.unwrap();
    }
}

/// A span filled by an aborted transaction holds no committed record, yet the partition
/// does: the read says the span was not the whole partition, so a caller looking for the
/// last committed record reads further back instead of taking the partition for empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_of_aborted_records_is_not_an_empty_partition() {
    let dir = tempfile::tempdir().unwrap();
    let broker = KafkaBroker::start(dir.path()).unwrap();
    let settings = KafkaSettings::new(broker.bootstrap());
    let topic = "tail";
    ensure_topics(&settings, &[TopicSpec::new(topic, 1).replicated(1)])
        .await
        .unwrap();
    let empty = read_tail(&settings, topic, 0, 64, TIMEOUT).await.unwrap();
    assert!(empty.records.is_empty() && empty.whole_partition);

    let id = "tail-writer";
    let first = Producer::transactional(&settings, id, Duration::from_secs(60)).unwrap();
    first.init_transactions().await.unwrap();
    first.begin_transaction().unwrap();
    send_all(&first, topic, (0..10).map(|i| format!("committed {i}"))).await;
    first.commit_transaction().await.unwrap();
    // A transaction left open by a producer that dies: 200 records, never committed.
    first.begin_transaction().unwrap();
    send_all(&first, topic, (0..200).map(|i| format!("aborted {i}"))).await;
    drop(first);
    // Its successor fences it; the coordinator aborts what it left open.
    let second = Producer::transactional(&settings, id, Duration::from_secs(60)).unwrap();
    second.init_transactions().await.unwrap();

    let short = read_tail(&settings, topic, 0, 64, TIMEOUT).await.unwrap();
    assert!(short.records.is_empty(), "{:?}", short.records);
    assert!(!short.whole_partition);

    let whole = read_tail(&settings, topic, 0, i64::MAX, TIMEOUT)
        .await
        .unwrap();
    assert!(whole.whole_partition);
    let values: Vec<String> = whole
        .records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("committed {i}")).collect();
    assert_eq!(values, expected);
}
