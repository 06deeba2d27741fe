//! The lake writer on the real stack: PostgreSQL, capture into Kafka through our registry,
//! lake writers in a consumer group, files on the local filesystem; the lake read back
//! with DuckDB (from the project's Python venv) and with the Parquet crate.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use cdc_kafka::Producer;
use cdc_lake::{CompactOptions, LakeStore, DLQ_OFFSET, DLQ_REASON, DLQ_REASON_CODE, DLQ_TOPIC};
use cdc_publish::PublishConfig;
use cdc_sim::SchemaVariant;
use cdc_stack::Writer;
use cdc_stack::{Record, Stack};
use cdc_testkit::rows::{source_rows, Cell};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

const DEAD_LETTERS: &str = "totesys.lake-dead-letters";
const TRANSACTIONS: &str = "totesys.transaction";

/// A writer of `group` over the stack's topics, writing small files.
async fn start_writer(stack: &Stack, lake: &LakeStore, group: &str) -> Writer {
    cdc_stack::log_to_test_output();
    let mut kafka = stack.settings();
    // The consumer-lag gauge follows librdkafka's statistics; often, for the tests.
    kafka.set("statistics.interval.ms", "300");
    if let Ok(debug) = std::env::var("LAKE_KAFKA_DEBUG") {
        kafka.set("debug", debug);
    }
    let flush = Writer::small_files(150, 300);
    Writer::start(kafka, stack.registry.clone(), lake, group, flush).await
}

/// Files a writer has committed, over all its tables.
fn files_written(writer: &Writer) -> u64 {
    cdc_core::counter_total(&writer.metrics.files)
}

/// The partitions a writer's consumer-lag gauge has a series for.
fn lag_series(writer: &Writer) -> BTreeSet<(String, String)> {
    use prometheus::core::Collector;
    writer
        .metrics
        .consumer_lag
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| {
            let label = |name: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_owned())
                    .unwrap()
            };
            (label("topic"), label("partition"))
        })
        .collect()
}

/// The change topics (`totesys.<schema>.<table>`) and their partition counts.
fn change_topics(bootstrap: &str) -> BTreeMap<String, i32> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    metadata
        .topics()
        .iter()
        .filter(|t| t.name().starts_with("totesys.") && t.name().split('.').count() == 3)
        .filter(|t| t.name() != DEAD_LETTERS)
        .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
        .collect()
}

/// Waits until `group` has committed every partition of every change topic to its end.
async fn wait_caught_up(stack: &Stack, group: &str, timeout: Duration) {
    let bootstrap = stack.broker.bootstrap();
    let group = group.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .create()
            .unwrap();
        let start = Instant::now();
        loop {
            let mut behind = Vec::new();
            let mut wanted = TopicPartitionList::new();
            let mut ends = HashMap::new();
            let mut topics = change_topics(&bootstrap);
            topics.insert(TRANSACTIONS.to_owned(), 1);
            for (topic, partitions) in topics {
                for partition in 0..partitions {
                    let (_, high) = consumer
                        .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                        .unwrap();
                    wanted.add_partition(&topic, partition);
                    ends.insert((topic.clone(), partition), high);
                }
            }
            let committed = consumer
                .committed_offsets(wanted, Duration::from_secs(10))
                .unwrap();
            for element in committed.elements() {
                let at = match element.offset() {
                    Offset::Offset(at) => at,
                    _ => 0,
                };
                let end = ends[&(element.topic().to_owned(), element.partition())];
                if at < end {
                    behind.push(format!(
                        "{}[{}] {at}/{end}",
                        element.topic(),
                        element.partition()
                    ));
                }
            }
            if behind.is_empty() && !ends.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "lake writers did not catch up in {timeout:?}: {behind:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .unwrap();
}

/// The transaction topic's END records are rows of `totesys_cdc.transactions`, and their
/// per-table counts add up to the changes of each table in the lake (the snapshot's END,
/// which has no BEGIN, counts its rows).
async fn check_transactions(stack: &Stack, dir: &Path) {
    let ends = stack.read_topic(TRANSACTIONS).await.len().div_ceil(2);
    let lake = read_with_duckdb(dir).await;
    let transactions = &lake.rows["totesys_cdc.transactions"];
    assert_eq!(transactions.len(), ends, "one row per END record");
    let mut counted: HashMap<String, i64> = HashMap::new();
    for row in transactions {
        let collections: HashMap<String, i64> =
            serde_json::from_str(row["data_collections"].as_str().unwrap()).unwrap();
        for (table, count) in collections {
            *counted.entry(table).or_default() += count;
        }
    }
    for table in cdc_sim::TABLES {
        let changes = lake.rows[table].len() as i64;
        assert_eq!(
            counted
                .get(&format!("public.{table}"))
                .copied()
                .unwrap_or(0),
            changes,
            "{table}: the END records count the changes in the lake"
        );
    }
}

/// `(topic, partition, offset)` of every row in the files of the lake tables' latest
/// snapshots under `dir` (what a Delta reader reads).
fn lake_positions(dir: &Path) -> Vec<(String, i32, i64)> {
    let lake = LakeStore::open(dir.to_str().unwrap()).unwrap();
    let live = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            cdc_lake::LakeTables::new(&lake)
                .unwrap()
                .all_live_files()
                .await
                .unwrap()
        })
    })
    .join()
    .unwrap();
    let mut found = Vec::new();
    for (table, file) in live {
        if table == "totesys_cdc.transactions" {
            continue;
        }
        let topic = if table.contains('.') {
            format!("totesys.{table}")
        } else {
            format!("totesys.public.{table}")
        };
        let path = dir.join(file.path.as_ref());
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap();
        let schema = builder.parquet_schema();
        let wanted: Vec<usize> = (0..schema.num_columns())
            .filter(|&i| {
                let column = schema.column(i);
                column.name() == "_kafka_partition" || column.name() == "_kafka_offset"
            })
            .collect();
        let mask = ProjectionMask::leaves(schema, wanted);
        for batch in builder.with_projection(mask).build().unwrap() {
            let batch = batch.unwrap();
            let partitions = batch.column(0).as_primitive::<Int32Type>();
            let offsets = batch.column(1).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                found.push((topic.clone(), partitions.value(i), offsets.value(i)));
            }
        }
    }
    found
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            files.push(path);
        }
    }
    files
}

/// Every change record (not tombstones) of every change topic, as `(topic, partition, offset)`.
async fn change_records(stack: &Stack) -> BTreeSet<(String, i32, i64)> {
    let mut all = BTreeSet::new();
    for topic in change_topics(&stack.broker.bootstrap()).into_keys() {
        let records: Vec<Record> = stack.read_topic(&topic).await;
        all.extend(
            records
                .iter()
                .filter(|r| r.value.is_some())
                .map(|r| (topic.clone(), r.partition, r.offset)),
        );
    }
    all
}

/// Asserts that the lake holds each record of `expected` exactly once and nothing else.
fn assert_exactly_once(dir: &Path, expected: &BTreeSet<(String, i32, i64)>) {
    let found = lake_positions(dir);
    let mut seen = BTreeSet::new();
    let twice: Vec<_> = found
        .iter()
        .filter(|p| !seen.insert((*p).clone()))
        .collect();
    assert!(
        twice.is_empty(),
        "changes in the lake twice: {:?}",
        &twice[..twice.len().min(10)]
    );
    let missing: Vec<_> = expected.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "changes missing from the lake: {} e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let extra: Vec<_> = seen.difference(expected).collect();
    assert!(
        extra.is_empty(),
        "rows in the lake that are no change record: {extra:?}"
    );
}

/// What DuckDB reads from the lake: per table, its column types and its rows.
struct DuckLake {
    types: HashMap<String, BTreeMap<String, String>>,
    rows: HashMap<String, Vec<serde_json::Map<String, serde_json::Value>>>,
}

async fn read_with_duckdb(dir: &Path) -> DuckLake {
    let python = cdc_testkit::python::venv_python().unwrap_or_else(|e| panic!("{e}"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/read_lake.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg("--lake")
        .arg(dir)
        .output()
        .await
        .expect("run read_lake.py");
    assert!(
        output.status.success(),
        "read_lake.py failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lake = DuckLake {
        types: HashMap::new(),
        rows: HashMap::new(),
    };
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let mut value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).unwrap();
        let table = value["table"].as_str().unwrap().to_owned();
        if let Some(types) = value.remove("types") {
            lake.types
                .insert(table, serde_json::from_value(types).unwrap());
        } else if let Some(serde_json::Value::Object(row)) = value.remove("row") {
            lake.rows.entry(table).or_default().push(row);
        }
    }
    lake
}

fn cell(value: &serde_json::Value) -> Cell {
    match value {
        serde_json::Value::Null => Cell::Null,
        serde_json::Value::Bool(b) => Cell::Bool(*b),
        serde_json::Value::Number(n) => Cell::Int(n.as_i64().unwrap()),
        serde_json::Value::String(s) => Cell::Text(s.clone()),
        other => panic!("unexpected value {other}"),
    }
}

/// Replays a table's lake rows (DuckDB gives them in position order) into its rows now.
fn replay_lake(
    columns: &[String],
    rows: &[serde_json::Map<String, serde_json::Value>],
) -> BTreeMap<i64, Vec<Cell>> {
    let mut table = BTreeMap::new();
    let key = |row: &serde_json::Map<String, serde_json::Value>| match cell(&row[&columns[0]]) {
        Cell::Int(k) => k,
        other => panic!("key {other:?}"),
    };
    for row in rows {
        match row["_op"].as_str().unwrap() {
            "r" | "c" | "u" => {
                if let Some(serde_json::Value::Object(before)) = row.get("_before") {
                    table.remove(&key(before));
                }
                table.insert(key(row), columns.iter().map(|c| cell(&row[c])).collect());
            }
            "d" => {
                table.remove(&key(row));
            }
            "t" => table.clear(),
            other => panic!("op {other}"),
        }
    }
    table
}

/// The DuckDB type the lake gives a column of each totesys source type (`format_type`).
fn duckdb_type(source_type: &str) -> String {
    match source_type {
        "integer" => "INTEGER".into(),
        "timestamp without time zone" => "TIMESTAMP".into(),
        "boolean" => "BOOLEAN".into(),
        // Unconstrained numeric keeps PostgreSQL's exact text (docs/avro.md).
        "text" | "numeric" | "transaction_type_enum" => "VARCHAR".into(),
        varchar if varchar.starts_with("character varying") => "VARCHAR".into(),
        decimal if decimal.starts_with("numeric(") => {
            format!("DECIMAL{}", &decimal["numeric".len()..])
        }
        other => panic!("no totesys column is {other}"),
    }
}

/// Checks DuckDB's view of the lake against the source database, table by table: the
/// types, one row per change record, and the changes replayed equal the rows now.
async fn check_against_source(stack: &Stack, dir: &Path, expected: &BTreeSet<(String, i32, i64)>) {
    let lake = read_with_duckdb(dir).await;
    for table in cdc_sim::TABLES {
        let columns = stack
            .client
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = ('public.' || quote_ident($1))::regclass AND attnum > 0 \
                 AND NOT attisdropped ORDER BY attnum",
                &[&table],
            )
            .await
            .unwrap();
        let types = &lake.types[table];
        for column in &columns {
            let (name, kind): (String, String) = (column.get(0), column.get(1));
            assert_eq!(types[&name], duckdb_type(&kind), "{table}.{name}");
        }
        for (name, kind) in [
            ("_op", "VARCHAR"),
            ("_commit_lsn", "BIGINT"),
            ("_ordinal", "BIGINT"),
            ("_xid", "BIGINT"),
            ("_commit_ts", "TIMESTAMP WITH TIME ZONE"),
            ("_snapshot", "BOOLEAN"),
            ("_kafka_partition", "INTEGER"),
            ("_kafka_offset", "BIGINT"),
            ("_commit_date", "DATE"),
        ] {
            assert_eq!(types[name], kind, "{table}.{name}");
        }
        let rows = &lake.rows[table];
        let topic = format!("totesys.public.{table}");
        let records = expected.iter().filter(|(t, _, _)| *t == topic).count();
        assert_eq!(
            rows.len(),
            records,
            "{table}: one lake row per change record"
        );
        let names: Vec<String> = columns.iter().map(|c| c.get(0)).collect();
        assert_eq!(
            replay_lake(&names, rows),
            source_rows(&stack.client, table).await,
            "{table}: the lake replayed is the table now"
        );
    }
}

async fn start_source(stack: &Stack, variant: SchemaVariant) -> cdc_stack::Capture {
    stack.totesys(variant, 5).await;
    stack
        .start_capture(PublishConfig {
            // The transaction topic is not a change topic: the writers must leave it alone.
            transaction_topic: true,
            ..PublishConfig::default()
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totesys_lands_in_the_lake_exactly_once_and_duckdb_reads_it() {
    let stack = Stack::start().await;
    // numeric(10,2) and an enum column, beside the plain schema's types.
    let variant = SchemaVariant::BOTH;
    let capture = start_source(&stack, variant).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = LakeStore::open(dir.path().to_str().unwrap()).unwrap();
    let writer = start_writer(&stack, &lake, "lake").await;
    stack.spawn_workload(1_500, 1_000.0, 5).await.await.unwrap();
    // A new source column: new files have it, old ones do not, DuckDB reads both.
    stack
        .client
        .batch_execute(
            "ALTER TABLE staff ADD COLUMN email text; \
             UPDATE staff SET email = lower(first_name) || '@terrifictotes.com' \
             WHERE staff_id % 3 = 0",
        )
        .await
        .unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(120))
        .await;
    wait_caught_up(&stack, "lake", Duration::from_secs(120)).await;
    let totals = writer.stop().await;
    capture.stop().await.unwrap();

    let expected = change_records(&stack).await;
    let transactions = stack.read_topic(TRANSACTIONS).await.len().div_ceil(2);
    assert_eq!(
        totals.rows as usize,
        expected.len() + transactions,
        "a row per change record and per END record: {totals:?}"
    );
    assert_eq!(totals.dead_letters, 0);
    assert_exactly_once(dir.path(), &expected);
    check_against_source(&stack, dir.path(), &expected).await;
    check_transactions(&stack, dir.path()).await;
    let has_email: Vec<bool> = files_under(&dir.path().join("raw/staff"))
        .iter()
        .map(|path| {
            let file = std::fs::File::open(path).unwrap();
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
            builder.schema().field_with_name("email").is_ok()
        })
        .collect();
    assert!(
        has_email.contains(&true) && has_email.contains(&false),
        "staff files before and after ADD COLUMN: {has_email:?}"
    );

    // Compaction through the tables' logs, then vacuum: fewer files, the same lake.
    let tables = cdc_lake::LakeTables::new(&lake).unwrap();
    let live_before = tables.all_live_files().await.unwrap().len();
    let options = CompactOptions {
        min_age: Duration::ZERO,
        target_rows: 400,
        retention: Duration::ZERO,
        ..CompactOptions::default()
    };
    let report = cdc_lake::compact(&tables, None, &options).await.unwrap();
    let live_after = tables.all_live_files().await.unwrap().len();
    assert!(report.written > 0, "{report:?}");
    assert_eq!(live_after, live_before - report.merged + report.written);
    assert!(report.vacuumed >= report.merged, "{report:?}");
    assert_exactly_once(dir.path(), &expected);
    check_against_source(&stack, dir.path(), &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_at_random_points_leaves_each_change_once() {
    let stack = Stack::start().await;
    let capture = start_source(&stack, SchemaVariant::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = LakeStore::open(dir.path().to_str().unwrap()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let load = stack.spawn_workload(3_000, 600.0, 11).await;
    for round in 0..6 {
        let writer = start_writer(&stack, &lake, "lake").await;
        // Any moment: while it joins the group or waits out a rebalance (every other
        // round, from its start), or while it writes (from its assignment).
        if round % 2 == 1 {
            writer.assigned().await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..1_500))).await;
        writer.kill().await;
    }
    load.await.unwrap();
    let before_restart = lake_positions(dir.path()).len();
    assert!(before_restart > 0, "the killed writers wrote files");
    stack
        .wait_all_acked(&capture, Duration::from_secs(120))
        .await;
    let writer = start_writer(&stack, &lake, "lake").await;
    wait_caught_up(&stack, "lake", Duration::from_secs(120)).await;
    writer.stop().await;
    capture.stop().await.unwrap();

    let expected = change_records(&stack).await;
    assert_exactly_once(dir.path(), &expected);
    check_against_source(&stack, dir.path(), &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_between_two_writers_mid_stream() {
    let stack = Stack::start().await;
    let capture = start_source(&stack, SchemaVariant::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = LakeStore::open(dir.path().to_str().unwrap()).unwrap();
    let load = stack.spawn_workload(3_000, 600.0, 23).await;
    let first = start_writer(&stack, &lake, "lake").await;
    // The first writes before the second joins (a fixed wait was too short on a loaded
    // machine, and the first then wrote nothing).
    let start = Instant::now();
    while files_written(&first) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the first writer wrote no file"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A second member joins: the group splits the partitions between them.
    let second = start_writer(&stack, &lake, "lake").await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    // Each member's consumer-lag series cover the partitions it owns, and no other's.
    let start = Instant::now();
    loop {
        let (a, b) = (lag_series(&first), lag_series(&second));
        let owned = |w: &Writer, series: &BTreeSet<_>| {
            i64::try_from(series.len()).unwrap() == w.metrics.partitions_assigned.get()
        };
        if owned(&first, &a) && owned(&second, &b) && !a.is_empty() {
            assert!(a.is_disjoint(&b), "{a:?} {b:?}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "lag series {a:?} and {b:?} do not follow the assignment"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The first leaves: the second takes everything over.
    let first_totals = first.stop().await;
    load.await.unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(120))
        .await;
    wait_caught_up(&stack, "lake", Duration::from_secs(120)).await;
    let second_totals = second.stop().await;
    capture.stop().await.unwrap();

    assert!(
        first_totals.rows > 0 && second_totals.rows > 0,
        "{first_totals:?} {second_totals:?}"
    );
    let expected = change_records(&stack).await;
    assert_exactly_once(dir.path(), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_topic_and_the_rest_to_the_lake() {
    let stack = Stack::start().await;
    let capture = start_source(&stack, SchemaVariant::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = LakeStore::open(dir.path().to_str().unwrap()).unwrap();
    let writer = start_writer(&stack, &lake, "lake").await;
    stack.spawn_workload(300, 1_000.0, 3).await.await.unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(60))
        .await;

    // Three kinds of poison, in the middle of a live table topic.
    let topic = "totesys.public.staff";
    let records = stack.read_topic(topic).await;
    let (key, value) = records
        .iter()
        .find_map(|r| Some((r.key.clone()?, r.value.clone()?)))
        .unwrap();
    let mut unknown_id = value.clone();
    unknown_id[1..5].copy_from_slice(&999_999u32.to_be_bytes());
    let mut truncated = value.clone();
    truncated.truncate(7);
    let poison: [(&str, Vec<u8>); 3] = [
        ("bad_framing", b"not avro at all".to_vec()),
        ("unknown_schema", unknown_id),
        ("schema_mismatch", truncated),
    ];
    let producer = Producer::new(&stack.settings()).unwrap();
    for (_, bytes) in &poison {
        producer
            .send_to(topic, Some(0), Some(&key), Some(bytes))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    stack.spawn_workload(300, 1_000.0, 4).await.await.unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(60))
        .await;
    wait_caught_up(&stack, "lake", Duration::from_secs(120)).await;
    let totals = writer.stop().await;
    capture.stop().await.unwrap();

    assert_eq!(totals.dead_letters, 3, "{totals:?}");
    let letters = read_dead_letters(&stack).await;
    assert_eq!(letters.len(), 3, "{letters:?}");
    for ((code, bytes), letter) in poison.iter().zip(&letters) {
        assert_eq!(letter.headers[DLQ_REASON_CODE], *code);
        assert_eq!(letter.headers[DLQ_TOPIC], topic);
        assert!(!letter.headers[DLQ_REASON].is_empty());
        assert_eq!(
            &letter.value, bytes,
            "the dead letter carries the record as it was"
        );
        assert!(letter.headers[DLQ_OFFSET].parse::<i64>().is_ok());
    }
    let poisoned: BTreeSet<_> = letters
        .iter()
        .map(|l| {
            (
                topic.to_owned(),
                0,
                l.headers[DLQ_OFFSET].parse::<i64>().unwrap(),
            )
        })
        .collect();
    let expected: BTreeSet<_> = change_records(&stack)
        .await
        .difference(&poisoned)
        .cloned()
        .collect();
    assert_exactly_once(dir.path(), &expected);
    check_against_source(&stack, dir.path(), &expected).await;
}

#[derive(Debug)]
struct Letter {
    value: Vec<u8>,
    headers: HashMap<String, String>,
}

async fn read_dead_letters(stack: &Stack) -> Vec<Letter> {
    let bootstrap = stack.broker.bootstrap();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "dead-letter-reader")
            .create()
            .unwrap();
        let (_, high) = consumer
            .fetch_watermarks(DEAD_LETTERS, 0, Duration::from_secs(10))
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(DEAD_LETTERS, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let mut letters = Vec::new();
        let start = Instant::now();
        while (letters.len() as i64) < high {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "reading dead letters stalled"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.unwrap();
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            letters.push(Letter {
                value: message.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
        letters
    })
    .await
    .unwrap()
}
