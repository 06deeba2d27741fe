//! Every type capture types, and arrays of each, through the whole pipeline: PostgreSQL
//! (snapshot and streaming), capture into Kafka through our registry, the lake writer into
//! Parquet (read back by DuckDB and by the modeler's reader, which the modeler's source
//! mirror is built from). Each stage's value, printed as text, must read back in
//! PostgreSQL as the source's own text of it; a NULL must be NULL everywhere and nothing
//! else may be. A value a target cannot hold (NaN in `numeric(10,2)`) stops capture with
//! the documented one-line error naming the table, the column and the value.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use cdc_core::{pg_text, Lsn};
use cdc_lake::LakeStore;
use cdc_publish::PublishConfig;
use cdc_stack::Stack;
use cdc_stack::Writer;

const TABLE: &str = "type_matrix";

const SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('happy', 'sad', 'with space');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN price AS numeric(10,2);
CREATE DOMAIN small_price AS price;
CREATE TABLE type_matrix (
    id integer PRIMARY KEY,
    c_bool boolean, c_bytea bytea, c_char "char", c_name name, c_text text,
    c_bpchar char(3), c_varchar varchar(10), c_int2 smallint, c_int4 integer,
    c_int8 bigint, c_oid oid, c_float4 real, c_float8 double precision,
    c_numeric numeric, c_numeric_10_2 numeric(10,2), c_numeric_50_2 numeric(50,2),
    c_numeric_3_m2 numeric(3,-2), c_date date, c_time time, c_timestamp timestamp,
    c_timestamptz timestamptz, c_uuid uuid, c_json json, c_jsonb jsonb,
    c_interval interval, c_timetz timetz, c_mood mood, c_posint posint,
    c_price price, c_small_price small_price,
    a_bool boolean[], a_bytea bytea[], a_char "char"[], a_name name[], a_text text[],
    a_bpchar char(2)[], a_varchar varchar(5)[], a_int2 smallint[], a_int4 integer[],
    a_int8 bigint[], a_oid oid[], a_float4 real[], a_float8 double precision[],
    a_numeric numeric[], a_numeric_10_2 numeric(10,2)[], a_date date[], a_time time[],
    a_timestamp timestamp[], a_timestamptz timestamptz[], a_uuid uuid[], a_json json[],
    a_jsonb jsonb[], a_interval interval[], a_mood mood[]
);
"#;

/// Rows 1 to 3 (read by the snapshot; 11 to 13 repeat them as streamed inserts).
const ROWS: &str = r#"
INSERT INTO type_matrix VALUES (
    1, true, '\x00ff10', 'a', 'a name', 'hello, "world" {x} \ é', 'ab', 'varchar',
    -32768, 2147483647, -9223372036854775808, 4294967295, 3.14159, 1e300,
    '-12345678901234567890.000123400', 12345678.9,
    123456789012345678901234567890123456789012345.67, 12300, '2024-02-29',
    '23:59:59.999999', '2024-01-02 03:04:05.678', '2024-01-02 03:04:05.678+05:30',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1,  "a": [true, null]}',
    '{"b": 1, "a": [true, null]}', '1 year 2 mons 3 days 04:05:06.7', '12:00:00+05:30',
    'with space', 42, 19.99, 0.5,
    '{t,NULL,f}', '{"\\x01ab",NULL,"\\x"}', '{a,b}', '{x,"y z"}',
    '{"a,b","",NULL,"NULL","quote\"","back\\slash","{brace}"," lead"}', '{a,bc}',
    '{x,yy}', '{1,-2}', '{1,NULL,3}', '{9223372036854775807}', '{0,4294967295}',
    '{1.5,NaN,-Infinity}', '{0.1,Infinity,-0,1e-300}', '{1.50,NaN,-Infinity,Infinity}',
    '{1.5,-0.01}', '{2024-01-01,infinity,-infinity}', '{00:00:00,24:00:00}',
    '{"2024-01-01 00:00:00",infinity}', '{"2024-01-01 00:00:00+00",-infinity}',
    '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', ARRAY['{"a": 1}', '[1, 2]']::json[],
    ARRAY['{"a": 1}', 'null']::jsonb[], '{"1 day","-2 hours"}', '{happy,"with space"}'
), (
    2, false, '\x', '', '', '', '', '', 0, 0, 0, 0, 'NaN', '-Infinity', 'NaN', 0, 0, 0,
    'infinity', '00:00:00', '-infinity', 'infinity', '00000000-0000-0000-0000-000000000000',
    '[]', '{}', '-1 days', '00:00:00-12', 'happy', 1, -0.01, 0,
    '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
    '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}'
), (
    3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'Infinity',
    '1.5e-7', 'Infinity', NULL, NULL, NULL, '0044-03-15 BC', '24:00:00',
    '0001-01-01 00:00:00 BC', '1000-06-30 12:00:00.5+00 BC', NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    '{-Infinity}', NULL, '{"0044-03-15 BC"}', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL
);
"#;

/// A column's name and its `format_type` text.
struct Column {
    name: String,
    type_name: String,
}

/// Per row id, per column, the source's text (`None` for NULL).
type Texts = BTreeMap<i32, BTreeMap<String, Option<String>>>;

async fn columns(client: &tokio_postgres::Client) -> Vec<Column> {
    client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'type_matrix'::regclass AND attnum > 1 AND NOT attisdropped \
             ORDER BY attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| Column {
            name: r.get(0),
            type_name: r.get(1),
        })
        .collect()
}

/// The source's own text of every cell.
async fn source_texts(client: &tokio_postgres::Client, columns: &[Column]) -> Texts {
    let list: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\"::text", c.name))
        .collect();
    let sql = format!("SELECT id, {} FROM type_matrix", list.join(", "));
    let mut texts = Texts::new();
    for row in client.query(&sql, &[]).await.unwrap() {
        let cells = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), row.get::<_, Option<String>>(i + 1)))
            .collect();
        texts.insert(row.get(0), cells);
    }
    texts
}

/// Checks `found` (one stage's text per cell) against the source: the same NULLs, and each
/// text read back by PostgreSQL as the column's type prints as the source's text. Cells
/// `comparable` refuses are checked for NULL only. Returns the number of values compared and
/// the columns they were in.
async fn check_stage(
    stage: &str,
    client: &tokio_postgres::Client,
    columns: &[Column],
    source: &Texts,
    found: &Texts,
    comparable: impl Fn(&Column, &str) -> bool,
) -> (usize, BTreeSet<String>) {
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        source.keys().collect::<Vec<_>>(),
        "{stage}: the rows"
    );
    let mut compared = 0;
    let mut compared_columns = BTreeSet::new();
    for column in columns {
        let mut ids = Vec::new();
        let mut texts = Vec::new();
        for (id, cells) in source {
            let want = &cells[&column.name];
            let got = found[id]
                .get(&column.name)
                .unwrap_or_else(|| panic!("{stage}: row {id} has no column {}", column.name));
            assert_eq!(
                want.is_none(),
                got.is_none(),
                "{stage}: row {id} {}: source {want:?}, found {got:?}",
                column.name
            );
            if let (Some(want), Some(got)) = (want, got) {
                if comparable(column, got) {
                    ids.push(*id);
                    texts.push((want.clone(), got.clone()));
                }
            }
        }
        if texts.is_empty() {
            continue;
        }
        let got: Vec<String> = texts.iter().map(|(_, g)| g.clone()).collect();
        let sql = format!(
            "SELECT CAST(x AS {})::text FROM unnest($1::text[]) WITH ORDINALITY AS u(x, n) ORDER BY n",
            column.type_name
        );
        let rows = client.query(&sql, &[&got]).await.unwrap_or_else(|e| {
            panic!(
                "{stage}: {} values {got:?} do not read back as {}: {e}",
                column.name, column.type_name
            )
        });
        for ((id, (want, got)), row) in ids.iter().zip(&texts).zip(rows) {
            let read_back: String = row.get(0);
            assert_eq!(
                &read_back, want,
                "{stage}: row {id} {} ({}): printed {got:?}",
                column.name, column.type_name
            );
            compared += 1;
        }
        compared_columns.insert(column.name.clone());
    }
    (compared, compared_columns)
}

/// The change topic's records decoded with their writer schemas, printed as text.
async fn kafka_texts(stack: &Stack, table: &cdc_core::TableSchema) -> Texts {
    let mut texts = Texts::new();
    for record in stack.read_topic("totesys.public.type_matrix").await {
        let Some(value) = record.value else { continue };
        let (_, event) = stack.decode(table, &value).await;
        let after = event.after.expect("inserts and reads have a row");
        let id = match after[0] {
            cdc_core::Value::Int32(id) => id,
            ref other => panic!("id {other:?}"),
        };
        let cells = table
            .columns
            .iter()
            .zip(&after)
            .skip(1)
            .map(|(c, v)| (c.name.clone(), pg_text(v)))
            .collect();
        texts.insert(id, cells);
    }
    texts
}

/// The lake's rows as the modeler reads them, once `rows` are there.
async fn modeler_texts(lake: &LakeStore, rows: usize) -> Texts {
    let start = Instant::now();
    let tables = cdc_lake::LakeTables::new(lake).unwrap();
    loop {
        let mut texts = Texts::new();
        let live = tables.live_files(TABLE).await.unwrap();
        for file in live.map(|(_, files)| files).unwrap_or_default() {
            let path = file.path;
            let bytes = lake.read(&path).await.unwrap();
            for change in
                cdc_modeler::lake::read_changes(TABLE, bytes, Lsn(0), path.as_ref()).unwrap()
            {
                let mut row = change.change.after.expect("a row");
                let id: i32 = row.remove("id").flatten().unwrap().parse().unwrap();
                texts.insert(id, row.into_iter().collect());
            }
        }
        if texts.len() == rows {
            return texts;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the lake holds {} of {rows} rows",
            texts.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every lake row as DuckDB reads it, each cell cast to DuckDB's `VARCHAR`.
async fn duckdb_texts(dir: &Path) -> Texts {
    const SCRIPT: &str = r#"
import json, sys
con = delta_duckdb()
try:
    con.execute("SET TimeZone = 'UTC'")
except Exception:
    pass
scan = "delta_scan('" + sys.argv[1] + "/raw/type_matrix')"
names = [c[0] for c in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
sources = [n for n in names if not n.startswith("_")]
casts = ", ".join(f'CAST("{n}" AS VARCHAR)' for n in sources)
for row in con.execute(f"SELECT {casts} FROM {scan}").fetchall():
    print(json.dumps(dict(zip(sources, row))))
"#;
    let python = cdc_testkit::python::venv_python().unwrap_or_else(|e| panic!("{e}"));
    let output = tokio::process::Command::new(python)
        .arg("-c")
        .arg(format!("{}{SCRIPT}", cdc_testkit::python::DELTA_DUCKDB))
        .arg(dir)
        .output()
        .await
        .expect("run DuckDB");
    assert!(
        output.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut texts = Texts::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let mut row: BTreeMap<String, Option<String>> = serde_json::from_str(line).unwrap();
        let id = row.remove("id").flatten().unwrap().parse().unwrap();
        texts.insert(id, row);
    }
    texts
}

/// Whether DuckDB's `VARCHAR` of a cell is PostgreSQL input for its type: scalars other
/// than `bytea`, BC dates and timestamps (DuckDB writes `(BC)`). The others are checked for
/// NULL here and for their value through Kafka and the modeler's reader.
fn duckdb_comparable(column: &Column, text: &str) -> bool {
    !column.type_name.ends_with("[]") && column.type_name != "bytea" && !text.contains("(BC)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_type_comes_out_of_every_stage_as_the_source_prints_it() {
    let mut stack = Stack::start().await;
    stack.client.batch_execute(SCHEMA).await.unwrap();
    stack.client.batch_execute(ROWS).await.unwrap();
    let capture = stack
        .start_capture(PublishConfig::with_transaction_topic())
        .await;
    stack.wait_snapshot_done(&capture).await;
    stack
        .client
        .batch_execute(
            "INSERT INTO type_matrix SELECT id + 10, c_bool, c_bytea, c_char, c_name, c_text, \
             c_bpchar, c_varchar, c_int2, c_int4, c_int8, c_oid, c_float4, c_float8, c_numeric, \
             c_numeric_10_2, c_numeric_50_2, c_numeric_3_m2, c_date, c_time, c_timestamp, \
             c_timestamptz, c_uuid, c_json, c_jsonb, c_interval, c_timetz, c_mood, c_posint, \
             c_price, c_small_price, a_bool, a_bytea, a_char, a_name, a_text, a_bpchar, \
             a_varchar, a_int2, a_int4, a_int8, a_oid, a_float4, a_float8, a_numeric, \
             a_numeric_10_2, a_date, a_time, a_timestamp, a_timestamptz, a_uuid, a_json, \
             a_jsonb, a_interval, a_mood FROM type_matrix ORDER BY id;
             INSERT INTO type_matrix (id) VALUES (4);",
        )
        .await
        .unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(60))
        .await;

    let columns = columns(&stack.client).await;
    let source = source_texts(&stack.client, &columns).await;
    assert_eq!(source.len(), 7);
    let table = cdc_postgres::catalog::table_schema(
        &stack.client,
        cdc_postgres::catalog::table_id(&stack.client, &cdc_core::TableName::new("public", TABLE))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let posint = table.columns.iter().find(|c| c.name == "c_posint").unwrap();
    assert_eq!(
        (posint.type_oid, posint.type_name.as_str()),
        (23, "integer"),
        "a domain is typed as its base"
    );
    let small_price = table
        .columns
        .iter()
        .find(|c| c.name == "c_small_price")
        .unwrap();
    assert_eq!(
        small_price.type_name, "numeric(10,2)",
        "a domain over a domain"
    );

    let kafka = kafka_texts(&stack, &table).await;
    let (kafka_compared, kafka_columns) =
        check_stage("kafka", &stack.client, &columns, &source, &kafka, |_, _| {
            true
        })
        .await;

    let lake_dir = tempfile::tempdir().unwrap();
    let lake = LakeStore::open(lake_dir.path().to_str().unwrap()).unwrap();
    let writer = Writer::start(
        stack.settings(),
        stack.registry.clone(),
        &lake,
        "lake",
        Writer::small_files(3, 200),
    )
    .await;
    let modeler = modeler_texts(&lake, source.len()).await;
    let (modeler_compared, modeler_columns) = check_stage(
        "modeler",
        &stack.client,
        &columns,
        &source,
        &modeler,
        |_, _| true,
    )
    .await;
    let duckdb = duckdb_texts(lake_dir.path()).await;
    let (duckdb_compared, duckdb_columns) = check_stage(
        "duckdb",
        &stack.client,
        &columns,
        &source,
        &duckdb,
        duckdb_comparable,
    )
    .await;
    let cells = source.len() * columns.len();
    eprintln!(
        "{cells} cells; values compared: kafka {kafka_compared}, modeler {modeler_compared}, \
         duckdb {duckdb_compared}"
    );
    let every: BTreeSet<String> = columns.iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        kafka_columns, every,
        "Kafka: a value of every column compared"
    );
    assert_eq!(
        modeler_columns, every,
        "modeler: a value of every column compared"
    );
    let scalars: BTreeSet<String> = columns
        .iter()
        .filter(|c| !c.type_name.ends_with("[]") && c.type_name != "bytea")
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        duckdb_columns, scalars,
        "DuckDB: a value of every scalar column compared"
    );
    let _ = writer.stop().await;

    // NaN has no Avro decimal: capture stops on it, naming table, column and value.
    stack
        .client
        .batch_execute("INSERT INTO type_matrix (id, c_numeric_10_2) VALUES (5, 'NaN')")
        .await
        .unwrap();
    let error = capture
        .ended(Duration::from_secs(60))
        .await
        .expect_err("capture cannot encode NaN as a decimal");
    let text = cdc_core::error_chain(&error);
    assert!(
        text.contains("type_matrix") && text.contains("c_numeric_10_2") && text.contains("NaN"),
        "{text}"
    );
    assert!(!text.contains('\n'), "one line: {text}");
    stack.stop_registry().await;
}
