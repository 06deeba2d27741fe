//! The capture loop: snapshot once, then stream pgoutput changes into a sink.
//!
//! ```text
//!            ┌──────────── replication connection ─────────────┐
//!   WAL ──►  │ XLogData(pgoutput) ──► Decoder ──► TxnAssembler │──► ChangeSink.write(batch)
//!            │ keepalive ◄──► standby status (flush = durable) │        │
//!            └─────────────────────────────────────────────────┘        ▼
//!                 ▲                                            DurabilityTracker
//!                 └──────────── confirmed_flush_lsn ◄──────────────────┘
//! ```
//!
//! ## Progress tracking
//! A transaction's end LSN is confirmed to PostgreSQL only once every batch holding its
//! events, and every batch before it, is durable in the sink. While no transaction is
//! open and nothing is in flight, the server's reported WAL end is confirmed instead, so
//! the slot advances while the published tables are idle; a periodic heartbeat message
//! makes sure there is something to report.
//!
//! ## Streamed transactions
//! With pgoutput `streaming`, large transactions arrive in blocks before they commit.
//! Their messages are spilled to disk ([`crate::spill`]) and replayed at Stream Commit,
//! so nothing of an aborted transaction reaches the sink and memory stays bounded.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cdc_core::{
    ChangeEvent, ColumnSchema, Lsn, Op, Position, TableId, TableName, TableSchema, TransactionInfo,
    Xid,
};
use tokio::sync::watch;
use tokio_postgres::Client;

use crate::checkpoint::CheckpointStore;
use crate::connection::{ConnectParams, ReplicationConnection};
use crate::error::SourceError;
use crate::pgoutput::{Decoder, OldTuple, PgOutputMessage, Relation};
use crate::rows::{fill_unchanged_toast, tuple_row};
use crate::setup::{self, quote_ident, quote_literal};
use crate::sink::{ChangeSink, DurabilityTracker};
use crate::snapshot::{self, ProgressFn, SnapshotOptions};
use crate::spill::{SpillStore, SpilledMessage};
use crate::walsender::{self, ReplicationMessage, StandbyStatusUpdate};

/// Prefix of the logical messages capture emits as a heartbeat.
pub const HEARTBEAT_PREFIX: &str = "totesys_cdc.heartbeat";

/// When to take the initial snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// When the slot is new (or its snapshot never completed).
    Initial,
    /// Never: stream from the slot's position only.
    Never,
}

/// Everything capture needs to know.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Where the source database is.
    pub connection: ConnectParams,
    /// Publication to stream (created for `tables` when missing).
    pub publication: String,
    /// Replication slot (created when missing).
    pub slot: String,
    /// Tables to publish; empty means every table of schema `public`.
    pub tables: Vec<TableName>,
    /// When to snapshot.
    pub snapshot_mode: SnapshotMode,
    /// How to snapshot.
    pub snapshot: SnapshotOptions,
    /// Events per batch handed to the sink.
    pub batch_size: usize,
    /// Batches written but not yet durable before reading pauses.
    pub max_in_flight: usize,
    /// How often a standby status update is sent at the latest.
    pub status_interval: Duration,
    /// How often a heartbeat message is written to the WAL; `None` disables it.
    pub heartbeat_interval: Option<Duration>,
    /// Directory for spill files and the snapshot checkpoint.
    pub state_dir: PathBuf,
    /// `logical_decoding_work_mem` for the walsender: the size past which a
    /// transaction is streamed before it commits.
    pub logical_decoding_work_mem: Option<String>,
    /// On shutdown, how long to wait for the open transaction to finish and for
    /// in-flight batches to become durable before confirming what is and leaving.
    pub shutdown_timeout: Duration,
    /// Live positions, updated as capture runs (for metrics and readiness).
    pub positions: Arc<SlotPositions>,
}

impl CaptureConfig {
    /// The default of [`CaptureConfig::max_in_flight`]: room for the source transactions
    /// of a Kafka commit's wait. Each source transaction takes at least two slots (its
    /// changes, its commit) and stays in flight until its Kafka transaction commits
    /// (about 100 ms on Apache Kafka): 64 slots capped capture at about 200 small source
    /// transactions a second (measured in `debezium-vs-capture`); 1,024 hold 500 of them.
    /// Memory stays bounded by librdkafka's queue, which pushes back when full.
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 1_024;

    /// Defaults for everything but the connection.
    pub fn new(connection: ConnectParams) -> Self {
        CaptureConfig {
            connection,
            publication: "totesys_cdc".into(),
            slot: "totesys_cdc".into(),
            tables: Vec::new(),
            snapshot_mode: SnapshotMode::Initial,
            snapshot: SnapshotOptions::default(),
            batch_size: 1_000,
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
            status_interval: Duration::from_secs(10),
            heartbeat_interval: Some(Duration::from_secs(10)),
            state_dir: PathBuf::from("state"),
            logical_decoding_work_mem: None,
            shutdown_timeout: Duration::from_secs(20),
            positions: Arc::default(),
        }
    }
}

/// Counts and positions of a running capture, for status output.
#[derive(Debug, Clone, Default)]
pub struct CaptureStats {
    /// Events per table and op code.
    pub per_table: BTreeMap<String, TableCounts>,
    /// Transactions delivered.
    pub transactions: u64,
    /// Of those, transactions PostgreSQL streamed before commit (replayed from spill files).
    pub streamed_transactions: u64,
    /// Streamed transactions (or subtransactions) that aborted and were discarded.
    pub aborted_streams: u64,
    /// Last WAL position received from the server.
    pub received_lsn: Lsn,
    /// Last LSN confirmed to the server.
    pub confirmed_lsn: Lsn,
    /// Commit time of the newest delivered transaction (Unix micros).
    pub last_commit_micros: Option<i64>,
    /// When the newest transaction was delivered (Unix micros).
    pub last_delivered_micros: Option<i64>,
    /// Rows delivered by the initial snapshot.
    pub snapshot_rows: u64,
}

/// Event counts of one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Snapshot reads.
    pub reads: u64,
    /// Inserts.
    pub inserts: u64,
    /// Updates.
    pub updates: u64,
    /// Deletes.
    pub deletes: u64,
    /// Truncates.
    pub truncates: u64,
}

/// Shared, cheaply readable [`CaptureStats`].
pub type SharedStats = Arc<Mutex<CaptureStats>>;

/// Where capture stands against the server, as atomics cheap to update per message
/// and to read from a metrics scrape.
#[derive(Debug, Default)]
pub struct SlotPositions {
    wal_end: AtomicU64,
    confirmed: AtomicU64,
    last_commit_micros: AtomicI64,
    streaming: AtomicBool,
}

impl SlotPositions {
    /// The server's WAL end as last reported in XLogData or keepalive messages.
    pub fn wal_end(&self) -> Lsn {
        Lsn(self.wal_end.load(Ordering::Relaxed))
    }

    /// The flush position last confirmed to the server (the slot's `confirmed_flush_lsn`).
    pub fn confirmed(&self) -> Lsn {
        Lsn(self.confirmed.load(Ordering::Relaxed))
    }

    /// WAL bytes the server has beyond the confirmed position (0 before streaming).
    pub fn lag_bytes(&self) -> u64 {
        self.wal_end().0.saturating_sub(self.confirmed().0)
    }

    /// Commit time (Unix micros) of the newest transaction read, if any.
    pub fn last_commit_micros(&self) -> Option<i64> {
        Some(self.last_commit_micros.load(Ordering::Relaxed)).filter(|m| *m != 0)
    }

    /// Whether the replication stream is up (the snapshot, if any, is done).
    pub fn streaming(&self) -> bool {
        self.streaming.load(Ordering::Relaxed)
    }

    fn set_wal_end(&self, lsn: Lsn) {
        self.wal_end.store(lsn.0, Ordering::Relaxed);
    }

    fn set_confirmed(&self, lsn: Lsn) {
        self.confirmed.store(lsn.0, Ordering::Relaxed);
    }
}

/// Clears [`SlotPositions::streaming`] however the stream ends.
struct StreamingGuard<'a>(&'a SlotPositions);

impl<'a> StreamingGuard<'a> {
    fn start(positions: &'a SlotPositions) -> Self {
        positions.streaming.store(true, Ordering::Relaxed);
        StreamingGuard(positions)
    }
}

impl Drop for StreamingGuard<'_> {
    fn drop(&mut self) {
        self.0.streaming.store(false, Ordering::Relaxed);
    }
}

/// Runs capture until `shutdown` turns true or an error occurs.
pub async fn run<S: ChangeSink>(
    config: &CaptureConfig,
    sink: &mut S,
    mut shutdown: watch::Receiver<bool>,
    stats: SharedStats,
    progress: Option<ProgressFn>,
) -> Result<(), SourceError> {
    setup::validate_slot_name(&config.slot)?;
    let client = crate::connection::connect_regular(&config.connection, "capture").await?;
    setup::check_source(&client).await?;
    let wanted = if config.tables.is_empty() {
        crate::catalog::tables_in_schema(&client, "public").await?
    } else {
        config.tables.clone()
    };
    let published = setup::ensure_publication(&client, &config.publication, &wanted).await?;
    let checkpoints = CheckpointStore::new(&config.state_dir);

    let mut params = config.connection.clone();
    if let Some(mem) = &config.logical_decoding_work_mem {
        params
            .options
            .push(("logical_decoding_work_mem".into(), mem.clone()));
    }
    let mut replication = ReplicationConnection::connect(&params).await?;
    let slot_name = quote_ident(&config.slot);
    let mut slot = setup::ensure_slot_free(&client, &config.slot).await?;
    // Only once the slot is free: claiming a transactional sink fences the last writer.
    let held = sink.start().await?;
    if let Some(held) = held {
        let wal_end = current_wal_lsn(&client).await?;
        if held > wal_end {
            return Err(SourceError::SinkAhead { held, wal_end });
        }
    }
    let slot_point = slot.as_ref().and_then(|info| info.confirmed_flush_lsn);
    if let (Some(point), Some(held)) = (slot_point, held) {
        if held >= point
            && config.snapshot_mode == SnapshotMode::Initial
            && checkpoints.snapshot_done(&config.slot)?.is_none()
        {
            // Killed after the snapshot's commit but before its marker was written.
            tracing::info!(slot = %config.slot, %held, "the sink holds everything through the slot's position, so its snapshot completed");
            checkpoints.mark_snapshot_done(&config.slot, point)?;
        }
    }
    if slot.is_some()
        && config.snapshot_mode == SnapshotMode::Initial
        && checkpoints.snapshot_done(&config.slot)?.is_none()
    {
        tracing::warn!(slot = %config.slot, "slot exists but its initial snapshot never completed: recreating it");
        replication
            .simple_query(&format!("DROP_REPLICATION_SLOT {slot_name} WAIT"))
            .await?;
        slot = None;
    }
    let start_lsn = match slot {
        Some(info) => info.confirmed_flush_lsn.unwrap_or(Lsn::ZERO),
        None => {
            checkpoints.clear(&config.slot)?;
            let export = match config.snapshot_mode {
                SnapshotMode::Initial => "export",
                SnapshotMode::Never => "nothing",
            };
            // The snapshot's time, on the server's clock and before the slot exists: every
            // transaction streamed after the consistent point commits later than this, so a
            // version it makes never starts before the snapshot's version of the same row.
            let as_of_micros = server_clock_micros(&client).await?;
            let rows = replication
                .simple_query(&format!(
                    "CREATE_REPLICATION_SLOT {slot_name} LOGICAL pgoutput (SNAPSHOT '{export}')"
                ))
                .await?;
            let row = rows.first().ok_or_else(|| {
                SourceError::Protocol("CREATE_REPLICATION_SLOT returned no row".into())
            })?;
            let consistent_point: Lsn = row
                .get(1)
                .and_then(|v| v.as_deref())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    SourceError::Protocol("CREATE_REPLICATION_SLOT: no consistent point".into())
                })?;
            tracing::info!(slot = %config.slot, %consistent_point, "created replication slot");
            if config.snapshot_mode == SnapshotMode::Initial {
                let snapshot_name = row.get(2).and_then(|v| v.clone()).ok_or_else(|| {
                    SourceError::Protocol("CREATE_REPLICATION_SLOT: no snapshot name".into())
                })?;
                let counting = count_snapshot_rows(stats.clone(), progress);
                let copy = snapshot::copy_tables(
                    &config.connection,
                    &snapshot_name,
                    consistent_point,
                    as_of_micros,
                    &published,
                    sink,
                    &config.snapshot,
                    Some(counting),
                );
                let rows = tokio::select! {
                    rows = copy => rows?,
                    () = stop_requested(&mut shutdown) => {
                        // Not marked done: the next start recreates the slot and snapshots again.
                        tracing::info!(slot = %config.slot, "stopped during the initial snapshot; it is taken again on the next start");
                        let _ = replication.close().await;
                        return Ok(());
                    }
                };
                stats_mut(&stats, |s| s.snapshot_rows = rows);
                checkpoints.mark_snapshot_done(&config.slot, consistent_point)?;
                tracing::info!(rows, %consistent_point, "initial snapshot complete");
            }
            consistent_point
        }
    };

    let publication = quote_literal(&quote_ident(&config.publication));
    replication
        .start_copy_both(&format!(
            "START_REPLICATION SLOT {slot_name} LOGICAL {start_lsn} \
             (proto_version '2', publication_names {publication}, streaming 'on', messages 'true')"
        ))
        .await?;
    tracing::info!(slot = %config.slot, %start_lsn, "streaming");
    let positions = config.positions.clone();
    positions.set_wal_end(start_lsn);
    positions.set_confirmed(start_lsn);
    let _streaming = StreamingGuard::start(&positions);

    let mut stream = StreamState {
        decoder: Decoder::new(2, false),
        relations: HashMap::new(),
        type_names: HashMap::new(),
        catalog: client,
        txn: None,
        streaming_xid: None,
        spill: SpillStore::new(&config.state_dir.join("spill"))?,
        tracker: DurabilityTracker::new(start_lsn),
        batch_size: config.batch_size.max(1),
        max_in_flight: config.max_in_flight.max(1),
        stats: stats.clone(),
        positions: config.positions.clone(),
    };
    let heartbeat = config
        .heartbeat_interval
        .map(|every| spawn_heartbeat(config.connection.clone(), every));
    let mut stop_watch = shutdown.clone();
    let result = tokio::select! {
        result = stream_loop(&mut replication, &mut stream, sink, config, &mut shutdown) => result,
        // A write stuck on backpressure does not hold the stop up past the timeout.
        deadline = hard_stop(&mut stop_watch, config.shutdown_timeout) => {
            tracing::warn!(timeout = ?config.shutdown_timeout, "stopping while a write waits; what is not acknowledged is read again on the next start");
            Ok((positions.wal_end(), deadline))
        }
    };
    if let Some(task) = heartbeat {
        task.abort();
    }
    let (received, deadline) = result?;
    // Graceful stop: let in-flight batches land (until the deadline), confirm what did, say goodbye.
    let pending = stream.tracker.in_flight();
    let drained = tokio::time::timeout_at(deadline, async {
        if stream.tracker.in_flight() > 0 {
            sink.flush().await?;
        }
        while stream.tracker.in_flight() > 0 {
            stream.tracker.wait_oldest().await?;
        }
        Ok::<(), SourceError>(())
    })
    .await;
    let failed = match drained {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => {
            tracing::warn!(
                batches = stream.tracker.in_flight(),
                timeout = ?config.shutdown_timeout,
                "stopping with batches not yet acknowledged; they are read again on the next start"
            );
            None
        }
    };
    let flushed = stream.tracker.durable();
    replication
        .send_copy_data(&status_update(received.max(flushed), flushed, false))
        .await?;
    positions.set_confirmed(flushed);
    stats_mut(&stats, |s| {
        s.received_lsn = received;
        s.confirmed_lsn = flushed;
    });
    tracing::info!(slot = %config.slot, confirmed = %flushed, batches_waited_for = pending, "capture stopped");
    let _ = replication.close().await;
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Resolves `timeout` after `shutdown` turned true, with that instant.
async fn hard_stop(
    shutdown: &mut watch::Receiver<bool>,
    timeout: Duration,
) -> tokio::time::Instant {
    stop_requested(shutdown).await;
    let deadline = tokio::time::Instant::now() + timeout;
    tokio::time::sleep_until(deadline).await;
    deadline
}

/// Streams until shutdown or an error; on shutdown returns the last WAL position
/// received and the deadline of the stop.
async fn stream_loop<S: ChangeSink>(
    replication: &mut ReplicationConnection,
    stream: &mut StreamState,
    sink: &mut S,
    config: &CaptureConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(Lsn, tokio::time::Instant), SourceError> {
    let mut last_status = Instant::now();
    let mut confirmed = stream.tracker.durable();
    let mut received = confirmed;
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let positions = config.positions.clone();
    // Set on shutdown: reading goes on only to finish the open transaction, so that what
    // was handed to the sink ends on a transaction boundary and is confirmed whole.
    let mut stop_by: Option<tokio::time::Instant> = None;
    loop {
        let mut reply_now = false;
        if let Some(deadline) = stop_by {
            if stream.txn.is_none() {
                return Ok((received, deadline));
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(timeout = ?config.shutdown_timeout, "stopping inside a transaction; it is read again on the next start");
                return Ok((received, deadline));
            }
        }
        let flush_at = sink.flush_deadline();
        tokio::select! {
            biased;
            changed = shutdown.changed(), if stop_by.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    stop_by = Some(tokio::time::Instant::now() + config.shutdown_timeout);
                    continue;
                }
            }
            data = replication.next_copy_data() => {
                let Some(data) = data? else {
                    return Err(SourceError::Protocol("server ended the replication stream".into()));
                };
                let message = ReplicationMessage::decode(data)
                    .map_err(|source| SourceError::Decode { lsn: received, source })?;
                match message {
                    ReplicationMessage::XLogData(x) => {
                        received = received.max(x.wal_end);
                        positions.set_wal_end(received);
                        stream.handle(x.wal_start, x.data, sink).await?;
                    }
                    ReplicationMessage::Keepalive(k) => {
                        received = received.max(k.wal_end);
                        positions.set_wal_end(received);
                        if stream.txn.is_none() {
                            stream.tracker.push_position(k.wal_end);
                        }
                        reply_now = k.reply_requested;
                    }
                }
            }
            _ = ticker.tick() => {}
            () = sleep_until_std(flush_at), if flush_at.is_some() => {
                sink.flush().await?;
            }
        }
        let durable = stream.tracker.poll()?;
        let due = last_status.elapsed() >= config.status_interval;
        let moved = durable > confirmed && last_status.elapsed() >= Duration::from_secs(1);
        if reply_now || due || moved {
            // Asking for a reply when idle makes the server send a keepalive with its WAL end.
            let ask = due && stream.txn.is_none();
            replication
                .send_copy_data(&status_update(received.max(durable), durable, ask))
                .await?;
            confirmed = durable;
            positions.set_confirmed(durable);
            last_status = Instant::now();
            stats_mut(&stream.stats, |s| {
                s.received_lsn = received;
                s.confirmed_lsn = durable;
            });
        }
    }
}

/// A standby status update reporting `flush` as both flushed and applied.
fn status_update(
    write: Lsn,
    flush: Lsn,
    reply_requested: bool,
) -> [u8; StandbyStatusUpdate::ENCODED_LEN] {
    StandbyStatusUpdate {
        write,
        flush,
        apply: flush,
        client_time_micros: walsender::now_unix_micros(),
        reply_requested,
    }
    .encode()
}

/// An open (regular or replayed) transaction being assembled into batches.
struct OpenTxn {
    info: TransactionInfo,
    ordinal: u64,
    batch: Vec<ChangeEvent>,
}

struct StreamState {
    decoder: Decoder,
    relations: HashMap<TableId, Arc<TableSchema>>,
    type_names: HashMap<u32, String>,
    catalog: Client,
    txn: Option<OpenTxn>,
    streaming_xid: Option<Xid>,
    spill: SpillStore,
    tracker: DurabilityTracker,
    batch_size: usize,
    max_in_flight: usize,
    stats: SharedStats,
    positions: Arc<SlotPositions>,
}

impl StreamState {
    async fn handle<S: ChangeSink>(
        &mut self,
        lsn: Lsn,
        payload: Bytes,
        sink: &mut S,
    ) -> Result<(), SourceError> {
        let message = self
            .decoder
            .decode(payload.clone())
            .map_err(|source| SourceError::Decode { lsn, source })?;
        if let Some(top) = self.streaming_xid {
            if let Some(xid) = message_xid(&message) {
                if !matches!(
                    message,
                    PgOutputMessage::StreamStop | PgOutputMessage::StreamStart(_)
                ) {
                    self.spill
                        .append(top, &SpilledMessage { xid, lsn, payload })?;
                    return Ok(());
                }
            }
        }
        match message {
            PgOutputMessage::Begin(begin) => {
                self.txn = Some(OpenTxn {
                    info: TransactionInfo {
                        xid: Some(begin.xid),
                        commit_lsn: begin.final_lsn,
                        end_lsn: begin.final_lsn,
                        commit_time_micros: begin.commit_time_micros,
                    },
                    ordinal: 0,
                    batch: Vec::new(),
                });
            }
            PgOutputMessage::Commit(commit) => {
                let mut txn = self.txn.take().ok_or_else(|| {
                    SourceError::Protocol(format!("Commit at {} without Begin", commit.commit_lsn))
                })?;
                txn.info.end_lsn = commit.end_lsn;
                self.finish(txn, sink).await?;
            }
            PgOutputMessage::StreamStart(start) => self.streaming_xid = Some(start.xid),
            PgOutputMessage::StreamStop => self.streaming_xid = None,
            PgOutputMessage::StreamAbort(abort) => {
                self.spill.abort(abort.xid, abort.subxid)?;
                stats_mut(&self.stats, |s| s.aborted_streams += 1);
            }
            PgOutputMessage::StreamCommit(commit) => {
                let info = TransactionInfo {
                    xid: Some(commit.xid),
                    commit_lsn: commit.commit_lsn,
                    end_lsn: commit.end_lsn,
                    commit_time_micros: commit.commit_time_micros,
                };
                let mut txn = OpenTxn {
                    info,
                    ordinal: 0,
                    batch: Vec::new(),
                };
                if let Some(mut reader) = self.spill.take_committed(commit.xid)? {
                    let mut replay = replay_decoder(commit.xid)?;
                    // Relation messages of a committed stream stay in force afterwards:
                    // pgoutput marks a relation's schema as sent when a stream that
                    // carried it commits, and does not send it again.
                    while let Some(spilled) = reader.next_message()? {
                        let message = replay.decode(spilled.payload).map_err(|source| {
                            SourceError::Decode {
                                lsn: spilled.lsn,
                                source,
                            }
                        })?;
                        self.apply(&mut txn, spilled.lsn, message, sink).await?;
                    }
                }
                self.finish(txn, sink).await?;
                stats_mut(&self.stats, |s| s.streamed_transactions += 1);
            }
            PgOutputMessage::Message(message)
                if message.prefix == HEARTBEAT_PREFIX && self.txn.is_none() =>
            {
                self.tracker.push_position(message.lsn);
            }
            other => {
                let mut txn = self.txn.take();
                let result = match txn.as_mut() {
                    Some(open) => self.apply(open, lsn, other, sink).await,
                    None => self.apply_outside_txn(other).await,
                };
                self.txn = txn;
                result?;
            }
        }
        Ok(())
    }

    /// Messages that may arrive between transactions (relation and type descriptions).
    async fn apply_outside_txn(&mut self, message: PgOutputMessage) -> Result<(), SourceError> {
        match message {
            PgOutputMessage::Relation(relation) => self.describe(relation).await,
            PgOutputMessage::Type(info) => {
                self.type_names
                    .insert(info.type_oid, format!("{}.{}", info.namespace, info.name));
                Ok(())
            }
            PgOutputMessage::Origin(_) | PgOutputMessage::Message(_) => Ok(()),
            other => Err(SourceError::Protocol(format!(
                "{} outside a transaction",
                message_name(&other)
            ))),
        }
    }

    async fn apply<S: ChangeSink>(
        &mut self,
        txn: &mut OpenTxn,
        lsn: Lsn,
        message: PgOutputMessage,
        sink: &mut S,
    ) -> Result<(), SourceError> {
        let (table, op, before, after, truncate) = match message {
            PgOutputMessage::Insert(insert) => {
                let table = self.relation(insert.relation)?;
                let after = tuple_row(&table, &insert.new)?;
                (table, Op::Insert, None, Some(after), None)
            }
            PgOutputMessage::Update(update) => {
                let table = self.relation(update.relation)?;
                let mut after = tuple_row(&table, &update.new)?;
                let before = match &update.old {
                    Some(OldTuple::Full(old)) => {
                        let before = tuple_row(&table, old)?;
                        fill_unchanged_toast(&mut after, Some(&before));
                        Some(before)
                    }
                    Some(OldTuple::Key(old)) => Some(tuple_row(&table, old)?),
                    None => None,
                };
                (table, Op::Update, before, Some(after), None)
            }
            PgOutputMessage::Delete(delete) => {
                let table = self.relation(delete.relation)?;
                let old = match &delete.old {
                    OldTuple::Full(old) | OldTuple::Key(old) => old,
                };
                let before = tuple_row(&table, old)?;
                (table, Op::Delete, Some(before), None, None)
            }
            PgOutputMessage::Truncate(truncate) => {
                for id in &truncate.relations {
                    let table = self.relation(*id)?;
                    self.push_event(
                        txn,
                        lsn,
                        table,
                        Op::Truncate,
                        None,
                        None,
                        Some(truncate.options),
                        sink,
                    )
                    .await?;
                }
                return Ok(());
            }
            other => return self.apply_outside_txn(other).await,
        };
        self.push_event(txn, lsn, table, op, before, after, truncate, sink)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn push_event<S: ChangeSink>(
        &mut self,
        txn: &mut OpenTxn,
        lsn: Lsn,
        table: Arc<TableSchema>,
        op: Op,
        before: Option<cdc_core::Row>,
        after: Option<cdc_core::Row>,
        truncate: Option<cdc_core::TruncateOptions>,
        sink: &mut S,
    ) -> Result<(), SourceError> {
        txn.batch.push(ChangeEvent {
            position: Position {
                commit_lsn: txn.info.commit_lsn,
                ordinal: txn.ordinal,
            },
            transaction: txn.info,
            lsn,
            snapshot: false,
            table,
            op,
            before,
            after,
            truncate,
        });
        txn.ordinal += 1;
        if txn.batch.len() >= self.batch_size {
            let batch = std::mem::take(&mut txn.batch);
            self.write(batch, None, sink).await?;
        }
        Ok(())
    }

    async fn finish<S: ChangeSink>(
        &mut self,
        mut txn: OpenTxn,
        sink: &mut S,
    ) -> Result<(), SourceError> {
        let end = txn.info.end_lsn;
        if txn.ordinal == 0 {
            self.tracker.push_position(end);
        } else {
            if !txn.batch.is_empty() {
                let batch = std::mem::take(&mut txn.batch);
                self.write(batch, None, sink).await?;
            }
            self.wait_for_room(sink).await?;
            let ack = sink.commit(&txn.info, txn.ordinal).await?;
            self.tracker.push(Some(end), ack);
        }
        let now = walsender::now_unix_micros();
        self.positions
            .last_commit_micros
            .store(txn.info.commit_time_micros, Ordering::Relaxed);
        stats_mut(&self.stats, |s| {
            s.transactions += 1;
            s.last_commit_micros = Some(txn.info.commit_time_micros);
            s.last_delivered_micros = Some(now);
        });
        Ok(())
    }

    /// Waits until fewer than `max_in_flight` batches are pending (backpressure); first
    /// has the sink release what it holds back, which no later event would otherwise.
    async fn wait_for_room<S: ChangeSink>(&mut self, sink: &mut S) -> Result<(), SourceError> {
        if self.tracker.in_flight() >= self.max_in_flight {
            self.tracker.poll()?;
        }
        if self.tracker.in_flight() >= self.max_in_flight {
            sink.flush().await?;
        }
        while self.tracker.in_flight() >= self.max_in_flight {
            self.tracker.wait_oldest().await?;
        }
        Ok(())
    }

    async fn write<S: ChangeSink>(
        &mut self,
        batch: Vec<ChangeEvent>,
        completes: Option<Lsn>,
        sink: &mut S,
    ) -> Result<(), SourceError> {
        self.wait_for_room(sink).await?;
        stats_mut(&self.stats, |s| {
            for event in &batch {
                let counts = s.per_table.entry(event.table.name.to_string()).or_default();
                match event.op {
                    Op::Read => counts.reads += 1,
                    Op::Insert => counts.inserts += 1,
                    Op::Update => counts.updates += 1,
                    Op::Delete => counts.deletes += 1,
                    Op::Truncate => counts.truncates += 1,
                }
            }
        });
        let ack = sink.write(batch).await?;
        self.tracker.push(completes, ack);
        Ok(())
    }

    fn relation(&self, id: TableId) -> Result<Arc<TableSchema>, SourceError> {
        self.relations
            .get(&id)
            .cloned()
            .ok_or(SourceError::UnknownRelation(id))
    }

    /// Records a Relation message, completed with nullability and keys from the catalog.
    async fn describe(&mut self, relation: Relation) -> Result<(), SourceError> {
        let catalog = match crate::catalog::described_table(&self.catalog, relation.id).await {
            Ok(described) => Some(described),
            Err(SourceError::MissingTable(_)) => None,
            Err(e) => return Err(e),
        };
        let columns = relation
            .columns
            .iter()
            .map(|column| {
                // The catalog's column, when it is still the one the message describes
                // (by name and declared type; a domain's base comes from the catalog).
                let known = catalog.as_ref().and_then(|(c, declared)| {
                    c.columns
                        .iter()
                        .zip(declared)
                        .find(|(k, &d)| k.name == column.name && d == column.type_oid)
                        .map(|(k, _)| k)
                });
                ColumnSchema {
                    name: column.name.clone(),
                    type_oid: known.map_or(column.type_oid, |k| k.type_oid),
                    type_modifier: known.map_or(column.type_modifier, |k| k.type_modifier),
                    type_name: known
                        .map(|k| k.type_name.clone())
                        .or_else(|| self.type_names.get(&column.type_oid).cloned())
                        .unwrap_or_else(|| format!("oid:{}", column.type_oid)),
                    nullable: known.is_none_or(|k| k.nullable),
                    primary_key: known.map_or(column.is_key, |k| k.primary_key),
                    replica_identity: column.is_key,
                }
            })
            .collect();
        let schema = TableSchema {
            id: relation.id,
            name: TableName::new(relation.namespace, relation.name),
            columns,
            replica_identity: relation.replica_identity,
        };
        tracing::debug!(table = %schema.name, columns = schema.columns.len(), "relation described");
        self.relations.insert(relation.id, Arc::new(schema));
        Ok(())
    }
}

/// A decoder positioned inside a stream block of `xid`, for replaying spilled messages.
fn replay_decoder(xid: Xid) -> Result<Decoder, SourceError> {
    let mut decoder = Decoder::new(2, false);
    let mut start = Vec::with_capacity(6);
    start.push(b'S');
    start.extend_from_slice(&xid.0.to_be_bytes());
    start.push(0);
    decoder
        .decode(Bytes::from(start))
        .map_err(|source| SourceError::Decode {
            lsn: Lsn::ZERO,
            source,
        })?;
    Ok(decoder)
}

fn message_xid(message: &PgOutputMessage) -> Option<Xid> {
    match message {
        PgOutputMessage::Relation(m) => m.xid,
        PgOutputMessage::Type(m) => m.xid,
        PgOutputMessage::Insert(m) => m.xid,
        PgOutputMessage::Update(m) => m.xid,
        PgOutputMessage::Delete(m) => m.xid,
        PgOutputMessage::Truncate(m) => m.xid,
        PgOutputMessage::Message(m) => m.xid,
        _ => None,
    }
}

fn message_name(message: &PgOutputMessage) -> &'static str {
    match message {
        PgOutputMessage::Insert(_) => "Insert",
        PgOutputMessage::Update(_) => "Update",
        PgOutputMessage::Delete(_) => "Delete",
        PgOutputMessage::Truncate(_) => "Truncate",
        _ => "message",
    }
}

fn spawn_heartbeat(params: ConnectParams, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        let mut client = None;
        loop {
            ticker.tick().await;
            if client.is_none() {
                client = crate::connection::connect_regular(&params, "heartbeat")
                    .await
                    .ok();
            }
            let Some(c) = &client else { continue };
            if let Err(e) = c
                .execute(
                    "SELECT pg_logical_emit_message(false, $1, '')",
                    &[&HEARTBEAT_PREFIX],
                )
                .await
            {
                tracing::warn!(error = %e, "heartbeat failed");
                if e.is_closed() {
                    client = None;
                }
            }
        }
    })
}

/// Wraps a snapshot progress callback so that rows are also counted per table in the stats.
fn count_snapshot_rows(stats: SharedStats, inner: Option<ProgressFn>) -> ProgressFn {
    Arc::new(move |progress: snapshot::SnapshotProgress| {
        if let snapshot::SnapshotProgress::Rows { table, rows } = &progress {
            stats_mut(&stats, |s| {
                s.per_table.entry(table.to_string()).or_default().reads += rows
            });
        }
        if let Some(inner) = &inner {
            inner(progress);
        }
    })
}

fn stats_mut(stats: &SharedStats, f: impl FnOnce(&mut CaptureStats)) {
    if let Ok(mut guard) = stats.lock() {
        f(&mut guard);
    }
}

/// Sleeps until `at` (forever when `None`).
async fn sleep_until_std(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The source's current WAL write position.
async fn current_wal_lsn(client: &Client) -> Result<Lsn, SourceError> {
    let row = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .map_err(SourceError::sql("read the source's WAL position"))?;
    let text: String = row.get(0);
    text.parse()
        .map_err(|_| SourceError::Protocol(format!("pg_current_wal_lsn() returned {text:?}")))
}

/// The server's clock now, in microseconds since the Unix epoch (the clock of its commit
/// timestamps).
async fn server_clock_micros(client: &tokio_postgres::Client) -> Result<i64, SourceError> {
    let row = client
        .query_one(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8",
            &[],
        )
        .await
        .map_err(SourceError::sql("read the server's clock"))?;
    Ok(row.get(0))
}
