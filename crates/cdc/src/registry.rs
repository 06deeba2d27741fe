//! `totesys-cdc registry`: the Confluent-compatible schema registry over PostgreSQL.

use std::future::IntoFuture;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use cdc_core::{MetricSet, Secret};
use cdc_registry::{RegistryMetrics, RegistryStore, StoreConfig, DEFAULT_SCHEMA};

/// How long requests under way may take to finish after SIGTERM before the registry exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Arguments of `registry`.
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// Address to serve the registry's REST API on.
    #[arg(
        long,
        env = "TOTESYS_CDC_REGISTRY_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    listen: String,
    /// PostgreSQL database holding the schemas (libpq string or URL; password from
    /// TOTESYS_CDC_REGISTRY_DATABASE_PASSWORD, --database-password-file or PGPASSWORD).
    #[arg(long, env = "TOTESYS_CDC_REGISTRY_DATABASE_URL")]
    database: String,
    /// File holding the database password.
    #[arg(long, env = "TOTESYS_CDC_REGISTRY_DATABASE_PASSWORD_FILE")]
    database_password_file: Option<PathBuf>,
    /// PostgreSQL schema of the registry's tables (created when missing).
    #[arg(long, default_value = DEFAULT_SCHEMA)]
    schema: String,
}

/// Serves the registry until Ctrl-C or SIGTERM.
pub async fn run(args: RegistryArgs) -> anyhow::Result<()> {
    let mut config = StoreConfig::new(Secret::new(args.database.clone())).schema(&args.schema);
    let password = crate::password_from(
        args.database_password_file.as_deref(),
        "--database-password-file",
        &["TOTESYS_CDC_REGISTRY_DATABASE_PASSWORD", "PGPASSWORD"],
    )?;
    if let Some(password) = password {
        config = config.password(Secret::new(password));
    }
    let store = RegistryStore::connect(config)
        .await
        .context("connecting the registry to --database / TOTESYS_CDC_REGISTRY_DATABASE_URL")?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on --listen {}", args.listen))?;
    let addr = listener.local_addr().context("the registry's address")?;
    let metrics = RegistryMetrics::register(prometheus::default_registry())
        .context("registering the schema registry's metrics")?;
    let app = metrics
        .instrument(cdc_registry::router(store))
        .route("/metrics", get(crate::telemetry::metrics));
    tracing::info!(url = %format!("http://{addr}"), schema = %args.schema, "schema registry serving (API, /metrics, /healthz, /readyz)");
    let (signalled, signal) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            crate::shutdown_signal().await;
            tracing::info!(
                "schema registry stopping: no new connections, finishing the requests under way"
            );
            let _ = signalled.send(());
        })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result.context("schema registry server")?,
        () = async {
            match signal.await {
                Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
                Err(_) => std::future::pending().await,
            }
        } => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "schema registry stopped with requests still under way");
        }
    }
    tracing::info!("schema registry stopped");
    Ok(())
}
