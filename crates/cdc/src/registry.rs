//! `totesys-cdc registry`: the Confluent-compatible schema registry over PostgreSQL.

use std::future::IntoFuture;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use cdc_core::Secret;
use cdc_registry::{RegistryStore, StoreConfig, DEFAULT_SCHEMA, PROBE_PATHS};
use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};

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
    let app = cdc_registry::router(store)
        .layer(axum::middleware::from_fn_with_state(metrics, record))
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

/// The schema registry's HTTP metrics (`totesys_cdc_registry_*`); the probes and
/// `/metrics` are not counted.
#[derive(Debug, Clone)]
pub struct RegistryMetrics {
    /// API requests answered, by method and status code.
    pub requests: IntCounterVec,
    /// Time to answer an API request.
    pub duration: Histogram,
}

impl RegistryMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered()?;
        cdc_core::register_all(registry, metrics.collectors())?;
        Ok(metrics)
    }

    /// Creates the metrics without registering them anywhere (for listing them).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Ok(RegistryMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_registry_requests_total",
                    "Schema registry API requests answered, by method and HTTP status.",
                ),
                &["method", "status"],
            )?,
            duration: Histogram::with_opts(HistogramOpts::new(
                "totesys_cdc_registry_request_duration_seconds",
                "Time the schema registry took to answer an API request.",
            ))?,
        })
    }

    /// Every metric, as collectors.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.requests.clone()),
            Box::new(self.duration.clone()),
        ]
    }
}

/// Counts and times one API request.
async fn record(State(metrics): State<RegistryMetrics>, request: Request, next: Next) -> Response {
    if PROBE_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.duration.observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[method, response.status().as_str()])
        .inc();
    response
}

/// The method as a label value; unusual methods share one value so the label stays bounded.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
