//! The lake: change events from the Kafka topics as typed Parquet, partitioned by table
//! and source commit date, on any object store, each change exactly once.
//!
//! ```text
//!   Kafka record ──decode (registry schema)──► LakeRow ──► buffer per topic-partition
//!        flush on rows / bytes / age ──► BatchBuilder ──► Parquet (zstd, dict, stats)
//!        ──► create-only put  raw/<table>/_commit_date=<YYYY-MM-DD>/<topic>+<partition>+<first offset>.parquet
//!        ──► Delta commit to raw/<table>/_delta_log/ with txn (<topic>+<partition>, last offset)
//!        ──► commit offset past the file
//! ```

mod batch;
mod bounds;
pub mod columns;
mod compact;
mod consume;
mod decode;
mod layout;
mod log_listing;
pub mod metrics;
mod migrate;
mod modelled;
mod parquet_file;
mod store;
mod table;
mod transactions;
mod values;
mod writer;

pub use batch::{BatchBuilder, LakeRow};
pub use bounds::{
    commit_group_offsets, delete_group, is_lake_topic, lake_partitions, offsets_at_time,
    parse_time_ms, records_behind, PartitionOffsets, ReadPlan,
};
pub use columns::lake_schema;
pub use compact::{compact, CompactOptions, CompactReport, COMPACTED_FILES_KEY};
pub use consume::{
    committed_offsets, LakeConfig, LakeTotals, LakeWriter, DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON,
    DLQ_REASON_CODE, DLQ_TOPIC,
};
pub use decode::{DeadLetter, Decoded, RecordDecoder};
pub use layout::{commit_date, new_attempt, table_dir, DataFile};
pub use metrics::LakeMetrics;
pub use migrate::{migrate, MigrateReport, MIGRATION_GROUP};
pub use modelled::{key_values, ModelledState, Upsert, Upserted, MODELLED_APP, TARGET_ROWS};
pub use parquet_file::{encode, footer_metadata, ParquetOptions};
pub use store::LakeStore;
pub use table::{
    app_id, partition_dir, Append, Appended, LakeTables, LiveFile, NewFile, Replace, DATE_COLUMN,
};
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

/// The underlying error a [`LakeError`] keeps as its source.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why the lake could not take a change or a file; one line naming what is wrong, with
/// the error that caused it kept as its source.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// A row does not have its table's shape, or a setting cannot be read.
    #[error("{what}")]
    Shape {
        /// What is wrong, naming the table or setting.
        what: String,
        /// The cause, when another library found it.
        #[source]
        source: Option<Cause>,
    },
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
    /// Writing or reading Parquet failed.
    #[error("parquet: {what}")]
    Parquet {
        /// What was being done, naming the file or setting.
        what: String,
        /// The cause, when another library found it.
        #[source]
        source: Option<Cause>,
    },
    /// The object store refused or failed.
    #[error("{what}")]
    Store {
        /// What was being done, naming the object.
        what: String,
        /// The cause, when another library found it.
        #[source]
        source: Option<Cause>,
    },
    /// Kafka refused or failed (consumer, offsets, dead-letter topic).
    #[error("{what}")]
    Kafka {
        /// What was being done, naming the topic or group.
        what: String,
        /// The cause, when another library found it.
        #[source]
        source: Option<Cause>,
    },
    /// librdkafka raised a fatal error: the consumer is unusable and must be replaced.
    #[error("fatal Kafka consumer error ({code}): {reason}")]
    ConsumerFatal {
        /// librdkafka's error code.
        code: String,
        /// What librdkafka said.
        reason: String,
    },
    /// The schema registry refused a request for good.
    #[error("{what}")]
    Registry {
        /// What was asked, naming the schema.
        what: String,
        /// The registry's answer.
        #[source]
        source: Option<Cause>,
    },
}

/// `map_err` adapters that keep the cause: `.map_err(LakeError::store(format!("cannot read {path}")))`.
macro_rules! caused_by {
    ($($(#[$doc:meta])* $name:ident => $variant:ident,)*) => {
        impl LakeError {
            $(
                $(#[$doc])*
                pub fn $name<E>(what: impl Into<String>) -> impl FnOnce(E) -> LakeError
                where
                    E: std::error::Error + Send + Sync + 'static,
                {
                    let what = what.into();
                    move |source| LakeError::$variant {
                        what,
                        source: Some(Box::new(source)),
                    }
                }
            )*
        }
    };
}

caused_by! {
    /// A [`LakeError::Shape`] caused by the error given to the returned function.
    shape => Shape,
    /// A [`LakeError::Parquet`] caused by the error given to the returned function.
    parquet => Parquet,
    /// A [`LakeError::Store`] caused by the error given to the returned function.
    store => Store,
    /// A [`LakeError::Kafka`] caused by the error given to the returned function.
    kafka => Kafka,
    /// A [`LakeError::Registry`] caused by the error given to the returned function.
    registry => Registry,
}

impl LakeError {
    /// A [`LakeError::Shape`] found by the lake itself (no underlying error).
    pub fn bad_shape(what: impl Into<String>) -> LakeError {
        LakeError::Shape {
            what: what.into(),
            source: None,
        }
    }

    /// A [`LakeError::Store`] found by the lake itself (no underlying error).
    pub fn bad_store(what: impl Into<String>) -> LakeError {
        LakeError::Store {
            what: what.into(),
            source: None,
        }
    }

    /// A [`LakeError::Kafka`] found by the lake itself, or a broker's answer that is not an error type.
    pub fn bad_kafka(what: impl Into<String>) -> LakeError {
        LakeError::Kafka {
            what: what.into(),
            source: None,
        }
    }

    /// Whether a new attempt may succeed: Kafka, the object store and a fatal consumer error
    /// (a new consumer) may recover; a row or value that does not fit, a Parquet encoding
    /// failure and a schema the registry refused fail the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            // Refused credentials or TLS stay refused.
            LakeError::Kafka {
                source: Some(cause),
                ..
            } if cause
                .downcast_ref::<cdc_kafka::KafkaError>()
                .is_some_and(|e| !e.is_retryable()) =>
            {
                false
            }
            LakeError::Kafka { .. } | LakeError::Store { .. } | LakeError::ConsumerFatal { .. } => {
                true
            }
            LakeError::Shape { .. }
            | LakeError::Value { .. }
            | LakeError::Parquet { .. }
            | LakeError::Registry { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_a_new_attempt_can_mend_are_retryable() {
        let io = || std::io::Error::other("connection reset");
        assert!(LakeError::bad_kafka("broker down").is_retryable());
        assert!(LakeError::store("cannot read raw/x.parquet")(io()).is_retryable());
        assert!(LakeError::ConsumerFatal {
            code: "fenced".into(),
            reason: "x".into()
        }
        .is_retryable());
        assert!(!LakeError::registry("cannot fetch schema 7")(io()).is_retryable());
        assert!(!LakeError::parquet("zstd level 99")(io()).is_retryable());
        assert!(!LakeError::Value {
            table: "t".into(),
            column: "c".into(),
            found: "NaN".into()
        }
        .is_retryable());
    }

    #[test]
    fn the_cause_is_kept_as_the_source_not_written_into_the_message() {
        use std::error::Error;
        let error =
            LakeError::store("cannot write raw/a.parquet")(std::io::Error::other("disk full"));
        assert_eq!(error.to_string(), "cannot write raw/a.parquet");
        assert_eq!(
            error.source().map(|s| s.to_string()).as_deref(),
            Some("disk full")
        );
        assert_eq!(
            cdc_core::error_chain(&error),
            "cannot write raw/a.parquet: disk full"
        );
    }
}
