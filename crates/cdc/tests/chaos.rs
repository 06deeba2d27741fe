//! The chaos harness at CI size (`support/chaos.rs`): a dozen `kill -9`s, every target
//! at least once (capture during its snapshot first), then each source change exactly
//! once in the topics, the lake and the warehouse. Correctness only, never time; the
//! 100-kill run with figures is `cargo run --release -p cdc-benches --bin chaos`.

#![allow(clippy::unwrap_used, missing_docs)]

use cdc_stack::process::chaos::{run, ChaosOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dozen_kills_lose_and_duplicate_nothing() {
    let seed = std::env::var("TOTESYS_CDC_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(14);
    let report = run(&ChaosOptions::new(12, seed)).await;
    println!("{}", report.table());
    assert!(report.snapshot_rows > 1_000, "a snapshot worth killing");
    assert!(
        report.changes > 1_000,
        "the load made {} changes",
        report.changes
    );
    assert!(
        report.violations.is_empty(),
        "the chaos run (seed {seed}) broke guarantees:\n{}",
        report.violations.join("\n")
    );
}
