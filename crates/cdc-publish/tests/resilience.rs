//! Capture into Kafka across crashes of capture, an outage of the broker, and schema
//! changes in the source: nothing is lost, duplicates carry their position, and a schema
//! change either becomes a compatible version or stops capture with a clear error.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::time::Duration;

use cdc_avro::DecodedEvent;
use cdc_core::{Position, TableName, Value};
use cdc_publish::{value_subject, PublishConfig};
use cdc_sim::SchemaVariant;
use cdc_stack::*;
use cdc_testkit::rows::{replay, source_rows};
use rand::Rng;

/// Every event on every totesys topic, decoded, grouped by position.
async fn topic_events(
    stack: &Stack,
    tables: &BTreeMap<String, cdc_core::ChangeEvent>,
) -> BTreeMap<String, BTreeMap<Position, Vec<DecodedEvent>>> {
    let publish = PublishConfig::default();
    let mut out = BTreeMap::new();
    for (table, sample) in tables {
        let topic = publish.topic_for(&sample.table.name);
        let mut by_position: BTreeMap<Position, Vec<DecodedEvent>> = BTreeMap::new();
        for record in stack.read_topic(&topic).await {
            if let Some(value) = &record.value {
                let (_, decoded) = stack.decode(&sample.table, value).await;
                by_position
                    .entry(position(&decoded))
                    .or_default()
                    .push(decoded);
            }
        }
        out.insert(table.clone(), by_position);
    }
    out
}

/// Checks that the topics hold every recorded position, that copies of a position are the
/// same change, and that replaying one copy of each rebuilds the source.
async fn check_exactly_once_after_dedup(
    stack: &Stack,
    recorded: &[cdc_core::ChangeEvent],
) -> usize {
    let samples: BTreeMap<String, cdc_core::ChangeEvent> = recorded
        .iter()
        .map(|e| (e.table.name.name.clone(), e.clone()))
        .collect();
    let topics = topic_events(stack, &samples).await;
    let mut duplicates = 0;
    for (table, by_position) in &topics {
        for event in recorded.iter().filter(|e| &e.table.name.name == table) {
            if by_position.contains_key(&event.position) {
                continue;
            }
            // Which snapshots were recorded and which reached the topic, to tell a lost
            // record from a snapshot that was redone.
            let recorded_snapshots: std::collections::BTreeSet<_> = recorded
                .iter()
                .filter(|e| e.snapshot && &e.table.name.name == table)
                .map(|e| e.position.commit_lsn)
                .collect();
            let absent: Vec<String> = recorded
                .iter()
                .filter(|e| &e.table.name.name == table && !by_position.contains_key(&e.position))
                .map(|e| {
                    format!(
                        "{}/{} {}{}",
                        e.position.commit_lsn,
                        e.position.ordinal,
                        e.op.code(),
                        if e.snapshot { " (snapshot)" } else { "" }
                    )
                })
                .collect();
            let missing = absent.len();
            eprintln!("absent from the topic: {absent:?}");
            panic!(
                "{table}: {:?} ({} of {}) was lost; {missing} of {} recorded positions are not \
                 in the topic ({} positions there); snapshots recorded at {recorded_snapshots:?}",
                event.position,
                event.op.code(),
                if event.snapshot { "snapshot" } else { "stream" },
                recorded
                    .iter()
                    .filter(|e| &e.table.name.name == table)
                    .count(),
                by_position.len()
            );
        }
        for copies in by_position.values() {
            duplicates += copies.len() - 1;
            for copy in &copies[1..] {
                assert_eq!(
                    (copy.op, &copy.before, &copy.after, &copy.source),
                    (
                        copies[0].op,
                        &copies[0].before,
                        &copies[0].after,
                        &copies[0].source
                    ),
                    "{table}: copies of one position differ"
                );
            }
        }
        let rebuilt = replay(by_position.values().map(|copies| {
            (
                copies[0].op,
                copies[0].before.as_deref(),
                copies[0].after.as_deref(),
            )
        }));
        assert_eq!(
            rebuilt,
            source_rows(&stack.client, table).await,
            "{table} rebuilt from its topic"
        );
    }
    duplicates
}

/// A source seeded with `seed`, and capture past its initial snapshot (streaming).
async fn streaming(seed: u64) -> (Stack, cdc_stack::Capture) {
    let stack = Stack::start().await;
    stack.totesys(SchemaVariant::default(), seed).await;
    let capture = stack.start_capture(PublishConfig::default()).await;
    stack.wait_snapshot_done(&capture).await;
    (stack, capture)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_crashes_lose_nothing_and_duplicates_keep_their_position() {
    // Mid-stream: a crash during the initial snapshot redoes it under a new slot
    // (docs/capture.md), so its rows come again with new positions.
    let (stack, mut capture) = streaming(9).await;
    let workload = stack.spawn_workload(1_500, 600.0, 23).await;
    let mut recorded = Vec::new();
    let mut rng = rand::rng();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(400..1_200))).await;
        recorded.extend(capture.events());
        capture.crash().await;
        capture = stack.start_capture(PublishConfig::default()).await;
    }
    workload.await.unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(120))
        .await;
    recorded.extend(capture.events());
    capture.stop().await.unwrap();

    let duplicates = check_exactly_once_after_dedup(&stack, &recorded).await;
    println!(
        "{} events recorded, {duplicates} duplicates in Kafka after two crashes",
        recorded.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stops_confirm_what_kafka_acknowledged_and_repeat_nothing() {
    let (stack, mut capture) = streaming(9).await;
    let workload = stack.spawn_workload(1_500, 600.0, 29).await;
    let mut recorded = Vec::new();
    let mut rng = rand::rng();
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(400..1_200))).await;
        let handed_over = capture.recorded.clone();
        let positions = capture.positions.clone();
        // Stop mid-stream, as on SIGTERM: finish the open transaction, wait for every
        // record's acknowledgement, confirm, leave.
        capture.stop().await.unwrap();
        let events = handed_over.lock().unwrap().clone();
        assert!(!positions.streaming());
        let last_end = events.iter().map(|e| e.transaction.end_lsn).max().unwrap();
        let confirmed = positions.confirmed();
        assert!(
            confirmed >= last_end,
            "round {round}: confirmed {confirmed} is short of {last_end}, the end of the last transaction handed to Kafka"
        );
        assert_eq!(
            slot_reaches(&stack.client, &stack.db.name, confirmed).await,
            confirmed,
            "round {round}: the slot holds the final confirmed position"
        );
        recorded.extend(events);
        capture = stack.start_capture(PublishConfig::default()).await;
    }
    workload.await.unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(120))
        .await;
    let handed_over = capture.recorded.clone();
    capture.stop().await.unwrap();
    recorded.extend(handed_over.lock().unwrap().iter().cloned());

    let duplicates = check_exactly_once_after_dedup(&stack, &recorded).await;
    assert_eq!(
        duplicates, 0,
        "graceful restarts resume exactly after what was delivered"
    );
    println!(
        "{} events recorded, no duplicates after two graceful stops",
        recorded.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_stalls_capture_and_it_resumes_without_loss() {
    // The outage is mid-stream: every table's topic exists (a topic created during an
    // outage fails capture, see docs/kafka.md).
    let (mut stack, capture) = streaming(4).await;
    let workload = stack.spawn_workload(1_200, 400.0, 23).await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    stack.broker.kill();
    let before = confirmed_flush(&stack.client, &stack.db.name).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = confirmed_flush(&stack.client, &stack.db.name).await;
    assert!(
        !capture.task.is_finished(),
        "capture survives the outage: {:?}",
        capture.error()
    );
    assert!(
        during <= wal_insert_lsn(&stack.client).await,
        "the slot cannot pass what Kafka acknowledged"
    );
    stack.broker.restart().unwrap();

    workload.await.unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(120))
        .await;
    let recorded = capture.events();
    capture.stop().await.unwrap();
    println!("slot at {before} when the broker died, {during} four seconds later");
    check_exactly_once_after_dedup(&stack, &recorded).await;
}

const STAFF: &str =
    "CREATE TABLE staff (staff_id int PRIMARY KEY, first_name text NOT NULL, grade int);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_column_is_a_new_compatible_version() {
    let stack = Stack::start().await;
    stack.client.batch_execute(STAFF).await.unwrap();
    let capture = stack.start_capture(PublishConfig::default()).await;
    stack
        .client
        .batch_execute(
            "INSERT INTO staff VALUES (1, 'Ada', 3);
             ALTER TABLE staff ADD COLUMN email text;
             INSERT INTO staff VALUES (2, 'Bo', 4, 'bo@example.com');
             ALTER TABLE staff ADD COLUMN team text NOT NULL DEFAULT 'core';
             UPDATE staff SET team = 'data' WHERE staff_id = 1;",
        )
        .await
        .unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(60))
        .await;
    let recorded = capture.events();
    capture.stop().await.unwrap();

    let subject = value_subject("totesys.public.staff");
    let latest = stack.registry.latest(&subject).await.unwrap();
    assert_eq!(latest.version, 3, "one version per shape");
    for field in ["\"email\"", "\"team\""] {
        assert!(
            latest.schema.contains(field),
            "{field} in {}",
            latest.schema
        );
    }
    // Each record decodes with its own writer schema to the row the source had then.
    let mut seen = Vec::new();
    for record in stack.read_topic("totesys.public.staff").await {
        let value = record.value.as_ref().unwrap();
        let mut matched = None;
        for event in &recorded {
            if let Some((id, decoded)) = stack.try_decode(&event.table, value).await {
                if position(&decoded) == event.position {
                    assert_eq!(
                        decoded.after, event.after,
                        "the row as the source had it then"
                    );
                    matched = Some((event.position, id.get()));
                }
            }
        }
        seen.push(matched.expect("every record is one of the recorded changes"));
    }
    seen.sort();
    let seen: Vec<u32> = seen.into_iter().map(|(_, id)| id).collect();
    if seen.len() != 3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let again = stack.read_topic("totesys.public.staff").await;
        panic!(
            "{} records read, {} recorded events; read again 3 s later: {:?}",
            seen.len(),
            recorded.len(),
            again
                .iter()
                .map(|r| (r.partition, r.offset))
                .collect::<Vec<_>>()
        );
    }
    assert!(
        seen[0] < seen[1] && seen[1] < seen[2],
        "three writer schemas: {seen:?}"
    );
    assert_eq!(
        recorded[2].after.as_ref().unwrap()[4],
        Value::Text("data".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_change_stops_capture_before_it_with_a_clear_error() {
    let stack = Stack::start().await;
    stack.client.batch_execute(STAFF).await.unwrap();
    let capture = stack.start_capture(PublishConfig::default()).await;
    stack
        .client
        .batch_execute("INSERT INTO staff VALUES (1, 'Ada', 3);")
        .await
        .unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(60))
        .await;
    let good = confirmed_flush(&stack.client, &stack.db.name).await;
    stack
        .client
        .batch_execute(
            "ALTER TABLE staff ALTER COLUMN first_name TYPE int USING length(first_name);
             INSERT INTO staff VALUES (2, 42, 4);",
        )
        .await
        .unwrap();
    let error = match capture.ended(Duration::from_secs(60)).await {
        Ok(()) => panic!("capture accepted an incompatible change"),
        Err(e) => chain(&e),
    };
    println!("{error}");
    assert!(!error.contains('\n'), "one line: {error}");
    for part in [
        "public.staff",
        "incompatible",
        "first_name",
        "totesys.public.staff-value",
    ] {
        assert!(error.contains(part), "{part:?} in {error}");
    }
    assert_eq!(
        stack
            .metrics
            .schema_incompatible
            .with_label_values(&["public.staff"])
            .get(),
        1
    );
    assert_eq!(
        confirmed_flush(&stack.client, &stack.db.name).await,
        good,
        "nothing past the refused change is confirmed"
    );

    // The documented way on: relax the subject, restart; the change then arrives.
    stack
        .registry
        .set_compatibility(
            Some("totesys.public.staff-value"),
            cdc_registry::CompatibilityLevel::None,
        )
        .await
        .unwrap();
    let capture = stack.start_capture(PublishConfig::default()).await;
    stack
        .wait_all_acked(&capture, Duration::from_secs(60))
        .await;
    let recorded = capture.events();
    capture.stop().await.unwrap();
    let after = recorded
        .iter()
        .find(|e| e.table.name == TableName::new("public", "staff"))
        .and_then(|e| e.after.clone())
        .unwrap();
    assert_eq!(after[1], Value::Int32(42));
}
