//! Topic naming and the settings of the topics capture writes.

use cdc_core::TableName;
use cdc_kafka::TopicSpec;

/// The default topic prefix.
pub const DEFAULT_PREFIX: &str = "totesys";

/// A retention of 100 years: "forever", written as a number rather than Kafka's `-1`
/// because some Kafka-protocol brokers (Tansu 0.6.0) read `-1` as zero and delete every
/// record (docs/kafka.md).
pub const RETAIN_FOREVER_MS: i64 = 100 * 365 * 24 * 3600 * 1000;

/// What capture's Kafka sink publishes, and how its topics are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishConfig {
    /// Topic names are `<prefix>.<schema>.<table>`.
    pub topic_prefix: String,
    /// Partitions of each table topic created by capture (existing topics keep theirs).
    pub partitions: i32,
    /// Replication factor of the topics capture creates; `None`: chosen for the cluster
    /// ([`cdc_kafka::Replication::for_brokers`]).
    pub replication_factor: Option<i32>,
    /// `retention.ms` of the topics capture creates. The default, [`RETAIN_FOREVER_MS`],
    /// keeps every event, which replay and backfill from the beginning need.
    pub retention_ms: i64,
    /// Further topic configuration (`min.insync.replicas`, `segment.bytes`, …).
    pub topic_config: Vec<(String, String)>,
    /// Follow each delete (and each key change's old key) with a tombstone.
    pub tombstones: bool,
    /// Also write transaction boundaries to `<prefix>.transaction` (always written in
    /// exactly-once mode, where its `END` records are the resume point).
    pub transaction_topic: bool,
    /// Publish in Kafka transactions, each change exactly once; `None`: at least once.
    pub exactly_once: Option<ExactlyOnce>,
}

/// How capture publishes exactly once (docs/kafka.md, "Exactly once").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactlyOnce {
    /// The producer's `transactional.id`, one per replication slot: a producer that
    /// starts with it fences every earlier one.
    pub transactional_id: String,
    /// `transaction.timeout.ms`: how long one Kafka transaction (the initial snapshot, a
    /// large source transaction) may stay open; at most the broker's
    /// `transaction.max.timeout.ms`.
    pub transaction_timeout: std::time::Duration,
    /// How long small source transactions are grouped into one Kafka transaction.
    pub commit_interval: std::time::Duration,
}

impl ExactlyOnce {
    /// The settings for `slot` under topic prefix `prefix`: transactional id
    /// `<prefix>.capture.<slot>`, a 15-minute transaction timeout (Kafka's default
    /// maximum) and a 50 ms commit interval.
    pub fn for_slot(prefix: &str, slot: &str) -> Self {
        ExactlyOnce {
            transactional_id: format!("{prefix}.capture.{slot}"),
            transaction_timeout: std::time::Duration::from_secs(15 * 60),
            commit_interval: std::time::Duration::from_millis(50),
        }
    }
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            topic_prefix: DEFAULT_PREFIX.to_owned(),
            partitions: 3,
            replication_factor: None,
            retention_ms: RETAIN_FOREVER_MS,
            topic_config: Vec::new(),
            tombstones: true,
            transaction_topic: false,
            exactly_once: None,
        }
    }
}

impl PublishConfig {
    /// The defaults, with transaction boundaries written to the transaction topic.
    pub fn with_transaction_topic() -> Self {
        PublishConfig {
            transaction_topic: true,
            ..PublishConfig::default()
        }
    }

    /// The topic of `table`: `<prefix>.<schema>.<table>`, with characters Kafka does not
    /// allow in topic names replaced by `_`.
    pub fn topic_for(&self, table: &TableName) -> String {
        let name = format!("{}.{}.{}", self.topic_prefix, table.schema, table.name);
        legal_topic_name(&name)
    }

    /// Whether the transaction topic is written (asked for, or needed by exactly-once).
    pub fn writes_transaction_topic(&self) -> bool {
        self.transaction_topic || self.exactly_once.is_some()
    }

    /// The transaction-metadata topic: `<prefix>.transaction`.
    pub fn transaction_topic_name(&self) -> String {
        legal_topic_name(&format!("{}.transaction", self.topic_prefix))
    }

    /// The spec capture creates `topic` with when it is missing.
    pub fn topic_spec(&self, topic: &str, partitions: i32) -> TopicSpec {
        let mut config = vec![("retention.ms".to_owned(), self.retention_ms.to_string())];
        for (name, value) in &self.topic_config {
            config.retain(|(existing, _)| existing != name);
            config.push((name.clone(), value.clone()));
        }
        TopicSpec {
            name: topic.to_owned(),
            partitions,
            replication_factor: self.replication_factor,
            config,
        }
    }
}

/// The registry subject of a topic's keys (Confluent's TopicNameStrategy).
pub fn key_subject(topic: &str) -> String {
    format!("{topic}-key")
}

/// The registry subject of a topic's values (Confluent's TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// `name` with every character outside `[A-Za-z0-9._-]` replaced by `_`, cut to Kafka's 249.
fn legal_topic_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(249)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_contract_and_stay_legal() {
        let config = PublishConfig::default();
        assert_eq!(
            config.topic_for(&TableName::new("public", "sales_order")),
            "totesys.public.sales_order"
        );
        assert_eq!(
            config.topic_for(&TableName::new("Sales Data", "år")),
            "totesys.Sales_Data.år".replace('å', "_")
        );
        assert_eq!(config.transaction_topic_name(), "totesys.transaction");
        assert_eq!(
            value_subject("totesys.public.staff"),
            "totesys.public.staff-value"
        );
    }

    #[test]
    fn topic_config_overrides_defaults() {
        let config = PublishConfig {
            retention_ms: 86_400_000,
            topic_config: vec![("cleanup.policy".into(), "compact".into())],
            ..PublishConfig::default()
        };
        let spec = config.topic_spec("t", 6);
        assert_eq!(spec.partitions, 6);
        assert_eq!(
            spec.config,
            vec![
                ("retention.ms".to_owned(), "86400000".to_owned()),
                ("cleanup.policy".to_owned(), "compact".to_owned()),
            ]
        );
    }
}
