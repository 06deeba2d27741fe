use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};

use crate::{KafkaError, KafkaSettings};

/// How long a topic just created may take to appear in every broker's metadata.
const METADATA_PROPAGATION: Duration = Duration::from_secs(30);

/// An idempotent, acks=all producer; optionally transactional.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
}

/// The transaction API's blocking calls run on the blocking pool, one at a time.
const TRANSACTION_CALL: Duration = Duration::from_secs(60);

impl Producer {
    /// Creates the producer; settings may override everything but idempotence and acks.
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        Self::build(settings, &[])
    }

    /// Creates a transactional producer with `transactional.id` `id` whose transactions
    /// the broker aborts when they stay open longer than `timeout`. Call
    /// [`Producer::init_transactions`] before the first record: it fences every earlier
    /// producer with the same id.
    pub fn transactional(
        settings: &KafkaSettings,
        id: &str,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let timeout_ms = timeout.as_millis().to_string();
        Self::build(
            settings,
            &[
                ("transactional.id", id),
                ("transaction.timeout.ms", timeout_ms.as_str()),
            ],
        )
    }

    fn build(settings: &KafkaSettings, forced: &[(&str, &str)]) -> Result<Self, KafkaError> {
        let mut config = settings.client_config();
        for (name, default) in [
            ("compression.type", "zstd"),
            ("linger.ms", "5"),
            // The Java client's partitioner, so keys land where Kafka Connect would put them.
            ("partitioner", "murmur2_random"),
            ("batch.num.messages", "10000"),
        ] {
            if config.get(name).is_none() {
                config.set(name, default);
            }
        }
        config.set("enable.idempotence", "true").set("acks", "all");
        for (name, value) in forced {
            config.set(*name, *value);
        }
        let inner = config.create().map_err(KafkaError::Config)?;
        Ok(Producer { inner })
    }

    /// Registers the transactional id with its coordinator, fencing older producers that
    /// use it and finishing (aborting, or completing a commit already decided) their open
    /// transaction.
    pub async fn init_transactions(&self) -> Result<(), KafkaError> {
        self.transaction_call("init", |p| p.init_transactions(TRANSACTION_CALL))
            .await
    }

    /// Opens a transaction: records sent from now on are committed or aborted together.
    pub fn begin_transaction(&self) -> Result<(), KafkaError> {
        self.inner
            .begin_transaction()
            .map_err(|source| KafkaError::Transaction {
                operation: "begin",
                source,
            })
    }

    /// Delivers every record of the open transaction and commits it; readers with
    /// `isolation.level=read_committed` see its records only from then on.
    pub async fn commit_transaction(&self) -> Result<(), KafkaError> {
        // rdkafka's commit flushes first, and its flush sleeps a whole 100 ms whenever a
        // record is still on its way (rdkafka 0.39's `BaseProducer::flush` polls for
        // min(remaining, 100 ms) and returns only at that deadline): every commit cost
        // 100 ms more than its deliveries. Waiting for the deliveries here, in 1 ms steps,
        // leaves its flush nothing to wait for; librdkafka's own commit then flushes
        // nothing and sends EndTxn at once.
        let deadline = tokio::time::Instant::now() + TRANSACTION_CALL;
        while self.inner.in_flight_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.transaction_call("commit", |p| p.commit_transaction(TRANSACTION_CALL))
            .await
    }

    /// Aborts the open transaction: no `read_committed` reader ever sees its records.
    pub async fn abort_transaction(&self) -> Result<(), KafkaError> {
        self.transaction_call("abort", |p| p.abort_transaction(TRANSACTION_CALL))
            .await
    }

    async fn transaction_call(
        &self,
        operation: &'static str,
        call: impl FnOnce(&FutureProducer) -> rdkafka::error::KafkaResult<()> + Send + 'static,
    ) -> Result<(), KafkaError> {
        let producer = self.inner.clone();
        tokio::task::spawn_blocking(move || call(&producer))
            .await
            // The blocking task only ends early when the runtime shuts down.
            .map_err(|_| KafkaError::Transaction {
                operation,
                source: RdKafkaError::Canceled,
            })?
            .map_err(|source| KafkaError::Transaction { operation, source })
    }

    /// Queues a record (a tombstone when `value` is `None`) to the partition its key
    /// hashes to; waits while the local queue is full. The returned [`Delivery`]
    /// resolves once the broker has it.
    pub async fn send(
        &self,
        topic: &str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<Delivery, KafkaError> {
        self.send_to(topic, None, Some(key), value).await
    }

    /// Queues a record to `partition` (or the key's partition when `None`); like [`Producer::send`].
    pub async fn send_to(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<Delivery, KafkaError> {
        self.send_with_headers(topic, partition, key, value, &[])
            .await
    }

    /// Queues a record carrying `headers` (name, value); like [`Producer::send_to`].
    pub async fn send_with_headers(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<Delivery, KafkaError> {
        loop {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic);
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(partition) = partition {
                record = record.partition(partition);
            }
            if let Some(value) = value {
                record = record.payload(value);
            }
            if !headers.is_empty() {
                record = record.headers(headers.iter().fold(
                    OwnedHeaders::new_with_capacity(headers.len()),
                    |all, (name, value)| {
                        all.insert(Header {
                            key: name,
                            value: Some(*value),
                        })
                    },
                ));
            }
            match self.inner.send_result(record) {
                Ok(future) => {
                    return Ok(Delivery {
                        topic: topic.to_owned(),
                        future,
                    })
                }
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Backpressure: let librdkafka drain, then try again.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((source, _)) => {
                    return Err(KafkaError::Delivery {
                        topic: topic.to_owned(),
                        source,
                    })
                }
            }
        }
    }

    /// The number of partitions of `topic`, asked of the cluster.
    ///
    /// A topic created a moment ago may not have reached every broker's metadata yet (on
    /// a cluster the controller has it before the brokers do): the lookup is repeated
    /// for up to 30 s while the cluster says it does not know the topic or its leaders.
    pub async fn partition_count(&self, topic: &str) -> Result<i32, KafkaError> {
        let deadline = tokio::time::Instant::now() + METADATA_PROPAGATION;
        loop {
            let found = self.lookup_partitions(topic).await?;
            let retry = match &found {
                None => true,
                Some((0, None)) => true,
                Some((_, Some(code))) => matches!(
                    code,
                    RDKafkaErrorCode::UnknownTopicOrPartition
                        | RDKafkaErrorCode::LeaderNotAvailable
                ),
                Some(_) => false,
            };
            if !retry || tokio::time::Instant::now() >= deadline {
                return match found {
                    Some((n, None)) if n > 0 => {
                        let n = i32::try_from(n).unwrap_or(i32::MAX);
                        self.wait_for_leaders(topic, n, deadline).await?;
                        Ok(n)
                    }
                    Some((_, error)) => Err(KafkaError::Topic {
                        topic: topic.to_owned(),
                        reason: match error {
                            Some(code) => format!("metadata says {code:?}"),
                            None => "the topic has no partitions".into(),
                        },
                    }),
                    None => Err(KafkaError::Topic {
                        topic: topic.to_owned(),
                        reason: "the cluster does not know it".into(),
                    }),
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the leader of every partition of `topic` serves it (answers a
    /// ListOffsets request, which a broker refuses, as it refuses a produce, until it has
    /// taken the partition's leadership).
    ///
    /// Why: a new producer's first batch to a partition that fails with "not leader"
    /// while its second batch, already in flight, succeeds, is lost: the broker, holding
    /// no state for the new producer id, accepts the second batch's sequence, and
    /// librdkafka then counts the first as acknowledged ("implicitly acked by subsequent
    /// batch success"). Seen on Apache Kafka 4.4 with librdkafka 2.12 on topics capture
    /// had just created (docs/kafka.md, "A new topic's first records").
    async fn wait_for_leaders(
        &self,
        topic: &str,
        partitions: i32,
        deadline: tokio::time::Instant,
    ) -> Result<(), KafkaError> {
        for partition in 0..partitions {
            loop {
                let producer = self.inner.clone();
                let name = topic.to_owned();
                let served = tokio::task::spawn_blocking(move || {
                    producer
                        .client()
                        .fetch_watermarks(&name, partition, Duration::from_secs(5))
                })
                .await
                .map_err(|e| KafkaError::Topic {
                    topic: topic.to_owned(),
                    reason: format!("leader lookup did not finish: {e}"),
                })?;
                match served {
                    Ok(_) => break,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        return Err(KafkaError::Topic {
                            topic: topic.to_owned(),
                            reason: format!("partition {partition} has no serving leader: {e}"),
                        })
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        Ok(())
    }

    /// One metadata lookup of `topic`: its partition count and error, if the cluster lists it.
    async fn lookup_partitions(
        &self,
        topic: &str,
    ) -> Result<Option<(usize, Option<RDKafkaErrorCode>)>, KafkaError> {
        let producer = self.inner.clone();
        let name = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&name), Duration::from_secs(30))
                .map(|metadata| {
                    metadata
                        .topics()
                        .iter()
                        .find(|t| t.name() == name)
                        .map(|t| (t.partitions().len(), t.error().map(RDKafkaErrorCode::from)))
                })
        })
        .await
        .map_err(|e| KafkaError::Topic {
            topic: topic.to_owned(),
            reason: format!("metadata lookup did not finish: {e}"),
        })?
        .map_err(KafkaError::Admin)
    }

    /// Waits until every queued record is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner
            .flush(timeout)
            .map_err(|source| KafkaError::Delivery {
                topic: "(all)".into(),
                source,
            })
    }
}

/// The broker's acknowledgement of one record: `(partition, offset)`.
pub struct Delivery {
    topic: String,
    future: DeliveryFuture,
}

impl Future for Delivery {
    type Output = Result<(i32, i64), KafkaError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let topic = self.topic.clone();
        match Pin::new(&mut self.future).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_canceled)) => Poll::Ready(Err(KafkaError::DeliveryCanceled { topic })),
            Poll::Ready(Ok(Err((source, _message)))) => {
                Poll::Ready(Err(KafkaError::Delivery { topic, source }))
            }
            Poll::Ready(Ok(Ok(delivery))) => Poll::Ready(Ok((delivery.partition, delivery.offset))),
        }
    }
}
