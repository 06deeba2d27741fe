use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;

use crate::{KafkaContext, KafkaError, KafkaSettings};

/// The topic setting that says how many replicas must have a write before `acks=all`.
const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// A topic to create when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor; `None`: chosen for the cluster (see [`Replication::for_brokers`]).
    pub replication_factor: Option<i32>,
    /// Topic configuration (`retention.ms`, `cleanup.policy`, …); a `min.insync.replicas`
    /// here wins over the one chosen with the replication factor.
    pub config: Vec<(String, String)>,
}

impl TopicSpec {
    /// A topic of `partitions` partitions, replicated as the cluster suggests, with no config.
    pub fn new(name: impl Into<String>, partitions: i32) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: None,
            config: Vec::new(),
        }
    }

    /// The same topic with `factor` copies of each partition.
    pub fn replicated(mut self, factor: i32) -> TopicSpec {
        self.replication_factor = Some(factor);
        self
    }
}

/// The copies a new topic gets: its replication factor and `min.insync.replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// Replication factor.
    pub factor: i32,
    /// `min.insync.replicas`: with `acks=all`, a write is acknowledged once this many
    /// replicas have it.
    pub min_insync: i32,
}

impl Replication {
    /// The defaults for a cluster of `brokers` live brokers: three replicas where there
    /// are three brokers or more (fewer on a smaller cluster), and writes acknowledged by
    /// two of three, so one broker can be lost or restarted without stopping or losing
    /// anything.
    pub fn for_brokers(brokers: usize) -> Replication {
        let factor = i32::try_from(brokers.clamp(1, 3)).unwrap_or(1);
        Replication::with_factor(factor)
    }

    /// `factor` replicas with `min.insync.replicas` of one less, at least one, at most two.
    pub fn with_factor(factor: i32) -> Replication {
        Replication {
            factor,
            min_insync: (factor - 1).clamp(1, 2),
        }
    }
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
///
/// A spec without a replication factor gets [`Replication::for_brokers`] for the live
/// brokers in the cluster's metadata; every topic gets the `min.insync.replicas` that
/// goes with its factor unless its config names one.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[TopicSpec],
) -> Result<(), KafkaError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<KafkaContext> = settings
        .client_config()
        .create_with_context(KafkaContext::default())
        .map_err(KafkaError::Config)?;
    let cluster_default = if topics.iter().any(|t| t.replication_factor.is_none()) {
        Replication::for_brokers(broker_count(settings).await?)
    } else {
        Replication::with_factor(1)
    };
    let replications: Vec<Replication> = topics
        .iter()
        .map(|t| {
            t.replication_factor
                .map_or(cluster_default, Replication::with_factor)
        })
        .collect();
    let min_insync: Vec<String> = replications
        .iter()
        .map(|r| r.min_insync.to_string())
        .collect();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&replications)
        .zip(&min_insync)
        .map(|((t, replication), min_insync)| {
            let topic = NewTopic::new(
                &t.name,
                t.partitions,
                TopicReplication::Fixed(replication.factor),
            );
            let topic = if t.config.iter().any(|(k, _)| k == MIN_INSYNC_REPLICAS) {
                topic
            } else {
                topic.set(MIN_INSYNC_REPLICAS, min_insync)
            };
            t.config.iter().fold(topic, |topic, (k, v)| topic.set(k, v))
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| admin.inner().context().explain(KafkaError::Admin(e)))?;
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

/// `error`, or the cluster's refusal of `consumer` behind it: a consumer hands its
/// context librdkafka's error events only when polled, so it is polled once here.
fn explained(
    consumer: &rdkafka::consumer::BaseConsumer<KafkaContext>,
    error: KafkaError,
) -> KafkaError {
    use rdkafka::consumer::Consumer;
    let _ = consumer.poll(Duration::ZERO);
    consumer.context().explain(error)
}

/// How many live brokers the cluster's metadata lists.
pub async fn broker_count(settings: &KafkaSettings) -> Result<usize, KafkaError> {
    let consumer: rdkafka::consumer::BaseConsumer<KafkaContext> = settings
        .client_config()
        .create_with_context(KafkaContext::default())
        .map_err(KafkaError::Config)?;
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|metadata| metadata.brokers().len())
            .map_err(|e| explained(&consumer, KafkaError::Admin(e)))
    })
    .await
    .map_err(|e| KafkaError::Topic {
        topic: "(all)".into(),
        reason: format!("metadata lookup did not finish: {e}"),
    })?
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
    let consumer: rdkafka::consumer::BaseConsumer<KafkaContext> = settings
        .client_config()
        .set("group.id", "totesys-cdc-topic-stats")
        .create_with_context(KafkaContext::default())
        .map_err(KafkaError::Config)?;
    let prefix = prefix.to_owned();
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        let timeout = Duration::from_secs(10);
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| explained(&consumer, KafkaError::Admin(e)))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_follows_the_cluster_size() {
        let expect = |factor, min_insync| Replication { factor, min_insync };
        assert_eq!(Replication::for_brokers(0), expect(1, 1));
        assert_eq!(Replication::for_brokers(1), expect(1, 1));
        assert_eq!(Replication::for_brokers(2), expect(2, 1));
        assert_eq!(Replication::for_brokers(3), expect(3, 2));
        assert_eq!(Replication::for_brokers(12), expect(3, 2));
        assert_eq!(Replication::with_factor(5), expect(5, 2));
    }
}
