//! [`read_tail`]: the last records of one partition, as a `read_committed` reader sees them.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::{KafkaError, KafkaSettings};

/// What [`read_tail`] read: the committed records of a span of offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tail {
    /// The committed records, oldest first.
    pub records: Vec<TailRecord>,
    /// Whether the span began at the partition's first offset, so that nothing older
    /// exists: an empty `records` then means no committed record at all, while an empty
    /// `records` of a shorter span may only mean its offsets were all aborted.
    pub whole_partition: bool,
}

/// One record read by [`read_tail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRecord {
    /// Its offset.
    pub offset: i64,
    /// Its key, if any.
    pub key: Option<Vec<u8>>,
    /// Its value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// The committed records among the last `span` offsets of `topic`'s `partition` (fewer
/// when the partition holds fewer, none when it is empty), oldest first, read through
/// the high watermark taken at the start: a transaction still open there is waited for
/// until it commits or aborts (or `timeout` passes). Records of aborted transactions and
/// transaction markers are not returned, so the result may hold fewer than `span`
/// records even when the partition is long.
pub async fn read_tail(
    settings: &KafkaSettings,
    topic: &str,
    partition: i32,
    span: i64,
    timeout: Duration,
) -> Result<Tail, KafkaError> {
    let settings = settings.clone();
    let name = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        read_tail_blocking(&settings, &name, partition, span, timeout)
    })
    .await
    .map_err(|e| KafkaError::Read {
        topic: topic.to_owned(),
        partition,
        reason: format!("the read did not finish: {e}"),
    })?
}

fn read_tail_blocking(
    settings: &KafkaSettings,
    topic: &str,
    partition: i32,
    span: i64,
    timeout: Duration,
) -> Result<Tail, KafkaError> {
    let failed = |reason: String| KafkaError::Read {
        topic: topic.to_owned(),
        partition,
        reason,
    };
    let mut config = settings.client_config();
    config
        .set("group.id", "totesys-cdc-tail-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer = config.create().map_err(KafkaError::Config)?;
    let deadline = Instant::now() + timeout;
    let (low, high) = loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok(marks) => break marks,
            Err(e) if Instant::now() >= deadline => {
                return Err(failed(format!("no watermarks: {e}")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    if high <= low {
        return Ok(Tail {
            records: Vec::new(),
            whole_partition: true,
        });
    }
    let start = low.max(high.saturating_sub(span.max(1)));
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(|e| failed(e.to_string()))?;
    consumer
        .assign(&assignment)
        .map_err(|e| failed(format!("cannot assign: {e}")))?;
    let mut records = Vec::new();
    loop {
        if Instant::now() >= deadline {
            return Err(failed(format!(
                "offsets {start}..{high} not read within {timeout:?}"
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let offset = message.offset();
                records.push(TailRecord {
                    offset,
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                });
                if offset + 1 >= high {
                    break;
                }
            }
            // The end as a read_committed reader sees it is the last stable offset, which
            // lags the high watermark while a transaction's markers are still being
            // written (just after a broker failover, say). Stopping there would miss the
            // newest committed records, so the read waits until it has passed `high`.
            Some(Err(RdKafkaError::PartitionEOF(_))) | None => {
                if position(&consumer, topic, partition) >= high {
                    break;
                }
            }
            Some(Err(e)) => {
                tracing::debug!(topic, partition, error = %e, "reading the tail; retrying");
            }
        }
    }
    Ok(Tail {
        records,
        whole_partition: start == low,
    })
}

/// The consumer's next offset in `topic`'s `partition` (-1 when it has none yet).
fn position(consumer: &BaseConsumer, topic: &str, partition: i32) -> i64 {
    consumer
        .position()
        .ok()
        .and_then(|list| {
            list.find_partition(topic, partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                })
        })
        .unwrap_or(-1)
}
