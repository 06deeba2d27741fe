//! Domain types shared by every stage of the pipeline, with no I/O.
//!
//! ```text
//!   PostgreSQL WAL ──► ChangeEvent { position, table, op, before, after } ──► sinks
//!                         │
//!                         └─ Position = (commit LSN, ordinal in transaction):
//!                            a total order over all changes and their dedup key
//! ```
//!
//! Everything downstream (Kafka, lake, warehouse) speaks these types, so they are
//! kept small, explicit and free of any client library.

mod event;
mod lsn;
mod metrics;
mod pg_text;
mod pg_type;
mod retry;
mod secret;
pub mod sink;
mod table;
mod value;

pub use event::{ChangeEvent, Op, Position, TransactionInfo, TruncateOptions};
pub use lsn::{Lsn, ParseLsnError, Xid};
pub use metrics::{counter_total, register_all, Metric, MetricSet};
pub use pg_text::{decimal_text, pg_text};
pub use pg_type::{ColumnKind, NumericTypmod, PgType};
pub use retry::{Backoff, Supervisor};
pub use secret::Secret;
pub use table::{ColumnSchema, ReplicaIdentity, TableId, TableName, TableSchema};
pub use value::{Row, Value};

/// An error and its causes on one line, outermost first, joined by `: `.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
