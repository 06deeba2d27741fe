//! The partitions of the lake's topics and their offsets: where a bounded run (replay)
//! starts and where it stops, and the bookkeeping of its own consumer group.

use std::collections::HashMap;
use std::time::Duration;

use cdc_kafka::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use crate::LakeError;

/// A time for [`offsets_at_time`]: RFC 3339 (`2026-11-01T00:00:00Z`) or milliseconds
/// since the epoch, as milliseconds since the epoch.
pub fn parse_time_ms(text: &str) -> Result<i64, LakeError> {
    if let Ok(ms) = text.trim().parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            LakeError::Shape(format!(
                "time {text:?} is neither RFC 3339 (2026-11-01T00:00:00Z) nor milliseconds since the epoch: {e}"
            ))
        })
}

/// How long a blocking Kafka lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// One partition of a topic the lake is written from, and its offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset still in the partition (the low watermark; above 0 once retention
    /// or deletion has removed records).
    pub low: i64,
    /// The offset the next record will get (the high watermark).
    pub high: i64,
}

impl PartitionOffsets {
    /// The `(topic, partition)` key the lake writer uses.
    pub fn key(&self) -> (String, i32) {
        (self.topic.clone(), self.partition)
    }
}

/// Whether `topic` is one the lake is written from: a change topic `<prefix>.<schema>.<table>`
/// or the transaction topic `<prefix>.transaction` (not the dead letters).
pub fn is_lake_topic(prefix: &str, topic: &str) -> bool {
    topic
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|rest| {
            rest == "transaction"
                || (rest.split('.').count() == 2 && !rest.contains("dead-letters"))
        })
}

fn client(settings: &KafkaSettings, group: &str) -> Result<BaseConsumer, LakeError> {
    let mut config = settings.client_config();
    config.set("group.id", group);
    config.set("enable.auto.commit", "false");
    config
        .create()
        .map_err(|e| LakeError::Kafka(format!("cannot create a Kafka client: {e}")))
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, LakeError> + Send + 'static,
) -> Result<T, LakeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| LakeError::Kafka(format!("{what} did not finish: {e}")))?
}

/// Every partition of the lake's topics under `prefix` (see [`is_lake_topic`]) with its
/// low and high watermarks, by topic and partition.
pub async fn lake_partitions(
    settings: &KafkaSettings,
    prefix: &str,
) -> Result<Vec<PartitionOffsets>, LakeError> {
    let consumer = client(settings, "totesys-cdc-offsets")?;
    let prefix = prefix.to_owned();
    blocking("the watermark lookup", move || {
        let metadata = consumer
            .fetch_metadata(None, LOOKUP_TIMEOUT)
            .map_err(|e| LakeError::Kafka(format!("cannot read the topic metadata: {e}")))?;
        let mut found = Vec::new();
        for topic in metadata.topics() {
            if !is_lake_topic(&prefix, topic.name()) {
                continue;
            }
            for partition in topic.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(topic.name(), partition.id(), LOOKUP_TIMEOUT)
                    .map_err(|e| {
                        LakeError::Kafka(format!(
                            "cannot read the watermarks of {} partition {}: {e}",
                            topic.name(),
                            partition.id()
                        ))
                    })?;
                found.push(PartitionOffsets {
                    topic: topic.name().to_owned(),
                    partition: partition.id(),
                    low,
                    high,
                });
            }
        }
        found.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(found)
    })
    .await
}

/// The first offset at or after `timestamp_ms` (milliseconds since the epoch, the
/// records' timestamps) in each of `partitions`; its high watermark when every record
/// is older.
pub async fn offsets_at_time(
    settings: &KafkaSettings,
    partitions: &[PartitionOffsets],
    timestamp_ms: i64,
) -> Result<HashMap<(String, i32), i64>, LakeError> {
    let consumer = client(settings, "totesys-cdc-offsets")?;
    let partitions = partitions.to_vec();
    blocking("the offsets-for-times lookup", move || {
        let mut wanted = TopicPartitionList::new();
        for p in &partitions {
            wanted
                .add_partition_offset(&p.topic, p.partition, Offset::Offset(timestamp_ms))
                .map_err(|e| {
                    LakeError::Kafka(format!("{} partition {}: {e}", p.topic, p.partition))
                })?;
        }
        let found = consumer
            .offsets_for_times(wanted, LOOKUP_TIMEOUT)
            .map_err(|e| LakeError::Kafka(format!("cannot look up offsets by time: {e}")))?;
        let mut out = HashMap::new();
        for p in &partitions {
            let offset = match found
                .find_partition(&p.topic, p.partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(offset)) => offset.clamp(p.low, p.high),
                // No record at or after the time: nothing to read.
                _ => p.high,
            };
            out.insert(p.key(), offset);
        }
        Ok(out)
    })
    .await
}

/// Commits `offsets` for `group` (which must have no active member), so that a lake
/// writer joining it starts each partition there.
pub async fn commit_group_offsets(
    settings: &KafkaSettings,
    group: &str,
    offsets: &HashMap<(String, i32), i64>,
) -> Result<(), LakeError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let consumer = client(settings, group)?;
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(|e| LakeError::Kafka(format!("{topic} partition {partition}: {e}")))?;
    }
    let group = group.to_owned();
    blocking("the offset commit", move || {
        consumer.commit(&list, CommitMode::Sync).map_err(|e| {
            LakeError::Kafka(format!(
                "cannot commit start offsets for group {group}: {e}"
            ))
        })
    })
    .await
}

/// Deletes consumer group `group` (its committed offsets) from the cluster.
pub async fn delete_group(settings: &KafkaSettings, group: &str) -> Result<(), LakeError> {
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config()
        .create()
        .map_err(|e| LakeError::Kafka(format!("cannot create a Kafka admin client: {e}")))?;
    let options = AdminOptions::new().operation_timeout(Some(LOOKUP_TIMEOUT));
    let results: KafkaResult<_> = admin.delete_groups(&[group], &options).await;
    let results =
        results.map_err(|e| LakeError::Kafka(format!("cannot delete group {group}: {e}")))?;
    for result in results {
        if let Err((name, code)) = result {
            return Err(LakeError::Kafka(format!(
                "cannot delete group {name}: {code}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{is_lake_topic, parse_time_ms};

    #[test]
    fn times_are_rfc_3339_or_epoch_milliseconds() {
        assert_eq!(parse_time_ms("1700000000123").ok(), Some(1_700_000_000_123));
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z").ok(), Some(1000));
        assert_eq!(parse_time_ms("1970-01-01T01:00:00+01:00").ok(), Some(0));
        assert!(parse_time_ms("yesterday").is_err());
    }

    #[test]
    fn the_lake_reads_change_topics_and_the_transaction_topic() {
        assert!(is_lake_topic("totesys", "totesys.public.sales_order"));
        assert!(is_lake_topic("totesys", "totesys.transaction"));
        assert!(!is_lake_topic("totesys", "totesys.lake-dead-letters"));
        assert!(!is_lake_topic("totesys", "totesys.replay-dead-letters"));
        assert!(!is_lake_topic("totesys", "totesysx.public.sales_order"));
        assert!(!is_lake_topic("totesys", "other.public.sales_order"));
        assert!(!is_lake_topic("totesys", "totesys.a.b.c"));
    }
}
