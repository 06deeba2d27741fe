use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::{KafkaError, KafkaSettings};

/// A topic to create when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// Topic configuration (`retention.ms`, `cleanup.policy`, …).
    pub config: Vec<(String, String)>,
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[TopicSpec],
) -> Result<(), KafkaError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config()
        .create()
        .map_err(KafkaError::Config)?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            t.config.iter().fold(
                NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(t.replication_factor),
                ),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(KafkaError::Admin)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::Topic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// What a topic holds: partitions and records between the watermarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStats {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: usize,
    /// Records still in the topic (high minus low watermark, summed over partitions).
    pub records: i64,
}

/// The topics whose names start with `prefix`, with their record counts, by name.
pub async fn topic_stats(
    settings: &KafkaSettings,
    prefix: &str,
) -> Result<Vec<TopicStats>, KafkaError> {
    let consumer: rdkafka::consumer::BaseConsumer = settings
        .client_config()
        .set("group.id", "totesys-cdc-topic-stats")
        .create()
        .map_err(KafkaError::Config)?;
    let prefix = prefix.to_owned();
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        let timeout = Duration::from_secs(10);
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(KafkaError::Admin)?;
        let mut stats = Vec::new();
        for topic in metadata.topics() {
            if !topic.name().starts_with(&prefix) {
                continue;
            }
            let mut records = 0;
            for partition in topic.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(topic.name(), partition.id(), timeout)
                    .map_err(KafkaError::Admin)?;
                records += high - low;
            }
            stats.push(TopicStats {
                name: topic.name().to_owned(),
                partitions: topic.partitions().len(),
                records,
            });
        }
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(stats)
    })
    .await
    .map_err(|e| KafkaError::Topic {
        topic: "(all)".into(),
        reason: format!("metadata lookup did not finish: {e}"),
    })?
}

/// How far a consumer group's committed offsets are behind the topics' ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    /// The group.
    pub group: String,
    /// Per topic: records between the group's committed offsets and the high
    /// watermarks (a partition without a commit counts from its low watermark).
    pub topics: Vec<(String, i64)>,
}

impl GroupLag {
    /// Records behind, over every topic.
    pub fn total(&self) -> i64 {
        self.topics.iter().map(|(_, lag)| lag).sum()
    }
}

/// The lag of each consumer group in `groups` over the topics whose names start with
/// `prefix`; the groups' committed offsets are only read, never joined or changed.
pub async fn group_lags(
    settings: &KafkaSettings,
    prefix: &str,
    groups: &[String],
) -> Result<Vec<GroupLag>, KafkaError> {
    let settings = settings.clone();
    let prefix = prefix.to_owned();
    let groups = groups.to_vec();
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{Offset, TopicPartitionList};
        let timeout = Duration::from_secs(10);
        let probe: BaseConsumer = settings
            .client_config()
            .set("group.id", "totesys-cdc-status")
            .create()
            .map_err(KafkaError::Config)?;
        let metadata = probe
            .fetch_metadata(None, timeout)
            .map_err(KafkaError::Admin)?;
        let mut partitions = TopicPartitionList::new();
        let mut ends = std::collections::HashMap::new();
        for topic in metadata.topics() {
            if !topic.name().starts_with(&prefix) {
                continue;
            }
            for partition in topic.partitions() {
                let marks = probe
                    .fetch_watermarks(topic.name(), partition.id(), timeout)
                    .map_err(KafkaError::Admin)?;
                ends.insert((topic.name().to_owned(), partition.id()), marks);
                partitions.add_partition(topic.name(), partition.id());
            }
        }
        let mut lags = Vec::new();
        for group in groups {
            let member: BaseConsumer = settings
                .client_config()
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()
                .map_err(KafkaError::Config)?;
            let committed = member
                .committed_offsets(partitions.clone(), timeout)
                .map_err(KafkaError::Admin)?;
            let mut per_topic: std::collections::BTreeMap<String, i64> = Default::default();
            for element in committed.elements() {
                let Some(&(low, high)) =
                    ends.get(&(element.topic().to_owned(), element.partition()))
                else {
                    continue;
                };
                let position = match element.offset() {
                    Offset::Offset(offset) => offset.max(low),
                    _ => low,
                };
                *per_topic.entry(element.topic().to_owned()).or_default() +=
                    (high - position).max(0);
            }
            lags.push(GroupLag {
                group,
                topics: per_topic.into_iter().collect(),
            });
        }
        Ok(lags)
    })
    .await
    .map_err(|e| KafkaError::Topic {
        topic: "(all)".into(),
        reason: format!("consumer group lookup did not finish: {e}"),
    })?
}
