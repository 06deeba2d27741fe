//! `totesys-cdc replay`: the lake and/or the warehouse rebuilt from the topics into fresh
//! targets, with the lake writer's and the modeler's own code (docs/replay.md).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cdc_core::MetricSet;
use cdc_lake::{FlushPolicy, LakeConfig, LakeMetrics, LakeStore, LakeTotals, LakeWriter, ReadPlan};
use cdc_modeler::{Modeler, ModelerConfig, ModelerMetrics};
use indicatif::{ProgressBar, ProgressStyle};

/// What replay rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// The lake only (`--lake-url`).
    Lake,
    /// The warehouse only (`--warehouse-url`), through a temporary lake unless
    /// `--lake-url` names one to keep.
    Warehouse,
    /// The lake (`--lake-url`), then the warehouse from it (`--warehouse-url`).
    Both,
}

/// Arguments of `replay`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct ReplayArgs {
    /// What to rebuild.
    #[arg(long, value_enum, default_value_t = Target::Both)]
    target: Target,
    /// The NEW lake to write (must be empty): a path, `file://…`, `s3://…`, `gs://…`,
    /// `az://…`. Not read from TOTESYS_CDC_LAKE_URL, which names the live lake.
    #[arg(long)]
    lake_url: Option<String>,
    /// The NEW warehouse to build (libpq string or postgres:// URL): its DDL is applied,
    /// and it must not have applied anything yet. Not read from TOTESYS_CDC_WAREHOUSE_URL,
    /// which names the live warehouse.
    #[arg(long)]
    warehouse_url: Option<String>,
    /// File holding the new warehouse's password (else TOTESYS_CDC_WAREHOUSE_PASSWORD or
    /// PGPASSWORD).
    #[arg(long, env = "TOTESYS_CDC_WAREHOUSE_PASSWORD_FILE")]
    warehouse_password_file: Option<PathBuf>,
    /// Read every partition from its first record (the default).
    #[arg(long, conflicts_with = "from_timestamp")]
    from_beginning: bool,
    /// Read from the first record at or after this time (RFC 3339, e.g.
    /// `2026-11-01T00:00:00Z`, or milliseconds since the epoch): a backfill, without the
    /// history before it.
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp_ms)]
    from_timestamp: Option<i64>,
    #[command(flatten)]
    connect: crate::kafka::ConnectArgs,
    /// The change topics are `<prefix>.<schema>.<table>`.
    #[arg(long, env = "TOTESYS_CDC_TOPIC_PREFIX", default_value = cdc_publish::DEFAULT_PREFIX)]
    topic_prefix: String,
    /// Consumer group of the replay (default: `<prefix>.replay.<epoch ms>`, new each
    /// time, so the live lake writers' offsets are never touched; deleted afterwards).
    #[arg(long)]
    group: Option<String>,
    /// Topic for records that cannot be decoded (default: `<prefix>.replay-dead-letters`,
    /// not the live writers' dead-letter topic).
    #[arg(long)]
    dead_letter_topic: Option<String>,
    /// Do not store capture's transaction topic in the lake (the warehouse needs it: only
    /// with `--target lake`).
    #[arg(long)]
    no_transactions: bool,
    /// Flush a partition's buffer into a file after this many rows.
    #[arg(long, default_value_t = FlushPolicy::default().max_rows)]
    flush_rows: usize,
    /// Most changes per warehouse transaction (a source transaction is never split).
    #[arg(long, default_value_t = ModelerConfig::default().max_batch_changes)]
    max_batch_changes: usize,
    /// No progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
}

const AFTER_HELP: &str = "\
Replay reads the topics as they are when it starts: it takes every partition's end offset
(high watermark) first, consumes up to exactly there in a consumer group of its own, writes
the lake with the lake writer's code, then applies that lake to the new warehouse with the
modeler's code until every complete source transaction is applied. The live pipeline keeps
running; its consumer group, lake and warehouse are not touched.

Examples:
  totesys-cdc replay --lake-url s3://lake/totesys-v2 --warehouse-url 'host=wh dbname=warehouse_v2'
  totesys-cdc replay --target warehouse --warehouse-url 'host=wh dbname=rebuilt'
  totesys-cdc replay --target lake --lake-url /data/lake-2026-11 --from-timestamp 2026-11-01T00:00:00Z

The topics must keep every record since the start (retention.ms of 100 years, capture's
default), or replay from the beginning builds a partial warehouse: replay says so when a
partition no longer starts at offset 0. See docs/replay.md.";

/// `--from-timestamp`: RFC 3339 or milliseconds since the epoch.
fn parse_timestamp_ms(text: &str) -> Result<i64, String> {
    cdc_lake::parse_time_ms(text).map_err(|e| e.to_string())
}

/// Milliseconds since the epoch now.
fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// A temporary lake directory, removed when dropped.
struct TemporaryLake(PathBuf);

impl Drop for TemporaryLake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The progress display: hidden with `--no-progress` or when stderr is not a terminal.
fn bar(args: &ReplayArgs, len: Option<u64>, template: &str) -> ProgressBar {
    if args.no_progress || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What the modeler did with the new lake.
#[derive(Debug, Default)]
struct Applied {
    transactions: usize,
    changes: u64,
    /// Transactions read but not complete in the lake.
    pending: usize,
    watermark: cdc_core::Lsn,
}

/// Records read so far (the lake writer's records counter over every topic).
fn records_read(metrics: &LakeMetrics) -> u64 {
    cdc_core::counter_total(&metrics.records)
}

/// Runs `replay`.
pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let prefix = args.topic_prefix.clone();
    let (wants_lake, wants_warehouse) = match args.target {
        Target::Lake => (true, false),
        Target::Warehouse => (false, true),
        Target::Both => (true, true),
    };
    if wants_lake && args.lake_url.is_none() {
        anyhow::bail!("--lake-url is required with --target lake or both: the new lake to write");
    }
    let warehouse_url = match (&args.warehouse_url, wants_warehouse) {
        (Some(url), true) => Some(url.clone()),
        (None, true) => anyhow::bail!(
            "--warehouse-url is required with --target warehouse or both: the new warehouse to build"
        ),
        (Some(_), false) => anyhow::bail!("--warehouse-url is given but --target is lake"),
        (None, false) => None,
    };
    anyhow::ensure!(args.flush_rows >= 1, "--flush-rows must be at least 1");
    anyhow::ensure!(
        !(wants_warehouse && args.no_transactions),
        "--no-transactions leaves the lake without the END records the warehouse needs; use it with --target lake only"
    );

    // The targets: both must be fresh before anything is read.
    let temporary = match &args.lake_url {
        Some(_) => None,
        None => {
            let dir = std::env::temp_dir().join(format!(
                "totesys-cdc-replay-{}-{}",
                std::process::id(),
                now_ms()
            ));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating the temporary lake {}", dir.display()))?;
            Some(TemporaryLake(dir))
        }
    };
    let lake_url = match (&args.lake_url, &temporary) {
        (Some(url), _) => url.clone(),
        (None, Some(dir)) => dir.0.display().to_string(),
        (None, None) => anyhow::bail!("no lake to write"),
    };
    let lake = LakeStore::open(&lake_url).context("setting --lake-url")?;
    if let Some(found) = lake.any_object().await? {
        anyhow::bail!(
            "--lake-url {lake_url} is not empty (it holds {found}); replay writes only into a new, empty lake"
        );
    }
    let warehouse = match &warehouse_url {
        Some(url) => {
            let client = crate::connect_postgres(
                url,
                "--warehouse-url (the new warehouse)",
                args.warehouse_password_file.as_deref(),
                &["TOTESYS_CDC_WAREHOUSE_PASSWORD", "PGPASSWORD"],
            )
            .await?;
            cdc_modeler::warehouse::init(&client)
                .await
                .context("applying the warehouse DDL to --warehouse-url")?;
            let watermark = cdc_modeler::warehouse::watermark(&client).await?;
            if watermark != cdc_core::Lsn::ZERO {
                anyhow::bail!(
                    "--warehouse-url has applied source transactions up to {watermark}; replay builds only a new warehouse (totesys_cdc.applied empty)"
                );
            }
            Some(client)
        }
        None => None,
    };

    // Where to start and where to stop: every partition's offsets, taken now.
    let settings = args.connect.settings()?;
    let registry = Arc::new(args.connect.registry()?);
    let partitions = cdc_lake::lake_partitions(&settings, &prefix).await?;
    if partitions.is_empty() {
        anyhow::bail!("no topics under prefix {prefix:?} (--topic-prefix): nothing to replay");
    }
    let transaction_topic = (!args.no_transactions).then(|| format!("{prefix}.transaction"));
    let skip = format!("{prefix}.transaction");
    let skip = args.no_transactions.then_some(skip.as_str());
    let plan = match args.from_timestamp {
        Some(ms) => {
            let starts = cdc_lake::offsets_at_time(&settings, &partitions, ms).await?;
            ReadPlan::new(&partitions, &starts, skip)
        }
        None => ReadPlan::from_beginning(&partitions, skip),
    };
    let (ends, total) = (plan.ends.clone(), plan.records);
    // Retention may have removed the oldest records: from the beginning, that is a gap.
    let gap = args
        .from_timestamp
        .is_none()
        .then(|| plan.lost_from_beginning())
        .flatten();
    if let Some(line) = &gap {
        tracing::warn!("{line}");
        eprintln!("warning: {line}");
    }

    // The lake: a bounded run of the lake writer in a consumer group of its own.
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("{prefix}.replay.{}", now_ms()));
    if args.from_timestamp.is_some() {
        cdc_lake::commit_group_offsets(&settings, &group, &plan.starts)
            .await
            .context("setting the replay group's start offsets")?;
    }
    let config = LakeConfig {
        transaction_topic,
        dead_letter_topic: args
            .dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{prefix}.replay-dead-letters")),
        flush: FlushPolicy {
            max_rows: args.flush_rows,
            // Replay flushes by size only: files as large as the policy allows.
            max_age: Duration::from_secs(3600),
            ..FlushPolicy::default()
        },
        ..LakeConfig::for_prefix(settings.clone(), &group, &prefix)
    };
    tracing::info!(lake = %lake.url, %group, partitions = ends.len(), records = total, "replay starting");
    let metrics = LakeMetrics::unregistered().context("creating the lake writer's metrics")?;
    let totals: LakeTotals = if ends.is_empty() {
        LakeTotals::default()
    } else {
        let writer = LakeWriter::new(config, lake.clone(), registry, metrics.clone())
            .await?
            .stop_at(ends.clone());
        let progress = bar(
            &args,
            Some(total),
            "records {bar:40} {pos}/{len} {per_sec} eta {eta}",
        );
        let interrupted = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (progress, metrics) = (progress.clone(), metrics.clone());
            tokio::spawn(async move {
                loop {
                    progress.set_position(records_read(&metrics));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        let stop = {
            let interrupted = interrupted.clone();
            async move {
                crate::shutdown_signal().await;
                interrupted.store(true, Ordering::SeqCst);
            }
        };
        let result = writer.run(stop).await;
        watcher.abort();
        progress.set_position(records_read(&metrics));
        progress.finish_and_clear();
        let totals = result?;
        if let Err(e) = cdc_lake::delete_group(&settings, &group).await {
            tracing::info!(%group, error = %e, "the replay's consumer group was not deleted; it holds no live offsets and can be deleted by hand");
        }
        if interrupted.load(Ordering::SeqCst) {
            anyhow::bail!(
                "replay interrupted after {} of {total} records: the new lake {lake_url} is partial; delete it before replaying again",
                totals.records
            );
        }
        totals
    };

    // The warehouse: the modeler over the new lake until nothing complete is left.
    let mut applied = Applied::default();
    if let Some(client) = warehouse {
        let modeler_metrics =
            ModelerMetrics::unregistered().context("creating the modeler's metrics")?;
        let config = ModelerConfig {
            max_batch_changes: args.max_batch_changes.max(1),
            processed_every: None,
            ..ModelerConfig::default()
        };
        let mut modeler =
            Modeler::new(lake.clone(), client, config, modeler_metrics.clone()).await?;
        let progress = bar(
            &args,
            None,
            "{spinner} transactions applied {pos} {per_sec}",
        );
        let watcher = {
            let (progress, metrics) = (progress.clone(), modeler_metrics.clone());
            tokio::spawn(async move {
                loop {
                    progress.set_position(metrics.transactions.get());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        let drained = async {
            let report = modeler.drain().await?;
            applied.transactions = report.transactions;
            applied.changes = report.changes;
            if wants_lake {
                // The processed zone of the new lake, as the live modeler writes it.
                modeler.export_processed().await?;
            }
            anyhow::Ok(())
        };
        // Each apply is one warehouse transaction: an interrupted replay leaves a
        // consistent warehouse up to its watermark, which `model` can take on from a kept lake.
        let result = tokio::select! {
            result = drained => result,
            () = crate::shutdown_signal() => Err(anyhow::anyhow!(
                "replay interrupted while applying: the new warehouse holds the first {} source transactions only",
                modeler_metrics.transactions.get()
            )),
        };
        watcher.abort();
        progress.finish_and_clear();
        result.context("applying the new lake to the new warehouse")?;
        applied.pending = modeler.pending();
        applied.watermark = modeler.watermark();
    }

    let mut summary = format!(
        "replay: read {} records ({} partitions{}) into {} rows in {} lake files at {}",
        totals.records,
        ends.len(),
        match args.from_timestamp {
            Some(ms) => format!(", from {ms} ms since the epoch"),
            None => ", from the beginning".to_owned(),
        },
        totals.rows,
        totals.files,
        if temporary.is_some() {
            "a temporary lake (removed)".to_owned()
        } else {
            lake_url.clone()
        },
    );
    if totals.dead_letters > 0 {
        summary.push_str(&format!(", {} dead letters", totals.dead_letters));
    }
    if warehouse_url.is_some() {
        summary.push_str(&format!(
            "; applied {} source transactions ({} changes) to the new warehouse, up to {}",
            applied.transactions, applied.changes, applied.watermark
        ));
        if applied.pending > 0 {
            summary.push_str(&format!(
                ", {} incomplete transactions left out (their records lie past the end offsets taken at the start)",
                applied.pending
            ));
        }
    }
    summary.push_str(&format!(", in {:.1} s.", started.elapsed().as_secs_f64()));
    if let Some(gap) = gap {
        summary.push_str(&format!(" PARTIAL: {gap}."));
    }
    println!("{summary}");
    drop(temporary);
    Ok(())
}
