//! Source changes as the modeler sees them: whole source transactions of rows in
//! PostgreSQL's text form, keyed by column name.

use std::collections::BTreeMap;

use cdc_core::{Lsn, Op};

/// A source row: column name → value in PostgreSQL's text form (`None` is SQL null).
pub type TextRow = BTreeMap<String, Option<String>>;

/// One row change of a source transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The source table's name in `public` (`staff`), `schema.table` elsewhere.
    pub table: String,
    /// What the change did.
    pub op: Op,
    /// Its place in the transaction.
    pub ordinal: u64,
    /// The row after the change (inserts, updates, snapshot reads).
    pub after: Option<TextRow>,
    /// The row before it when the source sent one (deletes, key changes); may hold only
    /// the key columns.
    pub before: Option<TextRow>,
}

/// A whole source transaction: every change it made, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTxn {
    /// Its commit position; transactions apply in this order.
    pub commit_lsn: Lsn,
    /// Its commit time, microseconds since the Unix epoch (UTC).
    pub commit_ts_us: i64,
    /// Its changes in ordinal order.
    pub changes: Vec<Change>,
}

impl Change {
    /// The integer value of `column` in the row after the change, or before it.
    pub fn key(&self, column: &str) -> Option<i64> {
        self.after
            .as_ref()
            .and_then(|row| int(row, column))
            .or_else(|| self.before_key(column))
    }

    /// The integer value of `column` in the row before the change.
    pub fn before_key(&self, column: &str) -> Option<i64> {
        self.before.as_ref().and_then(|row| int(row, column))
    }
}

/// The integer value of `column` in `row`, if it has one that parses.
pub fn int(row: &TextRow, column: &str) -> Option<i64> {
    row.get(column)?.as_deref()?.parse().ok()
}

/// The text value of `column` in `row` (`None` when null or absent).
pub fn text<'a>(row: &'a TextRow, column: &str) -> Option<&'a str> {
    row.get(column)?.as_deref()
}
