//! Capture throughput against `pg_recvlogical` on the same WAL: read only, and
//! end to end into Kafka.
//!
//! ```text
//!   slot C ─► warm-up changes ─► C publishes them (topics made, schemas registered)
//!          ─► slots A, B ─► A, B, C advanced to W ─► simulator writes N changes ─► E
//!
//!   A: pg_recvlogical      W..E  raw pgoutput to /dev/null       (the server's own client)
//!   B: reader ─► count     W..E  decoded, typed ChangeEvents      (stops on the last one)
//!   C: reader ─► KafkaSink W..E  Avro, registry ids, Apache Kafka  (stops once the reader
//!                               confirmed E: every event acknowledged by the broker)
//!   replay: C's records produced again by cdc_kafka::Producer alone (the broker's ceiling)
//! ```
//!
//! Every run must deliver exactly the simulator's changes, table by table, and C's
//! records are counted on the broker too (high watermarks of the table topics: events
//! plus one tombstone per delete); any mismatch fails the run. CPU time of this process,
//! of PostgreSQL and of the broker is read from `/proc` around each run.
//!
//! Usage:
//! ```text
//! cargo run --release -p cdc-benches --bin capture-vs-recvlogical -- [CHANGES] [OPTIONS]
//! cargo run --release -p cdc-benches --bin capture-vs-recvlogical -- --producer-only RECORDS
//! ```
//! Prints a table and one JSON line; `--help` lists the options.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use cdc_avro::AvroCodec;
use cdc_core::{ChangeEvent, Lsn, MetricSet, TransactionInfo};
use cdc_kafka::{ensure_topics, Delivery, KafkaSettings, Producer};
use cdc_postgres::connection::ConnectParams;
use cdc_postgres::reader::{self, CaptureConfig, CaptureStats, SharedStats, SnapshotMode};
use cdc_postgres::sink::{ChangeSink, SinkError, WriteAck};
use cdc_publish::{KafkaSink, PublishConfig, PublishMetrics};
use cdc_registry::{RegistryClient, RegistryStore, StoreConfig};
use cdc_testkit::{KafkaBroker, KafkaOptions, PgCluster, TestDb};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const USAGE: &str = "\
usage: capture-vs-recvlogical [CHANGES] [OPTIONS]       (CHANGES defaults to 200000)
       capture-vs-recvlogical --producer-only RECORDS [--value-bytes N] [OPTIONS]

  --no-kafka              skip the run into Kafka (slots A and B only)
  --no-replay             skip producing the captured records again with the producer alone
  --kafka-set NAME=VALUE  a librdkafka producer property (repeatable), e.g. linger.ms=20
  --delivery MODE         exactly-once (Kafka transactions, capture's default) or at-least-once
  --partitions N          partitions of each table topic (default: PublishConfig's)
  --batch-size N          CaptureConfig.batch_size (events per sink write)
  --max-in-flight N       CaptureConfig.max_in_flight (unacknowledged batches)
  --broker-dir PATH       where the Kafka broker keeps its data (default: a temporary directory)
  --producer-only N       no PostgreSQL: produce N synthetic records into 11 topics and time
                          until every one is acknowledged (the broker's raw ingest rate)
  --value-bytes N         value size of the synthetic records (default 190)";

/// Changes written before W, so that topic creation and schema registration are not timed.
const WARMUP_CHANGES: u64 = 5_000;
/// Prefix of the topics the replay writes.
const REPLAY_PREFIX: &str = "replay";
/// Slot names: A, B and C of the picture above.
const SLOT_RECVLOGICAL: &str = "bench_recvlogical";
const SLOT_COUNT: &str = "bench_capture";
const SLOT_KAFKA: &str = "bench_kafka";
/// How long any one run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);

/// What to run, from the command line.
#[derive(Debug, Clone)]
struct Options {
    changes: u64,
    kafka: bool,
    replay: bool,
    producer_only: Option<u64>,
    value_bytes: usize,
    kafka_properties: Vec<(String, String)>,
    partitions: i32,
    batch_size: Option<usize>,
    max_in_flight: Option<usize>,
    broker_dir: Option<PathBuf>,
    exactly_once: bool,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut options = Options {
            changes: 200_000,
            kafka: true,
            replay: true,
            producer_only: None,
            value_bytes: 190,
            kafka_properties: Vec::new(),
            partitions: PublishConfig::default().partitions,
            batch_size: None,
            max_in_flight: None,
            broker_dir: None,
            exactly_once: true,
        };
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .with_context(|| format!("{arg} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--no-kafka" => options.kafka = false,
                "--no-replay" => options.replay = false,
                "--producer-only" => options.producer_only = Some(value()?.parse()?),
                "--value-bytes" => options.value_bytes = value()?.parse()?,
                "--partitions" => options.partitions = value()?.parse()?,
                "--batch-size" => options.batch_size = Some(value()?.parse()?),
                "--max-in-flight" => options.max_in_flight = Some(value()?.parse()?),
                "--broker-dir" => options.broker_dir = Some(value()?.into()),
                "--delivery" => {
                    options.exactly_once = match value()?.as_str() {
                        "exactly-once" => true,
                        "at-least-once" => false,
                        other => {
                            bail!("--delivery {other}: exactly-once or at-least-once\n{USAGE}")
                        }
                    }
                }
                "--kafka-set" => {
                    let property = value()?;
                    let (name, value) = property
                        .split_once('=')
                        .with_context(|| format!("--kafka-set wants NAME=VALUE, not {property}"))?;
                    options
                        .kafka_properties
                        .push((name.to_owned(), value.to_owned()));
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => {
                    options.changes = other
                        .parse()
                        .with_context(|| format!("unknown argument {other}\n{USAGE}"))?;
                }
            }
        }
        Ok(options)
    }

    /// Producer settings for `bootstrap`: the producer's defaults plus `--kafka-set`.
    fn settings(&self, bootstrap: String) -> KafkaSettings {
        let mut settings = KafkaSettings::new(bootstrap);
        for (name, value) in &self.kafka_properties {
            settings.set(name, value.as_str());
        }
        settings
    }

    fn publish_config(&self) -> PublishConfig {
        let defaults = PublishConfig::default();
        PublishConfig {
            partitions: self.partitions,
            exactly_once: self
                .exactly_once
                .then(|| cdc_publish::ExactlyOnce::for_slot(&defaults.topic_prefix, SLOT_KAFKA)),
            ..defaults
        }
    }

    /// `--kafka-set` as a JSON object, for the report.
    fn properties_json(&self) -> serde_json::Value {
        self.kafka_properties
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse(std::env::args().skip(1))?;
    match options.producer_only {
        Some(records) => producer_only(&options, records).await,
        None => compare(&options).await,
    }
}

/// Slots A, B and C over the same WAL; see the module docs.
async fn compare(options: &Options) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    cdc_testkit::open_to_postgres(root.path())?;
    std::env::set_var("TOTESYS_CDC_TEST_PG_DIR", root.path().join("pg"));
    let db = TestDb::create().await?;
    let cluster: PgCluster = db.cluster.clone();
    let client = db.client().await?;
    cdc_sim::create_schema(&client, cdc_sim::SchemaVariant::default()).await?;
    cdc_sim::seed(&client, 1).await?;
    client
        .batch_execute("CREATE PUBLICATION bench FOR ALL TABLES")
        .await?;
    // Warm-up: C publishes it (creating topics, registering schemas). A and B are made
    // after it, and all three are moved to the same start W, so that none of them has
    // the warm-up or the registry's database to read through.
    if options.kafka {
        create_slot(&client, SLOT_KAFKA).await?;
    }
    eprintln!("warm-up: {WARMUP_CHANGES} changes…");
    let warm_events = total(&fill(&client, WARMUP_CHANGES, 1).await?);
    let mut kafka = if options.kafka {
        let warm_end = insert_lsn(&client).await?;
        Some(KafkaRun::start(options, &db, root.path(), warm_end, warm_events).await?)
    } else {
        None
    };
    let mut slots = vec![SLOT_RECVLOGICAL, SLOT_COUNT];
    for slot in &slots {
        create_slot(&client, slot).await?;
    }
    if options.kafka {
        slots.push(SLOT_KAFKA);
    }
    let start = insert_lsn(&client).await?;
    advance_slots(&client, &slots, start).await?;

    eprintln!("filling the slots with {} changes…", options.changes);
    let fill_start = Instant::now();
    let stats = fill(&client, options.changes, 7).await?;
    let workload = Workload {
        changes: options.changes,
        fill_secs: fill_start.elapsed().as_secs_f64(),
        end: insert_lsn(&client).await?,
        wal_bytes: 0,
        written: stats
            .per_table()
            .iter()
            .map(|(table, c)| (table.name().to_owned(), c.inserts + c.updates + c.deletes))
            .collect(),
    };
    let workload = Workload {
        wal_bytes: client
            .query_one(
                &format!(
                    "SELECT pg_wal_lsn_diff('{}', '{start}')::int8",
                    workload.end
                ),
                &[],
            )
            .await?
            .get(0),
        ..workload
    };
    eprintln!("{stats}");
    let cpu = CpuProbe::new(Some(&cluster.root));

    eprintln!("A: pg_recvlogical…");
    let recvlogical = recvlogical(&db, workload.end, &cpu)?;
    eprintln!("B: reader → count…");
    let count = count(options, &db, root.path(), &workload, &cpu).await?;
    let kafka_report = match kafka.as_mut() {
        Some(run) => {
            eprintln!("C: reader → Kafka…");
            Some(run.measure(options, &workload, &cpu).await?)
        }
        None => None,
    };
    report(
        options,
        &workload,
        &recvlogical,
        &count,
        kafka_report.as_ref(),
    );

    if let Some(run) = kafka {
        run.stop().await;
    }
    drop(db);
    cluster.stop()?;
    Ok(())
}

/// The changes all three slots read, W..E.
struct Workload {
    changes: u64,
    fill_secs: f64,
    end: Lsn,
    wal_bytes: i64,
    /// Changes per table, as the simulator counted them.
    written: BTreeMap<String, u64>,
}

impl Workload {
    fn events(&self) -> u64 {
        self.written.values().sum()
    }
}

/// How long a run took and the CPU it used.
struct Timed {
    secs: f64,
    cpu: CpuUse,
}

/// A: `pg_recvlogical` reading raw pgoutput to `/dev/null` up to `end`.
fn recvlogical(db: &TestDb, end: Lsn, cpu: &CpuProbe) -> anyhow::Result<Timed> {
    let before = cpu.sample();
    let started = Instant::now();
    let status = db
        .cluster
        .command("pg_recvlogical")
        .args([
            "-d",
            &db.conn_string(),
            "--slot",
            SLOT_RECVLOGICAL,
            "--start",
        ])
        .args(["-o", "proto_version=2", "-o", "publication_names=bench"])
        .args(["-f", "/dev/null", "--endpos", &end.to_string(), "--no-loop"])
        .env("PGPASSWORD", cdc_testkit::SUPERUSER_PASSWORD)
        .stdout(Stdio::null())
        .status()
        .context("run pg_recvlogical")?;
    if !status.success() {
        bail!("pg_recvlogical failed: {status}");
    }
    Ok(Timed {
        secs: started.elapsed().as_secs_f64(),
        cpu: cpu.sample().since(before),
    })
}

/// B: our reader decoding, typing and handing over every event to a sink that only
/// counts; stops on the last one.
async fn count(
    options: &Options,
    db: &TestDb,
    root: &Path,
    workload: &Workload,
    cpu: &CpuProbe,
) -> anyhow::Result<Timed> {
    let config = capture_config(options, db, SLOT_COUNT, root.join("state-count"))?;
    let (stop, stop_rx) = watch::channel(false);
    let mut counter = Probe::new(Discard, workload.events(), Some(stop));
    let stats: SharedStats = Arc::default();
    let before = cpu.sample();
    let started = Instant::now();
    tokio::time::timeout(
        RUN_TIMEOUT,
        reader::run(&config, &mut counter, stop_rx, stats, None),
    )
    .await
    .context("capture did not reach the end")??;
    let timed = Timed {
        secs: started.elapsed().as_secs_f64(),
        cpu: cpu.sample().since(before),
    };
    check_counts("reader → count", &workload.written, &counter.per_table)?;
    Ok(timed)
}

/// Prints the table and the JSON line.
fn report(
    options: &Options,
    workload: &Workload,
    recvlogical: &Timed,
    count: &Timed,
    kafka: Option<&KafkaReport>,
) {
    let events = workload.events();
    println!(
        "changes written: {} in {:.1} s ({:.0}/s), WAL {:.1} MB, after {WARMUP_CHANGES} warm-up changes",
        workload.changes,
        workload.fill_secs,
        workload.changes as f64 / workload.fill_secs,
        workload.wal_bytes as f64 / 1e6
    );
    println!();
    println!(
        "{:<36} {:>8} {:>10} {:>6}   CPU cores: client / postgres / broker",
        "W..E", "time", "changes/s", "vs A"
    );
    let row = |name: &str, secs: f64, cpu: Option<&CpuUse>| {
        let line = format!(
            "{name:<36} {secs:>6.2} s {:>10.0} {:>6.2}   {}",
            events as f64 / secs,
            recvlogical.secs / secs,
            cpu.map_or_else(String::new, |c| c.cores(secs))
        );
        println!("{}", line.trim_end());
    };
    row(
        "A pg_recvlogical → /dev/null",
        recvlogical.secs,
        Some(&recvlogical.cpu),
    );
    row("B reader → count", count.secs, Some(&count.cpu));
    if let Some(k) = kafka {
        row(
            "C reader → Kafka, confirmed durable",
            k.confirmed_secs,
            Some(&k.cpu),
        );
        row("  all events handed to the sink", k.handed_over_secs, None);
        row("  last broker ack", k.last_ack_secs, None);
        println!(
            "  {} records ({events} events + {} tombstones), {:.1} MB of keys and values \
             ({:.0} B/event), {:.2} s inside KafkaSink::write",
            k.records,
            k.records - events,
            k.bytes as f64 / 1e6,
            k.bytes as f64 / events as f64,
            k.write_secs
        );
        if k.commits > 0 {
            println!(
                "  {} Kafka transactions, {:.2} s committing them ({:.1} ms each)",
                k.commits,
                k.commit_secs,
                1000.0 * k.commit_secs / k.commits as f64
            );
        }
        if let Some(r) = &k.replay {
            println!(
                "producer alone, the same records: {:.2} s, {:.0} records/s (C: {:.0} records/s)   \
                 CPU cores: {}",
                r.secs,
                k.records as f64 / r.secs,
                k.records as f64 / k.confirmed_secs,
                r.cpu.cores(r.secs)
            );
        }
        println!(
            "settings: {}, {} partitions per topic, producer {:?} over cdc-kafka's defaults",
            delivery(options),
            options.partitions,
            options.kafka_properties
        );
    }
    println!(
        "{}",
        json!({
            "bench": "capture_vs_recvlogical", "changes": workload.changes, "events": events,
            "wal_bytes": workload.wal_bytes, "warmup_changes": WARMUP_CHANGES,
            "pg_recvlogical_secs": recvlogical.secs, "reader_secs": count.secs,
            "pg_recvlogical_changes_per_sec": events as f64 / recvlogical.secs,
            "reader_changes_per_sec": events as f64 / count.secs,
            "ratio": recvlogical.secs / count.secs,
            "kafka": kafka.map(|k| k.json(events, recvlogical.secs)),
            "partitions": options.partitions, "kafka_properties": options.properties_json(),
            "delivery": delivery(options),
            "cpu_secs": {
                "pg_recvlogical": recvlogical.cpu.json(), "reader": count.cpu.json(),
                "kafka": kafka.map(|k| k.cpu.json()),
            },
        })
    );
}

/// C's delivery mode, as capture's `--delivery` names it.
fn delivery(options: &Options) -> &'static str {
    if options.exactly_once {
        "exactly-once"
    } else {
        "at-least-once"
    }
}

/// Runs the simulator flat out for `changes` changes.
async fn fill(
    client: &tokio_postgres::Client,
    changes: u64,
    seed: u64,
) -> anyhow::Result<cdc_sim::WorkloadStats> {
    let workload = cdc_sim::WorkloadConfig {
        rate_per_sec: f64::INFINITY,
        duration: None,
        max_changes: Some(changes),
        seed,
        ..cdc_sim::WorkloadConfig::default()
    };
    let (_keep, never) = watch::channel(false);
    Ok(cdc_sim::run_workload(client, &workload, never).await?)
}

async fn create_slot(client: &tokio_postgres::Client, slot: &str) -> anyhow::Result<()> {
    client
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .with_context(|| format!("create slot {slot}"))?;
    Ok(())
}

/// Moves every slot in `slots` to `lsn`, once the server flushed that far (a slot
/// cannot be advanced past the flushed WAL, which may lag the insert position) and no
/// slot is in use.
async fn advance_slots(
    client: &tokio_postgres::Client,
    slots: &[&str],
    lsn: Lsn,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let flushed: Lsn = client
            .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
            .await?
            .get::<_, String>(0)
            .parse()?;
        let active: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE active",
                &[],
            )
            .await?
            .get(0);
        if flushed >= lsn && active == 0 {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "WAL flushed to {flushed} only, not {lsn}, or {active} slots still in use"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for slot in slots {
        let confirmed: String = client
            .query_one(
                &format!(
                    "SELECT end_lsn::text FROM pg_replication_slot_advance('{slot}', '{lsn}')"
                ),
                &[],
            )
            .await
            .with_context(|| format!("advance slot {slot} to {lsn}"))?
            .get(0);
        ensure!(
            confirmed.parse::<Lsn>()? == lsn,
            "slot {slot} advanced to {confirmed}, not {lsn}"
        );
    }
    Ok(())
}

/// Changes the simulator wrote, over all tables.
fn total(stats: &cdc_sim::WorkloadStats) -> u64 {
    let t = stats.totals();
    t.inserts + t.updates + t.deletes
}

async fn insert_lsn(client: &tokio_postgres::Client) -> anyhow::Result<Lsn> {
    Ok(client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await?
        .get::<_, String>(0)
        .parse()?)
}

fn capture_config(
    options: &Options,
    db: &TestDb,
    slot: &str,
    state_dir: PathBuf,
) -> anyhow::Result<CaptureConfig> {
    let mut config = CaptureConfig::new(ConnectParams::parse(&db.conn_string())?);
    config.slot = slot.into();
    config.publication = "bench".into();
    config.snapshot_mode = SnapshotMode::Never;
    config.heartbeat_interval = None;
    // Frequent status updates, so the confirmed LSN is seen soon after it is durable.
    config.status_interval = Duration::from_millis(100);
    config.state_dir = state_dir;
    if let Some(n) = options.batch_size {
        config.batch_size = n;
    }
    if let Some(n) = options.max_in_flight {
        config.max_in_flight = n;
    }
    Ok(config)
}

/// Fails unless `read` holds exactly the per-table counts the simulator `written`.
fn check_counts(
    run: &str,
    written: &BTreeMap<String, u64>,
    read: &BTreeMap<String, u64>,
) -> anyhow::Result<()> {
    let mut wrong = Vec::new();
    for (table, n) in written {
        let got = read.get(table).copied().unwrap_or(0);
        if got != *n {
            wrong.push(format!("{table}: wrote {n}, read {got}"));
        }
    }
    for (table, got) in read {
        if !written.contains_key(table) {
            wrong.push(format!("{table}: wrote 0, read {got}"));
        }
    }
    ensure!(
        wrong.is_empty(),
        "{run}: events differ from the simulator's changes: {}",
        wrong.join("; ")
    );
    Ok(())
}

/// A sink that drops everything, durable at once.
struct Discard;

impl ChangeSink for Discard {
    async fn write(&mut self, _batch: Vec<ChangeEvent>) -> Result<WriteAck, SinkError> {
        Ok(WriteAck::durable())
    }
}

/// Wraps the sink under test: counts what it is handed, times its `write`, notes when
/// the last expected event was handed over and when the last ack resolved; stops
/// capture then when given a stop sender.
///
/// The end is found by count, not by LSN: events of a regular transaction carry its
/// commit LSN as `transaction.end_lsn` (the end is only known at Commit), so no event
/// reaches the end LSN taken after the workload.
struct Probe<S> {
    inner: S,
    expected: u64,
    events: u64,
    per_table: BTreeMap<String, u64>,
    write_time: Duration,
    end_handed_over: Option<Instant>,
    last_ack: Arc<Mutex<Option<Instant>>>,
    stop_on_end: Option<watch::Sender<bool>>,
}

impl<S: ChangeSink> Probe<S> {
    fn new(inner: S, expected: u64, stop_on_end: Option<watch::Sender<bool>>) -> Self {
        Probe {
            inner,
            expected,
            events: 0,
            per_table: BTreeMap::new(),
            write_time: Duration::ZERO,
            end_handed_over: None,
            last_ack: Arc::default(),
            stop_on_end,
        }
    }

    /// Forgets the counts and times, for a new run of `expected` events.
    fn reset(&mut self, expected: u64) {
        self.expected = expected;
        self.events = 0;
        self.per_table.clear();
        self.write_time = Duration::ZERO;
        self.end_handed_over = None;
        if let Ok(mut last) = self.last_ack.lock() {
            *last = None;
        }
    }

    fn last_ack(&self) -> Option<Instant> {
        self.last_ack.lock().ok().and_then(|last| *last)
    }

    /// An ack that resolves with `ack`, noting the time it did.
    fn watch(&self, mut ack: WriteAck) -> WriteAck {
        let clock = Arc::clone(&self.last_ack);
        let note = move || {
            if let Ok(mut last) = clock.lock() {
                let now = Instant::now();
                *last = Some(last.map_or(now, |t| t.max(now)));
            }
        };
        match ack.poll_now() {
            Some(Ok(())) => {
                note();
                WriteAck::durable()
            }
            Some(Err(e)) => {
                let (failed, sender) = WriteAck::pending();
                sender.send(Err(e));
                failed
            }
            None => {
                let (watched, sender) = WriteAck::pending();
                tokio::spawn(async move {
                    let result = ack.wait().await;
                    if result.is_ok() {
                        note();
                    }
                    sender.send(result);
                });
                watched
            }
        }
    }
}

impl<S: ChangeSink + Send> ChangeSink for Probe<S> {
    async fn start(&mut self) -> Result<Option<Lsn>, SinkError> {
        self.inner.start().await
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush().await
    }

    fn flush_deadline(&self) -> Option<Instant> {
        self.inner.flush_deadline()
    }

    async fn write(&mut self, batch: Vec<ChangeEvent>) -> Result<WriteAck, SinkError> {
        self.events += batch.len() as u64;
        for event in &batch {
            let table = &event.table.name.name;
            match self.per_table.get_mut(table) {
                Some(n) => *n += 1,
                None => {
                    self.per_table.insert(table.clone(), 1);
                }
            }
        }
        let reaches_end = self.events >= self.expected && self.end_handed_over.is_none();
        let started = Instant::now();
        let ack = self.inner.write(batch).await?;
        self.write_time += started.elapsed();
        if reaches_end {
            self.end_handed_over = Some(Instant::now());
            if let Some(stop) = &self.stop_on_end {
                let _ = stop.send(true);
            }
        }
        Ok(self.watch(ack))
    }

    async fn commit(&mut self, txn: &TransactionInfo, events: u64) -> Result<WriteAck, SinkError> {
        let ack = self.inner.commit(txn, events).await?;
        Ok(self.watch(ack))
    }
}

/// The schema registry served in-process over a database of its own.
struct Registry {
    client: Arc<RegistryClient>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    db: TestDb,
}

impl Registry {
    async fn start() -> anyhow::Result<Self> {
        let db = TestDb::create().await?;
        let store =
            RegistryStore::connect(StoreConfig::new(cdc_core::Secret::new(db.conn_string())))
                .await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(cdc_registry::serve(listener, store, async move {
            let _ = stopped.await;
        }));
        Ok(Registry {
            client: Arc::new(RegistryClient::new(&url)?),
            stop,
            task,
            db,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        drop(self.db);
    }
}

/// Starts an Apache Kafka broker sized for benchmarks in a temporary directory (under
/// `--broker-dir` when given), removed when the returned guard drops.
fn start_broker(options: &Options) -> anyhow::Result<(KafkaBroker, tempfile::TempDir)> {
    let dir = match &options.broker_dir {
        Some(parent) => tempfile::tempdir_in(parent)?,
        None => tempfile::tempdir()?,
    };
    let broker = KafkaBroker::start_with(dir.path(), KafkaOptions::for_benchmarks())?;
    Ok((broker, dir))
}

/// Slot C: broker, registry and a [`KafkaSink`] that already published the warm-up.
struct KafkaRun {
    broker: KafkaBroker,
    _broker_dir: tempfile::TempDir,
    registry: Registry,
    probe: Probe<KafkaSink>,
    metrics: PublishMetrics,
    config: CaptureConfig,
    settings: KafkaSettings,
    publish: PublishConfig,
    warmup_secs: f64,
}

/// What the run into Kafka measured.
struct KafkaReport {
    confirmed_secs: f64,
    handed_over_secs: f64,
    last_ack_secs: f64,
    write_secs: f64,
    /// Kafka transactions committed and the time spent committing them (exactly-once).
    commits: u64,
    commit_secs: f64,
    records: u64,
    bytes: u64,
    warmup_secs: f64,
    cpu: CpuUse,
    replay: Option<ReplayReport>,
}

struct ReplayReport {
    secs: f64,
    cpu: CpuUse,
}

impl KafkaReport {
    fn json(&self, events: u64, recv_secs: f64) -> serde_json::Value {
        json!({
            "secs": self.confirmed_secs,
            "changes_per_sec": events as f64 / self.confirmed_secs,
            "ratio": recv_secs / self.confirmed_secs,
            "handed_over_secs": self.handed_over_secs,
            "last_ack_secs": self.last_ack_secs,
            "sink_write_secs": self.write_secs,
            "kafka_transactions": self.commits,
            "kafka_commit_secs": self.commit_secs,
            "records": self.records,
            "bytes": self.bytes,
            "warmup_secs": self.warmup_secs,
            "replay_secs": self.replay.as_ref().map(|r| r.secs),
            "replay_records_per_sec": self.replay.as_ref().map(|r| self.records as f64 / r.secs),
            "replay_cpu_secs": self.replay.as_ref().map(|r| r.cpu.json()),
        })
    }
}

impl KafkaRun {
    /// Starts the broker and registry and publishes slot C's warm-up (up to `warm_end`).
    async fn start(
        options: &Options,
        db: &TestDb,
        root: &Path,
        warm_end: Lsn,
        warm_events: u64,
    ) -> anyhow::Result<Self> {
        let (broker, broker_dir) = start_broker(options)?;
        let registry = Registry::start().await?;
        let settings = options.settings(broker.bootstrap());
        let publish = options.publish_config();
        let metrics = PublishMetrics::unregistered()?;
        let sink = KafkaSink::new(
            &settings,
            registry.client.clone(),
            Arc::new(AvroCodec::new()),
            publish.clone(),
            metrics.clone(),
        )
        .await?;
        let config = capture_config(options, db, SLOT_KAFKA, root.join("state-kafka"))?;
        let mut run = KafkaRun {
            broker,
            _broker_dir: broker_dir,
            registry,
            probe: Probe::new(sink, warm_events, None),
            metrics,
            config,
            settings,
            publish,
            warmup_secs: 0.0,
        };
        let started = Instant::now();
        run.until_confirmed(warm_end, warm_events).await?;
        run.warmup_secs = started.elapsed().as_secs_f64();
        eprintln!(
            "warm-up into Kafka (topics, schemas, {} events): {:.2} s",
            run.probe.events, run.warmup_secs
        );
        Ok(run)
    }

    /// Runs capture on slot C until its confirmed LSN reaches `end` (`expected` events
    /// on), then stops it; returns when that was seen and the run's stats.
    async fn until_confirmed(
        &mut self,
        end: Lsn,
        expected: u64,
    ) -> anyhow::Result<(Instant, CaptureStats)> {
        self.probe.reset(expected);
        let stats: SharedStats = Arc::new(Mutex::new(CaptureStats::default()));
        let (stop, stop_rx) = watch::channel(false);
        let capture = reader::run(&self.config, &mut self.probe, stop_rx, stats.clone(), None);
        tokio::pin!(capture);
        let confirmed = async {
            let mut said = Instant::now();
            loop {
                let (received, confirmed, transactions) = stats
                    .lock()
                    .map(|s| (s.received_lsn, s.confirmed_lsn, s.transactions))
                    .unwrap_or_default();
                if confirmed >= end {
                    return Instant::now();
                }
                if said.elapsed() >= Duration::from_secs(10) {
                    eprintln!(
                        "  waiting for {end}: received {received}, confirmed {confirmed}, \
                         {transactions} transactions"
                    );
                    said = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let confirmed_at = tokio::time::timeout(RUN_TIMEOUT, async {
            tokio::select! {
                result = &mut capture => match result {
                    Ok(()) => bail!("capture stopped before confirming {end}"),
                    Err(e) => Err(anyhow::Error::new(e).context(format!("capture before confirming {end}"))),
                },
                at = confirmed => Ok(at),
            }
        })
        .await
        .with_context(|| format!("capture did not confirm {end} within {RUN_TIMEOUT:?}"))??;
        let _ = stop.send(true);
        capture.await.context("capture's graceful stop")?;
        let stats = stats.lock().map(|s| s.clone()).unwrap_or_default();
        Ok((confirmed_at, stats))
    }

    /// Slot C from W to `end`: timed until durable, then the broker's counts checked.
    async fn measure(
        &mut self,
        options: &Options,
        workload: &Workload,
        cpu: &CpuProbe,
    ) -> anyhow::Result<KafkaReport> {
        let bootstrap = self.broker.bootstrap();
        let prefix = format!("{}.", self.publish.topic_prefix);
        let highs_before = high_watermarks(&bootstrap, &prefix).await?;
        let bytes_before = self.metrics.bytes.get();
        let commits_before = self.metrics.kafka_transactions.get();
        let commit_secs_before = self.metrics.kafka_commit_seconds.get_sample_sum();
        let before = cpu.sample();
        let started = Instant::now();
        let (confirmed_at, stats) = self
            .until_confirmed(workload.end, workload.events())
            .await?;
        let cpu_use = cpu.sample().since(before);
        let secs = |at: Option<Instant>| at.map_or(f64::NAN, |t| (t - started).as_secs_f64());
        let handed_over_secs = secs(self.probe.end_handed_over);
        let last_ack_secs = secs(self.probe.last_ack());
        let confirmed_secs = secs(Some(confirmed_at));
        check_counts("reader → Kafka", &workload.written, &self.probe.per_table)?;

        // Every event is on the broker once: records = events + a tombstone per delete.
        let highs_after = high_watermarks(&bootstrap, &prefix).await?;
        let mut expected_records = 0;
        for counts in stats.per_table.values() {
            expected_records += counts.inserts
                + counts.updates
                + 2 * counts.deletes
                + counts.truncates * self.publish.partitions as u64;
        }
        let transaction_topic = self.publish.transaction_topic_name();
        let mut offsets = 0;
        let mut ranges = BTreeMap::new();
        for (partition, high) in &highs_after {
            if partition.0 == transaction_topic {
                continue;
            }
            let low = highs_before.get(partition).copied().unwrap_or(0);
            offsets += (high - low) as u64;
            ranges.insert(partition.clone(), (low, *high));
        }
        // In Kafka transactions, commit markers take offsets too: count what a
        // read_committed reader reads instead.
        let (records, captured) = if self.publish.exactly_once.is_some() {
            let captured = read_records(&bootstrap, ranges.clone()).await?;
            (captured.len() as u64, Some(captured))
        } else {
            (offsets, None)
        };
        ensure!(
            records == expected_records,
            "the broker holds {records} new records, expected {expected_records} \
             ({} events and their tombstones): {highs_after:?}",
            self.probe.events
        );

        let replay = if options.replay {
            eprintln!("replay: the same {records} records, producer alone…");
            let captured = match captured {
                Some(captured) => captured,
                None => read_records(&bootstrap, ranges).await?,
            };
            Some(self.replay(captured, cpu).await?)
        } else {
            None
        };
        Ok(KafkaReport {
            confirmed_secs,
            handed_over_secs,
            last_ack_secs,
            write_secs: self.probe.write_time.as_secs_f64(),
            commits: self.metrics.kafka_transactions.get() - commits_before,
            commit_secs: self.metrics.kafka_commit_seconds.get_sample_sum() - commit_secs_before,
            records,
            bytes: self.metrics.bytes.get() - bytes_before,
            warmup_secs: self.warmup_secs,
            cpu: cpu_use,
            replay,
        })
    }

    /// Produces `records` again into `replay.*` topics with a producer of its own.
    async fn replay(&self, records: Vec<Rec>, cpu: &CpuProbe) -> anyhow::Result<ReplayReport> {
        let mut partitions: BTreeMap<String, i32> = BTreeMap::new();
        for r in &records {
            let n = partitions.entry(r.topic.clone()).or_default();
            *n = (*n).max(r.partition + 1);
        }
        let specs: Vec<_> = partitions
            .iter()
            .map(|(topic, n)| self.publish.topic_spec(topic, *n))
            .collect();
        ensure_topics(&self.settings, &specs).await?;
        let producer = Producer::new(&self.settings)?;
        for topic in partitions.keys() {
            producer.partition_count(topic).await?;
        }
        let before = cpu.sample();
        let secs = produce_all(&producer, &records).await?;
        Ok(ReplayReport {
            secs,
            cpu: cpu.sample().since(before),
        })
    }

    async fn stop(self) {
        drop(self.probe);
        self.registry.stop().await;
        drop(self.broker);
    }
}

/// One record to produce (again).
struct Rec {
    topic: String,
    partition: i32,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// Queues every record, then waits for every ack; returns the seconds from the first
/// send to the last ack.
async fn produce_all(producer: &Producer, records: &[Rec]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut deliveries: Vec<Delivery> = Vec::with_capacity(records.len());
    for r in records {
        deliveries.push(
            producer
                .send_to(
                    &r.topic,
                    Some(r.partition),
                    r.key.as_deref(),
                    r.value.as_deref(),
                )
                .await?,
        );
    }
    for delivery in deliveries {
        delivery.await?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// High watermarks of every partition of the topics named `<prefix>…`.
async fn high_watermarks(
    bootstrap: &str,
    prefix: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let (bootstrap, prefix) = (bootstrap.to_owned(), prefix.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer = consumer(&bootstrap)?;
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
        let mut highs = BTreeMap::new();
        for topic in metadata.topics() {
            if !topic.name().starts_with(&prefix) {
                continue;
            }
            for partition in topic.partitions() {
                let (_, high) = consumer.fetch_watermarks(
                    topic.name(),
                    partition.id(),
                    Duration::from_secs(10),
                )?;
                highs.insert((topic.name().to_owned(), partition.id()), high);
            }
        }
        Ok(highs)
    })
    .await?
}

/// Reads the records in `ranges` (offsets `[low, high)` per partition), in about the
/// order they were produced (by timestamp), renamed to the replay topics.
async fn read_records(
    bootstrap: &str,
    ranges: BTreeMap<(String, i32), (i64, i64)>,
) -> anyhow::Result<Vec<Rec>> {
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer = consumer(&bootstrap)?;
        let mut assignment = TopicPartitionList::new();
        let mut next = BTreeMap::new();
        for ((topic, partition), (low, high)) in &ranges {
            if low < high {
                assignment.add_partition_offset(topic, *partition, Offset::Offset(*low))?;
                next.insert((topic.clone(), *partition), (*low, *high));
            }
        }
        consumer.assign(&assignment)?;
        let mut read = Vec::new();
        let started = Instant::now();
        while next.values().any(|(n, high)| n < high) {
            ensure!(
                started.elapsed() < Duration::from_secs(300),
                "reading the captured records back stalled at {next:?}"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                // Transaction markers end a partition without a record at its last offset.
                for e in consumer.position()?.elements() {
                    if let (Offset::Offset(at), Some((n, _))) = (
                        e.offset(),
                        next.get_mut(&(e.topic().to_owned(), e.partition())),
                    ) {
                        *n = (*n).max(at);
                    }
                }
                continue;
            };
            let message = message?;
            let topic = message.topic().to_owned();
            if let Some((n, _)) = next.get_mut(&(topic.clone(), message.partition())) {
                *n = message.offset() + 1;
            }
            read.push((
                message.timestamp().to_millis().unwrap_or(0),
                Rec {
                    topic: format!("{REPLAY_PREFIX}.{topic}"),
                    partition: message.partition(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                },
            ));
        }
        read.sort_by_key(|(ts, _)| *ts);
        Ok(read.into_iter().map(|(_, r)| r).collect())
    })
    .await?
}

fn consumer(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    Ok(rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "capture-vs-recvlogical")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?)
}

/// `--producer-only`: the broker's ingest rate for synthetic records shaped like
/// capture's (11 topics, a short key, `--value-bytes` of Avro-like text), no PostgreSQL.
async fn producer_only(options: &Options, count: u64) -> anyhow::Result<()> {
    let (broker, _dir) = start_broker(options)?;
    let settings = options.settings(broker.bootstrap());
    let publish = options.publish_config();
    let topics: Vec<String> = (0..11).map(|i| format!("synthetic.table_{i}")).collect();
    let specs: Vec<_> = topics
        .iter()
        .map(|t| publish.topic_spec(t, options.partitions))
        .collect();
    ensure_topics(&settings, &specs).await?;
    let producer = Producer::new(&settings)?;
    for topic in &topics {
        producer.partition_count(topic).await?;
    }
    let partitions = u64::try_from(options.partitions.max(1))?;
    let records: Vec<Rec> = (0..count)
        .map(|i| {
            let mut key = vec![0, 0, 0, 0, 1];
            key.extend_from_slice(&(i / 11).to_le_bytes()[..3]);
            Rec {
                topic: topics[(i % 11) as usize].clone(),
                partition: ((i / 11) % partitions) as i32,
                key: Some(key),
                value: Some(synthetic_value(i, options.value_bytes)),
            }
        })
        .collect();
    let cpu = CpuProbe::new(None);
    let before = cpu.sample();
    let secs = produce_all(&producer, &records).await?;
    let used = cpu.sample().since(before);
    let highs = high_watermarks(&broker.bootstrap(), "synthetic.").await?;
    let on_broker: i64 = highs.values().sum();
    ensure!(
        on_broker == i64::try_from(count)?,
        "the broker holds {on_broker} records, {count} were acknowledged"
    );
    println!(
        "producer alone: {count} records of {} B in {secs:.2} s ({:.0} records/s, {:.1} MB/s)   CPU cores: {}",
        options.value_bytes + 8,
        count as f64 / secs,
        count as f64 * (options.value_bytes + 8) as f64 / 1e6 / secs,
        used.cores(secs)
    );
    println!(
        "{}",
        json!({
            "bench": "producer_only", "records": count, "value_bytes": options.value_bytes,
            "secs": secs, "records_per_sec": count as f64 / secs,
            "partitions": options.partitions, "kafka_properties": options.properties_json(),
            "cpu_secs": used.json(),
        })
    );
    Ok(())
}

/// A value of `len` bytes: a Confluent header and row-like text (numbers, dates, codes).
fn synthetic_value(i: u64, len: usize) -> Vec<u8> {
    let mut value = vec![0, 0, 0, 0, 2];
    let mut n = i;
    while value.len() < len {
        n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let field = format!(
            "{}|2026-11-{:02} {:02}:{:02}:{:02}.{:06}|GBP|{}.{:02}|",
            n % 100_000,
            n % 28 + 1,
            n % 24,
            n % 60,
            (n >> 8) % 60,
            (n >> 16) % 1_000_000,
            (n >> 24) % 10_000,
            (n >> 40) % 100
        );
        value.extend_from_slice(field.as_bytes());
    }
    value.truncate(len);
    value
}

/// CPU seconds used by this process (and the children it reaped, pg_recvlogical among
/// them), by PostgreSQL (postmaster and its children) and by the Kafka broker.
struct CpuProbe {
    postmaster_pid_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    client: f64,
    postgres: f64,
    broker: f64,
}

impl CpuUse {
    fn since(self, before: CpuUse) -> CpuUse {
        CpuUse {
            client: self.client - before.client,
            postgres: self.postgres - before.postgres,
            broker: self.broker - before.broker,
        }
    }

    /// Average cores busy over `secs`.
    fn cores(&self, secs: f64) -> String {
        format!(
            "{:.2} / {:.2} / {:.2}",
            self.client / secs,
            self.postgres / secs,
            self.broker / secs
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({ "client": self.client, "postgres": self.postgres, "broker": self.broker })
    }
}

/// One line of `/proc/<pid>/stat`, the fields used here.
struct ProcStat {
    pid: u32,
    ppid: u32,
    comm: String,
    /// utime + stime, and cutime + cstime, in seconds.
    own: f64,
    reaped: f64,
}

impl CpuProbe {
    fn new(pg_root: Option<&Path>) -> Self {
        CpuProbe {
            postmaster_pid_file: pg_root.map(|root| root.join("data/postmaster.pid")),
        }
    }

    fn sample(&self) -> CpuUse {
        let me = std::process::id();
        let postmaster: Option<u32> = self
            .postmaster_pid_file
            .as_ref()
            .and_then(|file| std::fs::read_to_string(file).ok())
            .and_then(|text| text.lines().next()?.trim().parse().ok());
        let mut used = CpuUse::default();
        for stat in all_processes() {
            if stat.pid == me {
                used.client += stat.own + stat.reaped;
            } else if stat.ppid == me && stat.comm == "java" {
                used.broker += stat.own;
            } else if Some(stat.pid) == postmaster {
                used.postgres += stat.own + stat.reaped;
            } else if Some(stat.ppid) == postmaster {
                used.postgres += stat.own;
            }
        }
        used
    }
}

fn all_processes() -> Vec<ProcStat> {
    // /proc reports in USER_HZ, which Linux fixes at 100 per second.
    const TICKS: f64 = 100.0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let text = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        let (head, tail) = text.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let field = |i: usize| -> Option<f64> { fields.get(i)?.parse().ok() };
        // After the comm: state, ppid, …; utime is stat field 14, i.e. index 11 here.
        Some(ProcStat {
            pid,
            ppid: fields.get(1)?.parse().ok()?,
            comm,
            own: (field(11)? + field(12)?) / TICKS,
            reaped: (field(13)? + field(14)?) / TICKS,
        })
    })
    .collect()
}
