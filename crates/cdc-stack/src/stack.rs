//! The real stack for capture-into-Kafka tests: a source database, an Apache Kafka broker, our
//! schema registry over its own database, capture running into a [`KafkaSink`], and a
//! plain rdkafka consumer reading the topics back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdc_avro::{decode_confluent, decode_event, decode_value, AvroCodec, DecodedEvent};
use cdc_core::sink::{ChangeSink, SinkError, WriteAck};
use cdc_core::{ChangeEvent, Lsn, MetricSet, Position, TableSchema, TransactionInfo};
use cdc_kafka::KafkaSettings;
use cdc_postgres::connection::ConnectParams;
use cdc_postgres::error::SourceError;
use cdc_postgres::reader::{self, CaptureConfig, CaptureStats, SharedStats, SlotPositions};
use cdc_publish::{KafkaSink, PublishConfig, PublishMetrics};
use cdc_registry::{RegistryClient, RegistryStore, SchemaId, StoreConfig};
use cdc_testkit::{KafkaBroker, TestDb};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Source database, broker and registry for one test.
pub struct Stack {
    /// The source database.
    pub db: TestDb,
    /// A client of the source database.
    pub client: tokio_postgres::Client,
    /// The Apache Kafka broker.
    pub broker: KafkaBroker,
    /// A client of the stack's registry.
    pub registry: Arc<RegistryClient>,
    /// The registry's base URL.
    pub registry_url: String,
    /// The codec capture's sink encodes with.
    pub codec: Arc<AvroCodec>,
    /// The sink's metrics (unregistered).
    pub metrics: PublishMetrics,
    /// Kept so the registry's database lives as long as the stack.
    _registry_db: TestDb,
    registry_stop: Option<oneshot::Sender<()>>,
    /// Kept so the registry keeps serving until [`Stack::stop_registry`] or the drop.
    _registry_task: JoinHandle<std::io::Result<()>>,
    state: tempfile::TempDir,
    /// Kept so the broker's log directory outlives the broker.
    _broker_dir: tempfile::TempDir,
}

impl Stack {
    /// Starts everything; the source database is empty.
    pub async fn start() -> Stack {
        let db = TestDb::create().await.expect("source database");
        let client = db.client().await.expect("source client");
        let broker_dir = tempfile::tempdir().expect("broker dir");
        let broker = KafkaBroker::start(broker_dir.path()).expect("start kafka");
        let registry_db = TestDb::create().await.expect("registry database");
        let store = RegistryStore::connect(StoreConfig::new(cdc_core::Secret::new(
            registry_db.conn_string(),
        )))
        .await
        .expect("registry store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("registry port");
        let registry_url = format!("http://{}", listener.local_addr().expect("addr"));
        let (registry_stop, stop_rx) = oneshot::channel::<()>();
        let registry_task = tokio::spawn(cdc_registry::serve(listener, store, async move {
            let _ = stop_rx.await;
        }));
        let registry = Arc::new(RegistryClient::new(&registry_url).expect("registry client"));
        Stack {
            db,
            client,
            broker,
            registry,
            registry_url,
            codec: Arc::new(AvroCodec::new()),
            metrics: PublishMetrics::unregistered().expect("metrics"),
            _registry_db: registry_db,
            registry_stop: Some(registry_stop),
            _registry_task: registry_task,
            state: tempfile::tempdir().expect("state dir"),
            _broker_dir: broker_dir,
        }
    }

    /// Kafka client settings for the broker.
    pub fn settings(&self) -> KafkaSettings {
        let mut settings = KafkaSettings::new(self.broker.bootstrap());
        // Tests want deliveries quickly; the defaults are tuned for throughput.
        settings.set("linger.ms", "1");
        settings
    }

    /// A capture configuration for the source database.
    pub fn capture_config(&self) -> CaptureConfig {
        let params = ConnectParams::parse(&self.db.conn_string()).expect("conn string");
        let mut config = CaptureConfig::new(params);
        config.slot = self.db.name.clone();
        config.state_dir = self.state.path().to_owned();
        config.status_interval = Duration::from_millis(500);
        config.heartbeat_interval = Some(Duration::from_millis(500));
        config.batch_size = 200;
        config
    }

    /// Starts capture into a fresh [`KafkaSink`] sharing this stack's codec and metrics.
    pub async fn start_capture(&self, publish: PublishConfig) -> Capture {
        let sink = KafkaSink::new(
            &self.settings(),
            self.registry.clone(),
            self.codec.clone(),
            publish,
            self.metrics.clone(),
        )
        .await
        .expect("kafka sink");
        let capture = Capture::start(self.capture_config(), sink);
        // From the slot's consistent point on, every commit is streamed, not snapshotted.
        let (client, slot) = (&self.client, &self.db.name);
        capture
            .wait_until(
                "its slot existed",
                Duration::from_secs(30),
                move || async move { confirmed_flush(client, slot).await != Lsn(0) },
            )
            .await;
        capture
    }

    /// Waits until the slot confirmed everything committed so far (so every event of it
    /// is acknowledged by the broker).
    pub async fn wait_all_acked(&self, capture: &Capture, timeout: Duration) {
        let target = wal_insert_lsn(&self.client).await;
        let start = Instant::now();
        loop {
            let confirmed = confirmed_flush(&self.client, &self.db.name).await;
            if confirmed >= target {
                return;
            }
            if capture.task.is_finished() {
                panic!(
                    "capture stopped before {target} was confirmed: {:?}",
                    capture.error()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "slot confirmed {confirmed}, not {target}, after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every record of `topic`, partition by partition in offset order.
    pub async fn read_topic(&self, topic: &str) -> Vec<Record> {
        let bootstrap = self.broker.bootstrap();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || read_topic_blocking(&bootstrap, &topic))
            .await
            .expect("reader thread")
    }

    /// Like [`Stack::decode`], but `None` when the record is not of `table`'s shape.
    pub async fn try_decode(
        &self,
        table: &TableSchema,
        value: &[u8],
    ) -> Option<(SchemaId, DecodedEvent)> {
        let (id, generic) = self.writer_value(value).await;
        decode_event(table, &generic).ok().map(|event| (id, event))
    }

    /// Decodes a value record with its writer schema from the registry, as `table`.
    pub async fn decode(&self, table: &TableSchema, value: &[u8]) -> (SchemaId, DecodedEvent) {
        let (id, generic) = self.writer_value(value).await;
        (
            id,
            decode_event(table, &generic).expect("envelope maps to the table"),
        )
    }

    /// A framed record (key or value) decoded with its writer schema, fetched from the registry.
    pub async fn writer_value(&self, value: &[u8]) -> (SchemaId, apache_avro::types::Value) {
        let (id, body) = decode_confluent(value).expect("framed record");
        let text = self
            .registry
            .schema_by_id(SchemaId(id))
            .await
            .expect("writer schema");
        let schema = apache_avro::Schema::parse_str(&text).expect("schema parses");
        let generic = decode_value(&schema, body).expect("record decodes with its writer schema");
        (SchemaId(id), generic)
    }

    /// Waits until capture's initial snapshot is complete (its checkpoint is written).
    pub async fn wait_snapshot_done(&self, capture: &Capture) {
        let checkpoint = self
            .state
            .path()
            .join(format!("{}.snapshot-done", self.db.name));
        let checkpoint = &checkpoint;
        capture
            .wait_until(
                "its snapshot finished",
                Duration::from_secs(60),
                move || async move { checkpoint.exists() },
            )
            .await;
    }

    /// Creates the totesys schema of `variant` in the source and seeds it (from `seed`).
    pub async fn totesys(&self, variant: cdc_sim::SchemaVariant, seed: u64) {
        cdc_sim::create_schema(&self.client, variant)
            .await
            .expect("totesys schema");
        cdc_sim::seed(&self.client, seed).await.expect("seed rows");
    }

    /// Runs `workload` under a capture that publishes by `publish`, waits until the broker
    /// acknowledged all of it and stops the capture: the events it recorded, and what the
    /// workload wrote.
    pub async fn capture_workload(
        &self,
        publish: PublishConfig,
        workload: &cdc_sim::WorkloadConfig,
    ) -> (Vec<ChangeEvent>, cdc_sim::WorkloadStats) {
        let capture = self.start_capture(publish).await;
        let (_stop, never) = watch::channel(false);
        let written = cdc_sim::run_workload(&self.client, workload, never)
            .await
            .expect("workload");
        self.wait_all_acked(&capture, Duration::from_secs(120))
            .await;
        let recorded = capture.events();
        capture.stop().await.expect("capture stops cleanly");
        (recorded, written)
    }

    /// Runs `changes` simulator changes at `rate` per second in the background.
    pub async fn spawn_workload(&self, changes: u64, rate: f64, seed: u64) -> JoinHandle<()> {
        let client = self.db.client().await.expect("workload client");
        tokio::spawn(async move {
            let workload = cdc_sim::WorkloadConfig {
                rate_per_sec: rate,
                duration: None,
                max_changes: Some(changes),
                seed,
                ..cdc_sim::WorkloadConfig::default()
            };
            let (_stop, never) = watch::channel(false);
            cdc_sim::run_workload(&client, &workload, never)
                .await
                .expect("workload");
        })
    }

    /// Stops the registry server.
    pub async fn stop_registry(&mut self) {
        if let Some(stop) = self.registry_stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One Kafka record as read back.
#[derive(Debug, Clone)]
pub struct Record {
    /// The partition it is in.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key (`None` when null).
    pub key: Option<Vec<u8>>,
    /// Its value (`None` for a tombstone).
    pub value: Option<Vec<u8>>,
}

fn read_topic_blocking(bootstrap: &str, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len() as i32)
        .expect("topic exists");
    let mut highs = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        highs.insert(partition, high);
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut out: Vec<Record> = Vec::new();
    let mut next: BTreeMap<i32, i64> = highs.keys().map(|p| (*p, 0)).collect();
    let start = Instant::now();
    while next.iter().any(|(p, n)| *n < highs[p]) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "reading {topic} stalled at {next:?} of {highs:?}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("consume");
        next.insert(message.partition(), message.offset() + 1);
        out.push(Record {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
        });
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

/// Capture running in the background into a [`KafkaSink`], recording what it handed over.
pub struct Capture {
    /// Every event given to the sink, in order (duplicates after a restart included).
    pub recorded: Arc<Mutex<Vec<ChangeEvent>>>,
    /// The reader's counters.
    pub stats: SharedStats,
    /// The reader's live positions (what the metrics show).
    pub positions: Arc<SlotPositions>,
    error: Arc<Mutex<Option<String>>>,
    stop: watch::Sender<bool>,
    /// The capture task: its result is capture's.
    pub task: JoinHandle<Result<(), SourceError>>,
}

impl Capture {
    /// Polls `ready` every 50 ms until it holds; panics when capture stops or `limit`
    /// passes before it does ("capture stopped before {what}").
    pub async fn wait_until<F, R>(&self, what: &str, limit: Duration, mut ready: F)
    where
        F: FnMut() -> R,
        R: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !ready().await {
            assert!(
                !self.task.is_finished(),
                "capture stopped before {what}: {:?}",
                self.error()
            );
            assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn start(config: CaptureConfig, sink: KafkaSink) -> Capture {
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let mut tee = Tee {
            inner: sink,
            recorded: recorded.clone(),
        };
        let (stop, stop_rx) = watch::channel(false);
        let stats: SharedStats = Arc::new(Mutex::new(CaptureStats::default()));
        let positions = config.positions.clone();
        let error = Arc::new(Mutex::new(None));
        let (task_stats, task_error) = (stats.clone(), error.clone());
        let task = tokio::spawn(async move {
            let result = reader::run(&config, &mut tee, stop_rx, task_stats, None).await;
            if let Err(e) = &result {
                *task_error.lock().expect("lock") = Some(chain(e));
            }
            result
        });
        Capture {
            recorded,
            stats,
            positions,
            error,
            stop,
            task,
        }
    }

    /// The error capture stopped with, if any.
    pub fn error(&self) -> Option<String> {
        self.error.lock().expect("lock").clone()
    }

    /// Asks capture to stop and waits for it.
    pub async fn stop(self) -> Result<(), SourceError> {
        let _ = self.stop.send(true);
        self.task.await.expect("capture panicked")
    }

    /// Kills capture abruptly, like a crash.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Waits for capture to end by itself.
    pub async fn ended(self, timeout: Duration) -> Result<(), SourceError> {
        match tokio::time::timeout(timeout, self.task).await {
            Ok(joined) => joined.expect("capture panicked"),
            Err(_) => panic!("capture did not stop by itself within {timeout:?}"),
        }
    }

    /// The events recorded so far.
    pub fn events(&self) -> Vec<ChangeEvent> {
        self.recorded.lock().expect("lock").clone()
    }
}

/// Records every batch, then hands it to the real sink.
struct Tee {
    inner: KafkaSink,
    recorded: Arc<Mutex<Vec<ChangeEvent>>>,
}

impl ChangeSink for Tee {
    async fn write(&mut self, batch: Vec<ChangeEvent>) -> Result<WriteAck, SinkError> {
        self.recorded
            .lock()
            .map_err(|_| SinkError::write_failed("poisoned"))?
            .extend(batch.iter().cloned());
        self.inner.write(batch).await
    }

    async fn commit(&mut self, txn: &TransactionInfo, events: u64) -> Result<WriteAck, SinkError> {
        self.inner.commit(txn, events).await
    }
}

/// `error` and its causes on one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    cdc_core::error_chain(error)
}

/// The server's WAL insert position (past every commit so far).
pub async fn wal_insert_lsn(client: &tokio_postgres::Client) -> Lsn {
    let row = client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .expect("wal position");
    row.get::<_, String>(0).parse().expect("lsn")
}

/// The slot's confirmed_flush_lsn (0/0 before it exists).
pub async fn confirmed_flush(client: &tokio_postgres::Client, slot: &str) -> Lsn {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("slot query");
    row.and_then(|r| r.get::<_, Option<String>>(0))
        .map(|s| s.parse().expect("lsn"))
        .unwrap_or(Lsn(0))
}

/// Waits (a while) until the slot's confirmed_flush_lsn is `lsn`, and returns what it is;
/// the walsender applies a final status update shortly after capture sent it.
pub async fn slot_reaches(client: &tokio_postgres::Client, slot: &str, lsn: Lsn) -> Lsn {
    let mut confirmed = confirmed_flush(client, slot).await;
    for _ in 0..100 {
        if confirmed == lsn {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        confirmed = confirmed_flush(client, slot).await;
    }
    confirmed
}

/// The position of a decoded event.
pub fn position(event: &DecodedEvent) -> Position {
    event.source.position()
}
