//! Shared helpers of the capture integration tests: run the reader against a test
//! database into a memory sink, and wait for what it delivers.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdc_core::{ChangeEvent, Op, Value};
use cdc_postgres::connection::ConnectParams;
use cdc_postgres::error::SourceError;
use cdc_postgres::reader::{self, CaptureConfig, CaptureStats, SharedStats};
use cdc_postgres::sink::MemorySink;
use cdc_testkit::TestDb;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A capture task running into a [`MemorySink`].
pub struct Running {
    pub sink: MemorySink,
    pub stats: SharedStats,
    /// The error capture stopped with, if it did.
    pub error: Arc<Mutex<Option<String>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), SourceError>>,
}

impl Running {
    /// Asks capture to stop and waits for it.
    pub async fn stop(self) -> Result<MemorySink, SourceError> {
        let _ = self.stop.send(true);
        self.task.await.expect("capture task panicked")?;
        Ok(self.sink)
    }

    /// Kills capture abruptly (no final status update), like a crash.
    pub async fn crash(self) -> MemorySink {
        self.task.abort();
        let _ = self.task.await;
        self.sink
    }

    /// Waits until the sink holds events satisfying `done`, or panics after `timeout`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[ChangeEvent]) -> bool,
    ) {
        let start = Instant::now();
        loop {
            if done(&self.sink.events()) {
                return;
            }
            if self.task.is_finished() {
                let error = self.error.lock().unwrap().clone();
                panic!("capture stopped while waiting for {what}: {error:?}");
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; have {} events",
                self.sink.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `n` events satisfy `filter`.
    pub async fn wait_count(&self, n: usize, filter: impl Fn(&ChangeEvent) -> bool) {
        self.wait_for(&format!("{n} events"), Duration::from_secs(60), |events| {
            events.iter().filter(|e| filter(e)).count() >= n
        })
        .await;
    }
}

/// A capture configuration for `db` with a private state directory.
pub fn config(db: &TestDb, state: &tempfile::TempDir) -> CaptureConfig {
    let params = ConnectParams::parse(&db.conn_string()).expect("test connection string");
    let mut config = CaptureConfig::new(params);
    config.slot = db.name.clone();
    config.state_dir = state.path().to_owned();
    config.status_interval = Duration::from_millis(500);
    config.heartbeat_interval = Some(Duration::from_millis(500));
    config.batch_size = 100;
    config
}

/// Starts capture in the background.
pub fn start(config: CaptureConfig) -> Running {
    start_into(config, MemorySink::new())
}

/// Starts capture in the background into an existing sink (to resume after a crash).
pub fn start_into(config: CaptureConfig, sink: MemorySink) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    let stats: SharedStats = Arc::new(Mutex::new(CaptureStats::default()));
    let mut task_sink = sink.clone();
    let task_stats = stats.clone();
    let error = Arc::new(Mutex::new(None));
    let task_error = error.clone();
    let task = tokio::spawn(async move {
        let result = reader::run(&config, &mut task_sink, stop_rx, task_stats, None).await;
        if let Err(e) = &result {
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                chain.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            *task_error.lock().unwrap() = Some(chain);
        }
        result
    });
    Running {
        sink,
        stats,
        error,
        stop,
        task,
    }
}

/// Events of one table (by name), in delivery order.
pub fn of_table<'a>(events: &'a [ChangeEvent], table: &str) -> Vec<&'a ChangeEvent> {
    events
        .iter()
        .filter(|e| e.table.name.name == table)
        .collect()
}

/// Streamed (non-snapshot) events.
pub fn streamed(events: &[ChangeEvent]) -> Vec<&ChangeEvent> {
    events.iter().filter(|e| !e.snapshot).collect()
}

/// The value of `column` in `row` of `event`'s table.
pub fn col<'a>(event: &ChangeEvent, row: &'a [Value], column: &str) -> &'a Value {
    let index = event
        .table
        .column_index(column)
        .unwrap_or_else(|| panic!("no column {column}"));
    &row[index]
}

/// Integer value of `column` in the event's after (or before) row.
pub fn int(event: &ChangeEvent, column: &str) -> i64 {
    let row = event
        .after
        .as_ref()
        .or(event.before.as_ref())
        .expect("event has a row");
    match col(event, row, column) {
        Value::Int16(v) => i64::from(*v),
        Value::Int32(v) => i64::from(*v),
        Value::Int64(v) => *v,
        other => panic!("{column} is not an integer: {other:?}"),
    }
}

/// Text value helper.
pub fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// The op codes of `events`, as a string like "ccud".
pub fn ops(events: &[&ChangeEvent]) -> String {
    events.iter().map(|e| e.op.code()).collect()
}

/// Whether the op is a streamed row change.
pub fn is_change(op: Op) -> bool {
    matches!(op, Op::Insert | Op::Update | Op::Delete)
}

/// Reads the slot's confirmed_flush_lsn.
pub async fn confirmed_flush(client: &tokio_postgres::Client, slot: &str) -> cdc_core::Lsn {
    let row = client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("slot query");
    row.get::<_, String>(0).parse().expect("lsn")
}

/// Waits until the slot has its consistent point: from then on every committed change
/// is streamed, not snapshotted.
pub async fn wait_slot(client: &tokio_postgres::Client, slot: &str) {
    let start = Instant::now();
    while client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn IS NOT NULL",
            &[&slot],
        )
        .await
        .expect("slot query")
        .is_none()
    {
        assert!(start.elapsed() < Duration::from_secs(30), "slot {slot} never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Running {
    /// Waits for capture to end by itself (for setups that must fail).
    pub async fn task_result(self) -> Result<(), SourceError> {
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(joined) => joined.expect("capture task panicked"),
            Err(_) => panic!("capture did not stop by itself within 30 s"),
        }
    }
}

/// A fresh database with `sql` run in it, and a client to it.
pub async fn db_with(sql: &str) -> (TestDb, tokio_postgres::Client) {
    let db = TestDb::create().await.expect("test database");
    let client = db.client().await.expect("client");
    client.batch_execute(sql).await.expect("setup sql");
    (db, client)
}

/// The server's current WAL insert position: past every commit made so far (the
/// write position can lag commits under `synchronous_commit = off`).
pub async fn wal_insert_lsn(client: &tokio_postgres::Client) -> cdc_core::Lsn {
    let row = client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .expect("wal position");
    row.get::<_, String>(0).parse().expect("lsn")
}
