//! The chaos harness: `kill -9` of a random part of the running pipeline, N times, then
//! each source change checked exactly once in the topics, the lake and the warehouse
//! (crates/cdc/tests/support/chaos.rs says what is killed and checked).
//!
//! ```text
//! cargo build --release -p cdc --bin totesys-cdc
//! cargo run --release -p cdc-benches --bin chaos -- [--kills 100] [--seed S] [--rate R] [--scale N] [--at-least-once]
//! ```
//!
//! Prints, per target, the kills and the median and max time until its stage moved
//! again; freshness during the run; and every violation with the seed that reproduces
//! it. Exits 1 when a guarantee broke. `--at-least-once` runs capture without Kafka
//! transactions, to show the harness catches the duplicates crashes then make.

#![allow(clippy::unwrap_used)] // the process stack's helpers fail loudly by design

use anyhow::Context;
use cdc_stack::process::chaos::{run, ChaosOptions};

const USAGE: &str = "usage: chaos [--kills N] [--seed S] [--rate R] [--scale N] [--at-least-once]";

fn options() -> anyhow::Result<ChaosOptions> {
    let mut options = ChaosOptions::new(100, 20_261_206);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value"))
                .and_then(|v| {
                    v.parse::<u64>()
                        .with_context(|| format!("{name} {v:?}: not a number"))
                })
        };
        match arg.as_str() {
            "--kills" => options.kills = usize::try_from(value("--kills")?)?,
            "--seed" => options.seed = value("--seed")?,
            "--rate" => options.rate = value("--rate")?,
            "--scale" => options.scale = value("--scale")?,
            "--at-least-once" => options.at_least_once = true,
            "--help" | "-h" => {
                println!(
                    "{USAGE}\n\n(defaults: 100 kills, seed 20261206, 300 changes/s, scale 3000)"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let binary = cdc_stack::process::bin();
    anyhow::ensure!(
        std::path::Path::new(&binary).exists(),
        "{binary} is missing: cargo build --release -p cdc --bin totesys-cdc (or set TOTESYS_CDC_BIN)"
    );
    println!(
        "chaos: {} kills, seed {}, {} changes/s, scale {}{}",
        options.kills,
        options.seed,
        options.rate,
        options.scale,
        if options.at_least_once {
            ", capture at least once"
        } else {
            ""
        }
    );
    let report = run(&options).await;
    println!("{}", report.table());
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
