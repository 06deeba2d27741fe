//! Capture of the totesys database into Kafka on the real stack (PostgreSQL, Apache Kafka, our
//! registry), read back with a plain consumer and each value decoded with its writer
//! schema from the registry.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap};

use apache_avro::types::Value as Avro;
use cdc_avro::{decode_confluent, decode_key};
use cdc_core::{ChangeEvent, Op, Position, TableSchema};
use cdc_publish::PublishConfig;
use cdc_sim::{SchemaVariant, WorkloadConfig};
use cdc_stack::*;
use cdc_testkit::rows::{replay, source_rows};

async fn totesys_arrives_exactly(variant: SchemaVariant) {
    let stack = Stack::start().await;
    stack.totesys(variant, 5).await;
    let publish = PublishConfig::with_transaction_topic();
    let workload = WorkloadConfig {
        rate_per_sec: 1_500.0,
        duration: None,
        max_changes: Some(2_000),
        seed: 17,
        ..WorkloadConfig::default()
    };
    let (recorded, written) = stack.capture_workload(publish.clone(), &workload).await;

    let streamed = recorded.iter().filter(|e| !e.snapshot).count() as u64;
    let changed: u64 = written
        .per_table()
        .iter()
        .map(|(_, c)| c.inserts + c.updates + c.deletes)
        .sum();
    assert_eq!(streamed, changed, "one event per changed row: {written}");

    for table in cdc_sim::TABLES {
        let expected: Vec<&ChangeEvent> = recorded
            .iter()
            .filter(|e| e.table.name.name == table)
            .collect();
        let schema = expected
            .first()
            .map(|e| e.table.clone())
            .unwrap_or_else(|| panic!("no events of {table}"));
        let topic = publish.topic_for(&schema.name);
        let records = stack.read_topic(&topic).await;
        let checked = check_topic(&stack, &schema, &expected, &records).await;

        // The topic alone rebuilds the table as the source has it now.
        let rebuilt = replay(
            checked
                .iter()
                .map(|e| (e.op, e.before.as_deref(), e.after.as_deref())),
        );
        let source = source_rows(&stack.client, table).await;
        assert_eq!(rebuilt, source, "{topic} rebuilds {table}");
    }

    check_transaction_topic(&stack, &publish.transaction_topic_name(), &recorded).await;
}

/// Checks one table topic against the events capture handed over; returns the decoded
/// events in position order.
async fn check_topic(
    stack: &Stack,
    table: &TableSchema,
    expected: &[&ChangeEvent],
    records: &[Record],
) -> Vec<cdc_avro::DecodedEvent> {
    let name = table.name.to_string();
    let mut by_position: BTreeMap<Position, cdc_avro::DecodedEvent> = BTreeMap::new();
    let mut last_in_partition: HashMap<(i32, Vec<u8>), Position> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        let Some(value) = &record.value else {
            // A tombstone follows the delete of its key in the same partition.
            let previous = &records[i - 1];
            assert_eq!(
                previous.partition, record.partition,
                "{name}: tombstone partition"
            );
            assert_eq!(previous.key, record.key, "{name}: tombstone key");
            let (_, decoded) = stack.decode(table, previous.value.as_ref().unwrap()).await;
            assert_eq!(
                decoded.op,
                Op::Delete,
                "{name}: a tombstone follows a delete"
            );
            continue;
        };
        let (_, decoded) = stack.decode(table, value).await;
        let position = position(&decoded);
        let key = record.key.clone().expect("every totesys table has a key");
        let (_, generic_key) = stack.writer_value(&key).await;
        let key_row = decode_key(table, &generic_key).unwrap();
        let row = match decoded.op {
            Op::Delete => decoded.before.as_ref(),
            _ => decoded.after.as_ref(),
        }
        .unwrap();
        let key_values: Vec<_> = table
            .key_indexes()
            .iter()
            .map(|&i| row[i].clone())
            .collect();
        assert_eq!(key_row, key_values, "{name}: key is the row's primary key");
        // Per-key order: positions only grow within a partition.
        if let Some(before) = last_in_partition.insert((record.partition, key), position) {
            assert!(
                before < position,
                "{name}: key order {before:?} then {position:?}"
            );
        }
        assert!(
            by_position.insert(position, decoded).is_none(),
            "{name}: position {position:?} published twice without a restart"
        );
    }
    assert_eq!(
        by_position.len(),
        expected.len(),
        "{name}: one record per event"
    );
    for event in expected {
        let decoded = by_position
            .get(&event.position)
            .unwrap_or_else(|| panic!("{name}: {:?} missing from Kafka", event.position));
        assert_eq!(decoded.op, event.op, "{name} {:?} op", event.position);
        assert_eq!(
            decoded.before, event.before,
            "{name} {:?} before",
            event.position
        );
        assert_eq!(
            decoded.after, event.after,
            "{name} {:?} after",
            event.position
        );
        let source = &decoded.source;
        assert_eq!(
            (
                source.lsn,
                source.commit_lsn,
                source.xid,
                source.commit_ts_us,
                source.snapshot
            ),
            (
                event.lsn,
                event.transaction.commit_lsn,
                event.transaction.xid,
                event.transaction.commit_time_micros,
                event.snapshot
            ),
            "{name} {:?} source",
            event.position
        );
        assert_eq!(
            (source.schema.as_str(), source.table.as_str()),
            (table.name.schema.as_str(), table.name.name.as_str())
        );
    }
    by_position.into_values().collect()
}

/// BEGIN and END per streamed transaction, with the END's counts matching the events;
/// the snapshot has an END (no xid, no BEGIN) with its rows per table.
async fn check_transaction_topic(stack: &Stack, topic: &str, recorded: &[ChangeEvent]) {
    let mut expected: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for event in recorded {
        *expected
            .entry(event.transaction.commit_lsn.to_string())
            .or_default()
            .entry(event.table.name.to_string())
            .or_default() += 1;
    }
    let records = stack.read_topic(topic).await;
    let mut begun = Vec::new();
    let mut ended: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for record in &records {
        let (id, body) = decode_confluent(record.value.as_ref().unwrap()).unwrap();
        let text = stack
            .registry
            .schema_by_id(cdc_registry::SchemaId(id))
            .await
            .unwrap();
        let schema = apache_avro::Schema::parse_str(&text).unwrap();
        let Avro::Record(fields) =
            apache_avro::from_avro_datum(&schema, &mut &body[..], None).unwrap()
        else {
            panic!("not a record")
        };
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
        let Avro::String(txn_id) = field("id") else {
            panic!("id")
        };
        match field("status") {
            Avro::Enum(0, _) => begun.push(txn_id),
            Avro::Enum(1, _) => {
                if field("xid") != Avro::Union(0, Box::new(Avro::Null)) {
                    assert_eq!(begun.last(), Some(&txn_id), "END follows its BEGIN");
                }
                let Avro::Union(1, collections) = field("data_collections") else {
                    panic!("END has data collections")
                };
                let Avro::Array(items) = *collections else {
                    panic!("array")
                };
                let counts = items
                    .into_iter()
                    .map(|item| {
                        let Avro::Record(f) = item else {
                            panic!("item")
                        };
                        let (Avro::String(table), Avro::Long(n)) = (f[0].1.clone(), f[1].1.clone())
                        else {
                            panic!("collection")
                        };
                        (table, n)
                    })
                    .collect();
                ended.insert(txn_id, counts);
            }
            other => panic!("status {other:?}"),
        }
    }
    let snapshots = recorded
        .iter()
        .filter(|e| e.snapshot)
        .map(|e| e.transaction.commit_lsn)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(
        begun.len() + snapshots,
        expected.len(),
        "one BEGIN per transaction"
    );
    assert_eq!(ended, expected, "END counts per table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totesys_as_specified_arrives_in_kafka_exactly() {
    totesys_arrives_exactly(SchemaVariant::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totesys_with_numeric_10_2_and_an_enum_arrives_in_kafka_exactly() {
    totesys_arrives_exactly(SchemaVariant::BOTH).await;
}
