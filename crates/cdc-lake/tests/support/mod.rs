//! Tables, rows and readers for the lake tests, and an S3-protocol server (moto, from the
//! project's Python venv) started per test.

#![allow(dead_code, missing_docs)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use cdc_avro::{DecodedEvent, SourceInfo};
use cdc_core::{
    ColumnSchema, Lsn, Op, ReplicaIdentity, TableId, TableName, TableSchema, Value, Xid,
};
use cdc_lake::{DataFile, LakeRow, LakeStore};
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// One day in microseconds.
pub const DAY_US: i64 = 86_400_000_000;
/// 2026-11-21 00:00:00 UTC.
const BASE_US: i64 = 1_795_219_200_000_000;

fn column(name: &str, oid: u32, typmod: i32, type_name: &str, pk: bool) -> ColumnSchema {
    ColumnSchema {
        name: name.into(),
        type_oid: oid,
        type_modifier: typmod,
        type_name: type_name.into(),
        nullable: !pk,
        primary_key: pk,
        replica_identity: pk,
    }
}

/// `staff(staff_id int PK, first_name text, salary numeric(10,2), hired timestamp, grade bigint)`.
pub fn staff_table() -> TableSchema {
    TableSchema {
        id: TableId(16_384),
        name: TableName::new("public", "staff"),
        columns: vec![
            column("staff_id", 23, -1, "integer", true),
            column("first_name", 25, -1, "text", false),
            column("salary", 1700, (10 << 16 | 2) + 4, "numeric(10,2)", false),
            column("hired", 1114, -1, "timestamp without time zone", false),
            column("grade", 20, -1, "bigint", false),
        ],
        replica_identity: ReplicaIdentity::Default,
    }
}

/// [`staff_table`] after `ADD COLUMN email text`.
pub fn wider_staff_table() -> TableSchema {
    let mut table = staff_table();
    table.columns.push(column("email", 25, -1, "text", false));
    table
}

/// Inserts at offsets `offsets` (one per offset), committed on 2026-11-21.
pub fn sample_rows(table: &TableSchema, offsets: std::ops::Range<i64>) -> Vec<LakeRow> {
    offsets
        .map(|offset| {
            let mut after = vec![
                Value::Int32(offset as i32),
                if offset % 4 == 1 {
                    Value::Null
                } else {
                    Value::Text(format!("name {offset}"))
                },
                Value::Numeric(format!("{}.{:02}", 1000 + offset, offset % 100)),
                Value::Timestamp(BASE_US + offset * 1_000_001),
                Value::Int64(offset * 7),
            ];
            if table.columns.len() > 5 {
                after.push(Value::Text(format!("{offset}@example.com")));
            }
            LakeRow {
                event: DecodedEvent {
                    op: Op::Insert,
                    before: None,
                    after: Some(after),
                    source: SourceInfo {
                        lsn: Lsn(1_000 + offset as u64),
                        commit_lsn: Lsn(2_000 + offset as u64),
                        xid: Some(Xid(700 + offset as u32)),
                        commit_ts_us: BASE_US + offset * 1_000,
                        ordinal: 0,
                        snapshot: false,
                        schema: table.name.schema.clone(),
                        table: table.name.name.clone(),
                    },
                    ts_us: BASE_US,
                    before_identity_only: false,
                },
                partition: 0,
                offset,
            }
        })
        .collect()
}

/// The five staff columns of `row` as text, as [`read_rows`] renders them.
pub fn expected_cells(row: &LakeRow) -> Vec<String> {
    let after = row.event.after.as_ref().unwrap();
    after[..5]
        .iter()
        .map(|value| match value {
            Value::Null => "NULL".to_owned(),
            Value::Int32(v) => v.to_string(),
            Value::Int64(v) => v.to_string(),
            Value::Text(s) => s.clone(),
            Value::Numeric(s) => s.clone(),
            Value::Timestamp(us) => us.to_string(),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// The lake files of `topic`, by name.
pub async fn list(lake: &LakeStore, topic: &str) -> Vec<DataFile> {
    let mut files: Vec<DataFile> = lake
        .store
        .list(Some(&lake.root))
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|meta| DataFile::parse(&meta.location))
        .filter(|file| file.topic == topic)
        .collect();
    files.sort();
    files
}

/// Every row of `topic` in the lake's tables (their latest snapshots, as a reader sees
/// them): its Kafka offset and its five staff columns as text.
pub async fn read_rows(lake: &LakeStore, topic: &str) -> Vec<(i64, Vec<String>)> {
    let tables = cdc_lake::LakeTables::new(lake).unwrap();
    let live = tables.all_live_files().await.unwrap();
    let mut rows = read_paths(lake, live.into_iter().map(|(_, f)| f.path).collect()).await;
    rows.retain(|(_, cells)| cells.last().is_some_and(|t| t == topic));
    for row in &mut rows {
        row.1.pop();
    }
    rows
}

/// Like [`read_rows`]: the tables' files are the only ones a reader reads.
pub async fn read_live_rows(lake: &LakeStore, topic: &str) -> Vec<(i64, Vec<String>)> {
    read_rows(lake, topic).await
}

async fn read_paths(
    lake: &LakeStore,
    paths: Vec<object_store::path::Path>,
) -> Vec<(i64, Vec<String>)> {
    let mut rows = Vec::new();
    for path in paths {
        let topic = DataFile::parse(&path).map(|f| f.topic).unwrap_or_default();
        let data = lake.store.get(&path).await.unwrap().bytes().await.unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(data)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            rows.extend(
                render(&batch.unwrap())
                    .into_iter()
                    .map(|(offset, mut cells)| {
                        cells.push(topic.clone());
                        (offset, cells)
                    }),
            );
        }
    }
    rows.sort_by_key(|(offset, _)| *offset);
    rows
}

fn render(batch: &RecordBatch) -> Vec<(i64, Vec<String>)> {
    let offsets = batch
        .column_by_name("_kafka_offset")
        .unwrap()
        .as_primitive::<Int64Type>();
    let id = batch.column(0).as_primitive::<Int32Type>();
    let name = batch.column(1).as_string::<i32>();
    let salary = batch.column(2).as_primitive::<Decimal128Type>();
    let hired = batch.column(3).as_primitive::<TimestampMicrosecondType>();
    let grade = batch.column(4).as_primitive::<Int64Type>();
    (0..batch.num_rows())
        .map(|i| {
            let text = |array: &dyn Array, s: String| {
                if array.is_null(i) {
                    "NULL".to_owned()
                } else {
                    s
                }
            };
            let cents = salary.value(i);
            (
                offsets.value(i),
                vec![
                    text(id, id.value(i).to_string()),
                    text(name, name.value(i).to_owned()),
                    text(salary, format!("{}.{:02}", cents / 100, cents % 100)),
                    text(hired, hired.value(i).to_string()),
                    text(grade, grade.value(i).to_string()),
                ],
            )
        })
        .collect()
}

/// A moto S3 server on a free port, from the project's Python venv.
pub struct S3Server {
    child: tokio::process::Child,
    pub endpoint: String,
}

impl S3Server {
    pub async fn start() -> S3Server {
        let python = cdc_testkit::python::venv_python().unwrap_or_else(|e| panic!("{e}"));
        let port = cdc_testkit::free_port().unwrap();
        let child = tokio::process::Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start moto");
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto did not listen"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    fn builder(&self, bucket: &str) -> AmazonS3Builder {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_bucket_name(bucket)
    }

    /// Creates `bucket` (moto's REST API: `PUT /<bucket>`).
    pub async fn create_bucket(&self, bucket: &str) {
        let client = reqwest::Client::new();
        let status = client
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "create bucket: {status}");
    }

    /// The lake at `s3://bucket/prefix` on this server.
    pub fn open(&self, url: &str) -> LakeStore {
        let rest = url.strip_prefix("s3://").unwrap();
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let store = self.builder(bucket).build().unwrap();
        LakeStore::new(Arc::new(store), object_store::path::Path::from(prefix))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
