//! `totesys-cdc model`: the lake applied to the warehouse, SCD2 history, exactly once.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cdc_core::MetricSet;
use cdc_lake::LakeStore;
use cdc_modeler::{Modeler, ModelerConfig, ModelerMetrics};

/// The warehouse connection.
#[derive(Debug, clap::Args)]
pub struct WarehouseArgs {
    /// The warehouse database (libpq string or postgres:// URL; password from
    /// TOTESYS_CDC_WAREHOUSE_PASSWORD, --warehouse-password-file or PGPASSWORD).
    #[arg(long, env = "TOTESYS_CDC_WAREHOUSE_URL")]
    warehouse_url: String,
    /// File holding the warehouse password.
    #[arg(long, env = "TOTESYS_CDC_WAREHOUSE_PASSWORD_FILE")]
    warehouse_password_file: Option<PathBuf>,
}

impl WarehouseArgs {
    /// Connects to the warehouse, driving the connection on the current runtime.
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        crate::connect_postgres(
            &self.warehouse_url,
            "--warehouse-url / TOTESYS_CDC_WAREHOUSE_URL",
            self.warehouse_password_file.as_deref(),
            &["TOTESYS_CDC_WAREHOUSE_PASSWORD", "PGPASSWORD"],
        )
        .await
    }
}

/// Arguments of `model`.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Where the lake lives (as for `lake`): a path, `file://…`, `s3://…`, `gs://…`, `az://…`.
    #[arg(long, env = "TOTESYS_CDC_LAKE_URL", default_value = "lake")]
    lake_url: String,
    #[command(flatten)]
    warehouse: WarehouseArgs,
    /// Apply the warehouse DDL first (as `init` does).
    #[arg(long)]
    init: bool,
    /// List the lake for new files this often.
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
    /// Most changes per warehouse transaction when catching up (a source transaction
    /// is never split).
    #[arg(long, default_value_t = ModelerConfig::default().max_batch_changes)]
    max_batch_changes: usize,
    /// Bring the processed zone (Delta tables under processed/) up to date at most this often; 0: never.
    #[arg(long, default_value_t = 5)]
    processed_every_secs: u64,
    /// Serve Prometheus metrics (`/metrics`) and health (`/healthz`, `/readyz`) here.
    #[arg(long, env = "TOTESYS_CDC_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long)]
    duration: Option<u64>,
}

/// Runs the modeler until Ctrl-C or SIGTERM under a [`cdc_core::Supervisor`], reconnecting
/// with backoff when the warehouse or the lake is unavailable.
pub async fn run(args: ModelArgs) -> anyhow::Result<()> {
    let lake =
        LakeStore::open(&args.lake_url).context("setting --lake-url / TOTESYS_CDC_LAKE_URL")?;
    let metrics = ModelerMetrics::register(prometheus::default_registry())
        .context("registering the modeler's metrics")?;
    let config = ModelerConfig {
        poll: Duration::from_millis(args.poll_ms.max(10)),
        max_batch_changes: args.max_batch_changes.max(1),
        processed_every: (args.processed_every_secs > 0)
            .then(|| Duration::from_secs(args.processed_every_secs)),
    };
    if args.init {
        let client = args.warehouse.connect().await?;
        cdc_modeler::warehouse::init(&client)
            .await
            .context("applying the warehouse DDL")?;
    }
    let health = crate::telemetry::Health::default();
    let telemetry = match args.metrics_listen {
        Some(addr) => Some(crate::telemetry::serve(addr, health.clone()).await?),
        None => None,
    };
    let stop = crate::stop_on_signal(args.duration);
    tracing::info!(lake = %lake.url, "modeler starting");
    let mut supervisor = cdc_core::Supervisor::new("modeler", stop.clone());
    let (warehouse, lake, config, metrics, health) =
        (&args.warehouse, &lake, &config, &metrics, &health);
    let result = supervisor
        .run(
            || {
                let stop = stop.clone();
                async move {
                    let client = warehouse.connect().await?;
                    let mut modeler =
                        Modeler::new(lake.clone(), client, config.clone(), metrics.clone()).await?;
                    health.set_ready(true);
                    let outcome = modeler.run(stop).await;
                    health.set_ready(false);
                    outcome?;
                    anyhow::Ok(modeler.watermark())
                }
            },
            |e| {
                !crate::is_settings_error(e)
                    && e.downcast_ref::<cdc_modeler::ModelerError>()
                        .is_none_or(cdc_modeler::ModelerError::is_retryable)
            },
        )
        .await;
    if let Ok(Some(watermark)) = &result {
        eprintln!("model: applied up to {watermark}");
    }
    if let Some(telemetry) = telemetry {
        telemetry.abort();
    }
    result.map(|_| ())
}
