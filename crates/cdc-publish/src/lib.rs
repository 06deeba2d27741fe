//! Capture's Kafka sink: change events as Avro in the Confluent wire format, one topic
//! per table, schemas in a Confluent-compatible registry, and durability from the
//! broker's acknowledgements.
//!
//! ```text
//!   reader ──write(batch)──► KafkaSink ─┬─ first event of a table shape:
//!                                       │    topic created, key/value schemas registered
//!                                       ├─ each event: key (primary key) + envelope,
//!                                       │    0x00 │ schema id │ Avro ──► Producer
//!                                       │    delete → + tombstone; truncate → every partition
//!                                       └─ WriteAck ◄── every record acknowledged (acks=all)
//!   reader ──commit(txn)───► KafkaSink ──► END on <prefix>.transaction (when enabled)
//! ```

mod config;
pub mod metrics;
mod sink;
mod transaction;

pub use config::{
    key_subject, value_subject, ExactlyOnce, PublishConfig, DEFAULT_PREFIX, RETAIN_FOREVER_MS,
};
pub use metrics::PublishMetrics;
pub use sink::{sink_failure_kind, KafkaSink};
pub use transaction::{
    KEY_SCHEMA as TRANSACTION_KEY_SCHEMA, VALUE_SCHEMA as TRANSACTION_VALUE_SCHEMA,
};

/// Why publishing failed; one line naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Talking to Kafka failed.
    #[error(transparent)]
    Kafka(#[from] cdc_kafka::KafkaError),
    /// The schema registry could not be used.
    #[error("schema registry, subject {subject}")]
    Registry {
        /// The subject.
        subject: String,
        /// The cause.
        #[source]
        source: cdc_registry::ClientError,
    },
    /// The registry refused a table's new schema as incompatible with the subject's
    /// versions; capture stops before the change.
    #[error("the new schema of {table} is incompatible with the versions under {subject} ({reason}); capture stopped before this change, see docs/kafka.md")]
    Incompatible {
        /// `schema.table`.
        table: String,
        /// The subject that refused it.
        subject: String,
        /// Where the schemas disagree.
        reason: String,
    },
    /// An event or schema cannot be published as it is.
    #[error("{0}")]
    Rejected(String),
}
