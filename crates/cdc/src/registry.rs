//! `totesys-cdc registry`: the Confluent-compatible schema registry over PostgreSQL.

use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use cdc_core::{MetricSet, Secret};
use cdc_registry::{RegistryMetrics, RegistryStore, ServerTls, StoreConfig, Users, DEFAULT_SCHEMA};

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
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "TOTESYS_CDC_REGISTRY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM, unencrypted, readable by this user only) of --tls-cert.
    #[arg(long, env = "TOTESYS_CDC_REGISTRY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require HTTP basic auth from the users in this file (`name:$pbkdf2-sha256$…`
    /// lines, made by `totesys-cdc registry-user`); the probes stay open.
    #[arg(long, env = "TOTESYS_CDC_REGISTRY_USERS_FILE")]
    users_file: Option<PathBuf>,
}

/// Arguments of `registry-user`.
#[derive(Debug, clap::Args)]
pub struct RegistryUserArgs {
    /// The user's name.
    name: String,
}

/// Prints a users-file line for `name`, the password read from standard input (one line).
pub fn user_line(args: &RegistryUserArgs) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    let line =
        cdc_registry::user_line(&args.name, password).context("making the users-file line")?;
    println!("{line}");
    Ok(())
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
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            ServerTls::from_pem_files(cert, key)
                .context("setting up HTTPS (--tls-cert, --tls-key)")?,
        ),
        _ => None,
    };
    let mut api = cdc_registry::router(store);
    if let Some(path) = &args.users_file {
        let users = Users::from_file(path).context("reading --users-file")?;
        tracing::info!(users = users.len(), file = %path.display(), "schema registry requires basic auth");
        api = users.protect(api);
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on --listen {}", args.listen))?;
    let addr = listener.local_addr().context("the registry's address")?;
    let metrics = RegistryMetrics::register(prometheus::default_registry())
        .context("registering the schema registry's metrics")?;
    let app = metrics
        .instrument(api)
        .route("/metrics", get(crate::telemetry::metrics));
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(url = %format!("{scheme}://{addr}"), schema = %args.schema, auth = args.users_file.is_some(), "schema registry serving (API, /metrics, /healthz, /readyz)");
    let (signalled, signal) = tokio::sync::oneshot::channel::<()>();
    let stopping = async move {
        crate::shutdown_signal().await;
        tracing::info!(
            "schema registry stopping: no new connections, finishing the requests under way"
        );
        let _ = signalled.send(());
    };
    let mut server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match tls
    {
        Some(tls) => Box::pin(
            axum::serve(tls.listener(listener), app)
                .with_graceful_shutdown(stopping)
                .into_future(),
        ),
        None => Box::pin(
            axum::serve(listener, app)
                .with_graceful_shutdown(stopping)
                .into_future(),
        ),
    };
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
