//! What can go wrong while building or driving the totesys database.

use std::borrow::Cow;

/// An error from the simulator; each message is one line naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A statement failed; `action` says which one and on which tables.
    #[error("cannot {action}")]
    Sql {
        /// What the statement does, e.g. "insert a sale into sales_order, transaction and payment".
        action: Cow<'static, str>,
        /// The server's or the connection's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A table the workload or bulk loader draws references from is empty.
    #[error("table {table} has no rows to reference: run seed first")]
    MissingReferenceData {
        /// The empty table (or the missing `payment_type` name).
        table: String,
    },
    /// Rows a bulk-load batch copied point at rows that do not exist; the batch was undone.
    #[error("{rows} rows copied into {table} reference missing rows: the batch was rolled back")]
    BrokenReferences {
        /// The table copied into.
        table: String,
        /// How many of its rows.
        rows: u64,
    },
    /// Reference rows a bulk load points at were deleted while it ran.
    #[error("rows of {table} were deleted while the bulk load ran: start it again")]
    ReferencesGone {
        /// The table.
        table: String,
    },
    /// The workload configuration cannot be run.
    #[error("invalid workload configuration: {reason}")]
    InvalidConfig {
        /// What is wrong with it.
        reason: String,
    },
}

impl SimError {
    /// A closure for `map_err` that wraps a `tokio_postgres` error with what was being done.
    pub(crate) fn sql(
        action: impl Into<Cow<'static, str>>,
    ) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let action = action.into();
        move |source| SimError::Sql { action, source }
    }

    /// The SQLSTATE code of the server error behind this one, if there is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            SimError::Sql { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }
}
