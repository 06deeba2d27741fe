//! [`KafkaSink`]: capture's [`ChangeSink`] into Kafka.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apache_avro::Schema;
use cdc_avro::{check_compatible, put_header, schema_json, AvroCodec, TableAvro, HEADER_LEN};
use cdc_core::sink::{AckSender, ChangeSink, SinkError, WriteAck};
use cdc_core::{ChangeEvent, Lsn, Op, TableId, TableSchema, TransactionInfo};
use cdc_kafka::{ensure_topics, Delivery, KafkaSettings, Producer};
use cdc_registry::RegistryClient;
use prometheus::IntCounter;

use crate::config::{key_subject, value_subject, ExactlyOnce, PublishConfig};
use crate::metrics::PublishMetrics;
use crate::transaction::{self, TransactionSchemas};
use crate::PublishError;

/// Confluent error codes meaning "no such subject" / "no such version".
const SUBJECT_NOT_FOUND: u32 = 40401;
const VERSION_NOT_FOUND: u32 = 40402;
/// Confluent's error code for a schema refused as incompatible.
const INCOMPATIBLE: u32 = 409;

/// A table's topic: its name, partition count and the schema ids of each shape seen.
struct TopicState {
    topic: String,
    partitions: i32,
    /// `schema.table`, the metrics label and transaction data-collection name.
    label: String,
    shapes: Vec<Shape>,
    /// Event counters by [`op_index`], fetched once so the hot path does no label lookup.
    counters: [IntCounter; 5],
}

/// One table shape's schemas and their registered ids.
struct Shape {
    table: Arc<TableSchema>,
    avro: Arc<TableAvro>,
    key_id: u32,
    value_id: u32,
    keyed: bool,
}

/// The transaction whose events are being written, for the transaction topic.
struct OpenTransaction {
    commit_lsn: Lsn,
    per_table: BTreeMap<String, u64>,
}

/// Publishes change events to one topic per table, Avro in the Confluent wire format.
///
/// - **Topics** `<prefix>.<schema>.<table>` are created on first use with the configured
///   partitions and retention; existing topics are used as they are.
/// - **Schemas**: the first event of each table shape registers its key and value schemas
///   under `<topic>-key` and `<topic>-value`. The value schema evolves from the subject's
///   latest version, so a column added in the source becomes a new, BACKWARD-compatible
///   version. A change the registry refuses fails the write with
///   [`SinkError::Rejected`] naming the field, and counts
///   `totesys_cdc_capture_schema_incompatible_total`: capture stops before the change and
///   the slot keeps it (docs/kafka.md says how to go on).
/// - **Keys and order**: the key is the row's primary key, so a row's changes stay in one
///   partition in order. A delete is followed by a tombstone for its key; an update that
///   changes the key is written under the new key, followed by a tombstone for the old
///   one. A truncate goes to every partition (same position in each), so it is ordered
///   after every earlier change of the table. A table without a key uses partition 0.
/// - **Durability**: a batch's [`WriteAck`] resolves once the broker acknowledged every
///   record of it (idempotent producer, `acks=all`); a failed delivery fails the ack, and
///   capture restarts from the slot.
pub struct KafkaSink {
    producer: Producer,
    settings: KafkaSettings,
    registry: Arc<RegistryClient>,
    codec: Arc<AvroCodec>,
    config: PublishConfig,
    metrics: PublishMetrics,
    topics: HashMap<TableId, TopicState>,
    transactions: Option<TransactionTopic>,
    exactly_once: Option<KafkaTransactions>,
}

/// Exactly-once state: the open Kafka transaction and what waits for it.
///
/// A Kafka transaction holds whole source transactions only. Small ones (one batch) are
/// grouped for up to the commit interval; a source transaction that spans batches gets
/// a Kafka transaction of its own, so the reader never waits on an ack that only a
/// later commit would resolve while the transaction it is reading is unfinished.
struct KafkaTransactions {
    config: ExactlyOnce,
    /// Source transactions at or before this commit LSN are in a committed Kafka
    /// transaction already (read at start); cleared once the reader passes it.
    resume_after: Option<Lsn>,
    /// Since when a Kafka transaction is open.
    open_since: Option<Instant>,
    /// Commit acks of the whole source transactions in the open Kafka transaction.
    waiting: Vec<AckSender>,
    /// The current source transaction's first batch, held until the transaction ends
    /// (it joins the group) or spans another batch (it goes alone).
    held: Option<(Vec<ChangeEvent>, AckSender)>,
    /// Whether the current source transaction has a Kafka transaction of its own.
    alone: bool,
    /// Events dropped by `resume_after` in this run, for the log.
    skipped: u64,
    /// Whether `init_transactions` ran (a producer runs it once; a sink started again
    /// for another session aborts what the last one left open instead).
    initialized: bool,
}
/// The transaction topic's name, schemas, ids and the open transaction.
struct TransactionTopic {
    topic: String,
    schemas: TransactionSchemas,
    key_id: u32,
    value_id: u32,
    open: Option<OpenTransaction>,
}

impl KafkaSink {
    /// Connects the producer and, when configured, sets up the transaction topic.
    ///
    /// `codec` may be shared between sinks (a new sink per capture attempt keeps the
    /// shapes it derived).
    pub async fn new(
        settings: &KafkaSettings,
        registry: Arc<RegistryClient>,
        codec: Arc<AvroCodec>,
        config: PublishConfig,
        metrics: PublishMetrics,
    ) -> Result<Self, PublishError> {
        let producer = match &config.exactly_once {
            Some(once) => {
                Producer::transactional(settings, &once.transactional_id, once.transaction_timeout)?
            }
            None => Producer::new(settings)?,
        };
        let transactions = if config.writes_transaction_topic() {
            let topic = config.transaction_topic_name();
            ensure_topics(settings, &[config.topic_spec(&topic, 1)]).await?;
            // Its leader serving before the first record (see Producer::partition_count).
            producer.partition_count(&topic).await?;
            let key_id = register(&registry, &key_subject(&topic), transaction::KEY_SCHEMA).await?;
            let value_id =
                register(&registry, &value_subject(&topic), transaction::VALUE_SCHEMA).await?;
            Some(TransactionTopic {
                topic,
                schemas: TransactionSchemas::new()?,
                key_id,
                value_id,
                open: None,
            })
        } else {
            None
        };
        let exactly_once = config.exactly_once.clone();
        Ok(KafkaSink {
            producer,
            settings: settings.clone(),
            registry,
            codec,
            config,
            metrics,
            topics: HashMap::new(),
            transactions,
            exactly_once: exactly_once.map(|config| KafkaTransactions {
                config,
                resume_after: None,
                open_since: None,
                waiting: Vec::new(),
                held: None,
                alone: false,
                skipped: 0,
                initialized: false,
            }),
        })
    }

    /// Waits until every queued record is acknowledged or `timeout` passes.
    pub fn flush(&self, timeout: std::time::Duration) -> Result<(), PublishError> {
        Ok(self.producer.flush(timeout)?)
    }

    /// The topic of `table`, created when missing; loads the subject's latest value schema
    /// so the first shape derived evolves from it.
    async fn topic(&mut self, table: &TableSchema) -> Result<&mut TopicState, PublishError> {
        if !self.topics.contains_key(&table.id) {
            let topic = self.config.topic_for(&table.name);
            ensure_topics(
                &self.settings,
                &[self.config.topic_spec(&topic, self.config.partitions)],
            )
            .await?;
            let partitions = self.producer.partition_count(&topic).await?;
            if let Some(latest) = latest_schema(&self.registry, &value_subject(&topic)).await? {
                self.codec.set_previous_value_schema(table.id, latest);
            }
            let label = table.name.to_string();
            let counters = [Op::Read, Op::Insert, Op::Update, Op::Delete, Op::Truncate].map(|op| {
                self.metrics
                    .events
                    .with_label_values(&[label.as_str(), op.code().to_string().as_str()])
            });
            tracing::info!(table = %label, topic = %topic, partitions, "publishing table");
            self.topics.insert(
                table.id,
                TopicState {
                    topic,
                    partitions,
                    label,
                    shapes: Vec::new(),
                    counters,
                },
            );
        }
        self.topics
            .get_mut(&table.id)
            .ok_or_else(|| PublishError::Rejected(format!("topic state of {} lost", table.name)))
    }

    /// The index of `table`'s shape in its topic state, registering its schemas when new.
    async fn shape(&mut self, table: &Arc<TableSchema>) -> Result<usize, PublishError> {
        let state = self.topic(table).await?;
        if let Some(i) = state
            .shapes
            .iter()
            .position(|s| Arc::ptr_eq(&s.table, table))
        {
            return Ok(i);
        }
        if let Some(i) = state.shapes.iter().position(|s| *s.table == **table) {
            // Same shape, new `Arc` (a Relation message repeated): remember the pointer.
            state.shapes[i].table = Arc::clone(table);
            return Ok(i);
        }
        let topic = state.topic.clone();
        let label = state.label.clone();
        let avro = self.codec.table(table).map_err(|e| {
            self.metrics
                .encode_errors
                .with_label_values(&[&label])
                .inc();
            PublishError::Rejected(format!("cannot derive the Avro schemas of {label}: {e}"))
        })?;
        let key_text = schema_json(avro.key_schema())
            .map_err(|e| PublishError::Rejected(format!("key schema of {label}: {e}")))?;
        let value_text = schema_json(avro.value_schema())
            .map_err(|e| PublishError::Rejected(format!("value schema of {label}: {e}")))?;
        let key_id = self
            .register_table_schema(&label, &key_subject(&topic), &key_text, avro.key_schema())
            .await?;
        let value_id = self
            .register_table_schema(
                &label,
                &value_subject(&topic),
                &value_text,
                avro.value_schema(),
            )
            .await?;
        self.metrics
            .schema_registrations
            .with_label_values(&[&label])
            .inc();
        tracing::info!(table = %label, key_id, value_id, columns = table.columns.len(), "schemas registered");
        let keyed = !table.key_indexes().is_empty();
        let state = self.topic(table).await?;
        state.shapes.push(Shape {
            table: Arc::clone(table),
            avro,
            key_id,
            value_id,
            keyed,
        });
        Ok(state.shapes.len() - 1)
    }

    /// Registers one of a table's schemas; a refusal as incompatible names the field.
    async fn register_table_schema(
        &self,
        label: &str,
        subject: &str,
        text: &str,
        schema: &Schema,
    ) -> Result<u32, PublishError> {
        match self.registry.register(subject, text).await {
            Ok(id) => Ok(id.get()),
            Err(e) if e.error_code() == Some(INCOMPATIBLE) => {
                self.metrics
                    .schema_incompatible
                    .with_label_values(&[label])
                    .inc();
                let why = match latest_schema(&self.registry, subject).await {
                    Ok(Some(old)) => match check_compatible(&old, schema) {
                        Err(reason) => reason.to_string(),
                        Ok(()) => "the registry's compatibility level refuses it".to_owned(),
                    },
                    _ => "the registry's compatibility level refuses it".to_owned(),
                };
                Err(PublishError::Incompatible {
                    table: label.to_owned(),
                    subject: subject.to_owned(),
                    reason: why,
                })
            }
            Err(e) => Err(PublishError::Registry {
                subject: subject.to_owned(),
                source: e,
            }),
        }
    }

    /// Creates `table`'s topic and registers its key and value schemas, ahead of its
    /// first event (`init`).
    pub async fn prepare(&mut self, table: &Arc<TableSchema>) -> Result<(), PublishError> {
        self.shape(table).await.map(|_| ())
    }

    /// Hands `batch` to the producer; the ack resolves once the broker has every record.
    async fn produce(&mut self, batch: Vec<ChangeEvent>) -> Result<WriteAck, PublishError> {
        let ts_us = now_micros();
        let mut deliveries: Vec<Delivery> = Vec::with_capacity(batch.len() + 2);
        let mut bytes = 0u64;
        for event in &batch {
            if event.snapshot {
                self.count_snapshot_event(event);
            } else if let Some(delivery) = self.begin_transaction(event).await? {
                deliveries.push(delivery);
            }
            let index = self.shape(&event.table).await?;
            let state = self.topics.get(&event.table.id).ok_or_else(|| {
                PublishError::Rejected(format!("topic state of {} lost", event.table.name))
            })?;
            let shape = &state.shapes[index];
            let encode_error = |e: cdc_avro::AvroError| {
                self.metrics
                    .encode_errors
                    .with_label_values(&[&state.label])
                    .inc();
                PublishError::Rejected(format!(
                    "cannot encode the change at {} ({} of {}): {e}",
                    event.position.commit_lsn,
                    event.op.code(),
                    state.label
                ))
            };
            let mut value = Vec::with_capacity(HEADER_LEN + 64 + 24 * event.table.columns.len());
            put_header(&mut value, shape.value_id);
            shape
                .avro
                .write_value(event, ts_us, &mut value)
                .map_err(encode_error)?;
            let key_row = match event.op {
                Op::Delete => event.before.as_deref(),
                Op::Truncate => None,
                Op::Read | Op::Insert | Op::Update => event.after.as_deref(),
            };
            let key = match (shape.keyed, key_row) {
                (true, Some(row)) => Some(encode_key(shape, row).map_err(encode_error)?),
                _ => None,
            };
            // The old key of an update that changed it, to be tombstoned.
            let old_key = match (event.op, shape.keyed, &event.before, &key) {
                (Op::Update, true, Some(before), Some(new_key)) if self.config.tombstones => {
                    let old = encode_key(shape, before).map_err(encode_error)?;
                    (old != *new_key).then_some(old)
                }
                _ => None,
            };
            state.counters[op_index(event.op)].inc();
            bytes += (value.len() + key.as_ref().map_or(0, Vec::len)) as u64;
            let topic = state.topic.as_str();
            match (event.op, &key) {
                (Op::Truncate, _) => {
                    for partition in 0..state.partitions {
                        deliveries.push(
                            self.producer
                                .send_to(topic, Some(partition), None, Some(&value))
                                .await?,
                        );
                    }
                }
                (_, Some(key)) => {
                    deliveries.push(self.producer.send(topic, key, Some(&value)).await?);
                    if event.op == Op::Delete && self.config.tombstones {
                        deliveries.push(self.producer.send(topic, key, None).await?);
                    }
                }
                (_, None) => {
                    deliveries.push(
                        self.producer
                            .send_to(topic, Some(0), None, Some(&value))
                            .await?,
                    );
                }
            }
            if let Some(old_key) = old_key {
                deliveries.push(self.producer.send(topic, &old_key, None).await?);
            }
        }
        self.metrics.bytes.inc_by(bytes);
        Ok(self.ack_when_delivered(deliveries))
    }

    /// Counts a snapshot read towards the snapshot's `END` record (it has no `BEGIN`).
    fn count_snapshot_event(&mut self, event: &ChangeEvent) {
        let Some(txns) = &mut self.transactions else {
            return;
        };
        let label = event.table.name.to_string();
        match &mut txns.open {
            Some(open) if open.commit_lsn == event.position.commit_lsn => {
                *open.per_table.entry(label).or_default() += 1;
            }
            open => {
                *open = Some(OpenTransaction {
                    commit_lsn: event.position.commit_lsn,
                    per_table: BTreeMap::from([(label, 1)]),
                });
            }
        }
    }

    /// Writes the transaction topic's `BEGIN` when `event` opens a new transaction.
    async fn begin_transaction(
        &mut self,
        event: &ChangeEvent,
    ) -> Result<Option<Delivery>, PublishError> {
        let Some(txns) = &mut self.transactions else {
            return Ok(None);
        };
        let label = event.table.name.to_string();
        match &mut txns.open {
            Some(open) if open.commit_lsn == event.position.commit_lsn => {
                *open.per_table.entry(label).or_default() += 1;
                Ok(None)
            }
            open => {
                *open = Some(OpenTransaction {
                    commit_lsn: event.position.commit_lsn,
                    per_table: BTreeMap::from([(label, 1)]),
                });
                let delivery =
                    send_transaction_record(&self.producer, txns, &event.transaction, None).await?;
                Ok(Some(delivery))
            }
        }
    }

    /// A [`WriteAck`] that resolves once every delivery did.
    fn ack_when_delivered(&self, deliveries: Vec<Delivery>) -> WriteAck {
        if deliveries.is_empty() {
            return WriteAck::durable();
        }
        let count = deliveries.len() as i64;
        self.metrics.records_in_flight.add(count);
        let metrics = self.metrics.clone();
        let (ack, sender) = WriteAck::pending();
        tokio::spawn(async move {
            let mut result = Ok(());
            let mut pending = count;
            for delivery in deliveries {
                let outcome = delivery.await;
                pending -= 1;
                metrics.records_in_flight.dec();
                match outcome {
                    Ok(_) => metrics.records_acked.inc(),
                    Err(e) => {
                        metrics.delivery_errors.inc();
                        tracing::warn!(error = %cdc_core::error_chain(&e), "Kafka did not acknowledge a record");
                        result = Err(SinkError::Write(Box::new(e)));
                        break;
                    }
                }
            }
            metrics.records_in_flight.sub(pending);
            sender.send(result);
        });
        ack
    }
}

/// How far back the transaction topic is searched for the last `END` at most, in
/// offsets (each step multiplies the span by 16).
const RESUME_SEARCH_SPANS: [i64; 4] = [64, 1_024, 16_384, i64::MAX];

impl KafkaSink {
    /// Fences earlier producers of this transactional id and finds the last source
    /// transaction a committed Kafka transaction holds.
    async fn start_exactly_once(&mut self) -> Result<Option<Lsn>, PublishError> {
        let Some(once) = &self.exactly_once else {
            return Ok(None);
        };
        let id = once.config.transactional_id.clone();
        if once.initialized {
            self.abort_open().await?;
        } else {
            self.producer.init_transactions().await?;
        }
        if let Some(once) = &mut self.exactly_once {
            once.initialized = true;
        }
        let Some(txns) = &self.transactions else {
            return Ok(None);
        };
        let mut last = None;
        for span in RESUME_SEARCH_SPANS {
            let tail = cdc_kafka::read_tail(
                &self.settings,
                &txns.topic,
                0,
                span,
                Duration::from_secs(60),
            )
            .await?;
            for record in tail.records.iter().rev() {
                let Some(value) = &record.value else { continue };
                let body = value.get(HEADER_LEN..).unwrap_or_default();
                match txns.schemas.end_commit_lsn(body) {
                    Ok(Some(lsn)) => {
                        last = Some(lsn);
                        break;
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        return Err(PublishError::Rejected(format!(
                            "{} offset {} is not a transaction record ({reason}); exactly-once capture resumes from this topic's last END record",
                            txns.topic, record.offset
                        )))
                    }
                }
            }
            // Found, or nothing older to read. A span with no committed record is not the
            // partition's start: the records of the Kafka transaction a killed capture left
            // open (aborted since by `init_transactions`) can fill it, and stopping there
            // would resume with no fence and publish again what Kafka holds.
            if last.is_some() || tail.whole_partition {
                break;
            }
        }
        match last {
            Some(lsn) => {
                tracing::info!(transactional_id = %id, resume_after = %lsn, "Kafka holds every source transaction through this commit LSN; what the slot sends again up to it is dropped")
            }
            None => tracing::info!(transactional_id = %id, "no committed transaction in Kafka yet"),
        }
        if let Some(once) = &mut self.exactly_once {
            once.resume_after = last;
        }
        Ok(last)
    }

    /// Aborts the Kafka transaction an earlier session of this sink left open; what waited
    /// for it fails, and the session starting now reads it again from the slot.
    async fn abort_open(&mut self) -> Result<(), PublishError> {
        let Some(once) = &mut self.exactly_once else {
            return Ok(());
        };
        once.alone = false;
        once.resume_after = None;
        once.skipped = 0;
        let mut failed = std::mem::take(&mut once.waiting);
        failed.extend(once.held.take().map(|(_, sender)| sender));
        let open = once.open_since.take().is_some();
        if let Some(txns) = &mut self.transactions {
            txns.open = None;
        }
        for sender in failed {
            sender.send(Err(SinkError::write_failed(
                "the Kafka transaction was aborted when the sink started again",
            )));
        }
        if open {
            self.producer.abort_transaction().await?;
        }
        Ok(())
    }

    /// Drops the events a committed Kafka transaction already holds (exactly-once mode).
    fn drop_published(&mut self, batch: &mut Vec<ChangeEvent>) {
        let Some(once) = &mut self.exactly_once else {
            return;
        };
        let Some(after) = once.resume_after else {
            return;
        };
        let before = batch.len();
        batch.retain(|e| e.position.commit_lsn > after);
        let dropped = (before - batch.len()) as u64;
        self.metrics.already_published.inc_by(dropped);
        once.skipped += dropped;
        if !batch.is_empty() {
            // Commit order: everything from here on is new to Kafka.
            once.resume_after = None;
            tracing::info!(events = once.skipped, through = %after, "dropped events read again that Kafka already held");
        }
    }

    async fn write_events(
        &mut self,
        mut batch: Vec<ChangeEvent>,
    ) -> Result<WriteAck, PublishError> {
        self.drop_published(&mut batch);
        if batch.is_empty() {
            return Ok(WriteAck::durable());
        }
        let Some(once) = &mut self.exactly_once else {
            return self.produce(batch).await;
        };
        if once.alone {
            return self.produce(batch).await;
        }
        match once.held.take() {
            None => {
                let (ack, sender) = WriteAck::pending();
                once.held = Some((batch, sender));
                Ok(ack)
            }
            Some(first) => {
                self.go_alone(first).await?;
                self.produce(batch).await
            }
        }
    }

    /// The current source transaction spans batches: commits the group of whole ones
    /// and gives it a Kafka transaction of its own, starting with its held first batch.
    async fn go_alone(&mut self, first: (Vec<ChangeEvent>, AckSender)) -> Result<(), PublishError> {
        self.commit_kafka().await?;
        self.begin_kafka()?;
        if let Some(once) = &mut self.exactly_once {
            once.alone = true;
        }
        let (batch, sender) = first;
        let ack = self.produce(batch).await?;
        tokio::spawn(async move { sender.send(ack.wait().await) });
        Ok(())
    }

    /// Opens a Kafka transaction unless one is open.
    fn begin_kafka(&mut self) -> Result<(), PublishError> {
        let Some(once) = &mut self.exactly_once else {
            return Ok(());
        };
        if once.open_since.is_none() {
            self.producer.begin_transaction()?;
            once.open_since = Some(Instant::now());
        }
        Ok(())
    }

    /// Commits the open Kafka transaction and resolves the acks waiting for it.
    async fn commit_kafka(&mut self) -> Result<(), PublishError> {
        let Some(once) = &mut self.exactly_once else {
            return Ok(());
        };
        if once.open_since.take().is_none() {
            return Ok(());
        }
        let waiting = std::mem::take(&mut once.waiting);
        let started = Instant::now();
        match self.producer.commit_transaction().await {
            Ok(()) => {
                self.metrics.kafka_transactions.inc();
                self.metrics
                    .kafka_commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.metrics
                    .kafka_transaction_sources
                    .observe(waiting.len() as f64);
                for sender in waiting {
                    sender.send(Ok(()));
                }
                Ok(())
            }
            Err(e) => {
                self.metrics.kafka_transaction_failures.inc();
                let text = cdc_core::error_chain(&e);
                tracing::warn!(error = %text, "Kafka transaction not committed; none of its records is visible and capture restarts from the slot");
                for sender in waiting {
                    sender.send(Err(SinkError::write_failed(text.clone())));
                }
                Err(e.into())
            }
        }
    }

    async fn commit_source(
        &mut self,
        txn: &TransactionInfo,
        events: u64,
    ) -> Result<WriteAck, PublishError> {
        if self
            .exactly_once
            .as_ref()
            .and_then(|once| once.resume_after)
            .is_some_and(|after| txn.commit_lsn <= after)
        {
            return Ok(WriteAck::durable());
        }
        if self.exactly_once.is_some() {
            self.begin_kafka()?;
            let held = self.exactly_once.as_mut().and_then(|once| once.held.take());
            if let Some((batch, sender)) = held {
                let ack = self.produce(batch).await?;
                tokio::spawn(async move { sender.send(ack.wait().await) });
            }
        }
        let Some(txns) = &mut self.transactions else {
            return Ok(WriteAck::durable());
        };
        let per_table = match txns.open.take() {
            Some(open) if open.commit_lsn == txn.commit_lsn => open.per_table,
            _ => BTreeMap::new(),
        };
        let delivery =
            send_transaction_record(&self.producer, txns, txn, Some((events, &per_table))).await?;
        let delivered = self.ack_when_delivered(vec![delivery]);
        let Some(once) = &mut self.exactly_once else {
            return Ok(delivered);
        };
        // Durable once committed (the commit delivers every record first).
        drop(delivered);
        let (ack, sender) = WriteAck::pending();
        once.waiting.push(sender);
        let alone = std::mem::take(&mut once.alone);
        let due = once
            .open_since
            .is_some_and(|since| since.elapsed() >= once.config.commit_interval);
        if alone || due {
            self.commit_kafka().await?;
        }
        Ok(ack)
    }

    /// Commits what is whole and releases a held batch, so every ack handed out resolves.
    async fn flush_kafka(&mut self) -> Result<(), PublishError> {
        let held = self.exactly_once.as_mut().and_then(|once| once.held.take());
        match held {
            Some(first) => self.go_alone(first).await,
            None if self.exactly_once.as_ref().is_some_and(|once| !once.alone) => {
                self.commit_kafka().await
            }
            None => Ok(()),
        }
    }
}

impl ChangeSink for KafkaSink {
    async fn start(&mut self) -> Result<Option<Lsn>, SinkError> {
        self.start_exactly_once().await.map_err(SinkError::from)
    }

    async fn write(&mut self, batch: Vec<ChangeEvent>) -> Result<WriteAck, SinkError> {
        self.write_events(batch).await.map_err(SinkError::from)
    }

    async fn commit(&mut self, txn: &TransactionInfo, events: u64) -> Result<WriteAck, SinkError> {
        self.commit_source(txn, events)
            .await
            .map_err(SinkError::from)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.flush_kafka().await.map_err(SinkError::from)
    }

    fn flush_deadline(&self) -> Option<Instant> {
        let once = self.exactly_once.as_ref()?;
        if once.alone || once.held.is_some() || once.waiting.is_empty() {
            return None;
        }
        once.open_since
            .map(|since| since + once.config.commit_interval)
    }
}

async fn send_transaction_record(
    producer: &Producer,
    txns: &TransactionTopic,
    txn: &TransactionInfo,
    counts: Option<(u64, &BTreeMap<String, u64>)>,
) -> Result<Delivery, PublishError> {
    let mut key = Vec::with_capacity(32);
    put_header(&mut key, txns.key_id);
    key.extend_from_slice(&txns.schemas.key(txn)?);
    let mut value = Vec::with_capacity(128);
    put_header(&mut value, txns.value_id);
    value.extend_from_slice(&txns.schemas.value(txn, counts)?);
    Ok(producer
        .send_to(&txns.topic, Some(0), Some(&key), Some(&value))
        .await?)
}

fn encode_key(shape: &Shape, row: &[cdc_core::Value]) -> Result<Vec<u8>, cdc_avro::AvroError> {
    let mut key = Vec::with_capacity(HEADER_LEN + 16);
    put_header(&mut key, shape.key_id);
    shape.avro.write_key(row, &mut key)?;
    Ok(key)
}

fn op_index(op: Op) -> usize {
    match op {
        Op::Read => 0,
        Op::Insert => 1,
        Op::Update => 2,
        Op::Delete => 3,
        Op::Truncate => 4,
    }
}

/// The latest schema registered under `subject`, or `None` when it has none.
async fn latest_schema(
    registry: &RegistryClient,
    subject: &str,
) -> Result<Option<Schema>, PublishError> {
    match registry.latest(subject).await {
        Ok(found) => Schema::parse_str(&found.schema).map(Some).map_err(|e| {
            PublishError::Rejected(format!(
                "the latest schema under {subject} (id {}) is not valid Avro: {e}",
                found.id.get()
            ))
        }),
        Err(e) if matches!(e.error_code(), Some(SUBJECT_NOT_FOUND | VERSION_NOT_FOUND)) => Ok(None),
        Err(source) => Err(PublishError::Registry {
            subject: subject.to_owned(),
            source,
        }),
    }
}

async fn register(
    registry: &RegistryClient,
    subject: &str,
    text: &str,
) -> Result<u32, PublishError> {
    registry
        .register(subject, text)
        .await
        .map(|id| id.get())
        .map_err(|source| PublishError::Registry {
            subject: subject.to_owned(),
            source,
        })
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl From<PublishError> for SinkError {
    fn from(error: PublishError) -> Self {
        if error.is_retryable() {
            SinkError::Write(Box::new(error))
        } else {
            SinkError::Rejected(Box::new(error))
        }
    }
}

/// The category of a [`KafkaSink`] failure as the reader reports it, for metrics:
/// `registry` when the schema registry failed, `rejected` when the events cannot be
/// written as they are, `kafka` otherwise.
pub fn sink_failure_kind(error: &SinkError) -> &'static str {
    match error {
        // `From<PublishError>` keeps the error itself as the cause.
        SinkError::Write(cause)
            if cause
                .downcast_ref::<PublishError>()
                .is_some_and(|e| e.kind() == "registry") =>
        {
            "registry"
        }
        SinkError::Write(_) | SinkError::AckDropped => "kafka",
        SinkError::Rejected(_) => "rejected",
    }
}

impl PublishError {
    /// The category of the failure, for metrics: `kafka`, `registry` or `rejected`.
    pub fn kind(&self) -> &'static str {
        match self {
            PublishError::Kafka(_) => "kafka",
            PublishError::Registry { .. } => "registry",
            PublishError::Incompatible { .. } | PublishError::Rejected(_) => "rejected",
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PublishError::Kafka(error) => error.is_retryable(),
            PublishError::Registry { source, .. } => source.is_retryable(),
            PublishError::Incompatible { .. } | PublishError::Rejected(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds_survive_the_sink_error() {
        let registry = PublishError::Registry {
            subject: "totesys.public.staff-value".into(),
            source: RegistryClient::new("ftp://nowhere").unwrap_err(),
        };
        assert_eq!(registry.kind(), "registry");
        let text = cdc_core::error_chain(&registry);
        let error = SinkError::Write(Box::new(registry));
        assert_eq!(sink_failure_kind(&error), "registry");
        // The cause is kept whole: the one-line chain still says everything.
        assert_eq!(
            cdc_core::error_chain(&error),
            format!("sink write failed: {text}")
        );
        assert_eq!(
            sink_failure_kind(&SinkError::write_failed("broker down")),
            "kafka"
        );
        assert_eq!(sink_failure_kind(&SinkError::AckDropped), "kafka");
        assert_eq!(
            sink_failure_kind(&SinkError::from(PublishError::Rejected("no".into()))),
            "rejected"
        );
    }
}
