//! The chaos harness: `kill -9` of a random part of the running pipeline at random
//! moments, then a proof that each source change is in the topics, the lake and the
//! warehouse exactly once (`benches/chaos.rs` for 100 kills; `tests/chaos.rs` for a
//! CI-sized run).
//!
//! ```text
//!   source PG (own cluster) ─ capture ─ Kafka ×3 ─ lake-1, lake-2 ─ lake ─ modeler ─ warehouse PG (own cluster)
//!        ▲ simulator load + large transactions, ADD COLUMN, key changes, deletes, a truncate
//!   kill -9 (seeded): capture (first during its initial snapshot), lake-1, lake-2, the
//!   modeler, the registry, a broker; immediate-mode restarts of both PostgreSQL clusters
//! ```
//!
//! After the kills the load stops, the warehouse catches up, and the checks run:
//! - the warehouse equals an independent recomputation from the source;
//! - each source transaction's changes (audit trigger, by table and xid) are in the topics
//!   (stock Confluent consumer, `read_committed`) and in the lake (DuckDB) exactly that
//!   many times, no `(commit LSN, ordinal)` twice, the snapshot once, each truncate once;
//! - every fact version is one source insert or update, none twice;
//! - sampled while running: the warehouse never shows part of a tagged transaction.
//!
//! Nothing here asserts on time; recovery times are reported.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{tail, Component, ProcessStack, Rng, TABLES};

/// How long a stage may take to move again after a kill before it counts as a violation.
const RECOVERY_BOUND: Duration = Duration::from_secs(180);

/// What a kill hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Capture while it takes the initial snapshot (the first kill).
    CaptureInSnapshot,
    /// Capture while streaming.
    Capture,
    /// The first lake writer (a static group member).
    Lake1,
    /// The second lake writer (a dynamic member).
    Lake2,
    /// The modeler.
    Modeler,
    /// The schema registry.
    Registry,
    /// One of the three Kafka brokers.
    Broker,
    /// The source PostgreSQL, restarted in immediate mode.
    SourcePg,
    /// The warehouse PostgreSQL (with the registry's database), restarted in immediate mode.
    WarehousePg,
}

impl Target {
    const STREAMING: [Target; 8] = [
        Target::Capture,
        Target::Lake1,
        Target::Lake2,
        Target::Modeler,
        Target::Registry,
        Target::Broker,
        Target::SourcePg,
        Target::WarehousePg,
    ];

    /// The stage whose progress shows the pipeline moving again after this kill.
    fn stage(self) -> Stage {
        match self {
            Target::CaptureInSnapshot
            | Target::Capture
            | Target::Registry
            | Target::Broker
            | Target::SourcePg => Stage::Capture,
            Target::Lake1 | Target::Lake2 => Stage::Lake,
            Target::Modeler | Target::WarehousePg => Stage::Warehouse,
        }
    }
}

/// A stage's progress, each read from where it is durable (so restarts do not reset it).
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// The slot's confirmed flush LSN: capture has Kafka's commit for it.
    Capture,
    /// The lake group's committed offsets, summed.
    Lake,
    /// The warehouse's applied watermark.
    Warehouse,
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Kills in all (the first hits capture during its snapshot).
    pub kills: usize,
    /// Seed of every random choice: targets, moments, brokers, operations.
    pub seed: u64,
    /// The simulator's rate, changes per second.
    pub rate: u64,
    /// Sales orders bulk-loaded before capture starts (the snapshot's size).
    pub scale: u64,
    /// Milliseconds between a recovery and the next kill, drawn from this range.
    pub gap_ms: std::ops::Range<u64>,
    /// Capture publishes at least once (`--delivery at-least-once`): the harness must
    /// then report the duplicates that crashes make.
    pub at_least_once: bool,
}

impl ChaosOptions {
    /// `kills` kills with seed `seed` and the defaults.
    pub fn new(kills: usize, seed: u64) -> Self {
        ChaosOptions {
            kills,
            seed,
            rate: 300,
            scale: 3_000,
            gap_ms: 500..4_000,
            at_least_once: false,
        }
    }
}

/// What a run found.
#[derive(Debug, Default)]
pub struct ChaosReport {
    /// The seed that reproduces it.
    pub seed: u64,
    /// Per target: how long after each kill its stage moved again.
    pub recoveries: BTreeMap<Target, Vec<Duration>>,
    /// Samples of source commit to warehouse commit age of the newest applied change.
    pub freshness: Vec<f64>,
    /// Every broken guarantee, one line each.
    pub violations: Vec<String>,
    /// Source changes checked (streamed, snapshot rows excluded).
    pub changes: i64,
    /// Snapshot rows checked.
    pub snapshot_rows: i64,
    /// Whether the first kill came while the snapshot was still being written.
    pub snapshot_killed_midway: bool,
    /// The whole run.
    pub elapsed: Duration,
    /// Just before each kill: how far behind capture was (seconds since the source commit
    /// of the newest transaction it read), the lake writers' consumer lag (records) and
    /// the warehouse (the newest freshness sample, seconds).
    pub stage_lags: Vec<[f64; 3]>,
    /// Where the components' logs were kept (a run with violations keeps them).
    pub logs: Option<PathBuf>,
}

impl ChaosReport {
    /// The report as a Markdown table with the totals under it.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| target | kills | median time until its stage moves again | max |\n|---|---:|---:|---:|\n",
        );
        for (target, times) in &self.recoveries {
            let mut sorted = times.clone();
            sorted.sort();
            let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
            let max = sorted.last().copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "| {target:?} | {} | {:.1} s | {:.1} s |",
                times.len(),
                median.as_secs_f64(),
                max.as_secs_f64()
            );
        }
        let mut fresh = self.freshness.clone();
        fresh.sort_by(f64::total_cmp);
        let p = |q: f64| {
            fresh
                .get(((fresh.len() as f64 - 1.0) * q).round().max(0.0) as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        let _ = writeln!(
            out,
            "\nseed {} · {} kills · {:.0} s · {} streamed changes and {} snapshot rows checked · snapshot killed midway: {}",
            self.seed,
            self.recoveries.values().map(Vec::len).sum::<usize>(),
            self.elapsed.as_secs_f64(),
            self.changes,
            self.snapshot_rows,
            self.snapshot_killed_midway
        );
        let _ = writeln!(
            out,
            "freshness (age of the newest applied source commit, sampled every 0.5 s): p50 {:.1} s, p99 {:.1} s, max {:.1} s",
            p(0.5),
            p(0.99),
            p(1.0)
        );
        let lags = |i: usize| {
            let mut v: Vec<f64> = self
                .stage_lags
                .iter()
                .map(|l| l[i])
                .filter(|x| x.is_finite())
                .collect();
            v.sort_by(f64::total_cmp);
            let q = |q: f64| {
                v.get(((v.len() as f64 - 1.0) * q).round().max(0.0) as usize)
                    .copied()
                    .unwrap_or(f64::NAN)
            };
            (q(0.5), q(0.99))
        };
        let (capture, lake, warehouse) = (lags(0), lags(1), lags(2));
        let _ = writeln!(
            out,
            "where the lag was, just before each kill (p50 / p99): capture {:.1} / {:.1} s behind the source, lake writers {:.0} / {:.0} records behind the topics, warehouse {:.1} / {:.1} s behind the source",
            capture.0, capture.1, lake.0, lake.1, warehouse.0, warehouse.1
        );
        if self.violations.is_empty() {
            out.push_str("violations: none (0 lost, 0 duplicated in the topics, the lake and the warehouse)\n");
        } else {
            let _ = writeln!(out, "violations ({}):", self.violations.len());
            for v in &self.violations {
                let _ = writeln!(out, "- {v}");
            }
        }
        if let Some(logs) = &self.logs {
            let _ = writeln!(out, "logs of every component: {}", logs.display());
        }
        out
    }
}

/// The running pipeline's processes.
struct Pipeline {
    capture: Component,
    lake1: Component,
    lake2: Component,
    model: Component,
    load: Component,
}

/// Runs the harness.
pub async fn run(options: &ChaosOptions) -> ChaosReport {
    let started = Instant::now();
    let mut report = ChaosReport {
        seed: options.seed,
        ..ChaosReport::default()
    };
    let mut rng = Rng::new(options.seed);
    let mut stack = ProcessStack::start_with(3, true).await;
    // The snapshot's rows, loaded before capture starts so that it can be killed midway.
    let scale = options.scale.to_string();
    stack
        .run(&["simulate", "--scale", &scale, "--rate", "0"])
        .await;
    stack.install_audit().await;
    install_truncate_audit(&stack).await;

    let delivery = if options.at_least_once {
        "at-least-once"
    } else {
        "exactly-once"
    };
    let mut capture = stack.capture().arg(&["--delivery", delivery]);
    // Kill 1: capture during its initial snapshot, once it has handed Kafka some rows.
    if options.kills > 0 {
        capture.start();
        let moment = Instant::now();
        while capture
            .try_metric(cdc_publish::metrics::RECORDS_ACKED_TOTAL.name)
            .await
            .unwrap_or(0.0)
            < 1.0
        {
            assert!(capture.is_running(), "capture exited:\n{}", capture.log());
            assert!(
                moment.elapsed() < RECOVERY_BOUND,
                "capture wrote no snapshot row:\n{}",
                capture.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(0..400))).await;
        report.snapshot_killed_midway = !capture.log().contains("initial snapshot complete");
        capture.kill();
        println!(
            "kill 1: capture during its snapshot (midway: {})",
            report.snapshot_killed_midway
        );
        let killed = Instant::now();
        stack.start_capture(&mut capture).await;
        report
            .recoveries
            .entry(Target::CaptureInSnapshot)
            .or_default()
            .push(killed.elapsed());
    } else {
        stack.start_capture(&mut capture).await;
    }
    let mut lake1 = stack.lake_writer("lake-1", true);
    stack.start_lake(&mut lake1).await;
    let mut lake2 = stack.lake_writer("lake-2", false);
    lake2.start();
    let mut model = stack.model();
    model.start();
    model.wait_ready(RECOVERY_BOUND).await;
    let mut load = stack.simulate(options.rate, None, options.seed);
    load.start();
    let mut pipeline = Pipeline {
        capture,
        lake1,
        lake2,
        model,
        load,
    };

    let freshness = Arc::new(Mutex::new(Vec::new()));
    let torn = Arc::new(Mutex::new(Vec::new()));
    let tags = Arc::new(Mutex::new(BTreeMap::new()));
    let sampler = tokio::spawn(sample_warehouse(
        stack.warehouse.conn_string(),
        freshness.clone(),
        torn.clone(),
        tags.clone(),
    ));

    // Every streaming target once (in a seeded order), then seeded random ones.
    let mut plan: Vec<Target> = Target::STREAMING.to_vec();
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.range(0..i as u64 + 1) as usize);
    }
    let mut truncated = 0u64;
    for k in 2..=options.kills {
        let target = plan.get(k - 2).copied().unwrap_or_else(|| {
            Target::STREAMING[rng.range(0..Target::STREAMING.len() as u64) as usize]
        });
        tokio::time::sleep(Duration::from_millis(rng.range(options.gap_ms.clone()))).await;
        // A source operation the simulator does not make, in turn, before each kill.
        let op = operate(&stack, k, &mut rng, &tags).await;
        if op == "truncate" {
            truncated += 1;
        }
        report
            .stage_lags
            .push(stage_lags(&pipeline, &freshness).await);
        let stage = target.stage();
        let before = progress(&stack, stage).await;
        let killed = Instant::now();
        let what = kill_and_restart(&mut stack, &mut pipeline, target, &mut rng).await;
        println!("kill {k}: {what} (after {op}) at {}", unix_time());
        match wait_moved(&stack, stage, before, &mut pipeline).await {
            Some(()) => report
                .recoveries
                .entry(target)
                .or_default()
                .push(killed.elapsed()),
            None => {
                report.violations.push(format!(
                    "kill {k} ({what}): the {stage:?} stage did not move within {RECOVERY_BOUND:?} (seed {})",
                    options.seed
                ));
                report
                    .recoveries
                    .entry(target)
                    .or_default()
                    .push(RECOVERY_BOUND);
            }
        }
        keep_running(&stack, &mut pipeline).await;
    }

    // The end: stop the load, let the warehouse catch up, stop writers, check.
    pipeline.load.stop(RECOVERY_BOUND).await;
    println!("load: {}", tail(&pipeline.load.log_of_this_run(), 2));
    let end = stack.mark_end().await;
    stack
        .wait_applied(
            &end,
            Duration::from_secs(600),
            &mut [
                &mut pipeline.capture,
                &mut pipeline.lake1,
                &mut pipeline.lake2,
                &mut pipeline.model,
            ],
        )
        .await;
    sampler.abort();
    report.freshness = freshness.lock().map(|f| f.clone()).unwrap_or_default();
    if let Ok(torn) = torn.lock() {
        report.violations.extend(torn.iter().cloned());
    }
    pipeline.capture.stop(RECOVERY_BOUND).await;
    pipeline.lake1.stop(RECOVERY_BOUND).await;
    pipeline.lake2.stop(RECOVERY_BOUND).await;
    check(&stack, truncated, &mut report).await;
    pipeline.model.stop(RECOVERY_BOUND).await;
    stack.registry.stop(RECOVERY_BOUND).await;
    if !report.violations.is_empty() {
        report.logs = keep_logs(options.seed, &pipeline, &stack);
    }
    report.elapsed = started.elapsed();
    report
}

/// How far behind each stage is now (see [`ChaosReport::stage_lags`]); NaN where a
/// component does not answer.
async fn stage_lags(pipeline: &Pipeline, freshness: &Mutex<Vec<f64>>) -> [f64; 3] {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let capture = pipeline
        .capture
        .try_metric(cdc_postgres::metrics::SOURCE_COMMIT.name)
        .await
        .filter(|t| *t > 0.0)
        .map_or(f64::NAN, |t| (now - t).max(0.0));
    let mut lake = 0.0;
    for writer in [&pipeline.lake1, &pipeline.lake2] {
        match writer
            .try_metric(cdc_lake::metrics::CONSUMER_LAG_RECORDS.name)
            .await
        {
            Some(lag) => lake += lag,
            None => lake = f64::NAN,
        }
    }
    let warehouse = freshness
        .lock()
        .ok()
        .and_then(|f| f.last().copied())
        .unwrap_or(f64::NAN);
    [capture, lake, warehouse]
}

/// The wall clock as Unix seconds, to line kills up with the components' log lines.
fn unix_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("unix {:.3}", now.as_secs_f64())
}

/// Copies every component's log out of the stack's directory (removed when it drops).
fn keep_logs(seed: u64, pipeline: &Pipeline, stack: &ProcessStack) -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("totesys-cdc-chaos-{seed}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    for (name, component) in [
        ("capture", &pipeline.capture),
        ("lake-1", &pipeline.lake1),
        ("lake-2", &pipeline.lake2),
        ("model", &pipeline.model),
        ("simulate", &pipeline.load),
        ("registry", &stack.registry),
    ] {
        std::fs::copy(component.log_path(), dir.join(format!("{name}.log"))).ok()?;
    }
    Some(dir)
}

/// Kills `target` with SIGKILL (or restarts its cluster in immediate mode) and starts it
/// again; says what it did.
async fn kill_and_restart(
    stack: &mut ProcessStack,
    pipeline: &mut Pipeline,
    target: Target,
    rng: &mut Rng,
) -> String {
    match target {
        Target::CaptureInSnapshot | Target::Capture => {
            pipeline.capture.kill();
            pipeline.capture.start();
            "capture".into()
        }
        Target::Lake1 => {
            pipeline.lake1.kill();
            pipeline.lake1.start();
            "lake-1".into()
        }
        Target::Lake2 => {
            pipeline.lake2.kill();
            pipeline.lake2.start();
            "lake-2".into()
        }
        Target::Modeler => {
            pipeline.model.kill();
            pipeline.model.start();
            "the modeler".into()
        }
        Target::Registry => {
            stack.registry.kill();
            stack.registry.start();
            let start = Instant::now();
            while !matches!(
                super::http_get(stack.registry_addr, "/subjects").await,
                Ok((200, _))
            ) {
                if start.elapsed() > RECOVERY_BOUND {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            "the registry".into()
        }
        Target::Broker => {
            let ids = stack.kafka.node_ids();
            let id = ids[rng.range(0..ids.len() as u64) as usize];
            stack.kafka.kill(id);
            tokio::time::sleep(Duration::from_millis(rng.range(0..3_000))).await;
            let took = stack.kafka.restart(id);
            format!(
                "broker {id} (back in {:.1} s)",
                took.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN)
            )
        }
        Target::SourcePg => {
            stack.restart_source().await;
            "the source PostgreSQL (immediate restart)".into()
        }
        Target::WarehousePg => {
            stack.restart_warehouse();
            "the warehouse PostgreSQL (immediate restart)".into()
        }
    }
}

/// Restarts whatever exited on its own (a component that gave up is a finding, but the
/// run goes on so the data checks still run).
async fn keep_running(stack: &ProcessStack, pipeline: &mut Pipeline) {
    for component in [
        &mut pipeline.capture,
        &mut pipeline.lake1,
        &mut pipeline.lake2,
        &mut pipeline.model,
        &mut pipeline.load,
    ] {
        if !component.is_running() {
            println!(
                "{} had exited; restarting it. Its log:\n{}",
                component.name,
                tail(&component.log_of_this_run(), 20)
            );
            component.start();
        }
    }
    let _ = stack;
}

/// One source operation beyond the simulator's, chosen by kill number: a large
/// transaction (every sales order touched, and every staff member's email tagged, in one
/// transaction), `ALTER TABLE ADD COLUMN`, key changes, deletes, and (once) a truncate.
async fn operate(
    stack: &ProcessStack,
    k: usize,
    rng: &mut Rng,
    tags: &Mutex<BTreeMap<u64, i64>>,
) -> &'static str {
    if k.is_multiple_of(5) {
        // The large transaction, tagged: every staff member's email gets tag k.
        for _ in 0..30 {
            let Ok(mut client) = stack.source.client().await else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let Ok(txn) = client.transaction().await else {
                continue;
            };
            let big = txn
                .execute("UPDATE sales_order SET last_updated = now()", &[])
                .await;
            let tagged = txn
                .execute(
                    &format!(
                        "UPDATE staff SET email_address = 'chaos-{k}-' || staff_id || '@totesys.example'"
                    ),
                    &[],
                )
                .await;
            if let (Ok(_), Ok(n)) = (big, tagged) {
                if txn.commit().await.is_ok() {
                    if let Ok(mut t) = tags.lock() {
                        t.insert(k as u64, i64::try_from(n).unwrap_or(i64::MAX));
                    }
                    return "a large transaction";
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("the large transaction could not be committed");
    }
    let sql = match k % 5 {
        1 => format!(
            "ALTER TABLE design ADD COLUMN IF NOT EXISTS chaos_{k} text DEFAULT 'added';
             UPDATE design SET last_updated = now() WHERE design_id IN (SELECT design_id FROM design ORDER BY random() LIMIT 3);"
        ),
        2 => format!(
            "UPDATE payment SET payment_id = nextval(pg_get_serial_sequence('payment', 'payment_id'))
             WHERE payment_id IN (SELECT payment_id FROM payment ORDER BY random() LIMIT {});",
            1 + rng.range(0..3)
        ),
        3 => "DELETE FROM payment WHERE payment_id IN (SELECT payment_id FROM payment ORDER BY random() LIMIT 5);"
            .into(),
        _ => {
            if k == 4 {
                "TRUNCATE payment;".into()
            } else {
                "DELETE FROM payment WHERE payment_id IN (SELECT payment_id FROM payment ORDER BY random() LIMIT 2);".into()
            }
        }
    };
    let name = match k % 5 {
        0 => "a large transaction",
        1 => "ADD COLUMN",
        2 => "key changes",
        4 if k == 4 => "truncate",
        _ => "deletes",
    };
    for attempt in 0..30 {
        let Ok(client) = stack.source.client().await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        match client.batch_execute(&sql).await {
            Ok(()) => return name,
            Err(e) if attempt < 29 => {
                println!("{name}: {e}; again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{name} failed: {e}"),
        }
    }
    name
}

/// Audits truncates too (row triggers do not see them).
async fn install_truncate_audit(stack: &ProcessStack) {
    stack
        .source_client
        .batch_execute(
            "CREATE TABLE audit.truncates (id bigserial PRIMARY KEY, tbl text NOT NULL);
             CREATE FUNCTION audit.record_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO audit.truncates (tbl) VALUES (TG_TABLE_NAME); RETURN NULL; END $$;
             CREATE TRIGGER audit_truncate AFTER TRUNCATE ON public.payment
                 FOR EACH STATEMENT EXECUTE FUNCTION audit.record_truncate();",
        )
        .await
        .unwrap();
}

/// A stage's durable progress now (`None` while it cannot be read: a database restarting).
async fn progress(stack: &ProcessStack, stage: Stage) -> Option<u64> {
    match stage {
        Stage::Capture => {
            let client = stack.source.client().await.ok()?;
            let row = client
                .query_opt(
                    "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                    &[&stack.source.name],
                )
                .await
                .ok()??;
            let text: Option<String> = row.get(0);
            text?.parse::<cdc_core::Lsn>().ok().map(|l| l.0)
        }
        Stage::Lake => {
            let offsets = cdc_lake::committed_offsets(
                &stack.kafka_settings(),
                "totesys-cdc-lake",
                cdc_publish::DEFAULT_PREFIX,
            )
            .await
            .ok()?;
            Some(
                offsets
                    .values()
                    .map(|o| u64::try_from(*o).unwrap_or(0))
                    .sum(),
            )
        }
        Stage::Warehouse => {
            let client = stack.warehouse.client().await.ok()?;
            let lsn = stack.watermark(&client).await?;
            lsn.parse::<cdc_core::Lsn>().ok().map(|l| l.0)
        }
    }
}

/// Waits until `stage` moves past `before`; `None` after [`RECOVERY_BOUND`].
async fn wait_moved(
    stack: &ProcessStack,
    stage: Stage,
    before: Option<u64>,
    pipeline: &mut Pipeline,
) -> Option<()> {
    let start = Instant::now();
    let before = before.unwrap_or(0);
    while start.elapsed() < RECOVERY_BOUND {
        if progress(stack, stage).await.is_some_and(|now| now > before) {
            return Some(());
        }
        keep_running(stack, pipeline).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Every half second: the age of the newest applied source commit (freshness), and
/// whether a tagged large transaction shows in part (some staff tagged, not all).
async fn sample_warehouse(
    url: String,
    freshness: Arc<Mutex<Vec<f64>>>,
    torn: Arc<Mutex<Vec<String>>>,
    tags: Arc<Mutex<BTreeMap<u64, i64>>>,
) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(client) = cdc_testkit::database::connect(&url).await else {
            continue;
        };
        loop {
            let Ok(row) = client
                .query_one(
                    "SELECT (SELECT extract(epoch FROM now() - source_commit_ts)::float8 FROM totesys_cdc.applied),
                            (SELECT string_agg(tag || ':' || n, ',') FROM (
                                SELECT split_part(email_address, '-', 2) AS tag, count(*) AS n FROM dim_staff
                                WHERE email_address LIKE 'chaos-%' GROUP BY 1) t)",
                    &[],
                )
                .await
            else {
                break;
            };
            if let Some(age) = row.get::<_, Option<f64>>(0) {
                if let Ok(mut f) = freshness.lock() {
                    f.push(age);
                }
            }
            // Each tag was written to every staff member by one transaction: it shows on
            // all of them (as many as that transaction updated) or on none.
            let shown: Option<String> = row.get(1);
            for (tag, n) in shown
                .iter()
                .flat_map(|s| s.split(','))
                .filter_map(|t| t.split_once(':'))
                .filter_map(|(tag, n)| Some((tag.parse::<u64>().ok()?, n.parse::<i64>().ok()?)))
            {
                let made = tags.lock().ok().and_then(|t| t.get(&tag).copied());
                if made.is_some_and(|made| made != n) {
                    if let Ok(mut t) = torn.lock() {
                        t.push(format!(
                            "the warehouse showed part of a source transaction: tag {tag} on {n} staff of the {} it was written to",
                            made.unwrap_or(0)
                        ));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Source changes per (table, xid) from the audit trigger, and rows per table at the start.
async fn source_changes(
    stack: &ProcessStack,
) -> (BTreeMap<(String, i64), i64>, BTreeMap<String, i64>) {
    let client = stack.source.client().await.unwrap();
    let per_xid = client
        .query(
            "SELECT tbl, (xid::text::bigint % 4294967296), count(*) FROM audit.log GROUP BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                (r.get::<_, String>(0), r.get::<_, i64>(1)),
                r.get::<_, i64>(2),
            )
        })
        .collect();
    let initial = client
        .query("SELECT tbl, n FROM audit.initial", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    (per_xid, initial)
}

/// Where one copy of the changes was read from, and what it holds.
#[derive(Debug, Default)]
struct Copy {
    per_xid: BTreeMap<(String, i64), i64>,
    snapshot: BTreeMap<String, (i64, i64)>,
    truncates: BTreeMap<String, i64>,
    twice: Vec<String>,
    /// Records beyond the first of every change found more than once.
    twice_total: i64,
}

/// Parses the per-table JSON lines both readers print.
fn parse_copy(stdout: &str) -> Copy {
    let mut copy = Copy::default();
    for line in stdout.lines() {
        let t: serde_json::Value = serde_json::from_str(line).unwrap();
        let table = t["table"].as_str().unwrap().to_owned();
        copy.snapshot.insert(
            table.clone(),
            (
                t["snapshot"].as_i64().unwrap(),
                t["snapshot_positions"].as_i64().unwrap(),
            ),
        );
        copy.truncates
            .insert(table.clone(), t["truncates"].as_i64().unwrap());
        copy.twice_total += t["twice_total"].as_i64().unwrap();
        for dup in t["twice"].as_array().unwrap() {
            copy.twice.push(format!("{table} {dup}"));
        }
        for (xid, n) in t["per_xid"].as_object().unwrap() {
            copy.per_xid
                .insert((table.clone(), xid.parse().unwrap()), n.as_i64().unwrap());
        }
    }
    copy
}

async fn python(args: &[&str]) -> String {
    let python = cdc_testkit::python::venv_python().unwrap_or_else(|e| panic!("{e}"));
    let output = tokio::process::Command::new(python)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{:?}: {}",
        args.first(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The topics as a stock consumer reads them.
async fn topic_copy(stack: &ProcessStack) -> Copy {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/topic_changes.py").to_owned();
    let topics: Vec<String> = TABLES
        .iter()
        .map(|t| format!("{}.public.{t}", cdc_publish::DEFAULT_PREFIX))
        .collect();
    let bootstrap = stack.kafka.bootstrap();
    let registry = stack.registry_url();
    let mut args = vec![script.as_str(), bootstrap.as_str(), registry.as_str()];
    args.extend(topics.iter().map(String::as_str));
    parse_copy(&python(&args).await)
}

/// The lake's Delta tables as DuckDB's delta extension reads them.
async fn lake_copy(stack: &ProcessStack) -> Copy {
    const SCRIPT: &str = r#"
import json, os, sys
lake, tables = sys.argv[1], sys.argv[2:]
con = delta_duckdb()
for table in tables:
    if not os.path.isdir(f"{lake}/raw/{table}/_delta_log"):
        continue
    scan = f"delta_scan('{lake}/raw/{table}')"
    snap = con.sql(f"SELECT count(*), count(DISTINCT (_commit_lsn, _ordinal)) FROM {scan} WHERE _op = 'r'").fetchall()[0]
    trunc = con.sql(f"SELECT count(DISTINCT (_commit_lsn, _ordinal)) FROM {scan} WHERE _op = 't'").fetchall()[0][0]
    twice = con.sql(f"SELECT _commit_lsn::text, _ordinal, count(*), list(DISTINCT _kafka_partition || '@' || _kafka_offset) FROM {scan} WHERE _op NOT IN ('r', 't') GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 1 LIMIT 20").fetchall()
    twice_total = con.sql(f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) n FROM {scan} WHERE _op NOT IN ('r', 't') GROUP BY _commit_lsn, _ordinal HAVING count(*) > 1)").fetchall()[0][0]
    per_xid = con.sql(f"SELECT _xid, count(DISTINCT (_commit_lsn, _ordinal)) FROM {scan} WHERE _op NOT IN ('r', 't') GROUP BY 1").fetchall()
    print(json.dumps({"table": table, "snapshot": snap[0], "snapshot_positions": snap[1], "truncates": trunc,
                      "twice": [list(t) for t in twice], "twice_total": int(twice_total), "per_xid": {str(x): n for x, n in per_xid}}))
"#;
    let lake = stack.lake_dir.to_string_lossy().into_owned();
    let script = format!("{}{SCRIPT}", cdc_testkit::python::DELTA_DUCKDB);
    let mut args = vec!["-c", script.as_str(), lake.as_str()];
    args.extend(TABLES);
    parse_copy(&python(&args).await)
}

/// The end-of-run checks; each broken guarantee becomes a violation.
async fn check(stack: &ProcessStack, truncated: u64, report: &mut ChaosReport) {
    let source = stack.source.client().await.unwrap();
    let warehouse = stack.warehouse.client().await.unwrap();
    match cdc_testkit::check_warehouse(&source, &warehouse).await {
        Ok(checks) => {
            for c in checks.iter().filter(|c| !c.matches()) {
                report
                    .violations
                    .push(format!("warehouse differs from the source: {c:?}"));
            }
        }
        Err(e) => report
            .violations
            .push(format!("warehouse check failed: {e}")),
    }
    let (expected, initial) = source_changes(stack).await;
    report.changes = expected.values().sum();
    report.snapshot_rows = initial.values().sum();
    let truncates_made: i64 = source
        .query_one("SELECT count(*) FROM audit.truncates", &[])
        .await
        .unwrap()
        .get(0);
    if truncates_made as u64 != truncated {
        report.violations.push(format!(
            "the source recorded {truncates_made} truncates; the harness made {truncated}"
        ));
    }
    for (place, copy) in [
        ("topics", topic_copy(stack).await),
        ("lake", lake_copy(stack).await),
    ] {
        if copy.twice_total > 0 {
            report.violations.push(format!(
                "{place}: {} records repeat a change already there (first 20 per table below)",
                copy.twice_total
            ));
        }
        for dup in &copy.twice {
            report
                .violations
                .push(format!("{place}: a change more than once: {dup}"));
        }
        let mut lost = 0;
        let mut extra = 0;
        let mut examples = Vec::new();
        for key in expected.keys().chain(copy.per_xid.keys()) {
            let want = expected.get(key).copied().unwrap_or(0);
            let got = copy.per_xid.get(key).copied().unwrap_or(0);
            if want != got && examples.len() < 5 && !examples.contains(key) {
                examples.push(key.clone());
            }
        }
        for (key, want) in &expected {
            let got = copy.per_xid.get(key).copied().unwrap_or(0);
            lost += (want - got).max(0);
            extra += (got - want).max(0);
        }
        for (key, got) in &copy.per_xid {
            if !expected.contains_key(key) {
                extra += got;
            }
        }
        if lost + extra > 0 {
            report.violations.push(format!(
                "{place}: {lost} source changes missing and {extra} unknown, by (table, xid); e.g. {examples:?}"
            ));
        }
        for (table, rows) in &initial {
            let got = copy.snapshot.get(table).copied().unwrap_or((0, 0));
            if got != (*rows, *rows) {
                report.violations.push(format!(
                    "{place}: {table}'s snapshot has {} rows at {} positions; the source had {rows}",
                    got.0, got.1
                ));
            }
        }
        let truncates: i64 = copy.truncates.values().sum();
        if truncates != truncates_made {
            report.violations.push(format!(
                "{place}: {truncates} truncates; the source made {truncates_made}"
            ));
        }
    }
    // History: no version twice, one fact version per insert and update.
    for (versions, table, key) in [
        ("fact_sales_order_version", "sales_order", "sales_order_id"),
        (
            "fact_purchase_order_version",
            "purchase_order",
            "purchase_order_id",
        ),
        ("fact_payment_version", "payment", "payment_id"),
    ] {
        let row = warehouse
            .query_one(
                &format!(
                    "SELECT count(*), count(DISTINCT ({key}, source_commit_lsn, source_ordinal)) FROM {versions}"
                ),
                &[],
            )
            .await
            .unwrap();
        let (held, distinct): (i64, i64) = (row.get(0), row.get(1));
        let made = super::rows_and_versions_made(&source, table).await;
        if held != distinct {
            report.violations.push(format!(
                "{versions}: {} versions made twice",
                held - distinct
            ));
        }
        if held != made {
            report.violations.push(format!(
                "{versions}: {held} versions; the source made {made} rows and row versions"
            ));
        }
    }
}
