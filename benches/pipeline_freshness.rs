//! The whole pipeline's freshness and throughput, source commit to warehouse commit.
//!
//! ```text
//!   simulator ─► totesys (PostgreSQL) ─► capture ─► Kafka ─► lake writer ─► Parquet
//!              ─► modeler ─► warehouse (PostgreSQL)         every part with its default settings
//! ```
//!
//! 1. **Freshness**: the simulator at its default rate (100 changes/s) for `--seconds`
//!    (60); the modeler's `totesys_cdc_modeler_freshness_seconds` histogram (each applied
//!    change: its source commit to the warehouse commit that applied it) gives p50, p90,
//!    p99 and the mean. Percentiles are interpolated inside histogram buckets, as
//!    Prometheus' `histogram_quantile` does.
//! 2. **Throughput** (`--burst N`, default 20000; 0 skips it): N changes written as fast
//!    as the simulator can, and the time until the warehouse has applied every one of
//!    them: changes/s end to end.
//! 3. **Modeler catch-up** (`--catch-up N`, default 50000; 0 skips it): the modeler
//!    stopped, N changes written and landed in the lake, then a fresh modeler started:
//!    the time until it has applied them all (reading the lake included) is the
//!    modeler's own throughput.
//!
//! The warehouse is then compared with the source (current dimensions and facts, row
//! for row); a mismatch fails the run.
//!
//! ```text
//! cargo run --release -p cdc-benches --bin pipeline-freshness -- [--seconds S] [--rate R] [--burst N]
//! ```

#![allow(clippy::unwrap_used)] // the test stack's helpers fail loudly by design

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use cdc_core::MetricSet;
use cdc_lake::{FlushPolicy, LakeStore};
use cdc_modeler::{Modeler, ModelerConfig, ModelerMetrics};
use cdc_publish::PublishConfig;
use cdc_sim::{SchemaVariant, WorkloadConfig};
use cdc_stack::Writer;
use cdc_testkit::TestDb;
use prometheus::core::Collector;
use tokio::sync::watch;

struct Options {
    seconds: u64,
    rate: f64,
    burst: u64,
    catch_up: u64,
    /// The lake writer's flush age (`--flush-age-ms`; default: the writer's).
    flush_age: Duration,
    /// The modeler's poll interval (`--poll-ms`; default: the modeler's).
    poll: Duration,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        seconds: 60,
        rate: WorkloadConfig::default().rate_per_sec,
        burst: 20_000,
        catch_up: 50_000,
        flush_age: FlushPolicy::default().max_age,
        poll: ModelerConfig::default().poll,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => options.seconds = value()?.parse().context("--seconds")?,
            "--rate" => options.rate = value()?.parse().context("--rate")?,
            "--burst" => options.burst = value()?.parse().context("--burst")?,
            "--catch-up" => options.catch_up = value()?.parse().context("--catch-up")?,
            "--flush-age-ms" => {
                options.flush_age =
                    Duration::from_millis(value()?.parse().context("--flush-age-ms")?)
            }
            "--poll-ms" => {
                options.poll = Duration::from_millis(value()?.parse().context("--poll-ms")?)
            }
            _ => anyhow::bail!(
                "usage: pipeline-freshness [--seconds S] [--rate CHANGES_PER_S] [--burst N] [--catch-up N] [--flush-age-ms MS] [--poll-ms MS]"
            ),
        }
    }
    Ok(options)
}

/// (upper bound, cumulative count) of each bucket, and the total count and sum.
fn buckets(metrics: &ModelerMetrics) -> (Vec<(f64, u64)>, u64, f64) {
    let families = metrics.freshness_seconds.collect();
    let histogram = families[0].get_metric()[0].get_histogram();
    let buckets = histogram
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect();
    (
        buckets,
        histogram.get_sample_count(),
        histogram.get_sample_sum(),
    )
}

/// The `q` quantile interpolated linearly inside its bucket.
fn quantile(buckets: &[(f64, u64)], count: u64, q: f64) -> f64 {
    let rank = q * count as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(upper, cumulative) in buckets {
        if cumulative as f64 >= rank {
            let inside = (cumulative - below) as f64;
            if inside == 0.0 {
                return upper;
            }
            return lower + (upper - lower) * (rank - below as f64) / inside;
        }
        (lower, below) = (upper, cumulative);
    }
    lower
}

/// The difference of two bucket snapshots.
fn minus(a: &[(f64, u64)], b: &[(f64, u64)]) -> Vec<(f64, u64)> {
    a.iter().zip(b).map(|(x, y)| (x.0, x.1 - y.1)).collect()
}

/// The sum of a counter's series.
fn total(counter: &prometheus::IntCounterVec) -> u64 {
    cdc_core::counter_total(counter)
}

fn applied(metrics: &ModelerMetrics) -> u64 {
    total(&metrics.changes)
}

async fn wait_applied(
    metrics: &ModelerMetrics,
    target: u64,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while applied(metrics) < target {
        ensure!(
            start.elapsed() < timeout,
            "the warehouse applied {} of {target} changes in {timeout:?}",
            applied(metrics)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(start.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let stack = cdc_stack::Stack::start().await;
    cdc_sim::create_schema(&stack.client, SchemaVariant::default()).await?;
    let seeded = cdc_sim::seed(&stack.client, 1).await?;
    let capture = stack
        .start_capture(PublishConfig::with_transaction_topic())
        .await;
    let lake_dir = tempfile::tempdir()?;
    let lake = LakeStore::open(lake_dir.path().to_str().context("lake path")?)?;
    let writer = Writer::start(
        stack.settings(),
        stack.registry.clone(),
        &lake,
        "lake",
        FlushPolicy {
            max_age: options.flush_age,
            ..FlushPolicy::default()
        },
    )
    .await;
    let lake_metrics = writer.metrics.clone();
    let warehouse = TestDb::create().await?;
    let client = warehouse.client().await?;
    cdc_modeler::warehouse::init(&client).await?;
    let metrics = ModelerMetrics::unregistered()?;
    let modeler_config = ModelerConfig {
        poll: options.poll,
        ..ModelerConfig::default()
    };
    let mut modeler = Modeler::new(
        lake.clone(),
        client,
        modeler_config.clone(),
        metrics.clone(),
    )
    .await?;
    let (stop_modeler, modeler_stopped) = watch::channel(false);
    let modeler = tokio::spawn(async move { modeler.run(modeler_stopped).await });

    eprintln!(
        "snapshot of {} seed rows through the pipeline …",
        seeded.total()
    );
    wait_applied(&metrics, seeded.total(), Duration::from_secs(180)).await?;

    // 1. Freshness at a steady rate.
    let before = buckets(&metrics);
    let applied_before = applied(&metrics);
    let files_before = total(&lake_metrics.files);
    eprintln!("{} changes/s for {} s …", options.rate, options.seconds);
    let source = stack.db.client().await?;
    let (_never, running) = watch::channel(false);
    let stats = cdc_sim::run_workload(
        &source,
        &WorkloadConfig {
            rate_per_sec: options.rate,
            duration: Some(Duration::from_secs(options.seconds)),
            seed: 42,
            ..WorkloadConfig::default()
        },
        running.clone(),
    )
    .await?;
    let changes = stats.changes();
    wait_applied(&metrics, applied_before + changes, Duration::from_secs(120)).await?;
    let after = buckets(&metrics);
    let steady = minus(&after.0, &before.0);
    let (count, sum) = (after.1 - before.1, after.2 - before.2);
    ensure!(
        count == changes,
        "freshness observed {count} changes, the simulator made {changes}"
    );

    println!("\nfreshness, source commit → warehouse commit, {changes} changes at {:.0} changes/s ({} transactions):", changes as f64 / stats.elapsed.as_secs_f64(), stats.transactions);
    println!(
        "  p50 {:.2} s   p90 {:.2} s   p99 {:.2} s   mean {:.2} s   (objective: p99 ≤ 5 s)",
        quantile(&steady, count, 0.50),
        quantile(&steady, count, 0.90),
        quantile(&steady, count, 0.99),
        sum / count as f64
    );
    let files = total(&lake_metrics.files) - files_before;
    println!(
        "  lake files: {files} in {:.0} s: {:.0} a minute (flush age {} ms, modeler poll {} ms)",
        stats.elapsed.as_secs_f64(),
        files as f64 * 60.0 / stats.elapsed.as_secs_f64(),
        options.flush_age.as_millis(),
        options.poll.as_millis()
    );
    // What keeping that many files in check costs: one compaction of the whole lake.
    let tables = cdc_lake::LakeTables::new(&lake)?;
    let compaction = cdc_lake::CompactOptions {
        min_age: Duration::ZERO,
        ..cdc_lake::CompactOptions::default()
    };
    let started = Instant::now();
    let report = cdc_lake::compact(&tables, None, &compaction).await?;
    println!(
        "  compaction: {} files merged into {} in {:.2} s ({:.1} ms a merged file)",
        report.merged,
        report.written,
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1000.0 / report.merged.max(1) as f64
    );
    let lake_fresh = lake_metrics.commit_to_lake_seconds.collect();
    let (mut lake_count, mut lake_sum) = (0u64, 0.0);
    for m in lake_fresh.iter().flat_map(|f| f.get_metric()) {
        lake_count += m.get_histogram().get_sample_count();
        lake_sum += m.get_histogram().get_sample_sum();
    }
    if lake_count > 0 {
        println!(
            "  of which source commit → lake file: mean {:.2} s",
            lake_sum / lake_count as f64
        );
    }

    // 2. Throughput: a burst as fast as the simulator writes.
    if options.burst > 0 {
        let applied_before = applied(&metrics);
        eprintln!("\nburst of {} changes …", options.burst);
        let started = Instant::now();
        let stats = cdc_sim::run_workload(
            &source,
            &WorkloadConfig {
                rate_per_sec: f64::INFINITY,
                max_changes: Some(options.burst),
                seed: 43,
                ..WorkloadConfig::default()
            },
            running,
        )
        .await?;
        let written = started.elapsed();
        let waited = wait_applied(
            &metrics,
            applied_before + stats.changes(),
            Duration::from_secs(600),
        )
        .await?;
        let total = written + waited;
        println!(
            "\nthroughput: {} changes written in {:.1} s ({:.0}/s); all in the warehouse after {:.1} s: {:.0} changes/s end to end",
            stats.changes(),
            written.as_secs_f64(),
            stats.changes() as f64 / written.as_secs_f64(),
            total.as_secs_f64(),
            stats.changes() as f64 / total.as_secs_f64()
        );
    }

    stop_modeler.send(true)?;
    modeler.await??;

    // 3. The modeler alone, catching up on changes already in the lake.
    if options.catch_up > 0 {
        eprintln!(
            "\ncatch-up: {} changes into the lake with the modeler stopped …",
            options.catch_up
        );
        let (_never, running) = watch::channel(false);
        let stats = cdc_sim::run_workload(
            &source,
            &WorkloadConfig {
                rate_per_sec: f64::INFINITY,
                max_changes: Some(options.catch_up),
                seed: 44,
                ..WorkloadConfig::default()
            },
            running,
        )
        .await?;
        // Landed: the lake's row count has not moved for two seconds.
        let landed = || total(&lake_metrics.rows);
        let mut last = (landed(), Instant::now());
        while last.1.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if landed() != last.0 {
                last = (landed(), Instant::now());
            }
        }
        let applied_before = applied(&metrics);
        let apply_seconds_before = metrics.apply_seconds.get_sample_sum();
        let mut modeler = Modeler::new(
            lake,
            warehouse.client().await?,
            modeler_config,
            metrics.clone(),
        )
        .await?;
        let started = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move { modeler.run(stopped).await });
        wait_applied(
            &metrics,
            applied_before + stats.changes(),
            Duration::from_secs(600),
        )
        .await?;
        let took = started.elapsed();
        stop.send(true)?;
        task.await??;
        println!(
            "\nmodeler catch-up: {} changes ({} transactions) read from the lake and applied in {:.1} s: {:.0} changes/s ({:.1} s of it planning and writing to the warehouse)",
            stats.changes(),
            stats.transactions,
            took.as_secs_f64(),
            stats.changes() as f64 / took.as_secs_f64(),
            metrics.apply_seconds.get_sample_sum() - apply_seconds_before
        );
    }

    let checks = cdc_testkit::check_warehouse(&stack.client, &warehouse.client().await?).await?;
    for check in &checks {
        ensure!(
            check.matches(),
            "the warehouse differs from the source: {check:?}"
        );
    }
    println!(
        "\nwarehouse == source recomputation for all {} tables",
        checks.len()
    );

    writer.stop().await;
    capture.stop().await?;
    Ok(())
}
