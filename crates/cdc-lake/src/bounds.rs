//! The partitions of the lake's topics and their offsets: where a bounded run (replay)
//! starts and where it stops, and the bookkeeping of its own consumer group.

use std::collections::{BTreeMap, HashMap};
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
        .map_err(LakeError::shape(format!("time {text:?} is neither RFC 3339 (2026-11-01T00:00:00Z) nor milliseconds since the epoch")))
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
        .map_err(LakeError::kafka("cannot create a Kafka client"))
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, LakeError> + Send + 'static,
) -> Result<T, LakeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(LakeError::kafka(format!("{what} did not finish")))?
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
            .map_err(LakeError::kafka("cannot read the topic metadata"))?;
        let mut found = Vec::new();
        for topic in metadata.topics() {
            if !is_lake_topic(&prefix, topic.name()) {
                continue;
            }
            for partition in topic.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(topic.name(), partition.id(), LOOKUP_TIMEOUT)
                    .map_err(LakeError::kafka(format!(
                        "cannot read the watermarks of {} partition {}",
                        topic.name(),
                        partition.id()
                    )))?;
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
                .map_err(LakeError::kafka(format!(
                    "{} partition {}",
                    p.topic, p.partition
                )))?;
        }
        let found = consumer
            .offsets_for_times(wanted, LOOKUP_TIMEOUT)
            .map_err(LakeError::kafka("cannot look up offsets by time"))?;
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
            .map_err(LakeError::kafka(format!("{topic} partition {partition}")))?;
    }
    let group = group.to_owned();
    blocking("the offset commit", move || {
        consumer
            .commit(&list, CommitMode::Sync)
            .map_err(LakeError::kafka(format!(
                "cannot commit start offsets for group {group}"
            )))
    })
    .await
}

/// Deletes consumer group `group` (its committed offsets) from the cluster.
pub async fn delete_group(settings: &KafkaSettings, group: &str) -> Result<(), LakeError> {
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config()
        .create()
        .map_err(LakeError::kafka("cannot create a Kafka admin client"))?;
    let options = AdminOptions::new().operation_timeout(Some(LOOKUP_TIMEOUT));
    let results: KafkaResult<_> = admin.delete_groups(&[group], &options).await;
    let results = results.map_err(LakeError::kafka(format!("cannot delete group {group}")))?;
    for result in results {
        if let Err((name, code)) = result {
            return Err(LakeError::kafka(format!("cannot delete group {name}"))(
                code,
            ));
        }
    }
    Ok(())
}

/// Records a consumer group has still to read, per topic: each partition's high watermark
/// less the group's committed offset (a partition without a commit, or one whose commit
/// retention has overtaken, counts from its low watermark).
pub fn records_behind(
    partitions: &[PartitionOffsets],
    committed: &HashMap<(String, i32), i64>,
) -> BTreeMap<String, i64> {
    let mut behind = BTreeMap::new();
    for p in partitions {
        let position = committed
            .get(&p.key())
            .map_or(p.low, |offset| (*offset).max(p.low));
        *behind.entry(p.topic.clone()).or_default() += (p.high - position).max(0);
    }
    behind
}

/// A bounded read of the lake's topics, fixed before it starts: from given start offsets
/// to every partition's high watermark as it was then (replay).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPlan {
    /// Start offset of every partition with records to read.
    pub starts: HashMap<(String, i32), i64>,
    /// End offset (exclusive) of the same partitions.
    pub ends: HashMap<(String, i32), i64>,
    /// Records between the starts and the ends.
    pub records: u64,
    /// Partitions read that no longer begin at offset 0 (retention or deletion removed
    /// their first records), sorted by topic and partition.
    pub truncated: Vec<PartitionOffsets>,
}

impl ReadPlan {
    /// The plan over `partitions` from `starts` (a partition missing there reads nothing),
    /// leaving out the topic `skip` when given.
    pub fn new(
        partitions: &[PartitionOffsets],
        starts: &HashMap<(String, i32), i64>,
        skip: Option<&str>,
    ) -> ReadPlan {
        let mut plan = ReadPlan::default();
        for p in partitions.iter().filter(|p| Some(p.topic.as_str()) != skip) {
            if p.low > 0 {
                plan.truncated.push(p.clone());
            }
            let Some(start) = starts.get(&p.key()).copied().filter(|s| *s < p.high) else {
                continue;
            };
            plan.records += u64::try_from(p.high - start).unwrap_or(0);
            plan.starts.insert(p.key(), start);
            plan.ends.insert(p.key(), p.high);
        }
        plan.truncated
            .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        plan
    }

    /// Starts at every partition's first record still kept.
    pub fn from_beginning(partitions: &[PartitionOffsets], skip: Option<&str>) -> ReadPlan {
        let starts = partitions.iter().map(|p| (p.key(), p.low)).collect();
        ReadPlan::new(partitions, &starts, skip)
    }

    /// Read from the beginning, what the truncated partitions lost, in one line (`None`
    /// when nothing was lost).
    pub fn lost_from_beginning(&self) -> Option<String> {
        let first = self.truncated.first()?;
        let lost: i64 = self.truncated.iter().map(|p| p.low).sum();
        Some(format!(
            "{} partitions no longer start at offset 0 ({lost} records removed by retention or \
             deletion, first {} partition {}): the snapshot and early changes are missing, so \
             the rebuilt warehouse is PARTIAL",
            self.truncated.len(),
            first.topic,
            first.partition
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn partition(topic: &str, partition: i32, low: i64, high: i64) -> PartitionOffsets {
        PartitionOffsets {
            topic: topic.into(),
            partition,
            low,
            high,
        }
    }

    #[test]
    fn a_group_is_behind_by_what_lies_above_its_commits() {
        let partitions = [
            partition("t.public.a", 0, 0, 10),
            partition("t.public.a", 1, 5, 8),
            partition("t.public.b", 0, 20, 30),
        ];
        let committed = HashMap::from([
            (("t.public.a".to_owned(), 0), 4),
            // Retention overtook this commit: counted from the low watermark.
            (("t.public.b".to_owned(), 0), 12),
        ]);
        let behind = records_behind(&partitions, &committed);
        // a/0: 10 - 4; a/1 (no commit): 8 - 5; b/0: 30 - 20.
        assert_eq!(
            behind,
            BTreeMap::from([("t.public.a".to_owned(), 9), ("t.public.b".to_owned(), 10)])
        );
    }

    #[test]
    fn a_read_plan_stops_at_the_high_watermarks_and_names_what_retention_removed() {
        let partitions = [
            partition("t.public.a", 0, 0, 10),
            partition("t.public.a", 1, 3, 3),
            partition("t.public.b", 0, 7, 9),
            partition("t.transaction", 0, 0, 4),
        ];
        let plan = ReadPlan::from_beginning(&partitions, Some("t.transaction"));
        assert_eq!(plan.records, 10 + 2);
        // An empty partition has nothing to read; the skipped topic is left out.
        assert_eq!(
            plan.ends,
            HashMap::from([
                (("t.public.a".to_owned(), 0), 10),
                (("t.public.b".to_owned(), 0), 9)
            ])
        );
        assert_eq!(plan.starts[&("t.public.b".to_owned(), 0)], 7);
        assert_eq!(
            plan.truncated.iter().map(|p| p.key()).collect::<Vec<_>>(),
            [("t.public.a".to_owned(), 1), ("t.public.b".to_owned(), 0)]
        );
        let lost = plan.lost_from_beginning().unwrap();
        assert!(
            lost.starts_with("2 partitions no longer start at offset 0 (10 records"),
            "{lost}"
        );
        assert!(lost.contains("first t.public.a partition 1"), "{lost}");

        let whole = ReadPlan::from_beginning(&partitions[..1], None);
        assert_eq!(whole.lost_from_beginning(), None);
        // From a time: starts past the end read nothing.
        let starts = HashMap::from([(("t.public.a".to_owned(), 0), 10)]);
        assert_eq!(ReadPlan::new(&partitions, &starts, None).records, 0);
    }
}
