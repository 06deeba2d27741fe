//! Capture of the totesys schema under the simulator's workload, in both deployment
//! variants, checked against an independent recomputation by PostgreSQL itself.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use cdc_core::ChangeEvent;
use cdc_sim::{SchemaVariant, WorkloadConfig};
use cdc_testkit::rows::{replay, source_rows, Cell};
use cdc_testkit::TestDb;
use support::*;

/// Replays snapshot and stream events of `table` in position order.
fn replayed_rows(events: &[ChangeEvent], table: &str) -> BTreeMap<i64, Vec<Cell>> {
    replay(
        events
            .iter()
            .filter(|e| e.table.name.name == table)
            .map(|e| (e.op, e.before.as_deref(), e.after.as_deref())),
    )
}

async fn capture_matches_source(variant: SchemaVariant) {
    let db = TestDb::create().await.unwrap();
    let client = db.client().await.unwrap();
    cdc_sim::create_schema(&client, variant).await.unwrap();
    cdc_sim::seed(&client, 3).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = config(&db, &state);
    let positions = config.positions.clone();
    let capture = start(config);
    wait_slot(&client, &db.name).await;

    let workload = WorkloadConfig {
        rate_per_sec: 2_000.0,
        duration: None,
        max_changes: Some(3_000),
        seed: 11,
        ..WorkloadConfig::default()
    };
    let (_stop, never) = tokio::sync::watch::channel(false);
    let stats = cdc_sim::run_workload(&client, &workload, never)
        .await
        .unwrap();
    let end: cdc_core::Lsn = wal_insert_lsn(&client).await;
    capture
        .wait_for(
            "the stream to pass the workload's end",
            Duration::from_secs(120),
            |_| capture.stats.lock().unwrap().confirmed_lsn >= end,
        )
        .await;
    // What the metrics read: the stream is up, the slot is confirmed past the workload,
    // and the server's WAL end is never behind what was confirmed.
    assert!(positions.streaming());
    assert!(positions.confirmed() >= end, "{positions:?}");
    assert!(
        positions.wal_end() >= positions.confirmed(),
        "{positions:?}"
    );
    assert!(positions.last_commit_micros().is_some());
    let events = capture.stop().await.unwrap().events();
    assert!(!positions.streaming(), "not streaming once stopped");
    // The walsender reads the final status update before the goodbye, shortly after.
    let mut slot = confirmed_flush(&client, &db.name).await;
    for _ in 0..100 {
        if slot == positions.confirmed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        slot = confirmed_flush(&client, &db.name).await;
    }
    assert_eq!(
        slot,
        positions.confirmed(),
        "the final confirmed position is the slot's"
    );

    let mut tables_with_changes = 0;
    for table in cdc_sim::TABLES {
        let expected = source_rows(&client, table).await;
        let replayed = replayed_rows(&events, table);
        assert_eq!(replayed.len(), expected.len(), "row count of {table}");
        for (key, row) in &expected {
            assert_eq!(replayed.get(key), Some(row), "{table} row {key}");
        }
        if events
            .iter()
            .any(|e| !e.snapshot && e.table.name.name == table)
        {
            tables_with_changes += 1;
        }
    }
    assert_eq!(
        tables_with_changes, 11,
        "the workload changed all 11 tables: {stats}"
    );
    let streamed = events.iter().filter(|e| !e.snapshot).count() as u64;
    let written: u64 = stats
        .per_table()
        .iter()
        .map(|(_, c)| c.inserts + c.updates + c.deletes)
        .sum();
    assert_eq!(streamed, written, "one event per changed row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totesys_as_specified_is_captured_exactly() {
    capture_matches_source(SchemaVariant::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totesys_with_numeric_10_2_and_an_enum_is_captured_exactly() {
    capture_matches_source(SchemaVariant::BOTH).await;
}
