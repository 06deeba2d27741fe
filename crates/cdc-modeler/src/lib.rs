//! The modeler: changes from the lake applied to the star-schema warehouse with SCD2
//! history, whole source transactions in commit order, each exactly once.
//!
//! ```text
//!   raw/<table>/…parquet ──read──► changes by (commit_lsn, ordinal)
//!   raw/totesys_cdc.transactions ──► END counts per table ──► transaction complete?
//!        complete transactions, in commit order ──► Model::plan (SCD2 merge, pure)
//!        ──► one warehouse transaction: mirrors, dimension versions, facts, watermark
//!        ──► processed/<table>/ (Delta tables of the star schema)
//! ```
//!
//! The design and its guarantees are in `docs/warehouse.md`.

pub mod iso4217;
pub mod lake;
pub mod metrics;
pub mod plan;
pub mod processed;
mod run;
pub mod source;
pub mod spec;
pub mod warehouse;

pub use metrics::ModelerMetrics;
pub use plan::{Model, Plan};
pub use run::{Modeler, ModelerConfig, PassReport};
pub use source::{Change, SourceTxn, TextRow};

use cdc_core::Lsn;

/// What can go wrong in the modeler.
#[derive(Debug, thiserror::Error)]
pub enum ModelerError {
    /// The warehouse refused or failed a statement.
    #[error("warehouse: cannot {what}")]
    Sql {
        /// What the statement was for.
        what: String,
        /// The database's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The warehouse holds something the modeler cannot read.
    #[error("warehouse: {0}")]
    Warehouse(String),
    /// A lake file could not be listed, read or decoded, or a processed file written.
    #[error("lake: {what}")]
    Lake {
        /// What was being done, naming the file.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A lake file does not have the shape the lake writer gives it.
    #[error("lake: {what}: {reason}")]
    LakeShape {
        /// The file.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A lake cell holds a value the modeler cannot represent; the file stays in the lake
    /// and nothing past its transaction is applied until it is repaired.
    #[error("lake: {file}: column {column}")]
    UnreadableValue {
        /// The file.
        file: String,
        /// The column (`_before.<name>` for the old row).
        column: String,
        /// Why the value cannot be read.
        #[source]
        source: cdc_lake::UnreadableValue,
    },
    /// Another modeler applied since this one read the watermark.
    #[error("the warehouse watermark moved from {expected} to {held}: another modeler is applying to this warehouse")]
    Fenced {
        /// The watermark this modeler expected.
        expected: Lsn,
        /// The one the warehouse holds.
        held: Lsn,
    },
}

impl ModelerError {
    /// A closure turning a database error into [`ModelerError::Sql`] about `what`.
    pub fn sql(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> ModelerError {
        let what = what.into();
        move |source| ModelerError::Sql { what, source }
    }

    /// A closure turning a lake failure into [`ModelerError::Lake`] about `what`.
    pub fn lake<E>(what: impl Into<String>) -> impl FnOnce(E) -> ModelerError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let what = what.into();
        move |source| ModelerError::Lake {
            what,
            source: Box::new(source),
        }
    }

    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelerError::Sql { .. } => "warehouse",
            ModelerError::Warehouse(_) => "warehouse_state",
            ModelerError::Lake { .. } | ModelerError::LakeShape { .. } => "lake",
            ModelerError::UnreadableValue { .. } => "unreadable_value",
            ModelerError::Fenced { .. } => "fenced",
        }
    }

    /// Whether trying again later may succeed (the warehouse or the lake was unavailable,
    /// another modeler moved the watermark). A lake file that cannot be read counts as
    /// retryable: the modeler keeps running, counting the error every pass, until the file
    /// is repaired.
    pub fn is_retryable(&self) -> bool {
        match self {
            ModelerError::Sql { source, .. } => source.code().is_none_or(|code| {
                // Connection trouble, serialization failures and lock timeouts pass.
                let class = &code.code()[..2];
                matches!(class, "08" | "40" | "53" | "55" | "57")
            }),
            ModelerError::Lake { .. }
            | ModelerError::LakeShape { .. }
            | ModelerError::UnreadableValue { .. }
            | ModelerError::Fenced { .. } => true,
            ModelerError::Warehouse(_) => false,
        }
    }
}
