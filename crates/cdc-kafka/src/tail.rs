//! [`read_tail`]: the last records of one partition, as a `read_committed` reader sees them.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::{KafkaError, KafkaSettings};

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
/// when the partition holds fewer, none when it is empty), oldest first. Records of
/// aborted transactions and transaction markers are not returned, so the result may
/// hold fewer than `span` records even when the partition is long.
pub async fn read_tail(
    settings: &KafkaSettings,
    topic: &str,
    partition: i32,
    span: i64,
    timeout: Duration,
) -> Result<Vec<TailRecord>, KafkaError> {
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
) -> Result<Vec<TailRecord>, KafkaError> {
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
        return Ok(Vec::new());
    }
    let start = low.max(high - span.max(1));
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
            // The end as a read_committed reader sees it (the last stable offset).
            Some(Err(RdKafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => {
                tracing::debug!(topic, partition, error = %e, "reading the tail; retrying");
            }
            None => {}
        }
    }
    Ok(records)
}
