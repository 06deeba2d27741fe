//! `totesys-cdc replay` against the live pipeline: the simulator's changes in PostgreSQL,
//! capture into Kafka through our registry, the lake writer into Parquet, the modeler
//! into a warehouse, all drained; then the real binary rebuilds a new lake and a new
//! warehouse from the topics, and every warehouse table (contract tables, dimension
//! histories, fact versions, bookkeeping) must hold the same rows as the live one, except
//! for the columns docs/replay.md lists as legitimately different.
//!
//! Also: the live writers' consumer group is untouched, the lake writer's consumer-lag
//! gauge covers its partitions and reads zero once drained, replay refuses targets that
//! are not fresh, and `--from-timestamp` reads exactly the records from that time on.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use cdc_core::MetricSet;
use cdc_lake::{LakeMetrics, LakeStore};
use cdc_modeler::{Modeler, ModelerConfig, ModelerMetrics};
use cdc_publish::PublishConfig;
use cdc_sim::SchemaVariant;
use cdc_stack::Stack;
use cdc_stack::Writer;
use cdc_testkit::TestDb;
use prometheus::core::Collector;
use tokio::sync::watch;

const GROUP: &str = "lake";
const PREFIX: &str = "totesys";

/// Columns that differ between two warehouses built from the same changes, by design
/// (docs/replay.md): surrogate keys drawn from sequences and the times of the applies.
const EXCLUDED: [&str; 8] = [
    "version_id",
    "sales_record_id",
    "purchase_record_id",
    "payment_record_id",
    "applied_at",
    "repair_id",
    "recorded_at",
    "written_at",
];

/// Runs the binary's `replay` with the stack's Kafka and registry.
async fn replay(stack: &Stack, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_totesys-cdc"))
        .arg("replay")
        .arg("--no-progress")
        .args(args)
        .env(
            "TOTESYS_CDC_KAFKA_BOOTSTRAP_SERVERS",
            stack.broker.bootstrap(),
        )
        .env("TOTESYS_CDC_REGISTRY_URL", &stack.registry_url)
        .env("TOTESYS_CDC_LOG", "warn")
        .env_remove("TOTESYS_CDC_LAKE_URL")
        .env_remove("TOTESYS_CDC_WAREHOUSE_URL")
        .output()
        .await
        .expect("run totesys-cdc replay")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The number after `read ` in replay's summary.
fn records_read(summary: &str) -> u64 {
    summary
        .split("read ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no record count in {summary:?}"))
}

/// Every base table of the warehouse's `public` and `totesys_cdc` schemas.
async fn tables(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name)
             FROM information_schema.tables
             WHERE table_schema IN ('public', 'totesys_cdc') AND table_type = 'BASE TABLE'
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The rows `sql` gives (one JSON text per row, the excluded columns removed), sorted.
async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    let excluded: Vec<String> = EXCLUDED.iter().map(|c| (*c).to_owned()).collect();
    let mut rows: Vec<String> = client
        .query(
            &format!("SELECT (to_jsonb(t) - $1::text[])::text FROM ({sql}) t"),
            &[&excluded],
        )
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    rows.sort();
    rows
}

/// Rows of `a` not in `b`, multiset difference (EXCEPT ALL), first few.
fn except_all(a: &[String], b: &[String]) -> Vec<String> {
    let mut counts: BTreeMap<&String, i64> = BTreeMap::new();
    for row in b {
        *counts.entry(row).or_default() += 1;
    }
    let mut out = Vec::new();
    for row in a {
        let n = counts.entry(row).or_default();
        if *n > 0 {
            *n -= 1;
        } else if out.len() < 5 {
            out.push(row.clone());
        }
    }
    out
}

/// Compares every table (but `skip`) and each fact joined with its versions of the two
/// warehouses.
async fn assert_same_warehouse(
    live: &tokio_postgres::Client,
    rebuilt: &tokio_postgres::Client,
    skip: &[&str],
) {
    let names = tables(live).await;
    assert_eq!(names, tables(rebuilt).await, "the same tables");
    let mut queries: Vec<(String, String)> = names
        .iter()
        .filter(|t| !skip.contains(&t.as_str()))
        .map(|t| (t.clone(), format!("SELECT * FROM {t}")))
        .collect();
    for (fact, id) in [
        ("fact_sales_order", "sales_record_id"),
        ("fact_purchase_order", "purchase_record_id"),
        ("fact_payment", "payment_record_id"),
    ] {
        // Each fact row with its version (the record id linking them is excluded).
        queries.push((
            format!("{fact} ⋈ {fact}_version"),
            format!("SELECT v.*, f.* FROM {fact} f JOIN {fact}_version v USING ({id})"),
        ));
    }
    let mut compared = 0;
    let mut nonempty = 0;
    for (name, sql) in &queries {
        let (a, b) = (rows(live, sql).await, rows(rebuilt, sql).await);
        let missing = except_all(&a, &b);
        let extra = except_all(&b, &a);
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: live {} rows, rebuilt {} rows; live only: {missing:#?}; rebuilt only: {extra:#?}",
            a.len(),
            b.len()
        );
        compared += 1;
        if !a.is_empty() {
            nonempty += 1;
        }
    }
    let histories = names
        .iter()
        .filter(|n| n.ends_with("_history") || n.ends_with("_version"))
        .count();
    assert_eq!(
        histories, 10,
        "7 dimension histories and 3 fact version tables: {names:?}"
    );
    assert!(
        nonempty >= 20,
        "{nonempty} of {compared} comparisons had rows"
    );
    println!("{compared} tables and joins compared, {nonempty} with rows");
}

/// Sum and count of the lake writer's consumer-lag series.
fn lag(metrics: &LakeMetrics) -> (i64, usize) {
    let families = metrics.consumer_lag.collect();
    let series: Vec<i64> = families
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_gauge().get_value() as i64)
        .collect();
    (series.iter().sum(), series.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_warehouse_rebuilt_from_the_topics_equals_the_live_one() {
    cdc_stack::log_to_test_output();

    // The live pipeline: source, capture, lake writer, modeler.
    let stack = Stack::start().await;
    stack.totesys(SchemaVariant::default(), 3).await;
    let capture = stack
        .start_capture(PublishConfig::with_transaction_topic())
        .await;
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = LakeStore::open(lake_dir.path().to_str().unwrap()).unwrap();
    let mut settings = stack.settings();
    settings.set("statistics.interval.ms", "300");
    let flush = Writer::small_files(500, 200);
    let writer = Writer::start(
        settings.clone(),
        stack.registry.clone(),
        &lake,
        GROUP,
        flush,
    )
    .await;
    let metrics = writer.metrics.clone();
    let live = TestDb::create().await.unwrap();
    let live_client = live.client().await.unwrap();
    cdc_modeler::warehouse::init(&live_client).await.unwrap();
    let modeler_config = ModelerConfig {
        poll: Duration::from_millis(50),
        ..ModelerConfig::default()
    };
    let mut modeler = Modeler::new(
        lake.clone(),
        live.client().await.unwrap(),
        modeler_config.clone(),
        ModelerMetrics::unregistered().unwrap(),
    )
    .await
    .unwrap();
    let (stop_modeler, modeler_stopped) = watch::channel(false);
    let running = tokio::spawn(async move {
        modeler.run(modeler_stopped).await.unwrap();
    });

    // Half the load, a time mark, the other half (the mark splits the topics for
    // `--from-timestamp`).
    stack.spawn_workload(1500, 800.0, 11).await.await.unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(120))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mark_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(50)).await;
    stack.spawn_workload(1500, 800.0, 12).await.await.unwrap();
    stack
        .wait_all_acked(&capture, Duration::from_secs(120))
        .await;
    // Nothing reaches the topics from here on: the live warehouse is final once drained.
    capture.stop().await.unwrap();

    // Drain: a fresh modeler applies until the lake has nothing new for a while.
    stop_modeler.send(true).unwrap();
    running.await.unwrap();
    let mut modeler = Modeler::new(
        lake.clone(),
        live.client().await.unwrap(),
        modeler_config,
        ModelerMetrics::unregistered().unwrap(),
    )
    .await
    .unwrap();
    let start = Instant::now();
    let mut quiet = 0;
    while quiet < 10 {
        let report = modeler.pass().await.unwrap();
        if report.files == 0 && modeler.pending() == 0 && modeler.watermark() > cdc_core::Lsn(0) {
            quiet += 1;
        } else {
            quiet = 0;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the live modeler did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    modeler.export_processed().await.unwrap();

    // The consumer-lag gauge: one series per owned partition, all zero once drained.
    let start = Instant::now();
    loop {
        let (sum, series) = lag(&metrics);
        if series > 0 && sum == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "consumer lag {sum} over {series} series, not 0"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let partitions = cdc_lake::lake_partitions(&settings, PREFIX).await.unwrap();
    assert_eq!(
        lag(&metrics).1,
        partitions.len(),
        "a lag series per partition"
    );
    let live_offsets = cdc_lake::committed_offsets(&settings, GROUP, PREFIX)
        .await
        .unwrap();

    // Replay into a new lake and a new warehouse, with the real binary.
    let out = tempfile::tempdir().unwrap();
    let new_lake = out.path().join("lake");
    let rebuilt = TestDb::create().await.unwrap();
    let started = Instant::now();
    let output = replay(
        &stack,
        &[
            "--lake-url",
            new_lake.to_str().unwrap(),
            "--warehouse-url",
            &rebuilt.conn_string(),
        ],
    )
    .await;
    println!("replay took {:.1} s", started.elapsed().as_secs_f64());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "replay failed: {stderr}");
    println!("{stdout}");
    assert!(!stdout.contains("PARTIAL"), "{stdout}");
    let total: i64 = partitions.iter().map(|p| p.high - p.low).sum();
    assert_eq!(
        records_read(&stdout),
        total as u64,
        "every record read once: {stdout}"
    );

    let rebuilt_client = rebuilt.client().await.unwrap();
    assert_same_warehouse(&live_client, &rebuilt_client, &[]).await;

    // Only a warehouse, through a temporary lake: the same again.
    let rebuilt_alone = TestDb::create().await.unwrap();
    let output = replay(
        &stack,
        &[
            "--target",
            "warehouse",
            "--warehouse-url",
            &rebuilt_alone.conn_string(),
        ],
    )
    .await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "warehouse replay failed: {stderr}");
    assert!(stdout.contains("temporary lake (removed)"), "{stdout}");
    // No lake is kept, so no processed zone is written, and its bookkeeping is empty.
    assert_same_warehouse(
        &live_client,
        &rebuilt_alone.client().await.unwrap(),
        &["totesys_cdc.processed"],
    )
    .await;

    // The live group's offsets are untouched, and the new lake has a processed zone.
    assert_eq!(
        cdc_lake::committed_offsets(&settings, GROUP, PREFIX)
            .await
            .unwrap(),
        live_offsets
    );
    assert!(new_lake.join("raw").is_dir() && new_lake.join("processed").is_dir());

    // Targets that are not fresh are refused, naming them.
    let output = replay(
        &stack,
        &["--target", "lake", "--lake-url", new_lake.to_str().unwrap()],
    )
    .await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--lake-url") && stderr.contains("is not empty"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    let output = replay(
        &stack,
        &[
            "--target",
            "warehouse",
            "--warehouse-url",
            &live.conn_string(),
        ],
    )
    .await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--warehouse-url has applied"), "{stderr}");

    // A backfill from the mark reads exactly the records produced from then on.
    let from = cdc_lake::offsets_at_time(&settings, &partitions, mark_ms)
        .await
        .unwrap();
    let expected: i64 = partitions.iter().map(|p| p.high - from[&p.key()]).sum();
    assert!(expected > 0 && expected < total, "{expected} of {total}");
    let backfill = out.path().join("backfill");
    let output = replay(
        &stack,
        &[
            "--target",
            "lake",
            "--lake-url",
            backfill.to_str().unwrap(),
            "--from-timestamp",
            &mark_ms.to_string(),
        ],
    )
    .await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "backfill failed: {stderr}");
    assert_eq!(records_read(&stdout), expected as u64, "{stdout}");

    writer.stop().await;
    drop(lake_dir);
}
