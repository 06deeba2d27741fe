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
