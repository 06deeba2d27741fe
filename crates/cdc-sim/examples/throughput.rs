//! Measures the simulator on a throwaway cluster: the workload's top rate and the bulk
//! loader's, on this machine.
//!
//! ```sh
//! cargo run --release -p cdc-sim --example throughput -- [seconds] [bulk-orders] [batch-size] [rate]
//! ```

use std::error::Error;
use std::time::Duration;

use cdc_sim::{SchemaVariant, WorkloadConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(Ok(10), |a| a.parse())?;
    let orders: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let batch_size: u64 = args.next().map_or(Ok(200), |a| a.parse())?;
    let rate: f64 = args.next().map_or(Ok(f64::INFINITY), |a| a.parse())?;

    let db = cdc_testkit::TestDb::create().await?;
    let client = db.client().await?;
    cdc_sim::create_schema(&client, SchemaVariant::default()).await?;
    cdc_sim::seed(&client, 1).await?;

    let config = WorkloadConfig {
        rate_per_sec: rate,
        duration: Some(Duration::from_secs(seconds)),
        max_changes: None,
        seed: 1,
        batch_size,
    };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let stats = cdc_sim::run_workload(&client, &config, stopped).await?;
    println!("workload at {rate} changes/s, batches of up to {batch_size} changes:\n{stats}\n");

    let summary = cdc_sim::bulk_load_with_progress(&client, orders, 1, |s| {
        if s.batches % 20 == 0 {
            eprintln!("  … {s}");
        }
    })
    .await?;
    println!("bulk load: {summary}");
    Ok(())
}
