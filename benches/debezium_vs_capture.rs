//! Our capture against Debezium's PostgreSQL connector (Kafka Connect standalone), on the
//! same PostgreSQL and the same Apache Kafka, taking turns on the same changes.
//!
//! ```text
//!   PostgreSQL ──slot totesys_cdc──► totesys-cdc capture ──Avro, exactly-once──► totesys.public.sales_order
//!              ──slot dbz_stream───► Connect + Debezium  ──JSON──────────────────► dbz.public.sales_order
//!                                               one Kafka broker, one read_committed consumer per turn
//! ```
//!
//! 1. **Streaming throughput**: both stopped, `--changes` (200,000) changes written to
//!    `sales_order` (half inserts, half updates, 100 rows a transaction, 4 connections);
//!    then each system in turn reads them from its own slot. Changes/s is counted from
//!    the first record a consumer sees to the last (start-up is printed apart): the rate
//!    at which records become readable, i.e. durably acknowledged by the broker.
//! 2. **Latency** at fixed rates (`--rates`, 1000,5000,10000 changes/s, `--seconds` 20
//!    each after 5 s of warm-up at the rate, 20 rows a transaction, `synchronous_commit =
//!    on`): each system alone, live.
//!    Latency of a record = the consumer's wall clock when it reads the record minus the
//!    source commit time the record carries (Debezium's `source.ts_us`, our
//!    `source.commit_ts_us`: both PostgreSQL's commit timestamp from the WAL). One host,
//!    one clock (`CLOCK_REALTIME`), the same consumer code for both.
//! 3. **Initial snapshot** of `sales_order` grown to `--snapshot-rows` (5,000,000): each
//!    system with a new slot and publication for that table only; rows/s from the
//!    process's start to the last snapshot record read (ours is one Kafka transaction,
//!    readable only once it commits).
//! 4. **CPU seconds and peak memory** of each system's process (the JVM; `totesys-cdc`)
//!    in every turn, from `/proc/<pid>/stat` and `VmHWM` in `/proc/<pid>/status`.
//!
//! Every turn must deliver exactly the changes written (counted by the consumer); a
//! mismatch fails the run. Debezium's settings are printed with the results.
//!
//! ```text
//! cargo run --release -p cdc-benches --bin debezium-vs-capture -- [--changes N] [--rates R,R,..]
//!     [--seconds S] [--snapshot-rows N] [--skip streaming,latency,snapshot]
//! ```
//! It needs the `totesys-cdc` binary of the same profile (`cargo build --release --bin
//! totesys-cdc`) and fetches Debezium's jars with `scripts/debezium-env` (Maven Central).

#![allow(clippy::unwrap_used)] // the stack's helpers fail loudly by design

mod charts;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context};
use cdc_kafka::{KafkaSettings, TopicSpec};
use cdc_stack::process::{http_get, Component, ProcessStack};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::json;

const USAGE: &str = "usage: debezium-vs-capture [--changes N] [--rates R,R,..] [--seconds S] \
                     [--snapshot-rows N] [--skip streaming,latency,snapshot] [--ours-arg ARG]...";

/// Our capture's topic for the table the generator writes.
const OURS_TOPIC: &str = "totesys.public.sales_order";
/// Debezium's topic prefixes: streaming turns, and its snapshot turn.
const DBZ_PREFIX: &str = "dbz";
const DBZ_SNAPSHOT_PREFIX: &str = "dbzsnap";
/// `$2` new sales orders copying order `$1`'s references (units vary by row).
const INSERT_ORDERS: &str = "INSERT INTO public.sales_order (design_id, staff_id, \
     counterparty_id, units_sold, unit_price, currency_id, agreed_delivery_date, \
     agreed_payment_date, agreed_delivery_location_id) \
     SELECT design_id, staff_id, counterparty_id, (1000 + (g::bigint * 7919) % 99000)::int, \
     unit_price, currency_id, agreed_delivery_date, agreed_payment_date, \
     agreed_delivery_location_id \
     FROM public.sales_order t, generate_series(1, $2::int) g \
     WHERE t.sales_order_id = $1";

/// Seconds at the rate before a latency turn measures.
const WARM_UP_SECS: u64 = 5;
/// How long a turn may take before the run fails.
const TURN_TIMEOUT: Duration = Duration::from_secs(1800);

/// Debezium's settings beyond the connection, as its documentation advises for
/// throughput and latency (defaults in the comments), printed with the results.
const DEBEZIUM_TUNING: [(&str, &str); 4] = [
    ("max.batch.size", "8192"), // 2048: events per poll of the connector's queue
    ("max.queue.size", "32768"), // 8192: must exceed max.batch.size
    ("poll.interval.ms", "10"), // 500: the wait for new events when the queue is empty
    ("plugin.name", "pgoutput"),
];

/// Kafka Connect's worker and producer settings (defaults in the comments); the producer
/// matches ours (zstd, linger 5 ms, acks=all, idempotent).
const CONNECT_TUNING: [(&str, &str); 5] = [
    ("offset.flush.interval.ms", "1000"),     // 60000
    ("producer.linger.ms", "5"),              // 5 (Kafka 4)
    ("producer.batch.size", "262144"),        // 16384
    ("producer.compression.type", "zstd"),    // none
    ("producer.max.request.size", "4194304"), // 1048576
];

#[derive(Debug, Clone)]
struct Options {
    changes: u64,
    rates: Vec<u64>,
    seconds: u64,
    snapshot_rows: u64,
    skip: Vec<String>,
    /// Extra arguments of our streaming capture (`--ours-arg`, repeatable).
    ours_args: Vec<String>,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut options = Options {
            changes: 200_000,
            rates: vec![1_000, 5_000, 10_000],
            seconds: 20,
            snapshot_rows: 5_000_000,
            skip: Vec::new(),
            ours_args: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .with_context(|| format!("{arg} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--changes" => options.changes = value()?.parse().context("--changes")?,
                "--seconds" => options.seconds = value()?.parse().context("--seconds")?,
                "--snapshot-rows" => {
                    options.snapshot_rows = value()?.parse().context("--snapshot-rows")?
                }
                "--rates" => {
                    options.rates = value()?
                        .split(',')
                        .map(|r| r.trim().parse().context("--rates"))
                        .collect::<anyhow::Result<_>>()?
                }
                "--skip" => options.skip = value()?.split(',').map(str::to_owned).collect(),
                "--ours-arg" => options.ours_args.push(value()?),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other}\n{USAGE}"),
            }
        }
        Ok(options)
    }

    fn runs(&self, part: &str) -> bool {
        !self.skip.iter().any(|s| s == part)
    }
}

/// Which system a turn runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum System {
    Ours,
    Debezium,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Ours => "totesys-cdc",
            System::Debezium => "Debezium",
        }
    }
}

/// What one turn measured.
#[derive(Debug, Clone, Default)]
struct Turn {
    records: u64,
    /// Process start to the first record read, seconds.
    startup_s: f64,
    /// First record read to the last, seconds.
    span_s: f64,
    cpu_s: f64,
    peak_rss_mb: f64,
    /// Commit-to-consumer latencies, microseconds, sorted (latency turns only).
    latencies_us: Vec<i64>,
    /// Records read per second, per half second since the first.
    rate_series: Vec<(f64, f64)>,
    /// p50 and p99 latency (ms) of each second's records, since the first.
    latency_series: Vec<(f64, f64, f64)>,
}

impl Turn {
    fn rate(&self) -> f64 {
        if self.span_s > 0.0 {
            (self.records.saturating_sub(1)) as f64 / self.span_s
        } else {
            f64::NAN
        }
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        self.latencies_us[rank.min(self.latencies_us.len() - 1)] as f64 / 1000.0
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let lib = debezium_lib()?;
    println!("Debezium's jars: {}", lib.display());
    let stack = ProcessStack::start().await;
    let bench = Bench::new(&stack, lib, &options.ours_args).await?;
    let mut report = serde_json::Map::new();
    let mut table: Vec<String> = Vec::new();

    if options.runs("streaming") {
        let turns = bench.streaming(options.changes).await?;
        let (ours, dbz) = (&turns[&System::Ours], &turns[&System::Debezium]);
        table.push(format!(
            "streaming {} changes   changes/s  {:>9.0} {:>9.0}  ×{:.2}",
            options.changes,
            ours.rate(),
            dbz.rate(),
            ours.rate() / dbz.rate()
        ));
        push_costs(&mut table, "streaming", ours, dbz);
        report.insert("streaming".into(), turns_json(&turns));
        chart_rates(
            "debezium-streaming.png",
            &format!(
                "Streaming {} changes from the slot into Kafka",
                options.changes
            ),
            &turns,
        )?;
    }
    if options.runs("latency") {
        let mut all = serde_json::Map::new();
        for &rate in &options.rates {
            let turns = bench.latency(rate, options.seconds).await?;
            let (ours, dbz) = (&turns[&System::Ours], &turns[&System::Debezium]);
            for p in [50.0, 99.0, 99.9] {
                table.push(format!(
                    "latency @{rate}/s p{p:<5}  ms        {:>9.1} {:>9.1}  ×{:.2}",
                    ours.percentile_ms(p),
                    dbz.percentile_ms(p),
                    dbz.percentile_ms(p) / ours.percentile_ms(p)
                ));
            }
            push_costs(&mut table, &format!("latency @{rate}/s"), ours, dbz);
            all.insert(rate.to_string(), turns_json(&turns));
            chart_latency(rate, &turns)?;
        }
        report.insert("latency".into(), all.into());
    }
    if options.runs("snapshot") {
        let turns = bench.snapshot(options.snapshot_rows).await?;
        let (ours, dbz) = (&turns[&System::Ours], &turns[&System::Debezium]);
        // From the process's start: our snapshot is one Kafka transaction, readable (by a
        // read_committed consumer) only once it commits, so first-to-last would flatter it.
        let whole = |t: &Turn| t.records as f64 / (t.startup_s + t.span_s);
        table.push(format!(
            "snapshot {} rows      rows/s     {:>9.0} {:>9.0}  ×{:.2}",
            ours.records,
            whole(ours),
            whole(dbz),
            whole(ours) / whole(dbz)
        ));
        table.push(format!(
            "snapshot start to last  s         {:>9.1} {:>9.1}  ×{:.2}",
            ours.startup_s + ours.span_s,
            dbz.startup_s + dbz.span_s,
            (dbz.startup_s + dbz.span_s) / (ours.startup_s + ours.span_s)
        ));
        push_costs(&mut table, "snapshot", ours, dbz);
        report.insert("snapshot".into(), turns_json(&turns));
        chart_rates(
            "debezium-snapshot.png",
            &format!(
                "Initial snapshot of {} sales orders into Kafka",
                ours.records
            ),
            &turns,
        )?;
    }

    println!();
    println!(
        "{:<34} {:>9} {:>9}  ratio (ours better when > 1)",
        "measure", "ours", "Debezium"
    );
    for line in &table {
        println!("{line}");
    }
    println!();
    println!("Debezium {} with:", debezium_version(&bench.lib));
    for (k, v) in DEBEZIUM_TUNING.iter().chain(&CONNECT_TUNING) {
        println!("  {k}={v}");
    }
    report.insert(
        "debezium_settings".into(),
        DEBEZIUM_TUNING
            .iter()
            .chain(&CONNECT_TUNING)
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}

/// Records/s over time of each system's turn, as `docs/charts/<name>`.
fn chart_rates(name: &str, title: &str, turns: &BTreeMap<System, Turn>) -> anyhow::Result<()> {
    let path = charts::charts_dir()?.join(name);
    charts::draw(
        &path,
        &charts::Chart {
            title,
            x: "seconds since the first record read",
            y: "records read per second",
            series: turns
                .iter()
                .map(|(system, turn)| charts::Series {
                    name: system.name().to_owned(),
                    points: turn.rate_series.clone(),
                })
                .collect(),
        },
    )?;
    println!("chart: {}", path.display());
    Ok(())
}

/// p50 and p99 latency per second of each system at `rate`, as a chart.
fn chart_latency(rate: u64, turns: &BTreeMap<System, Turn>) -> anyhow::Result<()> {
    let path = charts::charts_dir()?.join(format!("debezium-latency-{rate}.png"));
    let mut series = Vec::new();
    for (system, turn) in turns {
        for (label, pick) in [("p50", 1), ("p99", 2)] {
            series.push(charts::Series {
                name: format!("{} {label}", system.name()),
                points: turn
                    .latency_series
                    .iter()
                    .map(|&(t, p50, p99)| (t, if pick == 1 { p50 } else { p99 }))
                    .collect(),
            });
        }
    }
    charts::draw(
        &path,
        &charts::Chart {
            title: &format!("Source commit to Kafka consumer at {rate} changes/s"),
            x: "seconds since the first record read (the first 5 s warm up, not measured)",
            y: "latency of that second's records, ms",
            series,
        },
    )?;
    println!("chart: {}", path.display());
    Ok(())
}

/// CPU seconds per thousand changes and peak memory, ours against Debezium's.
fn push_costs(table: &mut Vec<String>, what: &str, ours: &Turn, dbz: &Turn) {
    let per_k = |t: &Turn| t.cpu_s / (t.records.max(1) as f64 / 1000.0);
    table.push(format!(
        "{what:<23} CPU s/1k   {:>9.3} {:>9.3}  ×{:.2}",
        per_k(ours),
        per_k(dbz),
        per_k(dbz) / per_k(ours)
    ));
    table.push(format!(
        "{what:<23} peak MiB   {:>9.0} {:>9.0}  ×{:.2}",
        ours.peak_rss_mb,
        dbz.peak_rss_mb,
        dbz.peak_rss_mb / ours.peak_rss_mb
    ));
}

fn turns_json(turns: &BTreeMap<System, Turn>) -> serde_json::Value {
    turns
        .iter()
        .map(|(system, t)| {
            let mut value = json!({
                "records": t.records,
                "startup_s": t.startup_s,
                "span_s": t.span_s,
                "per_s": t.rate(),
                "cpu_s": t.cpu_s,
                "peak_rss_mb": t.peak_rss_mb,
            });
            if !t.latencies_us.is_empty() {
                value["p50_ms"] = json!(t.percentile_ms(50.0));
                value["p99_ms"] = json!(t.percentile_ms(99.0));
                value["p999_ms"] = json!(t.percentile_ms(99.9));
                value["max_ms"] = json!(t.percentile_ms(100.0));
            }
            (system.name().to_owned(), value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// `scripts/debezium-env`: Debezium's jars from Maven Central, cached; their directory.
fn debezium_lib() -> anyhow::Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/debezium-env");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    ensure!(
        output.status.success(),
        "{} failed (its message is above)",
        script.display()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let lib = text
        .lines()
        .last()
        .context("debezium-env printed nothing")?;
    Ok(PathBuf::from(lib.trim()))
}

fn debezium_version(lib: &Path) -> String {
    std::fs::read_dir(lib)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("debezium-connector-postgres-")?
                .strip_suffix(".jar")
                .map(str::to_owned)
        })
        .next()
        .unwrap_or_else(|| "(unknown version)".into())
}

/// The stack, Debezium's jars, and where the turns keep their files.
struct Bench<'a> {
    stack: &'a ProcessStack,
    lib: PathBuf,
    /// Our streaming capture (its slot made, its snapshot of the seed rows delivered).
    ours: tokio::sync::Mutex<Component>,
    /// Sales orders the updates cycle through: `[first, first + span)`.
    first_order: i32,
    span: i32,
    clk_tck: f64,
}

impl<'a> Bench<'a> {
    async fn new(
        stack: &'a ProcessStack,
        lib: PathBuf,
        ours_args: &[String],
    ) -> anyhow::Result<Bench<'a>> {
        let client = &stack.source_client;
        let row = client
            .query_one(
                "SELECT min(sales_order_id), count(*)::int FROM public.sales_order",
                &[],
            )
            .await?;
        let (first_order, seeded): (i32, i32) = (row.get(0), row.get(1));
        // Room for each of the generator's four connections to update 100 consecutive
        // orders of its own quarter.
        let span = seeded.max(4_000);
        fill_sales_orders(&stack.source, first_order, i64::from(span - seeded)).await?;
        // Debezium's publication holds the table the generator writes (ours, every table:
        // the others see no change).
        client
            .batch_execute(
                "CREATE PUBLICATION dbz_stream FOR TABLE public.sales_order;
                 CREATE PUBLICATION dbz_snapshot FOR TABLE public.sales_order;
                 CREATE PUBLICATION bench_snapshot FOR TABLE public.sales_order;",
            )
            .await?;
        let partitions = cdc_publish::PublishConfig::default().partitions;
        let settings = KafkaSettings::new(stack.kafka.bootstrap());
        cdc_kafka::ensure_topics(
            &settings,
            &[DBZ_PREFIX, DBZ_SNAPSHOT_PREFIX]
                .map(|prefix| TopicSpec::new(format!("{prefix}.public.sales_order"), partitions)),
        )
        .await?;
        let extra: Vec<&str> = ours_args.iter().map(String::as_str).collect();
        let mut ours = stack.capture().arg(&extra);
        stack.start_capture(&mut ours).await;
        ours.stop(Duration::from_secs(60)).await;
        let clk_tck = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        let bench = Bench {
            stack,
            lib,
            ours: tokio::sync::Mutex::new(ours),
            first_order,
            span,
            clk_tck,
        };
        // Debezium's slot, made by a first start that copies nothing.
        let mut connect = bench.connect("dbz-stream", DBZ_PREFIX, "dbz_stream", "no_data");
        bench.start_debezium(&mut connect, "dbz_stream").await?;
        stop_java(&mut connect.process).await;
        Ok(bench)
    }

    /// Connect standalone running Debezium with slot `slot`, publication `slot`,
    /// topics `<prefix>.public.sales_order` (not started). Its offsets live under the
    /// stack's directory by `name`, so a later start resumes where it stopped.
    fn connect(&self, name: &str, prefix: &str, slot: &str, snapshot_mode: &str) -> Connect {
        let dir = self.stack.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let rest = cdc_testkit::free_port().unwrap();
        let mut worker = format!(
            "bootstrap.servers={}\n\
             key.converter=org.apache.kafka.connect.json.JsonConverter\n\
             value.converter=org.apache.kafka.connect.json.JsonConverter\n\
             key.converter.schemas.enable=false\n\
             value.converter.schemas.enable=false\n\
             offset.storage.file.filename={}\n\
             listeners=http://127.0.0.1:{rest}\n\
             plugin.discovery=service_load\n",
            self.stack.kafka.bootstrap(),
            dir.join("offsets").display()
        );
        for (k, v) in CONNECT_TUNING {
            worker.push_str(&format!("{k}={v}\n"));
        }
        let source = &self.stack.source;
        let mut connector = format!(
            "name={name}\n\
             connector.class=io.debezium.connector.postgresql.PostgresConnector\n\
             tasks.max=1\n\
             slot.name={slot}\n\
             publication.name={slot}\n\
             publication.autocreate.mode=disabled\n\
             table.include.list=public.sales_order\n\
             topic.prefix={prefix}\n\
             database.hostname=127.0.0.1\n\
             database.port={}\n\
             database.user=postgres\n\
             database.password={}\n\
             database.dbname={}\n\
             snapshot.mode={snapshot_mode}\n",
            source.cluster.port,
            cdc_testkit::SUPERUSER_PASSWORD,
            source.name
        );
        for (k, v) in DEBEZIUM_TUNING {
            connector.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(dir.join("worker.properties"), worker).unwrap();
        std::fs::write(dir.join("connector.properties"), connector).unwrap();
        let classpath = format!("{}/*", self.lib.display());
        let worker = dir.join("worker.properties").display().to_string();
        let connector = dir.join("connector.properties").display().to_string();
        let process = Component::new(
            name,
            "java",
            &[
                // As Kafka's connect-standalone.sh runs the worker.
                "-Xms256M",
                "-Xmx2G",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-cp",
                &classpath,
                "org.apache.kafka.connect.cli.ConnectStandalone",
                &worker,
                &connector,
            ],
            Vec::new(),
            self.stack.dir.path(),
        );
        Connect {
            process,
            rest: SocketAddr::from(([127, 0, 0, 1], rest)),
        }
    }

    /// Starts Connect and waits until its task runs and holds slot `slot`.
    async fn start_debezium(&self, connect: &mut Connect, slot: &str) -> anyhow::Result<()> {
        let (rest, connect) = (connect.rest, &mut connect.process);
        connect.start();
        let started = Instant::now();
        loop {
            ensure!(
                connect.is_running(),
                "Kafka Connect exited:\n{}",
                cdc_stack::process::tail(&connect.log_of_this_run(), 40)
            );
            ensure!(
                started.elapsed() < Duration::from_secs(180),
                "Debezium did not start streaming in 3 minutes:\n{}",
                cdc_stack::process::tail(&connect.log_of_this_run(), 40)
            );
            let active: bool = self
                .stack
                .source_client
                .query_opt(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot],
                )
                .await?
                .is_some_and(|r| r.get(0));
            // The connector and its one task.
            let running = http_get(rest, &format!("/connectors/{}/status", connect.name))
                .await
                .is_ok_and(|(code, body)| code == 200 && body.matches("\"RUNNING\"").count() >= 2);
            if active && running {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Turn 1: the same changes, read by each system from its own slot.
    async fn streaming(&self, changes: u64) -> anyhow::Result<BTreeMap<System, Turn>> {
        let starts = [
            (System::Ours, self.ends(OURS_TOPIC).await?),
            (System::Debezium, self.ends(&dbz_topic(DBZ_PREFIX)).await?),
        ];
        println!("streaming: writing {changes} changes with both systems stopped");
        let written = self.generate(changes, None, 100, false).await?;
        println!(
            "  written in {:.1} s ({:.0} changes/s)",
            written.as_secs_f64(),
            changes as f64 / written.as_secs_f64()
        );
        let mut turns = BTreeMap::new();
        for (system, from) in starts {
            let counter = Counter::start(
                self.stack.kafka.bootstrap(),
                from,
                changes,
                None,
                self.registry(system),
            );
            let turn = self.run_turn(system, counter, None).await?;
            println!(
                "  {}: {:.0} changes/s (first record after {:.1} s, {:.2} CPU s, peak {:.0} MiB)",
                system.name(),
                turn.rate(),
                turn.startup_s,
                turn.cpu_s,
                turn.peak_rss_mb
            );
            turns.insert(system, turn);
        }
        Ok(turns)
    }

    /// Turn 2: each system alone, live, under `rate` changes/s for `seconds`.
    async fn latency(&self, rate: u64, seconds: u64) -> anyhow::Result<BTreeMap<System, Turn>> {
        let changes = rate * seconds;
        let mut turns = BTreeMap::new();
        for system in [System::Ours, System::Debezium] {
            println!(
                "latency: {} at {rate} changes/s for {seconds} s",
                system.name()
            );
            let topic = match system {
                System::Ours => OURS_TOPIC.to_owned(),
                System::Debezium => dbz_topic(DBZ_PREFIX),
            };
            // The other system's turns left changes in this one's slot: start it at now.
            let slot = match system {
                System::Ours => self.stack.source.name.clone(),
                System::Debezium => "dbz_stream".to_owned(),
            };
            self.stack
                .source_client
                .query_one(
                    "SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())::text",
                    &[&slot],
                )
                .await
                .with_context(|| format!("cannot advance slot {slot}"))?;
            if system == System::Debezium {
                // Without a stored offset Debezium streams from the slot's position (a
                // stored one, now behind the slot, is not what this turn measures).
                let _ = std::fs::remove_file(self.stack.dir.path().join("dbz-stream/offsets"));
            }
            let from = self.ends(&topic).await?;
            // The first seconds at the rate warm the process up (a JVM compiles its hot
            // paths): read and counted, not measured.
            let warm_up = rate * WARM_UP_SECS;
            let counter = Counter::start(
                self.stack.kafka.bootstrap(),
                from,
                warm_up + changes,
                Some((system, warm_up)),
                self.registry(system),
            );
            let turn = self
                .run_turn(system, counter, Some((warm_up + changes, rate)))
                .await?;
            println!(
                "  p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms; {:.2} CPU s, peak {:.0} MiB",
                turn.percentile_ms(50.0),
                turn.percentile_ms(99.0),
                turn.percentile_ms(99.9),
                turn.percentile_ms(100.0),
                turn.cpu_s,
                turn.peak_rss_mb
            );
            turns.insert(system, turn);
        }
        Ok(turns)
    }

    /// Turn 3: `sales_order` grown to `rows`, copied by each system's initial snapshot.
    async fn snapshot(&self, rows: u64) -> anyhow::Result<BTreeMap<System, Turn>> {
        let client = &self.stack.source_client;
        let have: i64 = client
            .query_one("SELECT count(*) FROM public.sales_order", &[])
            .await?
            .get(0);
        let add = (rows as i64 - have).max(0);
        println!("snapshot: adding {add} sales orders (to {rows})");
        let started = Instant::now();
        fill_sales_orders(&self.stack.source, self.first_order, add).await?;
        let total: i64 = client
            .query_one("SELECT count(*) FROM public.sales_order", &[])
            .await?
            .get(0);
        println!("  loaded in {:.1} s", started.elapsed().as_secs_f64());
        let mut turns = BTreeMap::new();
        for system in [System::Ours, System::Debezium] {
            let topic = match system {
                System::Ours => OURS_TOPIC.to_owned(),
                System::Debezium => dbz_topic(DBZ_SNAPSHOT_PREFIX),
            };
            let from = self.ends(&topic).await?;
            let counter = Counter::start(
                self.stack.kafka.bootstrap(),
                from,
                total as u64,
                None,
                self.registry(system),
            );
            let mut process = match system {
                System::Ours => {
                    let state = self.stack.dir.path().join("snapshot-state");
                    self.stack
                        .component(
                            "capture-snapshot",
                            &[
                                "capture",
                                "--slot",
                                "bench_snapshot",
                                "--publication",
                                "bench_snapshot",
                                "--state-dir",
                                &state.to_string_lossy(),
                                "--no-progress",
                                "--report-every",
                                "0",
                            ],
                        )
                        .with_metrics()
                }
                System::Debezium => {
                    self.connect(
                        "dbz-snapshot",
                        DBZ_SNAPSHOT_PREFIX,
                        "dbz_snapshot",
                        "initial",
                    )
                    .process
                }
            };
            let began = Instant::now();
            process.start();
            let pid = process.pid();
            let turn = measure(&mut process, pid, counter, began, self.clk_tck).await;
            match system {
                System::Ours => process.stop(Duration::from_secs(120)).await,
                System::Debezium => stop_java(&mut process).await,
            }
            let turn = turn?;
            println!(
                "  {}: {} rows at {:.0} rows/s (first after {:.1} s, {:.2} CPU s, peak {:.0} MiB)",
                system.name(),
                turn.records,
                turn.rate(),
                turn.startup_s,
                turn.cpu_s,
                turn.peak_rss_mb
            );
            turns.insert(system, turn);
        }
        for slot in ["bench_snapshot", "dbz_snapshot"] {
            client
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                     WHERE slot_name = $1",
                    &[&slot],
                )
                .await?;
        }
        Ok(turns)
    }

    /// Starts `system`'s streaming process, writes `load` (changes at a rate) when given,
    /// waits for the counter and stops the process.
    async fn run_turn(
        &self,
        system: System,
        counter: Counter,
        load: Option<(u64, u64)>,
    ) -> anyhow::Result<Turn> {
        let mut connect = None;
        let mut ours = self.ours.lock().await;
        let began = Instant::now();
        let process: &mut Component = match system {
            System::Ours => {
                ours.start();
                if load.is_some() {
                    ours.wait_ready(Duration::from_secs(60)).await;
                }
                &mut ours
            }
            System::Debezium => {
                let mut c = self.connect("dbz-stream", DBZ_PREFIX, "dbz_stream", "no_data");
                if load.is_some() {
                    self.start_debezium(&mut c, "dbz_stream").await?;
                } else {
                    c.process.start();
                }
                &mut connect.insert(c).process
            }
        };
        let pid = process.pid();
        let cpu_before = if load.is_some() {
            cpu_seconds(pid, self.clk_tck)
        } else {
            0.0
        };
        let generator = load.map(|(changes, rate)| self.generate(changes, Some(rate), 20, true));
        let measured = async {
            if let Some(generator) = generator {
                let took = generator.await?;
                println!(
                    "  generator: {:.0} changes/s achieved",
                    counter.expected as f64 / took.as_secs_f64()
                );
            }
            let mut turn = measure(process, pid, counter, began, self.clk_tck).await?;
            turn.cpu_s -= cpu_before;
            if system == System::Ours {
                // Where our latency goes: the Kafka transactions' commits.
                let text = process.scrape().await;
                let metric = cdc_publish::metrics::KAFKA_COMMIT_SECONDS.name;
                let sum = cdc_stack::process::metric_sum(&text, &format!("{metric}_sum"));
                let count = cdc_stack::process::metric_sum(&text, &format!("{metric}_count"));
                let sources = cdc_stack::process::metric_sum(
                    &text,
                    &format!(
                        "{}_sum",
                        cdc_publish::metrics::KAFKA_TRANSACTION_SOURCE_TRANSACTIONS.name
                    ),
                );
                println!(
                    "  our Kafka transactions this start: {count:.0}, {:.1} ms to commit each, {:.1} source transactions each",
                    1000.0 * sum / count.max(1.0),
                    sources / count.max(1.0)
                );
            }
            anyhow::Ok(turn)
        }
        .await;
        match system {
            System::Ours => ours.stop(Duration::from_secs(120)).await,
            System::Debezium => {
                if let Some(c) = connect.as_mut() {
                    stop_java(&mut c.process).await;
                }
            }
        }
        measured
    }

    /// The end offsets of `topic`'s partitions now.
    async fn ends(&self, topic: &str) -> anyhow::Result<Vec<(String, i32, i64)>> {
        let (bootstrap, topic) = (self.stack.kafka.bootstrap(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let consumer = consumer(&bootstrap)?;
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            let mut ends = Vec::new();
            for t in metadata.topics() {
                for p in t.partitions() {
                    let (_, high) =
                        consumer.fetch_watermarks(&topic, p.id(), Duration::from_secs(10))?;
                    ends.push((topic.clone(), p.id(), high));
                }
            }
            ensure!(!ends.is_empty(), "topic {topic} has no partitions");
            Ok(ends)
        })
        .await?
    }

    /// The registry our records' schemas are read from (Debezium's are JSON).
    fn registry(&self, system: System) -> Option<String> {
        (system == System::Ours).then(|| self.stack.registry_url())
    }

    /// Writes `changes` changes to `sales_order` from 4 connections, half inserts and half
    /// updates, `rows` per transaction, at `rate` changes/s when given (else as fast as
    /// they go); returns how long it took.
    async fn generate(
        &self,
        changes: u64,
        rate: Option<u64>,
        rows: u64,
        synchronous: bool,
    ) -> anyhow::Result<Duration> {
        let issued = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..4u64 {
            let client = self.stack.source.client().await?;
            if synchronous {
                client.batch_execute("SET synchronous_commit = on").await?;
            }
            let issued = Arc::clone(&issued);
            let (first, span) = (self.first_order, self.span);
            tasks.push(tokio::spawn(async move {
                let insert = client
                    .prepare(INSERT_ORDERS)
                    .await?;
                let update = client
                    .prepare(
                        "UPDATE public.sales_order SET units_sold = 1000 + (units_sold + 1) % 99000, \
                         last_updated = now() \
                         WHERE sales_order_id >= $1 AND sales_order_id < $1 + $2::int",
                    )
                    .await?;
                let mut n = worker;
                loop {
                    let at = issued.fetch_add(rows, Ordering::Relaxed);
                    if at >= changes {
                        return anyhow::Ok(());
                    }
                    let take = rows.min(changes - at) as i32;
                    if let Some(rate) = rate {
                        let due = Duration::from_secs_f64(at as f64 / rate as f64);
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            tokio::time::sleep(wait).await;
                        }
                    }
                    if n % 2 == 0 {
                        client.execute(&insert, &[&first, &take]).await?;
                    } else {
                        // Consecutive keys from this connection's quarter of the seed's
                        // range (two connections never lock the same rows: no deadlock).
                        let quarter = span / 4;
                        let room = (quarter - take).max(1);
                        let lo = first
                            + worker as i32 * quarter
                            + ((n as i64 * 7919) % room as i64) as i32;
                        let updated = client.execute(&update, &[&lo, &take]).await?;
                        ensure!(
                            updated == take as u64,
                            "updated {updated} orders of {take} from {lo}: the seed's keys are not consecutive"
                        );
                    }
                    n += 4;
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(started.elapsed())
    }
}

fn dbz_topic(prefix: &str) -> String {
    format!("{prefix}.public.sales_order")
}

/// Kafka Connect standalone running Debezium, and its REST address.
struct Connect {
    process: Component,
    rest: SocketAddr,
}

/// SIGTERM to a JVM and its exit (143, after its shutdown hooks, is a clean one).
async fn stop_java(connect: &mut Component) {
    connect.sigterm();
    let status = connect.wait_exit(Duration::from_secs(120)).await;
    if !(status.success() || status.code() == Some(143)) {
        eprintln!(
            "Kafka Connect exited with {status}:\n{}",
            cdc_stack::process::tail(&connect.log_of_this_run(), 20)
        );
    }
}

/// Waits for the counter while watching the process; the turn's figures.
async fn measure(
    process: &mut Component,
    pid: u32,
    counter: Counter,
    began: Instant,
    clk_tck: f64,
) -> anyhow::Result<Turn> {
    let deadline = began + TURN_TIMEOUT;
    let mut peak_kb = 0;
    while !counter.is_done() {
        ensure!(
            process.is_running(),
            "{} exited during the turn:\n{}",
            process.name,
            cdc_stack::process::tail(&process.log_of_this_run(), 40)
        );
        ensure!(
            Instant::now() < deadline,
            "{}: the turn did not finish in {TURN_TIMEOUT:?} ({} of {} records read)",
            process.name,
            counter.read(),
            counter.expected
        );
        peak_kb = peak_kb.max(peak_rss_kb(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = cpu_seconds(pid, clk_tck);
    peak_kb = peak_kb.max(peak_rss_kb(pid));
    let seen = counter.finish()?;
    let (first, last) = (
        seen.first.context("no record read")?,
        seen.last.context("no record read")?,
    );
    Ok(Turn {
        records: seen.records,
        startup_s: first.duration_since(began).as_secs_f64(),
        span_s: last.duration_since(first).as_secs_f64(),
        cpu_s: cpu,
        peak_rss_mb: peak_kb as f64 / 1024.0,
        rate_series: seen.rate_series(),
        latency_series: seen.latency_series(),
        latencies_us: seen.latencies_us,
    })
}

/// User and system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32, clk_tck: f64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command (which may hold spaces) start at the state, field 3.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15: 11 and 12 after the state.
    (ticks(11) + ticks(12)) / clk_tck
}

/// The process's peak resident memory (`VmHWM`), KiB.
fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Adds `rows` sales orders copying the order `template`'s references, in one
/// statement per million, foreign keys checked once by the template (superuser:
/// `session_replication_role = replica` skips the per-row triggers).
async fn fill_sales_orders(
    source: &cdc_testkit::TestDb,
    template: i32,
    rows: i64,
) -> anyhow::Result<()> {
    let client = source.client().await?;
    client
        .batch_execute("SET session_replication_role = replica; SET synchronous_commit = off")
        .await?;
    let mut left = rows;
    while left > 0 {
        let take = left.min(1_000_000) as i32;
        client.execute(INSERT_ORDERS, &[&template, &take]).await?;
        left -= take as i64;
    }
    client
        .batch_execute("VACUUM ANALYZE public.sales_order")
        .await?;
    Ok(())
}

fn consumer(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    Ok(rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "debezium-vs-capture")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "5")
        .set("fetch.min.bytes", "1")
        .create()?)
}

/// What a counter saw.
#[derive(Debug, Default)]
struct Seen {
    records: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    latencies_us: Vec<i64>,
    /// Records per half second since the first.
    buckets: Vec<u64>,
    /// Latencies of each second's records since the first.
    per_second: Vec<Vec<i64>>,
}

impl Seen {
    fn rate_series(&self) -> Vec<(f64, f64)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| ((i as f64 + 0.5) * BUCKET_S, *n as f64 / BUCKET_S))
            .collect()
    }

    fn latency_series(&self) -> Vec<(f64, f64, f64)> {
        self.per_second
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(i, l)| {
                let mut l = l.clone();
                l.sort_unstable();
                let at = |p: f64| {
                    l[((p / 100.0) * (l.len() - 1) as f64).round() as usize] as f64 / 1000.0
                };
                (i as f64 + 0.5, at(50.0), at(99.0))
            })
            .collect()
    }
}

/// The width of a throughput bucket, seconds.
const BUCKET_S: f64 = 0.5;

/// A consumer thread reading a topic from given offsets until `expected` records with a
/// value are read; with a system, it also takes each record's commit-to-read latency
/// (past the first `skip` records).
struct Counter {
    expected: u64,
    read: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<anyhow::Result<Seen>>,
}

impl Counter {
    fn start(
        bootstrap: String,
        from: Vec<(String, i32, i64)>,
        expected: u64,
        latency_of: Option<(System, u64)>,
        registry: Option<String>,
    ) -> Counter {
        let read = Arc::new(AtomicU64::new(0));
        let runtime = tokio::runtime::Handle::current();
        let thread = {
            let read = Arc::clone(&read);
            std::thread::spawn(move || {
                count(
                    bootstrap, from, expected, latency_of, registry, &read, runtime,
                )
            })
        };
        Counter {
            expected,
            read,
            thread,
        }
    }

    fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    fn is_done(&self) -> bool {
        self.thread.is_finished()
    }

    fn finish(self) -> anyhow::Result<Seen> {
        let seen = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("the counting consumer panicked"))??;
        ensure!(
            seen.records == self.expected,
            "read {} records, expected {}",
            seen.records,
            self.expected
        );
        Ok(seen)
    }
}

fn count(
    bootstrap: String,
    from: Vec<(String, i32, i64)>,
    expected: u64,
    latency_of: Option<(System, u64)>,
    registry: Option<String>,
    read: &AtomicU64,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<Seen> {
    let consumer = consumer(&bootstrap)?;
    let mut assignment = TopicPartitionList::new();
    for (topic, partition, offset) in &from {
        assignment.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.assign(&assignment)?;
    let mut decoder = match registry {
        Some(url) => Some(cdc_lake::RecordDecoder::new(Arc::new(
            cdc_registry::RegistryClient::new(&url)?,
        ))),
        None => None,
    };
    let mut seen = Seen::default();
    if latency_of.is_some() {
        seen.latencies_us.reserve(expected as usize);
    }
    let started = Instant::now();
    // Past the expected count, a moment more to catch a duplicate.
    let mut done_at: Option<Instant> = None;
    loop {
        if let Some(at) = done_at {
            if at.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        ensure!(
            started.elapsed() < TURN_TIMEOUT,
            "read {} of {expected} records in {TURN_TIMEOUT:?}",
            seen.records
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        let now = Instant::now();
        let wall_us = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        let Some(value) = message.payload() else {
            continue; // a tombstone
        };
        seen.records += 1;
        read.store(seen.records, Ordering::Relaxed);
        let since = now
            .duration_since(*seen.first.get_or_insert(now))
            .as_secs_f64();
        seen.last = Some(now);
        let bucket = (since / BUCKET_S) as usize;
        if seen.buckets.len() <= bucket {
            seen.buckets.resize(bucket + 1, 0);
        }
        seen.buckets[bucket] += 1;
        if let Some((system, _)) = latency_of.filter(|&(_, skip)| seen.records > skip) {
            let commit_us = match system {
                System::Debezium => {
                    let value: serde_json::Value = serde_json::from_slice(value)
                        .context("a Debezium record that is not JSON")?;
                    value["source"]["ts_us"]
                        .as_i64()
                        .context("a Debezium record without source.ts_us")?
                }
                System::Ours => {
                    let decoder = decoder.as_mut().context("no registry for our records")?;
                    match runtime.block_on(decoder.decode(
                        message.topic(),
                        message.key(),
                        Some(value),
                    ))? {
                        cdc_lake::Decoded::Change(event, _) => event.source.commit_ts_us,
                        other => bail!("a record of ours that is not a change: {other:?}"),
                    }
                }
            };
            seen.latencies_us.push(wall_us - commit_us);
            let second = since as usize;
            if seen.per_second.len() <= second {
                seen.per_second.resize(second + 1, Vec::new());
            }
            seen.per_second[second].push(wall_us - commit_us);
        }
        if seen.records == expected {
            done_at = Some(now);
        }
    }
    seen.latencies_us.sort_unstable();
    Ok(seen)
}
