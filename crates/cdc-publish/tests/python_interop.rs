//! Confluent's stock Python client reads every topic capture wrote, through our
//! registry (`SchemaRegistryClient` + `AvroDeserializer`), and sees the source rows.
//!
//! `crates/cdc-registry/tests/interop/read_topics.py` prints each record as JSON with
//! Python's own rendering of the Avro logical types (decimals as exact strings,
//! timestamps as ISO 8601); this test rebuilds every table from that output and compares
//! it with what PostgreSQL has.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cdc_core::{Op, TableSchema};
use cdc_publish::PublishConfig;
use cdc_sim::{SchemaVariant, WorkloadConfig};
use cdc_stack::*;
use cdc_testkit::rows::{source_rows, Cell};
use serde_json::Value as Json;

const BOOL: u32 = 16;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TIMESTAMP: u32 = 1114;

/// A column of Python's JSON rendering as the [`Cell`] `source_rows` renders it as.
fn cell(type_oid: u32, value: &Json) -> Cell {
    match (type_oid, value) {
        (_, Json::Null) => Cell::Null,
        (INT2 | INT4 | INT8, Json::Number(n)) => Cell::Int(n.as_i64().unwrap()),
        (BOOL, Json::Bool(b)) => Cell::Bool(*b),
        (TIMESTAMP, Json::String(iso)) => {
            let at = chrono::NaiveDateTime::parse_from_str(iso, "%Y-%m-%dT%H:%M:%S%.f")
                .unwrap_or_else(|e| panic!("timestamp {iso:?}: {e}"));
            Cell::Int(at.and_utc().timestamp_micros())
        }
        (_, Json::String(text)) => Cell::Text(text.clone()),
        (oid, other) => panic!("column of type {oid} rendered as {other}"),
    }
}

/// The rows Python's view of a table topic rebuilds, keyed by the first column.
fn rebuild(table: &TableSchema, records: &[&Json]) -> BTreeMap<i64, Vec<Cell>> {
    let image = |value: &Json| -> Option<Vec<Cell>> {
        value.as_object().map(|row| {
            table
                .columns
                .iter()
                .map(|c| cell(c.type_oid, &row[&c.name]))
                .collect()
        })
    };
    // One copy per position, in position order.
    let mut changes = BTreeMap::new();
    for value in records {
        let source = &value["source"];
        let position = (
            source["commit_lsn"].as_i64().unwrap(),
            source["ordinal"].as_i64().unwrap(),
        );
        changes.insert(position, *value);
    }
    let mut rows = BTreeMap::new();
    let key = |row: &[Cell]| match &row[0] {
        Cell::Int(k) => *k,
        other => panic!("key {other:?}"),
    };
    for value in changes.values() {
        let (before, after) = (image(&value["before"]), image(&value["after"]));
        match value["op"].as_str().unwrap() {
            "r" | "c" | "u" => {
                let after = after.unwrap();
                if let Some(before) = before {
                    rows.remove(&key(&before));
                }
                rows.insert(key(&after), after);
            }
            "d" => {
                rows.remove(&key(&before.unwrap()));
            }
            "t" => rows.clear(),
            other => panic!("op {other}"),
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_python_client_reads_every_topic_and_sees_the_source_rows() {
    let python = cdc_testkit::python::venv_python().unwrap_or_else(|e| panic!("{e}"));
    let stack = Stack::start().await;
    // numeric(10,2) travels as an Avro decimal: the stock deserializer must make it exact.
    let variant = SchemaVariant::BOTH;
    stack.totesys(variant, 3).await;
    let publish = PublishConfig::with_transaction_topic();
    let workload = WorkloadConfig {
        rate_per_sec: 1_000.0,
        duration: None,
        max_changes: Some(800),
        seed: 5,
        ..WorkloadConfig::default()
    };
    let (recorded, _) = stack.capture_workload(publish.clone(), &workload).await;

    let mut tables: BTreeMap<String, TableSchema> = BTreeMap::new();
    for event in &recorded {
        tables.insert(publish.topic_for(&event.table.name), (*event.table).clone());
    }
    assert_eq!(tables.len(), 11, "every totesys table has events");
    let mut topics: Vec<String> = tables.keys().cloned().collect();
    topics.push(publish.transaction_topic_name());
    let mut expected = 0;
    for topic in &topics {
        expected += stack.read_topic(topic).await.len();
    }

    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../cdc-registry/tests/interop/read_topics.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--bootstrap", &stack.broker.bootstrap()])
        .args(["--registry", &stack.registry_url])
        .args(["--group", "python-interop"])
        .args(["--expect", &expected.to_string()])
        .args(["--idle-timeout", "30"])
        .args(&topics)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("read_topics.py finishes")
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "read_topics.py failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Json> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), expected, "Python read every record once");

    for (topic, table) in &tables {
        let of_topic: Vec<&Json> = lines.iter().filter(|l| l["topic"] == **topic).collect();
        let values: Vec<&Json> = of_topic
            .iter()
            .map(|l| &l["value"])
            .filter(|v| !v.is_null())
            .collect();
        let tombstones = of_topic.len() - values.len();
        let deletes = recorded
            .iter()
            .filter(|e| e.op == Op::Delete && publish.topic_for(&e.table.name) == *topic)
            .count();
        assert_eq!(tombstones, deletes, "{topic}: a tombstone per delete");
        for line in &of_topic {
            assert!(line["key"].is_object(), "{topic}: keys decode: {line}");
        }
        let rebuilt = rebuild(table, &values);
        let source = source_rows(&stack.client, &table.name.name).await;
        assert_eq!(rebuilt, source, "{topic} as the stock client sees it");
    }
    let markers: Vec<&Json> = lines
        .iter()
        .filter(|l| l["topic"] == publish.transaction_topic_name())
        .collect();
    let ends = markers
        .iter()
        .filter(|l| l["value"]["status"] == "END")
        .count();
    let snapshot_ends = markers
        .iter()
        .filter(|l| l["value"]["status"] == "END" && l["value"]["xid"].is_null())
        .count();
    assert!(snapshot_ends <= 1, "at most one snapshot END");
    assert_eq!(
        ends * 2 - snapshot_ends,
        markers.len(),
        "a BEGIN and an END per transaction, an END for the snapshot"
    );
}
