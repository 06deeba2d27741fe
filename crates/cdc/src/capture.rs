//! `totesys-cdc capture`: snapshot, then stream, printing per-table progress and lag.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cdc_core::{Secret, TableName};
use cdc_postgres::connection::ConnectParams;
use cdc_postgres::error::SourceError;
use cdc_postgres::reader::{
    self, CaptureConfig, CaptureStats, SharedStats, SlotPositions, SnapshotMode,
};
use cdc_postgres::sink::ChangeSink;
use cdc_postgres::snapshot::{ProgressFn, SnapshotProgress};
use cdc_postgres::walsender::now_unix_micros;
use cdc_publish::ExactlyOnce;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Where captured events go.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SinkKind {
    /// One Kafka topic per table, Avro values registered in the schema registry.
    Kafka,
    /// Count and drop (progress is printed to stderr).
    Count,
    /// One JSON object per event on stdout.
    Jsonl,
}

/// How often each change reaches Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Delivery {
    /// In Kafka transactions: each change once in its topic, whatever is killed; readers
    /// use `isolation.level=read_committed` (docs/kafka.md, "Exactly once").
    ExactlyOnce,
    /// Plain idempotent producer: after a crash the changes in flight are published again.
    AtLeastOnce,
}

/// Arguments of `capture`.
#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// Source database (libpq string or postgres:// URL); no password here: use PGPASSWORD.
    #[arg(long, env = "TOTESYS_CDC_SOURCE_URL")]
    source: String,
    /// File holding the source password (instead of PGPASSWORD).
    #[arg(long, env = "TOTESYS_CDC_SOURCE_PASSWORD_FILE")]
    source_password_file: Option<PathBuf>,
    /// Publication to stream (created for --tables when missing).
    #[arg(long, default_value = "totesys_cdc")]
    publication: String,
    /// Replication slot (created when missing).
    #[arg(long, default_value = "totesys_cdc")]
    slot: String,
    /// Tables to publish, `schema.table`, comma-separated; default: all of schema public.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Directory for spill files and the snapshot checkpoint.
    #[arg(long, default_value = "state")]
    state_dir: PathBuf,
    /// Skip the initial snapshot.
    #[arg(long)]
    no_snapshot: bool,
    /// Tables copied in parallel during the snapshot.
    #[arg(long, default_value_t = 4)]
    snapshot_parallelism: usize,
    /// Where events go.
    #[arg(long, value_enum, default_value = "kafka")]
    sink: SinkKind,
    #[command(flatten)]
    kafka: crate::kafka::KafkaArgs,
    /// How often each change reaches Kafka: `exactly-once` (Kafka transactions; readers
    /// of the topics set `isolation.level=read_committed`) or `at-least-once` (a crash
    /// publishes the changes in flight again).
    #[arg(long, value_enum, default_value = "exactly-once")]
    delivery: Delivery,
    /// Seconds a Kafka transaction may stay open (the initial snapshot is one; so is each
    /// large source transaction); at most the broker's `transaction.max.timeout.ms`.
    #[arg(long, default_value_t = 900)]
    transaction_timeout_secs: u64,
    /// Batches handed to the sink and not yet durable, at most (backpressure; a source
    /// transaction's commit takes one, its changes one per thousand).
    #[arg(long, default_value_t = CaptureConfig::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Milliseconds during which small source transactions are grouped into one Kafka
    /// transaction (exactly-once).
    #[arg(long, default_value_t = 50)]
    commit_interval_ms: u64,
    /// Serve Prometheus metrics (`/metrics`), liveness (`/healthz`) and readiness
    /// (`/readyz`: streaming, not retrying) on this address.
    #[arg(long, env = "TOTESYS_CDC_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Seconds between progress reports on stderr (0: none).
    #[arg(long, default_value_t = 5)]
    report_every: u64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Stop once this many events were delivered after the snapshot.
    #[arg(long)]
    max_events: Option<u64>,
    /// `logical_decoding_work_mem` for the walsender (e.g. `64kB`), the size past which transactions stream.
    #[arg(long)]
    logical_decoding_work_mem: Option<String>,
    /// Seconds between heartbeat messages (0: none).
    #[arg(long, default_value_t = 10)]
    heartbeat_secs: u64,
    /// Hide the snapshot progress bars.
    #[arg(long)]
    no_progress: bool,
}

/// Runs `capture` under a [`cdc_core::Supervisor`]: what [`SourceError::is_retryable`]
/// allows is retried with backoff.
pub async fn run(args: CaptureArgs) -> anyhow::Result<()> {
    let mut params =
        ConnectParams::parse(&args.source).context("setting --source / TOTESYS_CDC_SOURCE_URL")?;
    if params.password.is_none() {
        params.password = crate::password_from(
            args.source_password_file.as_deref(),
            "--source-password-file",
            &["PGPASSWORD"],
        )?
        .map(Secret::new);
    }
    params.application_name = "totesys-cdc capture".into();
    let mut config = CaptureConfig::new(params);
    config.publication = args.publication.clone();
    config.slot = args.slot.clone();
    config.tables = args
        .tables
        .iter()
        .map(|t| parse_table(t))
        .collect::<anyhow::Result<_>>()?;
    config.state_dir = args.state_dir.clone();
    config.snapshot_mode = if args.no_snapshot {
        SnapshotMode::Never
    } else {
        SnapshotMode::Initial
    };
    config.snapshot.parallelism = args.snapshot_parallelism.max(1);
    config.max_in_flight = args.max_in_flight.max(1);
    config.logical_decoding_work_mem = args.logical_decoding_work_mem.clone();
    config.heartbeat_interval =
        (args.heartbeat_secs > 0).then(|| Duration::from_secs(args.heartbeat_secs));
    tracing::info!(host = %config.connection.host, port = config.connection.port, user = %config.connection.user,
        database = %config.connection.dbname, slot = %config.slot, publication = %config.publication, "capture starting");

    let stats: SharedStats = Arc::new(Mutex::new(CaptureStats::default()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reporter = (args.report_every > 0).then(|| {
        tokio::spawn(report_loop(
            stats.clone(),
            config.positions.clone(),
            Duration::from_secs(args.report_every),
        ))
    });
    let stop_tx = Arc::new(stop_tx);
    {
        let stop_tx = stop_tx.clone();
        let duration = args.duration;
        let max_events = args.max_events;
        let stats = stats.clone();
        tokio::spawn(async move {
            let deadline = duration.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
            loop {
                tokio::select! {
                    _ = crate::shutdown_signal() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                            break;
                        }
                        if let Some(max) = max_events {
                            let delivered = stats.lock().map(|s| streamed_events(&s)).unwrap_or(0);
                            if delivered >= max {
                                break;
                            }
                        }
                    }
                }
            }
            let _ = stop_tx.send(true);
        });
    }

    let progress = (!args.no_progress).then(snapshot_progress);
    let kafka = match args.sink {
        SinkKind::Kafka => {
            let once = (args.delivery == Delivery::ExactlyOnce).then(|| {
                let mut once = ExactlyOnce::for_slot(&args.kafka.topic_prefix(), &args.slot);
                once.transaction_timeout =
                    Duration::from_secs(args.transaction_timeout_secs.max(1));
                once.commit_interval = Duration::from_millis(args.commit_interval_ms);
                once
            });
            Some(args.kafka.publisher().await?.with_exactly_once(once))
        }
        SinkKind::Count | SinkKind::Jsonl => None,
    };
    let metrics = cdc_postgres::metrics::CaptureMetrics::register_over(
        prometheus::default_registry(),
        &config.positions,
    )
    .context("registering capture's metrics")?;
    // Ready while the replication stream is up and no failure is being retried.
    let positions = config.positions.clone();
    let health = crate::telemetry::Health::default().with_check(move || positions.streaming());
    let telemetry = match args.metrics_listen {
        Some(addr) => Some(crate::telemetry::serve(addr, health.clone()).await?),
        None => None,
    };
    let mut supervisor = cdc_core::Supervisor::new("capture", stop_rx.clone());
    let (config, stats, progress, kafka, health, metrics) =
        (&config, &stats, &progress, &kafka, &health, &metrics);
    let (stop, sink) = (&stop_rx, args.sink);
    let result = supervisor
        .run(
            || async move {
                health.set_ready(true);
                let mut sink_kind = "sink";
                let attempt = match (kafka, sink) {
                    (Some(publisher), _) => match publisher.sink().await {
                        Ok(sink) => {
                            sink_kind = "kafka";
                            run_once(config, sink, stop, stats, progress).await
                        }
                        Err(e) => {
                            sink_kind = e.kind();
                            Err(SourceError::Sink(e.into()))
                        }
                    },
                    (None, SinkKind::Jsonl) => {
                        let sink = crate::sinks::JsonLinesSink;
                        run_once(config, sink, stop, stats, progress).await
                    }
                    (None, _) => {
                        let sink = crate::sinks::CountingSink::default();
                        run_once(config, sink, stop, stats, progress).await
                    }
                };
                if let Err(e) = &attempt {
                    health.set_ready(false);
                    let kind = match e {
                        SourceError::Sink(sink) if sink_kind == "kafka" => {
                            cdc_publish::sink_failure_kind(sink)
                        }
                        SourceError::Sink(_) => sink_kind,
                        other => other.kind(),
                    };
                    metrics.errors.with_label_values(&[kind]).inc();
                }
                attempt.map_err(anyhow::Error::from)
            },
            |e| {
                e.downcast_ref::<SourceError>()
                    .is_some_and(SourceError::is_retryable)
            },
        )
        .await
        .map(|_| ());
    health.set_ready(false);
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    if let Some(telemetry) = telemetry {
        telemetry.abort();
    }
    if let Ok(s) = stats.lock() {
        eprint!("{}", render_report(&s, &config.positions));
    }
    // main prints the error with its whole cause chain on one line.
    result
}

async fn run_once<S: ChangeSink>(
    config: &CaptureConfig,
    mut sink: S,
    stop: &tokio::sync::watch::Receiver<bool>,
    stats: &SharedStats,
    progress: &Option<ProgressFn>,
) -> Result<(), SourceError> {
    reader::run(
        config,
        &mut sink,
        stop.clone(),
        stats.clone(),
        progress.clone(),
    )
    .await
}

pub(crate) fn parse_table(text: &str) -> anyhow::Result<TableName> {
    match text.split_once('.') {
        Some((schema, name)) if !schema.is_empty() && !name.is_empty() => {
            Ok(TableName::new(schema, name))
        }
        None if !text.is_empty() => Ok(TableName::new("public", text)),
        _ => anyhow::bail!("invalid --tables entry {text:?}: expected schema.table"),
    }
}

fn streamed_events(stats: &CaptureStats) -> u64 {
    stats
        .per_table
        .values()
        .map(|c| c.inserts + c.updates + c.deletes + c.truncates)
        .sum()
}

async fn report_loop(stats: SharedStats, positions: Arc<SlotPositions>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Ok(s) = stats.lock() {
            eprint!("{}", render_report(&s, &positions));
        }
    }
}

/// A per-table table of what capture read, with its lag.
fn render_report(stats: &CaptureStats, positions: &SlotPositions) -> String {
    let mut out = String::new();
    let lag = match (stats.last_commit_micros, stats.last_delivered_micros) {
        (Some(commit), Some(delivered)) => format!("{:.3}s", (delivered - commit) as f64 / 1e6),
        _ => "-".into(),
    };
    let idle = stats
        .last_delivered_micros
        .map(|d| format!("{:.1}s ago", (now_unix_micros() - d) as f64 / 1e6))
        .unwrap_or_else(|| "never".into());
    out.push_str(&format!(
        "── capture: {} txns, last commit→read lag {lag} (last txn {idle}), server WAL end {} confirmed {} (slot lag {} bytes), snapshot rows {}\n",
        stats.transactions,
        positions.wal_end(),
        positions.confirmed(),
        positions.lag_bytes(),
        stats.snapshot_rows
    ));
    out.push_str(&format!(
        "   {:<28} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "table", "snapshot", "insert", "update", "delete", "truncate"
    ));
    for (table, c) in &stats.per_table {
        out.push_str(&format!(
            "   {table:<28} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            c.reads, c.inserts, c.updates, c.deletes, c.truncates
        ));
    }
    out
}

fn snapshot_progress() -> cdc_postgres::snapshot::ProgressFn {
    let bars = MultiProgress::new();
    let per_table: Arc<Mutex<std::collections::HashMap<String, ProgressBar>>> = Arc::default();
    let style = ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} rows {per_sec}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    Arc::new(move |event: SnapshotProgress| {
        let Ok(mut tables) = per_table.lock() else {
            return;
        };
        match event {
            SnapshotProgress::TableStarted {
                table,
                estimated_rows,
            } => {
                let bar = bars.add(ProgressBar::new(estimated_rows.unwrap_or(0)));
                bar.set_style(style.clone());
                bar.set_prefix(table.to_string());
                tables.insert(table.to_string(), bar);
            }
            SnapshotProgress::Rows { table, rows } => {
                if let Some(bar) = tables.get(&table.to_string()) {
                    bar.inc(rows);
                    if bar.position() > bar.length().unwrap_or(0) {
                        bar.set_length(bar.position());
                    }
                }
            }
            SnapshotProgress::TableDone { table, rows } => {
                if let Some(bar) = tables.get(&table.to_string()) {
                    bar.set_length(rows);
                    bar.finish();
                }
            }
        }
    })
}
