//! The lake: change events from the Kafka topics as typed Parquet, partitioned by table
//! and source commit date, on any object store, each change exactly once.
//!
//! ```text
//!   Kafka record ──decode (registry schema)──► LakeRow ──► buffer per topic-partition
//!        flush on rows / bytes / age ──► BatchBuilder ──► Parquet (zstd, dict, stats)
//!        ──► create-only put  raw/<table>/date=<YYYY-MM-DD>/<topic>+<partition>+<first offset>.parquet
//!        ──► commit offset past the file
//! ```

mod batch;
mod bounds;
pub mod columns;
mod compact;
mod consume;
mod decode;
mod layout;
mod metrics;
mod parquet_file;
mod store;
mod transactions;
mod values;
mod writer;

pub use batch::{BatchBuilder, LakeRow};
pub use bounds::{
    commit_group_offsets, delete_group, is_lake_topic, lake_partitions, offsets_at_time,
    parse_time_ms, PartitionOffsets,
};
pub use columns::lake_schema;
pub use compact::{compact, live_files, CompactOptions, CompactReport, COMPACTED_FILES_KEY};
pub use consume::{
    committed_offsets, LakeConfig, LakeTotals, LakeWriter, DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON,
    DLQ_REASON_CODE, DLQ_TOPIC,
};
pub use decode::{DeadLetter, Decoded, RecordDecoder};
pub use layout::{commit_date, table_dir, DataFile};
pub use metrics::LakeMetrics;
pub use parquet_file::{encode, footer_metadata, ParquetOptions};
pub use store::LakeStore;
pub use transactions::{transaction_row, TRANSACTIONS_TABLE};
pub use values::{value_at, UnreadableValue};
pub use writer::{FlushPolicy, Flushed, PartitionWriter, FIRST_OFFSET_KEY, LAST_OFFSET_KEY};

/// The subscription pattern of the change topics `<prefix>.<schema>.<table>` (not the
/// transaction topic `<prefix>.transaction`, nor `<prefix>.lake-dead-letters`).
pub fn change_topics_pattern(prefix: &str) -> String {
    let mut pattern = String::from("^");
    for c in prefix.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c != '-' {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str("\\.[^.]+\\.[^.]+$");
    pattern
}

/// Why the lake could not take a change or a file; one line naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// A row does not have its table's shape.
    #[error("{0}")]
    Shape(String),
    /// A value does not fit its column's lake type.
    #[error("column {column} of {table} cannot hold {found}")]
    Value {
        /// `schema.table`.
        table: String,
        /// The column.
        column: String,
        /// The value found.
        found: String,
    },
    /// Writing Parquet failed.
    #[error("parquet: {0}")]
    Parquet(String),
    /// The object store refused or failed.
    #[error("{0}")]
    Store(String),
    /// Kafka refused or failed (consumer, offsets, dead-letter topic).
    #[error("{0}")]
    Kafka(String),
    /// librdkafka raised a fatal error: the consumer is unusable and must be replaced.
    #[error("fatal Kafka consumer error ({code}): {reason}")]
    ConsumerFatal {
        /// librdkafka's error code.
        code: String,
        /// What librdkafka said.
        reason: String,
    },
    /// The schema registry refused a request for good.
    #[error("{0}")]
    Registry(String),
}

impl LakeError {
    /// Whether a new attempt may succeed: Kafka, the object store and a fatal consumer error
    /// (a new consumer) may recover; a row or value that does not fit, a Parquet encoding
    /// failure and a schema the registry refused fail the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            LakeError::Kafka(_) | LakeError::Store(_) | LakeError::ConsumerFatal { .. } => true,
            LakeError::Shape(_)
            | LakeError::Value { .. }
            | LakeError::Parquet(_)
            | LakeError::Registry(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_a_new_attempt_can_mend_are_retryable() {
        assert!(LakeError::Kafka("broker down".into()).is_retryable());
        assert!(LakeError::Store("connection reset".into()).is_retryable());
        assert!(LakeError::ConsumerFatal {
            code: "fenced".into(),
            reason: "x".into()
        }
        .is_retryable());
        assert!(!LakeError::Registry("schema 7 refused".into()).is_retryable());
        assert!(!LakeError::Parquet("bad level".into()).is_retryable());
        assert!(!LakeError::Value {
            table: "t".into(),
            column: "c".into(),
            found: "NaN".into()
        }
        .is_retryable());
    }
}
