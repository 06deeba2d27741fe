//! Runs the schema registry on a PostgreSQL database until Ctrl-C.
//!
//! ```text
//! CDC_REGISTRY_DATABASE='host=127.0.0.1 user=postgres password=… dbname=cdc' \
//!     cargo run -p cdc-registry --example registry-server -- --listen 127.0.0.1:8081
//! ```

use clap::Parser;

use cdc_core::Secret;
use cdc_registry::{RegistryStore, StoreConfig, DEFAULT_SCHEMA};

/// A Confluent-compatible schema registry over PostgreSQL.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,
    /// PostgreSQL connection string (libpq style or URL); read from the environment so it stays out of `ps`.
    #[arg(long, env = "CDC_REGISTRY_DATABASE", hide_env_values = true)]
    database: String,
    /// PostgreSQL schema holding the registry's tables.
    #[arg(long, default_value = DEFAULT_SCHEMA)]
    schema: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let store =
        RegistryStore::connect(StoreConfig::new(Secret::new(args.database)).schema(args.schema))
            .await?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("schema registry on http://{}", listener.local_addr()?);
    cdc_registry::serve(listener, store, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
