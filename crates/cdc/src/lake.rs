//! `totesys-cdc lake`: the change topics into typed Parquet on an object store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cdc_core::MetricSet;
use cdc_lake::{FlushPolicy, LakeConfig, LakeMetrics, LakeStore, LakeWriter, ParquetOptions};

/// Where the lake is, and the Kafka group of its writers.
#[derive(Debug, clap::Args)]
pub struct LakeTarget {
    /// Where the lake lives: a path, `file://…`, `s3://bucket/prefix` (MinIO too, with
    /// AWS_ENDPOINT), `gs://…` or `az://…`; credentials from the usual environment variables.
    #[arg(long, env = "TOTESYS_CDC_LAKE_URL", default_value = "lake")]
    lake_url: String,
    #[command(flatten)]
    pub connect: crate::kafka::ConnectArgs,
    /// The change topics are `<prefix>.<schema>.<table>`.
    #[arg(long, env = "TOTESYS_CDC_TOPIC_PREFIX", default_value = cdc_publish::DEFAULT_PREFIX)]
    pub topic_prefix: String,
    /// Consumer group of the lake writers; writers in one group share the partitions.
    #[arg(
        long,
        env = "TOTESYS_CDC_LAKE_GROUP",
        default_value = "totesys-cdc-lake"
    )]
    pub group: String,
}

impl LakeTarget {
    /// Opens the lake's object store.
    pub fn open(&self) -> anyhow::Result<LakeStore> {
        LakeStore::open(&self.lake_url).context("setting --lake-url / TOTESYS_CDC_LAKE_URL")
    }
}

/// Arguments of `lake`.
#[derive(Debug, clap::Args)]
pub struct LakeArgs {
    #[command(flatten)]
    target: LakeTarget,
    /// Topic for records that cannot be decoded (default: `<prefix>.lake-dead-letters`).
    #[arg(long)]
    dead_letter_topic: Option<String>,
    /// Static membership of the writers' group (`group.instance.id`), unique per writer:
    /// a writer restarted with the same id gets its partitions back at once instead of
    /// after the session timeout. `up` gives each writer one.
    #[arg(long, env = "TOTESYS_CDC_LAKE_INSTANCE_ID")]
    group_instance_id: Option<String>,
    /// Do not store capture's transaction topic (`<prefix>.transaction`) in the lake.
    #[arg(long)]
    no_transactions: bool,
    /// Replication factor of the dead-letter topic when it is created (default: 3, or the
    /// number of brokers when the cluster has fewer).
    #[arg(long)]
    replication_factor: Option<i32>,
    /// Flush a partition's buffer after this many rows.
    #[arg(long, default_value_t = FlushPolicy::default().max_rows)]
    flush_rows: usize,
    /// … or this many bytes of records.
    #[arg(long, default_value_t = FlushPolicy::default().max_bytes)]
    flush_bytes: usize,
    /// … or when its oldest row is this many milliseconds old.
    #[arg(long, default_value_t = 1000)]
    flush_age_ms: u64,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = ParquetOptions::default().row_group_rows)]
    row_group_rows: usize,
    /// zstd level of the Parquet pages.
    #[arg(long, default_value_t = ParquetOptions::default().zstd_level)]
    zstd_level: i32,
    /// Serve Prometheus metrics (`/metrics`) and health (`/healthz`) on this address.
    #[arg(long, env = "TOTESYS_CDC_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long)]
    duration: Option<u64>,
}

/// Runs the lake writer until Ctrl-C or SIGTERM under a [`cdc_core::Supervisor`], retrying
/// what [`cdc_lake::LakeError::is_retryable`] allows with backoff; a permanent failure ends the run with its error.
pub async fn run(args: LakeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.flush_rows >= 1, "--flush-rows must be at least 1");
    let lake = args.target.open()?;
    let registry = Arc::new(args.target.connect.registry()?);
    let metrics = LakeMetrics::register(prometheus::default_registry())
        .context("registering the lake writer's metrics")?;
    let prefix = &args.target.topic_prefix;
    let defaults =
        LakeConfig::for_prefix(args.target.connect.settings()?, &args.target.group, prefix);
    let config = LakeConfig {
        transaction_topic: defaults.transaction_topic.filter(|_| !args.no_transactions),
        dead_letter_topic: args
            .dead_letter_topic
            .clone()
            .unwrap_or(defaults.dead_letter_topic),
        dead_letter_replication: args.replication_factor,
        group_instance_id: args.group_instance_id.clone(),
        parquet: ParquetOptions {
            row_group_rows: args.row_group_rows,
            zstd_level: args.zstd_level,
            ..ParquetOptions::default()
        },
        flush: FlushPolicy {
            max_rows: args.flush_rows,
            max_bytes: args.flush_bytes,
            max_age: Duration::from_millis(args.flush_age_ms),
        },
        ..defaults
    };
    tracing::info!(lake = %lake.url, group = %config.group_id, topics = ?config.topics,
        dead_letters = %config.dead_letter_topic, "lake writer starting");
    let health = crate::telemetry::Health::default();
    let telemetry = match args.metrics_listen {
        Some(addr) => Some(crate::telemetry::serve(addr, health.clone()).await?),
        None => None,
    };
    let stop = crate::stop_on_signal(args.duration);
    let mut supervisor = cdc_core::Supervisor::new("lake writer", stop.clone());
    let (config, lake, registry, metrics, health) = (&config, &lake, &registry, &metrics, &health);
    let result = supervisor
        .run(
            || {
                let mut stop = stop.clone();
                async move {
                    let writer = LakeWriter::new(
                        config.clone(),
                        lake.clone(),
                        registry.clone(),
                        metrics.clone(),
                    )
                    .await
                    .map_err(anyhow::Error::from)?;
                    health.set_ready(true);
                    // The writer flushes its buffers and commits before it returns.
                    let totals = writer
                        .run(async move {
                            let _ = stop.wait_for(|stop| *stop).await;
                        })
                        .await;
                    health.set_ready(false);
                    totals.map_err(anyhow::Error::from)
                }
            },
            |e| {
                e.downcast_ref::<cdc_lake::LakeError>()
                    .is_some_and(cdc_lake::LakeError::is_retryable)
            },
        )
        .await;
    if let Ok(Some(totals)) = &result {
        eprintln!(
            "lake: {} records read, {} rows in {} files, {} dead letters",
            totals.records, totals.rows, totals.files, totals.dead_letters
        );
    }
    if let Some(telemetry) = telemetry {
        telemetry.abort();
    }
    result.map(|_| ())
}
