//! Faults of Apache Kafka and of the lake writers' group on a three-broker cluster, under
//! the simulator's load, with every component a real `totesys-cdc` process:
//! (a) `kill -9` of the broker leading a busy partition, restarted later;
//! (b) `kill -9` of a lake writer at random moments, ten times, two writers in the group,
//!     then the static one fenced by a member joining with its instance id;
//! (c) the whole cluster killed and restarted.
//!
//! Topics are created with the defaults capture picks for the cluster it finds (three
//! replicas, `min.insync.replicas=2`; checked). Each test ends with the warehouse equal to
//! an independent recomputation from the source, the lake holding every Kafka record and
//! every source change exactly once, and the history holding no version twice. Recovery
//! times are printed, never asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use cdc_stack::process::{tail, Component, ProcessStack, Rng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// The lake writers' group (the binary's default).
const GROUP: &str = "totesys-cdc-lake";

/// A topic with steady traffic under the simulator's load.
const BUSY_TOPIC: &str = "totesys.public.sales_order";

/// How long any one wait may take (liveness, not performance).
const BOUND: Duration = Duration::from_secs(240);

/// The stack on three brokers with the audit trigger installed, capture past its
/// snapshot, the modeler ready, and the simulator writing `rate` changes a second.
async fn loaded_stack(rate: u64, seed: u64) -> (ProcessStack, Component, Component, Component) {
    let stack = ProcessStack::start_with_brokers(3).await;
    stack.install_audit().await;
    let mut capture = stack.capture();
    stack.start_capture(&mut capture).await;
    let mut model = stack.model();
    model.start();
    model.wait_ready(BOUND).await;
    let mut load = stack.simulate(rate, None, seed);
    load.start();
    (stack, capture, model, load)
}

/// Partition 0 of `topic`: its leader's node id and its number of replicas.
fn partition_zero(bootstrap: &str, topic: &str) -> (u32, usize) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partition = &metadata.topics()[0].partitions()[0];
    (
        u32::try_from(partition.leader()).unwrap(),
        partition.replicas().len(),
    )
}

/// Replication factor and `min.insync.replicas` of `topic`, from the cluster.
async fn replication_of(bootstrap: &str, topic: &str) -> (usize, String) {
    let replicas = partition_zero(bootstrap, topic).1;
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .unwrap();
    let configs = admin
        .describe_configs(
            &[rdkafka::admin::ResourceSpecifier::Topic(topic)],
            &rdkafka::admin::AdminOptions::new(),
        )
        .await
        .unwrap();
    let config = configs.into_iter().next().unwrap().unwrap();
    let min_insync = config
        .get("min.insync.replicas")
        .and_then(|entry| entry.value.clone())
        .unwrap_or_default();
    (replicas, min_insync)
}

/// The node leading partition 0 of `topic`.
fn leader_of(bootstrap: &str, topic: &str) -> u32 {
    partition_zero(bootstrap, topic).0
}

/// Waits until capture's acknowledged records pass `from`; returns how long it took.
async fn wait_acks_past(capture: &mut Component, from: f64) -> Duration {
    let start = Instant::now();
    while capture
        .metric("totesys_cdc_capture_records_acked_total")
        .await
        <= from
    {
        assert!(capture.is_running(), "capture exited:\n{}", capture.log());
        assert!(
            start.elapsed() < BOUND,
            "capture's acknowledgements did not resume within {BOUND:?}:\n{}",
            tail(&capture.log(), 40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// Stops the load, waits until the warehouse applied the source's last commit, and checks
/// the warehouse, the lake and the history; stops every component.
async fn finish(
    stack: ProcessStack,
    mut load: Component,
    mut capture: Component,
    mut lakes: Vec<Component>,
    mut model: Component,
) {
    load.stop(BOUND).await;
    println!("load: {}", tail(&load.log_of_this_run(), 2));
    let end = stack.mark_end().await;
    {
        let mut running: Vec<&mut Component> = vec![&mut capture, &mut model];
        running.extend(lakes.iter_mut());
        stack.wait_applied(&end, BOUND, &mut running).await;
    }
    stack.assert_warehouse_matches_source().await;
    // Nothing may write the lake while DuckDB reads it.
    for lake in &mut lakes {
        lake.stop(BOUND).await;
    }
    stack.assert_lake_holds_each_change_once().await;
    stack.assert_history_once().await;
    model.stop(BOUND).await;
    capture.stop(BOUND).await;
    let mut stack = stack;
    stack.registry.stop(BOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_partition_leader_loses_and_repeats_nothing() {
    let (mut stack, mut capture, model, load) = loaded_stack(200, 31).await;
    let mut lake = stack.lake_writer("lake", true);
    stack.start_lake(&mut lake).await;
    let bootstrap = stack.kafka.bootstrap();
    assert_eq!(
        replication_of(&bootstrap, BUSY_TOPIC).await,
        (3, "2".to_owned()),
        "capture's defaults on a three-broker cluster: 3 replicas, min.insync.replicas=2"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let leader = leader_of(&bootstrap, BUSY_TOPIC);
    let acked = capture
        .metric("totesys_cdc_capture_records_acked_total")
        .await;
    println!("kill -9 of broker {leader}, leader of {BUSY_TOPIC} partition 0");
    stack.kafka.kill(leader);
    let killed = Instant::now();
    let resumed = wait_acks_past(&mut capture, acked).await;
    println!(
        "capture acknowledged again {:.1} s after the kill",
        resumed.as_secs_f64()
    );
    let highs = stack.lake_highs().await;
    let caught_up = stack
        .wait_lake_past(GROUP, &highs, BOUND, &mut [&mut lake])
        .await;
    println!(
        "the lake held everything produced {:.1} s after the kill {:.1} s later",
        killed.elapsed().as_secs_f64() - caught_up.as_secs_f64(),
        caught_up.as_secs_f64()
    );
    let new_leader = leader_of(&stack.kafka.bootstrap(), BUSY_TOPIC);
    println!("{BUSY_TOPIC} partition 0 is led by broker {new_leader} now");
    assert_ne!(new_leader, leader, "leadership moved off the killed broker");

    // Running on two brokers for a while, then the third comes back.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restart = stack.kafka.restart(leader).unwrap();
    println!(
        "broker {leader} restarted in {:.1} s",
        restart.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    finish(stack, load, capture, vec![lake], model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_writers_killed_at_random_moments_leave_each_change_once() {
    let (stack, capture, model, load) = loaded_stack(200, 41).await;
    // One static member (as `up` runs them) and one dynamic (as a Deployment's pods are).
    let mut lakes = vec![
        stack.lake_writer("lake-1", true),
        stack.lake_writer("lake-2", false),
    ];
    for lake in &mut lakes {
        stack.start_lake(lake).await;
    }
    let mut rng = Rng::new(13);
    let mut recoveries = Vec::new();
    let mut last = 0;
    for round in 0..10 {
        // Rounds 0-5: a random writer at a random moment of writing, the group steady;
        // recovery measured. Rounds 6-9: the writer restarted last, soon after its start
        // (while it joins the group or the group rebalances), recovery measured at the end.
        let steady = round < 6;
        let (which, delay) = if steady {
            (rng.range(0..2) as usize, rng.range(200..3_000))
        } else {
            (last, rng.range(0..1_000))
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let lake = &mut lakes[which];
        println!("round {round}: kill -9 of {} after {delay} ms", lake.name);
        lake.kill();
        let killed = Instant::now();
        let highs = stack.lake_highs().await;
        lake.start();
        last = which;
        let name = lake.name.clone();
        if steady {
            let mut all: Vec<&mut Component> = lakes.iter_mut().collect();
            stack.wait_lake_past(GROUP, &highs, BOUND, &mut all).await;
            let took = killed.elapsed();
            println!(
                "round {round}: everything produced before the kill of {} was in the lake {:.1} s after it",
                name,
                took.as_secs_f64()
            );
            recoveries.push((name, took));
        }
    }
    let highs = stack.lake_highs().await;
    let mut all: Vec<&mut Component> = lakes.iter_mut().collect();
    let settled = stack.wait_lake_past(GROUP, &highs, BOUND, &mut all).await;
    println!(
        "after the kills while joining: the lake caught up {:.1} s after the last",
        settled.as_secs_f64()
    );
    for (name, took) in &recoveries {
        let kind = if name == "lake-1" {
            "static"
        } else {
            "dynamic"
        };
        println!(
            "recovery after kill -9 of {name} ({kind} member): {:.1} s",
            took.as_secs_f64()
        );
    }

    // A static member fenced by its own instance id (as when the broker holds a join the
    // client retried after the coordinator moved): librdkafka's consumer is dead for good;
    // the writer must replace it and carry on.
    let fatal_before = lakes[0]
        .metric("totesys_cdc_lake_consumer_fatal_errors_total")
        .await;
    let fenced = Instant::now();
    join_as(&stack.kafka.bootstrap(), GROUP, &lakes[0].name).await;
    println!(
        "{} fenced by a member joining with its group.instance.id",
        lakes[0].name
    );
    let highs = stack.lake_highs().await;
    let mut all: Vec<&mut Component> = lakes.iter_mut().collect();
    stack.wait_lake_past(GROUP, &highs, BOUND, &mut all).await;
    println!(
        "after the fencing: the lake caught up {:.1} s after it",
        fenced.elapsed().as_secs_f64()
    );
    assert!(
        lakes[0]
            .metric("totesys_cdc_lake_consumer_fatal_errors_total")
            .await
            > fatal_before,
        "the fenced writer noticed its consumer's fatal error:\n{}",
        tail(&lakes[0].log_of_this_run(), 40)
    );
    finish(stack, load, capture, lakes, model).await;
}

/// Joins `group` as static member `instance` (fencing the member holding that id) until it
/// owns partitions, then closes without committing anything.
async fn join_as(bootstrap: &str, group: &str, instance: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("group.instance.id", instance)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    let topics = [
        cdc_lake::change_topics_pattern("totesys"),
        "totesys.transaction".to_owned(),
    ];
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).unwrap();
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        while consumer.assignment().unwrap().count() == 0 {
            assert!(
                start.elapsed() < BOUND,
                "the fencing member got no partitions"
            );
            let _ = consumer.poll(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_cluster_killed_and_restarted_loses_and_repeats_nothing() {
    let (mut stack, mut capture, model, load) = loaded_stack(200, 53).await;
    let mut lake = stack.lake_writer("lake", true);
    stack.start_lake(&mut lake).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    println!("kill -9 of all three brokers");
    stack.kafka.kill_all();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let acked = capture
        .metric("totesys_cdc_capture_records_acked_total")
        .await;
    let restart = stack.kafka.restart_all().unwrap();
    println!(
        "cluster restarted (three brokers in the metadata) in {:.1} s",
        restart.as_secs_f64()
    );
    let resumed = wait_acks_past(&mut capture, acked).await;
    println!(
        "capture acknowledged again {:.1} s after the restart",
        (restart + resumed).as_secs_f64()
    );
    let highs = stack.lake_highs().await;
    let caught_up = stack
        .wait_lake_past(GROUP, &highs, BOUND, &mut [&mut lake])
        .await;
    println!(
        "the lake caught up with the topics {:.1} s later",
        caught_up.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    finish(stack, load, capture, vec![lake], model).await;
}
