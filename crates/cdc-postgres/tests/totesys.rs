//! Capture of the totesys schema under the simulator's workload, in both deployment
//! variants, checked against an independent recomputation by PostgreSQL itself.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use cdc_core::{ChangeEvent, Op, Value};
use cdc_sim::{SchemaVariant, WorkloadConfig};
use cdc_testkit::TestDb;
use support::*;

/// A value as PostgreSQL renders it in [`source_rows`], for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
}

fn cell(value: &Value) -> Cell {
    match value {
        Value::Null => Cell::Null,
        Value::Int16(v) => Cell::Int(i64::from(*v)),
        Value::Int32(v) => Cell::Int(i64::from(*v)),
        Value::Int64(v) => Cell::Int(*v),
        Value::Timestamp(v) | Value::TimestampTz(v) => Cell::Int(*v),
        Value::Numeric(s) | Value::Text(s) | Value::Other(s) => Cell::Text(s.clone()),
        Value::Bool(b) => Cell::Bool(*b),
        other => panic!("unexpected totesys value {other:?}"),
    }
}

/// Every row of `table` keyed by its first column, each column rendered by SQL:
/// integers as bigint, timestamps as microseconds since the epoch, everything else as text.
async fn source_rows(client: &tokio_postgres::Client, table: &str) -> BTreeMap<i64, Vec<Cell>> {
    let columns = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .unwrap();
    let exprs: Vec<String> = columns
        .iter()
        .map(|c| {
            let (name, kind): (String, String) = (c.get(0), c.get(1));
            match kind.as_str() {
                "integer" | "smallint" | "bigint" => format!("\"{name}\"::int8::text"),
                "timestamp without time zone" => {
                    format!("(extract(epoch FROM \"{name}\") * 1000000)::int8::text")
                }
                "boolean" => format!("'b:' || \"{name}\"::text"),
                _ => format!("'t:' || \"{name}\"::text"),
            }
        })
        .collect();
    let sql = format!("SELECT {} FROM public.\"{table}\"", exprs.join(", "));
    let mut rows = BTreeMap::new();
    for row in client.query(&sql, &[]).await.unwrap() {
        let cells: Vec<Cell> = (0..columns.len())
            .map(|i| match row.get::<_, Option<String>>(i) {
                None => Cell::Null,
                Some(s) if s.starts_with("t:") => Cell::Text(s[2..].to_owned()),
                Some(s) if s.starts_with("b:") => Cell::Bool(&s[2..] == "true"),
                Some(s) => Cell::Int(s.parse().unwrap()),
            })
            .collect();
        let Cell::Int(key) = cells[0] else {
            panic!("key")
        };
        rows.insert(key, cells);
    }
    rows
}

/// Replays snapshot and stream events of `table` in position order.
fn replayed_rows(events: &[ChangeEvent], table: &str) -> BTreeMap<i64, Vec<Cell>> {
    let mut rows = BTreeMap::new();
    let key = |row: &[Value]| match cell(&row[0]) {
        Cell::Int(k) => k,
        other => panic!("key {other:?}"),
    };
    for event in events.iter().filter(|e| e.table.name.name == table) {
        match event.op {
            Op::Read | Op::Insert | Op::Update => {
                let after = event.after.as_ref().unwrap();
                assert!(!after.contains(&Value::UnchangedToast));
                if let Some(before) = &event.before {
                    rows.remove(&key(before));
                }
                rows.insert(key(after), after.iter().map(cell).collect());
            }
            Op::Delete => {
                rows.remove(&key(event.before.as_ref().unwrap()));
            }
            Op::Truncate => rows.clear(),
        }
    }
    rows
}

async fn capture_matches_source(variant: SchemaVariant) {
    let db = TestDb::create().await.unwrap();
    let client = db.client().await.unwrap();
    cdc_sim::create_schema(&client, variant).await.unwrap();
    cdc_sim::seed(&client, 3).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let capture = start(config(&db, &state));
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
    let events = capture.stop().await.unwrap().events();

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
    capture_matches_source(SchemaVariant {
        numeric_10_2: true,
        transaction_type_enum: true,
    })
    .await;
}
