//! Capture throughput against `pg_recvlogical` on the same WAL.
//!
//! ```text
//!   two pgoutput slots created ─► simulator writes N changes ─► end LSN E
//!   pg_recvlogical drains slot A up to E   (baseline: the server's own client)
//!   our reader drains slot B up to E       (decode + typed events into a counting sink)
//! ```
//!
//! Usage: `cargo run --release -p cdc-benches --bin capture-vs-recvlogical -- [CHANGES]`
//! (default 200000). Prints both rates, their ratio, and a JSON line.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cdc_core::{ChangeEvent, Lsn};
use cdc_postgres::connection::ConnectParams;
use cdc_postgres::reader::{self, CaptureConfig, CaptureStats, SnapshotMode};
use cdc_postgres::sink::{ChangeSink, SinkError, WriteAck};
use cdc_testkit::{PgCluster, TestDb};
use tokio::sync::watch;

/// Counts events and stops capture once the stream passed the end LSN.
struct StopAtEnd {
    events: u64,
    per_table: std::collections::BTreeMap<String, u64>,
    end: Lsn,
    stop: watch::Sender<bool>,
}

impl ChangeSink for StopAtEnd {
    async fn write(&mut self, batch: Vec<ChangeEvent>) -> Result<WriteAck, SinkError> {
        self.events += batch.len() as u64;
        for event in &batch {
            *self
                .per_table
                .entry(event.table.name.name.clone())
                .or_default() += 1;
        }
        if batch
            .last()
            .is_some_and(|e| e.transaction.end_lsn >= self.end)
        {
            let _ = self.stop.send(true);
        }
        Ok(WriteAck::durable())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let changes: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let root = tempfile::tempdir()?;
    std::fs::set_permissions(
        root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    std::env::set_var("TOTESYS_CDC_TEST_PG_DIR", root.path().join("pg"));
    let db = TestDb::create().await?;
    let cluster: PgCluster = db.cluster.clone();
    let client = db.client().await?;
    cdc_sim::create_schema(&client, cdc_sim::SchemaVariant::default()).await?;
    cdc_sim::seed(&client, 1).await?;
    client
        .batch_execute("CREATE PUBLICATION bench FOR ALL TABLES")
        .await?;
    for slot in ["bench_recvlogical", "bench_capture"] {
        client
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&slot],
            )
            .await
            .context("create slot")?;
    }

    eprintln!("filling the slots with {changes} simulator changes…");
    let workload = cdc_sim::WorkloadConfig {
        rate_per_sec: f64::INFINITY,
        duration: None,
        max_changes: Some(changes),
        seed: 7,
        ..cdc_sim::WorkloadConfig::default()
    };
    let (_keep, never) = watch::channel(false);
    let fill_start = Instant::now();
    let stats = cdc_sim::run_workload(&client, &workload, never).await?;
    let fill_secs = fill_start.elapsed().as_secs_f64();
    let end: Lsn = client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await?
        .get::<_, String>(0)
        .parse()?;
    let wal_bytes: i64 = client
        .query_one("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn)::int8 FROM pg_replication_slots WHERE slot_name = 'bench_capture'", &[])
        .await?
        .get(0);
    eprintln!("{stats}");

    // Baseline: pg_recvlogical reading raw pgoutput to /dev/null.
    let started = Instant::now();
    let status = cluster
        .command("pg_recvlogical")
        .args([
            "-d",
            &db.conn_string(),
            "--slot",
            "bench_recvlogical",
            "--start",
        ])
        .args([
            "-o",
            "proto_version=2",
            "-o",
            "publication_names=bench",
            "-f",
            "/dev/null",
        ])
        .args(["--endpos", &end.to_string(), "--no-loop"])
        .env("PGPASSWORD", cdc_testkit::SUPERUSER_PASSWORD)
        .stdout(Stdio::null())
        .status()
        .context("run pg_recvlogical")?;
    if !status.success() {
        bail!("pg_recvlogical failed: {status}");
    }
    let recv_secs = started.elapsed().as_secs_f64();

    // Ours: decode, type and hand over every event.
    let mut config = CaptureConfig::new(ConnectParams::parse(&db.conn_string())?);
    config.slot = "bench_capture".into();
    config.publication = "bench".into();
    config.snapshot_mode = SnapshotMode::Never;
    config.heartbeat_interval = None;
    config.state_dir = root.path().join("state");
    let (stop, stop_rx) = watch::channel(false);
    let mut sink = StopAtEnd {
        events: 0,
        per_table: Default::default(),
        end,
        stop,
    };
    let shared = Arc::new(Mutex::new(CaptureStats::default()));
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(1800),
        reader::run(&config, &mut sink, stop_rx, shared, None),
    )
    .await
    .context("capture did not reach the end LSN")??;
    let ours_secs = started.elapsed().as_secs_f64();

    let events = sink.events;
    for (table, counts) in stats.per_table() {
        let written = counts.inserts + counts.updates + counts.deletes;
        let read = sink.per_table.get(table.name()).copied().unwrap_or(0);
        if written != read {
            eprintln!(
                "mismatch in {}: simulator wrote {written}, capture read {read}",
                table.name()
            );
        }
    }
    let recv_rate = events as f64 / recv_secs;
    let ours_rate = events as f64 / ours_secs;
    println!(
        "changes written:           {changes} in {fill_secs:.1} s ({:.0}/s), WAL {:.1} MB",
        changes as f64 / fill_secs,
        wal_bytes as f64 / 1e6
    );
    println!(
        "pg_recvlogical:            {recv_secs:.2} s  ({recv_rate:.0} changes/s, {:.1} MB/s)",
        wal_bytes as f64 / 1e6 / recv_secs
    );
    println!(
        "totesys-cdc reader:        {ours_secs:.2} s  ({ours_rate:.0} changes/s), {events} events"
    );
    println!("ratio reader/pg_recvlogical: {:.2}", recv_secs / ours_secs);
    println!(
        "{}",
        serde_json::json!({
            "bench": "capture_vs_recvlogical", "changes": changes, "events": events, "wal_bytes": wal_bytes,
            "pg_recvlogical_secs": recv_secs, "reader_secs": ours_secs,
            "pg_recvlogical_changes_per_sec": recv_rate, "reader_changes_per_sec": ours_rate,
            "ratio": recv_secs / ours_secs,
        })
    );
    drop(db);
    cluster.stop()?;
    Ok(())
}
