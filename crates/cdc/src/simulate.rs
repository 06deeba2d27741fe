//! `totesys-cdc simulate`: the totesys schema, seed data, and a live workload.

use std::time::Duration;

use anyhow::Context;
use cdc_sim::{SchemaVariant, WorkloadConfig};

/// Arguments of `simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Database to simulate in (libpq string or postgres:// URL; password via PGPASSWORD).
    #[arg(long, env = "TOTESYS_CDC_SOURCE_URL")]
    target: String,
    /// Create the 11 totesys tables and seed the reference data first.
    #[arg(long)]
    init: bool,
    /// With --init: use `numeric(10,2)` instead of unconstrained numeric.
    #[arg(long)]
    numeric_10_2: bool,
    /// With --init: make `transaction.transaction_type` an enum type.
    #[arg(long)]
    transaction_type_enum: bool,
    /// Bulk-load this many sales orders (with transactions and payments) before the workload.
    #[arg(long, default_value_t = 0)]
    scale: u64,
    /// Target rate in changes per second (0: no live workload).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds to run the workload (default: until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Stop after this many changes.
    #[arg(long)]
    max_changes: Option<u64>,
    /// Seed for reproducible data and workload.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Runs `simulate`.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let client = crate::connect_postgres(
        &args.target,
        "--target / TOTESYS_CDC_SOURCE_URL",
        None,
        &["PGPASSWORD"],
    )
    .await
    .context("connecting to the simulation database")?;
    if args.init {
        let variant = SchemaVariant {
            numeric_10_2: args.numeric_10_2,
            transaction_type_enum: args.transaction_type_enum,
        };
        cdc_sim::create_schema(&client, variant)
            .await
            .context("creating the totesys schema")?;
        let summary = cdc_sim::seed(&client, args.seed)
            .await
            .context("seeding reference data")?;
        eprintln!("seeded:\n{summary}");
    }
    if args.scale > 0 {
        let summary = cdc_sim::bulk_load(&client, args.scale, args.seed)
            .await
            .context("bulk-loading orders")?;
        eprintln!("bulk-loaded: {summary}");
    }
    if args.rate > 0.0 {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let workload = WorkloadConfig {
            rate_per_sec: args.rate,
            duration: args.duration.map(Duration::from_secs),
            max_changes: args.max_changes,
            seed: args.seed,
            ..WorkloadConfig::default()
        };
        let stats = cdc_sim::run_workload(&client, &workload, stop_rx)
            .await
            .context("running the workload")?;
        eprintln!("{stats}");
    }
    Ok(())
}
