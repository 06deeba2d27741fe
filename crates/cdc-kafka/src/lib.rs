//! Kafka for totesys CDC: topic setup and an idempotent producer whose deliveries
//! report durability.
//!
//! ```text
//!   Producer::send(topic, key, value) ──► librdkafka queue ──► broker (acks=all)
//!        │                                                      │
//!        └── Delivery (future) ◄──── delivery report ◄──────────┘
//!              resolves Ok((partition, offset)) only once the broker has the record
//! ```
//!
//! Idempotence (`enable.idempotence=true`) keeps per-partition order and drops the
//! producer's own retries, so a record acknowledged is written once; records that
//! capture re-sends after a crash are recognised downstream by their position.

mod context;
mod producer;
mod settings;
mod tail;
mod topics;

pub use context::{is_refusal, KafkaContext};
pub use producer::{Delivery, Producer};
pub use settings::{is_secret_property, KafkaSettings};
pub use tail::{read_tail, Tail, TailRecord};
pub use topics::{broker_count, ensure_topics, topic_stats, Replication, TopicSpec, TopicStats};

/// A failure talking to Kafka; one line naming what was attempted.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The client could not be created from the settings.
    #[error("invalid Kafka client settings")]
    Config(#[source] rdkafka::error::KafkaError),
    /// A record could not be queued or was not acknowledged.
    #[error("delivery to topic {topic} failed")]
    Delivery {
        /// The topic.
        topic: String,
        /// The cause.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The producer went away before reporting a delivery.
    #[error("delivery report for topic {topic} was lost (producer closed)")]
    DeliveryCanceled {
        /// The topic.
        topic: String,
    },
    /// Creating or inspecting topics failed.
    #[error("cannot create topic {topic}: {reason}")]
    Topic {
        /// The topic.
        topic: String,
        /// What the broker said.
        reason: String,
    },
    /// An admin request failed as a whole.
    #[error("Kafka admin request failed")]
    Admin(#[source] rdkafka::error::KafkaError),
    /// A call of the transaction API failed (`init`, `begin`, `commit`, `abort`).
    #[error("Kafka transaction {operation} failed")]
    Transaction {
        /// The call.
        operation: &'static str,
        /// The cause.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The cluster refused this client's SASL credentials or TLS.
    #[error("the Kafka cluster refused this client: {reason}")]
    Refused {
        /// librdkafka's account of the refusal (it names the broker, never a secret).
        reason: String,
    },
    /// Reading a partition failed.
    #[error("cannot read {topic} partition {partition}: {reason}")]
    Read {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// What went wrong.
        reason: String,
    },
}

impl KafkaError {
    /// Whether trying again may succeed: not for bad settings or refused credentials.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, KafkaError::Config(_) | KafkaError::Refused { .. })
    }

    /// Whether this producer can never be used again: it was fenced by a newer one with
    /// its transactional id (another capture on the same slot), or librdkafka raised a
    /// fatal error.
    pub fn is_fenced_or_fatal(&self) -> bool {
        match self {
            KafkaError::Transaction { source, .. } => match source {
                rdkafka::error::KafkaError::Transaction(e) => e.is_fatal(),
                other => matches!(
                    other.rdkafka_error_code(),
                    Some(
                        rdkafka::error::RDKafkaErrorCode::ProducerFenced
                            | rdkafka::error::RDKafkaErrorCode::Fatal
                            | rdkafka::error::RDKafkaErrorCode::InvalidProducerEpoch
                    )
                ),
            },
            _ => false,
        }
    }
}
