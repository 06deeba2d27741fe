//! The lake writer: a Kafka consumer-group member turning the change topics into lake files.
//!
//! Offsets are committed only at file-chain boundaries (see [`crate::writer`]), after the
//! file before them is durable and after any dead letter before them is acknowledged, so
//! a restart or a rebalance reads again from a boundary and every change ends up in exactly
//! one file.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdc_kafka::{KafkaSettings, Producer, TopicSpec};
use cdc_registry::RegistryClient;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::decode::{DeadLetter, Decoded, RecordDecoder};
use crate::metrics::LakeMetrics;
use crate::table::LakeTables;
use crate::writer::{FlushPolicy, Flushed, PartitionWriter};
use crate::{LakeError, LakeRow, LakeStore, ParquetOptions};

/// Dead-letter header: the reason code (`bad_framing`, `unknown_schema`, …).
pub const DLQ_REASON_CODE: &str = "totesys_cdc.dlq.reason_code";
/// Dead-letter header: one line saying what is wrong.
pub const DLQ_REASON: &str = "totesys_cdc.dlq.reason";
/// Dead-letter header: the topic the record was read from.
pub const DLQ_TOPIC: &str = "totesys_cdc.dlq.topic";
/// Dead-letter header: the partition it was read from.
pub const DLQ_PARTITION: &str = "totesys_cdc.dlq.partition";
/// Dead-letter header: its offset there.
pub const DLQ_OFFSET: &str = "totesys_cdc.dlq.offset";

/// A partition and its committed offset, if any.
type Committed = ((String, i32), Option<i64>);

/// How often buffers are checked for age and rowless tails are committed.
const TICK: Duration = Duration::from_millis(100);
/// How long a blocking Kafka lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often librdkafka reports its statistics, which the consumer-lag gauge is set from
/// (unless `statistics.interval.ms` is configured).
const STATISTICS_INTERVAL_MS: &str = "5000";

/// What the lake writer reads and how it writes.
#[derive(Debug, Clone)]
pub struct LakeConfig {
    /// How to reach Kafka (the consumer and the dead-letter producer).
    pub kafka: KafkaSettings,
    /// Consumer group id; writers in one group share the partitions.
    pub group_id: String,
    /// Static group membership (`group.instance.id`): a writer restarted with the same id
    /// gets its partitions back at once instead of after the session timeout and a
    /// rebalance. Unique per writer in the group; `None`: a dynamic member.
    pub group_instance_id: Option<String>,
    /// Topics to read: names, or one regular expression starting with `^`.
    pub topics: Vec<String>,
    /// Capture's transaction topic, stored as `totesys_cdc.transactions` (also read when
    /// it is not in `topics`).
    pub transaction_topic: Option<String>,
    /// Where undecodable records go.
    pub dead_letter_topic: String,
    /// Replication factor of the dead-letter topic when it has to be created; `None`:
    /// chosen for the cluster ([`cdc_kafka::Replication::for_brokers`]).
    pub dead_letter_replication: Option<i32>,
    /// Parquet settings.
    pub parquet: ParquetOptions,
    /// When a partition's buffer becomes a file.
    pub flush: FlushPolicy,
}

impl LakeConfig {
    /// The pipeline's layout for topic prefix `prefix`: every change topic, capture's
    /// transaction topic, dead letters to `<prefix>.lake-dead-letters` (replicated as the
    /// cluster's size suggests),
    /// default Parquet settings and flush policy.
    pub fn for_prefix(kafka: KafkaSettings, group_id: &str, prefix: &str) -> LakeConfig {
        LakeConfig {
            kafka,
            group_id: group_id.to_owned(),
            group_instance_id: None,
            topics: vec![crate::change_topics_pattern(prefix)],
            transaction_topic: Some(format!("{prefix}.transaction")),
            dead_letter_topic: format!("{prefix}.lake-dead-letters"),
            dead_letter_replication: None,
            parquet: ParquetOptions::default(),
            flush: FlushPolicy::default(),
        }
    }
}

/// Partitions the group took away, noted by the rebalance callback for the loop to drop.
#[derive(Default)]
struct GroupEvents {
    revoked: Mutex<Vec<(String, i32)>>,
    assigned: Mutex<i64>,
    /// The partitions this member owns now (the lag gauge covers these only).
    owned: Mutex<HashSet<(String, i32)>>,
}

/// The consumer's callbacks: rebalances and commit results.
struct LakeContext {
    events: Arc<GroupEvents>,
    metrics: LakeMetrics,
}

impl ClientContext for LakeContext {
    fn stats(&self, statistics: Statistics) {
        let Ok(owned) = self.events.owned.lock() else {
            return;
        };
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if !owned.contains(&(topic.clone(), *partition)) {
                    continue;
                }
                if let Some(lag) =
                    partition_lag(p.hi_offset, p.app_offset, p.committed_offset, p.lo_offset)
                {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(lag);
                }
            }
        }
    }
}

/// Records in a partition beyond the consumer's position: the high watermark minus the
/// offset after the last record handed to the writer (else the committed offset, else
/// the low watermark); `None` while the high watermark is unknown (negative).
fn partition_lag(high: i64, handed: i64, committed: i64, low: i64) -> Option<i64> {
    if high < 0 {
        return None;
    }
    let position = [handed, committed, low].into_iter().find(|o| *o >= 0)?;
    Some((high - position).max(0))
}

impl ConsumerContext for LakeContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let gone: Vec<_> = partitions
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect();
            tracing::info!(partitions = gone.len(), "partitions revoked");
            if let Ok(mut owned) = self.events.owned.lock() {
                for (topic, partition) in &gone {
                    owned.remove(&(topic.clone(), *partition));
                    let _ = self
                        .metrics
                        .consumer_lag
                        .remove_label_values(&[topic.as_str(), &partition.to_string()]);
                }
            }
            if let Ok(mut assigned) = self.events.assigned.lock() {
                *assigned -= i64::try_from(gone.len()).unwrap_or(0);
                self.metrics.partitions_assigned.set((*assigned).max(0));
            }
            if let Ok(mut revoked) = self.events.revoked.lock() {
                revoked.extend(gone);
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(partitions = partitions.count(), "partitions assigned");
            if let Ok(mut owned) = self.events.owned.lock() {
                owned.extend(
                    partitions
                        .elements()
                        .iter()
                        .map(|e| (e.topic().to_owned(), e.partition())),
                );
            }
            if let Ok(mut assigned) = self.events.assigned.lock() {
                *assigned += i64::try_from(partitions.count()).unwrap_or(0);
                self.metrics.partitions_assigned.set(*assigned);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            self.metrics.commit_errors.inc();
            tracing::warn!(error = %e, "offset commit failed; those records will be read again and their files adopted");
        }
    }
}

/// A lake writer: one member of the writers' consumer group.
pub struct LakeWriter {
    consumer: Arc<StreamConsumer<LakeContext>>,
    events: Arc<GroupEvents>,
    tables: LakeTables,
    decoder: RecordDecoder,
    dead_letters: Producer,
    config: LakeConfig,
    metrics: LakeMetrics,
    partitions: HashMap<(String, i32), PartitionWriter>,
    /// Offsets to commit at the next tick.
    to_commit: HashMap<(String, i32), i64>,
    /// Committed offsets looked up for assigned partitions not read from yet.
    starts: HashMap<(String, i32), Option<i64>>,
    /// Where a bounded run stops; `None`: run until told to stop.
    bounds: Option<Bounds>,
}

/// A bounded run's end offsets and the partitions read up to them.
#[derive(Debug, Default)]
struct Bounds {
    /// End offset (exclusive) per partition; partitions not here are not written.
    ends: HashMap<(String, i32), i64>,
    /// The partitions read up to their end.
    reached: HashSet<(String, i32)>,
}

impl Bounds {
    fn new(ends: HashMap<(String, i32), i64>) -> Bounds {
        let reached = ends
            .iter()
            .filter(|(_, end)| **end <= 0)
            .map(|(key, _)| key.clone())
            .collect();
        Bounds { ends, reached }
    }

    /// Whether every partition is read to its end.
    fn done(&self) -> bool {
        self.ends.keys().all(|key| self.reached.contains(key))
    }

    /// Whether the record at `offset` of `key` is at or past the partition's end (or the
    /// partition is not bounded); notes the partition as read to its end when it is.
    fn beyond_end(&mut self, key: &(String, i32), offset: i64) -> bool {
        let Some(end) = self.ends.get(key).copied() else {
            return true;
        };
        if offset + 1 >= end {
            self.reached.insert(key.clone());
        }
        offset >= end
    }

    /// Notes the consumer's fetch position of `key`: at or past the end, it is read.
    fn at_position(&mut self, key: (String, i32), position: i64) {
        if self.ends.get(&key).is_some_and(|end| position >= *end) {
            self.reached.insert(key);
        }
    }
}

/// What a lake writer did, for tests and the shutdown log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeTotals {
    /// Records read.
    pub records: u64,
    /// Rows written by this writer.
    pub rows: u64,
    /// Files written by this writer.
    pub files: u64,
    /// Dead letters sent.
    pub dead_letters: u64,
}

impl LakeWriter {
    /// Joins the group and subscribes; creates the dead-letter topic when missing.
    pub async fn new(
        config: LakeConfig,
        lake: LakeStore,
        registry: Arc<RegistryClient>,
        metrics: LakeMetrics,
    ) -> Result<Self, LakeError> {
        let kafka = |e: cdc_kafka::KafkaError| {
            LakeError::kafka(format!(
                "cannot set up the dead-letter topic {}",
                config.dead_letter_topic
            ))(e)
        };
        cdc_kafka::ensure_topics(
            &config.kafka,
            &[TopicSpec {
                name: config.dead_letter_topic.clone(),
                partitions: 1,
                replication_factor: config.dead_letter_replication,
                config: Vec::new(),
            }],
        )
        .await
        .map_err(kafka)?;
        let dead_letters = Producer::new(&config.kafka).map_err(kafka)?;
        // Its leader serving before the first dead letter (see Producer::partition_count).
        dead_letters
            .partition_count(&config.dead_letter_topic)
            .await
            .map_err(kafka)?;
        let events = Arc::new(GroupEvents::default());
        let mut client = config.kafka.client_config();
        let mut defaults = vec![
            ("auto.offset.reset", "earliest"),
            // New tables' topics join the subscription within seconds, not librdkafka's 5 min.
            ("topic.metadata.refresh.interval.ms", "5000"),
            // The consumer-lag gauge is set from librdkafka's statistics.
            ("statistics.interval.ms", STATISTICS_INTERVAL_MS),
        ];
        if client.get("group.protocol") != Some("consumer") {
            // The classic protocol: a member killed without leaving is expired after the
            // session timeout (Kafka's default broker minimum, 6 s), and the others hear of
            // the rebalance at their next heartbeat (docs/broker.md, "Crash recovery").
            // KIP-848's protocol (`group.protocol=consumer`) takes both from the broker.
            defaults.extend([
                ("session.timeout.ms", "6000"),
                ("heartbeat.interval.ms", "1000"),
            ]);
        }
        for (name, default) in defaults {
            if client.get(name).is_none() {
                client.set(name, default);
            }
        }
        if let Some(instance) = &config.group_instance_id {
            client.set("group.instance.id", instance);
        }
        client
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed");
        let consumer: StreamConsumer<LakeContext> = client
            .create_with_context(LakeContext {
                events: Arc::clone(&events),
                metrics: metrics.clone(),
            })
            .map_err(LakeError::kafka("cannot create the consumer"))?;
        let topics: Vec<&str> = config
            .topics
            .iter()
            .chain(&config.transaction_topic)
            .map(String::as_str)
            .collect();
        consumer
            .subscribe(&topics)
            .map_err(LakeError::kafka(format!("cannot subscribe to {topics:?}")))?;
        Ok(LakeWriter {
            consumer: Arc::new(consumer),
            events,
            tables: LakeTables::new(&lake)?,
            decoder: match &config.transaction_topic {
                Some(topic) => RecordDecoder::new(registry).with_transaction_topic(topic),
                None => RecordDecoder::new(registry),
            },
            dead_letters,
            config,
            metrics,
            partitions: HashMap::new(),
            to_commit: HashMap::new(),
            starts: HashMap::new(),
            bounds: None,
        })
    }

    /// Makes the run bounded: only records below `ends[(topic, partition)]` (an exclusive
    /// end offset, e.g. the high watermark taken before starting) are written, partitions
    /// not in `ends` are not written at all, and [`LakeWriter::run`] returns by itself,
    /// after flushing and committing, once every partition in `ends` is read to its end.
    /// Replay uses it to rebuild a lake from the topics as they were when it started.
    pub fn stop_at(mut self, ends: HashMap<(String, i32), i64>) -> Self {
        self.bounds = Some(Bounds::new(ends));
        self
    }

    /// Whether a bounded run has read every partition to its end.
    fn bounded_done(&self) -> bool {
        self.bounds.as_ref().is_some_and(Bounds::done)
    }

    /// Whether a bounded run must not write the record at `offset` of `key`.
    fn beyond_end(&mut self, key: &(String, i32), offset: i64) -> bool {
        let Some(bounds) = &mut self.bounds else {
            return false;
        };
        let beyond = bounds.beyond_end(key, offset);
        if beyond {
            self.pause(key);
        }
        beyond
    }

    /// Takes note of the consumer's positions: offsets below a partition's position that
    /// no record was read at (Kafka transaction markers, aborted records) count as rowless
    /// records, so the committed offset steps over them and the group's lag reaches 0;
    /// and a bounded partition whose position is at its end is read.
    fn check_positions(&mut self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        for e in positions.elements() {
            let Offset::Offset(position) = e.offset() else {
                continue;
            };
            let key = (e.topic().to_owned(), e.partition());
            if let Some(writer) = self.partitions.get_mut(&key) {
                writer.skip_through(position - 1);
            }
            if let Some(bounds) = &mut self.bounds {
                bounds.at_position(key, position);
            }
        }
    }

    /// Stops fetching a partition a bounded run has read to its end (best effort).
    fn pause(&self, key: &(String, i32)) {
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(&key.0, key.1);
        if let Err(e) = self.consumer.pause(&partitions) {
            tracing::debug!(topic = %key.0, partition = key.1, error = %e, "cannot pause partition");
        }
    }

    /// Reads and writes until `shutdown` resolves, then flushes, commits and leaves the group.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<LakeTotals, LakeError> {
        tokio::pin!(shutdown);
        let mut totals = LakeTotals::default();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => {
                    self.fatal()?;
                    self.drop_revoked();
                    self.check_positions();
                    self.flush(&mut totals, Some(Instant::now())).await?;
                    self.commit(CommitMode::Async);
                    if self.bounded_done() {
                        break;
                    }
                    continue;
                }
                message = self.consumer.recv() => message.map(|m| m.detach()),
            };
            match message {
                Ok(message) => {
                    self.drop_revoked();
                    self.take(message, &mut totals).await?;
                    if self.bounded_done() {
                        break;
                    }
                }
                Err(e) => {
                    self.fatal()?;
                    tracing::warn!(error = %e, "Kafka consumer error; librdkafka retries");
                }
            }
        }
        self.drop_revoked();
        self.flush(&mut totals, None).await?;
        self.commit(CommitMode::Sync);
        self.metrics.rows_buffered.set(0);
        tracing::info!(?totals, "lake writer stopped");
        Ok(totals)
    }

    /// Fails when librdkafka has raised a fatal error on the consumer, which then reads and
    /// commits nothing more: most often a static member fenced by a member with its
    /// `group.instance.id` (another writer given the same id, or the broker holding its
    /// own retried join after a coordinator moved). Nothing buffered is committed, so the
    /// writer that replaces it reads those records again and adopts their files.
    fn fatal(&self) -> Result<(), LakeError> {
        let Some((code, reason)) = self.consumer.client().fatal_error() else {
            return Ok(());
        };
        self.metrics.consumer_fatal_errors.inc();
        self.metrics.partitions_assigned.set(0);
        let reason = match &self.config.group_instance_id {
            Some(instance) => format!("{reason} (group.instance.id {instance})"),
            None => reason,
        };
        Err(LakeError::ConsumerFatal {
            code: format!("{code:?}"),
            reason,
        })
    }

    /// Takes one record: a change into its partition's buffer, a tombstone past, a dead
    /// letter to the dead-letter topic (acknowledged before its offset can be committed).
    async fn take(
        &mut self,
        message: OwnedMessage,
        totals: &mut LakeTotals,
    ) -> Result<(), LakeError> {
        let key = (message.topic().to_owned(), message.partition());
        let offset = message.offset();
        if self.beyond_end(&key, offset) {
            return Ok(());
        }
        totals.records += 1;
        self.metrics.records.with_label_values(&[&key.0]).inc();
        if !self.partitions.contains_key(&key) {
            let start = self.chain_start(&key.0, key.1, offset).await?;
            let mut writer = PartitionWriter::new(
                &self.tables,
                &key.0,
                key.1,
                self.config.parquet.clone(),
                self.config.flush,
            )
            .with_group(&self.config.group_id);
            writer.start_at(start);
            tracing::debug!(topic = %key.0, partition = key.1, start, "partition chain starts");
            self.partitions.insert(key.clone(), writer);
        }
        if self
            .partitions
            .get(&key)
            .is_some_and(|w| w.has_taken(offset))
        {
            return Ok(());
        }
        let decoded = self
            .decoder
            .decode(message.topic(), message.key(), message.payload())
            .await?;
        let size = message.key().map_or(0, <[u8]>::len) + message.payload().map_or(0, <[u8]>::len);
        let flushed = {
            let Some(writer) = self.partitions.get_mut(&key) else {
                return Ok(());
            };
            match decoded {
                Decoded::NoRow => {
                    writer.skip(offset);
                    Vec::new()
                }
                Decoded::Dead(dead) => {
                    self.dead_letter(&message, &dead).await?;
                    totals.dead_letters += 1;
                    if let Some(writer) = self.partitions.get_mut(&key) {
                        writer.skip(offset);
                    }
                    Vec::new()
                }
                Decoded::Change(event, table) => {
                    let row = LakeRow {
                        event,
                        partition: key.1,
                        offset,
                    };
                    let flushed = writer.push(&table, row, size).await?;
                    self.metrics.rows_buffered.add(1);
                    flushed
                }
            }
        };
        for flushed in flushed {
            self.flushed(&key, flushed, totals);
        }
        Ok(())
    }

    /// Where a partition's chain starts: the group's committed offset, or, when nothing is
    /// committed yet, the first record fetched (the partition's start, `auto.offset.reset`).
    ///
    /// One lookup covers every partition assigned (each round trip takes a while on some
    /// brokers, and a rebalance hands over many partitions at once).
    async fn chain_start(
        &mut self,
        topic: &str,
        partition: i32,
        first: i64,
    ) -> Result<i64, LakeError> {
        let key = (topic.to_owned(), partition);
        if !self.starts.contains_key(&key) {
            let consumer = Arc::clone(&self.consumer);
            let wanted = (topic.to_owned(), partition);
            let found = tokio::task::spawn_blocking(move || -> KafkaResult<Vec<Committed>> {
                let mut partitions = consumer.assignment()?;
                if partitions.find_partition(&wanted.0, wanted.1).is_none() {
                    partitions.add_partition(&wanted.0, wanted.1);
                }
                let committed = consumer.committed_offsets(partitions, LOOKUP_TIMEOUT)?;
                Ok(committed
                    .elements()
                    .iter()
                    .map(|e| {
                        let offset = match e.offset() {
                            Offset::Offset(offset) => Some(offset),
                            _ => None,
                        };
                        ((e.topic().to_owned(), e.partition()), offset)
                    })
                    .collect())
            })
            .await
            .map_err(LakeError::kafka("committed-offset lookup did not finish"))?
            .map_err(LakeError::kafka(format!(
                "cannot look up committed offsets of group {}",
                self.config.group_id
            )))?;
            self.starts.extend(found);
        }
        Ok(self.starts.remove(&key).flatten().unwrap_or(first))
    }

    /// Sends `message` to the dead-letter topic with the reason in its headers and waits
    /// for the broker's acknowledgement.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        dead: &DeadLetter,
    ) -> Result<(), LakeError> {
        let (partition, offset) = (
            message.partition().to_string(),
            message.offset().to_string(),
        );
        let headers: [(&str, &[u8]); 5] = [
            (DLQ_REASON_CODE, dead.code.as_bytes()),
            (DLQ_REASON, dead.reason.as_bytes()),
            (DLQ_TOPIC, message.topic().as_bytes()),
            (DLQ_PARTITION, partition.as_bytes()),
            (DLQ_OFFSET, offset.as_bytes()),
        ];
        tracing::warn!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            reason = %dead.reason,
            "dead letter"
        );
        let sent = self
            .dead_letters
            .send_with_headers(
                &self.config.dead_letter_topic,
                None,
                message.key(),
                message.payload(),
                &headers,
            )
            .await;
        let delivered = match sent {
            Ok(delivery) => delivery.await.map(|_| ()),
            Err(e) => Err(e),
        };
        delivered.map_err(LakeError::kafka(format!(
            "cannot write a dead letter to {}",
            self.config.dead_letter_topic
        )))?;
        self.metrics
            .dead_letters
            .with_label_values(&[message.topic(), dead.code])
            .inc();
        Ok(())
    }

    /// Writes every buffer that is due at `now` (every buffer when `None`); moves idle
    /// chains past their rowless tails.
    async fn flush(
        &mut self,
        totals: &mut LakeTotals,
        now: Option<Instant>,
    ) -> Result<(), LakeError> {
        let keys: Vec<_> = self.partitions.keys().cloned().collect();
        for key in keys {
            let Some(writer) = self.partitions.get_mut(&key) else {
                continue;
            };
            let flushed = if now.is_none_or(|now| writer.due(now)) {
                writer.flush().await?
            } else {
                None
            };
            let settled = writer.settle();
            if let Some(flushed) = flushed {
                self.flushed(&key, flushed, totals);
            }
            if let Some(offset) = settled {
                self.to_commit.insert(key, offset);
            }
        }
        Ok(())
    }

    /// Accounts for a file and marks the offset past it for committing.
    fn flushed(&mut self, key: &(String, i32), flushed: Flushed, totals: &mut LakeTotals) {
        let table = flushed.file.table.as_str();
        let rows = u64::try_from(flushed.rows).unwrap_or(u64::MAX);
        if flushed.adopted {
            self.metrics.files_adopted.inc();
        } else {
            totals.rows += rows;
            totals.files += 1;
            self.metrics.rows.with_label_values(&[table]).inc_by(rows);
            self.metrics.files.with_label_values(&[table]).inc();
            self.metrics
                .bytes
                .with_label_values(&[table])
                .inc_by(u64::try_from(flushed.bytes).unwrap_or(u64::MAX));
            self.metrics.file_rows.observe(flushed.rows as f64);
            if flushed.duplicates > 0 {
                self.metrics
                    .duplicate_changes
                    .with_label_values(&[table])
                    .inc_by(u64::try_from(flushed.duplicates).unwrap_or(u64::MAX));
            }
            let now_us = chrono::Utc::now().timestamp_micros();
            let freshness = self
                .metrics
                .commit_to_lake_seconds
                .with_label_values(&[table]);
            for commit_ts in &flushed.commit_ts_us {
                freshness.observe((now_us - commit_ts).max(0) as f64 / 1e6);
            }
        }
        self.metrics
            .flush_seconds
            .observe(flushed.duration.as_secs_f64());
        self.refresh_buffered();
        self.to_commit.insert(key.clone(), flushed.commit_offset());
    }

    /// Sets the buffered-rows gauge from the buffers.
    fn refresh_buffered(&self) {
        self.metrics.rows_buffered.set(
            self.partitions
                .values()
                .map(|w| i64::try_from(w.buffered()).unwrap_or(i64::MAX))
                .sum(),
        );
    }

    /// Drops the buffers of partitions the group took away; their new owner reads them
    /// again from the last committed boundary.
    fn drop_revoked(&mut self) {
        let revoked = match self.events.revoked.lock() {
            Ok(mut revoked) => std::mem::take(&mut *revoked),
            Err(_) => return,
        };
        if revoked.is_empty() {
            return;
        }
        self.starts.clear();
        for key in revoked {
            if let Some(writer) = self.partitions.remove(&key) {
                tracing::debug!(topic = %key.0, partition = key.1, dropped = writer.buffered(), "partition revoked; buffer dropped");
            }
        }
        self.refresh_buffered();
    }

    /// Commits the offsets past the files written since the last commit.
    fn commit(&mut self, mode: CommitMode) {
        if self.to_commit.is_empty() {
            return;
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in self.to_commit.drain() {
            if let Err(e) = offsets.add_partition_offset(&topic, partition, Offset::Offset(offset))
            {
                tracing::warn!(topic, partition, error = %e, "cannot commit offset");
            }
        }
        if let Err(e) = self.consumer.commit(&offsets, mode) {
            self.metrics.commit_errors.inc();
            tracing::warn!(error = %e, "offset commit failed; those records will be read again and their files adopted");
        }
    }
}

/// The offsets `group` has committed on every partition of the change topics and the
/// transaction topic under `prefix` (partitions without a commit are left out): what
/// compaction may merge below.
pub async fn committed_offsets(
    settings: &KafkaSettings,
    group: &str,
    prefix: &str,
) -> Result<HashMap<(String, i32), i64>, LakeError> {
    let mut config = settings.client_config();
    config.set("group.id", group);
    let consumer: BaseConsumer = config
        .create()
        .map_err(LakeError::kafka("cannot create a Kafka client"))?;
    let prefix = prefix.to_owned();
    tokio::task::spawn_blocking(move || -> KafkaResult<HashMap<(String, i32), i64>> {
        let metadata = consumer.fetch_metadata(None, LOOKUP_TIMEOUT)?;
        let mut wanted = TopicPartitionList::new();
        for topic in metadata.topics() {
            let name = topic.name();
            // The change topics and the transaction topic, not the dead letters.
            if crate::bounds::is_lake_topic(&prefix, name) {
                for partition in topic.partitions() {
                    wanted.add_partition(name, partition.id());
                }
            }
        }
        let committed = consumer.committed_offsets(wanted, LOOKUP_TIMEOUT)?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(offset) => Some(((e.topic().to_owned(), e.partition()), offset)),
                _ => None,
            })
            .collect())
    })
    .await
    .map_err(LakeError::kafka("offset lookup did not finish"))?
    .map_err(LakeError::kafka(format!(
        "cannot read the committed offsets of group {group}"
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{partition_lag, Bounds};

    fn key(partition: i32) -> (String, i32) {
        ("t".to_owned(), partition)
    }

    #[test]
    fn a_bounded_run_stops_at_the_end_offsets() {
        let mut bounds = Bounds::new(HashMap::from([(key(0), 3), (key(1), 2), (key(2), 0)]));
        // An empty partition is read at once; the others are not.
        assert!(!bounds.done());
        assert!(bounds.reached.contains(&key(2)));
        assert!(!bounds.beyond_end(&key(0), 0));
        assert!(!bounds.beyond_end(&key(0), 1));
        assert!(!bounds.done());
        // The last record below the end is written, and ends the partition.
        assert!(!bounds.beyond_end(&key(0), 2));
        assert!(bounds.reached.contains(&key(0)));
        // Records at or past the end, and partitions not bounded, are not written.
        assert!(bounds.beyond_end(&key(0), 3));
        assert!(bounds.beyond_end(&key(9), 0));
        assert!(!bounds.done());
        // A fetch position at the end (past control records) ends a partition too.
        bounds.at_position(key(1), 1);
        assert!(!bounds.done());
        bounds.at_position(key(1), 2);
        assert!(bounds.done());
    }

    #[test]
    fn lag_is_the_high_watermark_minus_the_position() {
        // Records handed to the writer up to offset 41: 58 left of 100.
        assert_eq!(partition_lag(100, 42, 10, 0), Some(58));
        // Nothing handed over yet: from the committed offset, else the low watermark.
        assert_eq!(partition_lag(100, -1001, 10, 0), Some(90));
        assert_eq!(partition_lag(100, -1001, -1001, 7), Some(93));
        // Caught up, or the broker's watermark lagging the position: no lag.
        assert_eq!(partition_lag(100, 100, 10, 0), Some(0));
        assert_eq!(partition_lag(99, 100, 10, 0), Some(0));
        // No high watermark yet, or no position at all: unknown.
        assert_eq!(partition_lag(-1001, 5, 5, 0), None);
        assert_eq!(partition_lag(10, -1, -1, -1), None);
    }
}
