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
pub mod columns;
mod layout;
mod parquet_file;
mod store;
mod writer;

pub use batch::{BatchBuilder, LakeRow};
pub use columns::lake_schema;
pub use layout::{commit_date, table_dir, DataFile};
pub use parquet_file::{encode, footer_metadata, ParquetOptions};
pub use store::LakeStore;
pub use writer::{FlushPolicy, Flushed, PartitionWriter, FIRST_OFFSET_KEY, LAST_OFFSET_KEY};

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
}
