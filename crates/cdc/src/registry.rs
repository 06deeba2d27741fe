//! `totesys-cdc registry`: the Confluent-compatible schema registry over PostgreSQL.

use std::path::PathBuf;

use anyhow::Context;
use cdc_core::Secret;
use cdc_registry::{RegistryStore, StoreConfig, DEFAULT_SCHEMA};

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
    tracing::info!(url = %format!("http://{addr}"), schema = %args.schema, "schema registry serving");
    cdc_registry::serve(listener, store, crate::shutdown_signal())
        .await
        .context("schema registry server")?;
    Ok(())
}
