use std::sync::Arc;

use crate::{Lsn, Row, TableSchema, Xid};

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A row read by the initial snapshot (`r`).
    Read,
    /// An insert (`c`).
    Insert,
    /// An update, possibly of the key (`u`).
    Update,
    /// A delete (`d`).
    Delete,
    /// A truncate of the whole table (`t`).
    Truncate,
}

impl Op {
    /// The one-letter code used in the event envelope (`r`, `c`, `u`, `d`, `t`).
    pub fn code(self) -> char {
        match self {
            Op::Read => 'r',
            Op::Insert => 'c',
            Op::Update => 'u',
            Op::Delete => 'd',
            Op::Truncate => 't',
        }
    }

    /// [`Op::code`] as a string (the lake's `_op` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Insert => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
        }
    }

    /// The operation of a one-letter code; `None` for any other text.
    pub fn from_code(code: &str) -> Option<Op> {
        Some(match code {
            "r" => Op::Read,
            "c" => Op::Insert,
            "u" => Op::Update,
            "d" => Op::Delete,
            "t" => Op::Truncate,
            _ => return None,
        })
    }
}

/// Where an event stands in the source's commit order: a total order and a dedup key.
///
/// Transactions are ordered by commit LSN; changes inside one by their ordinal.
/// Snapshot reads carry the slot's consistent point and a running ordinal, so they
/// sort before everything streamed afterwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// LSN of the transaction's commit record (the consistent point for snapshot reads).
    pub commit_lsn: Lsn,
    /// Zero-based index of the change within its transaction (or the snapshot).
    pub ordinal: u64,
}

/// The transaction a change belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionInfo {
    /// The top-level transaction id; `None` for snapshot reads.
    pub xid: Option<Xid>,
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// LSN just past the commit record: the position to confirm once it is durable.
    pub end_lsn: Lsn,
    /// Commit time, microseconds since 1970-01-01 UTC.
    pub commit_time_micros: i64,
}

/// Options of a `TRUNCATE` statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TruncateOptions {
    /// `TRUNCATE … CASCADE`.
    pub cascade: bool,
    /// `TRUNCATE … RESTART IDENTITY`.
    pub restart_identity: bool,
}

/// One change to one row (or, for a truncate, to one table).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Total order and dedup key.
    pub position: Position,
    /// The transaction this change belongs to.
    pub transaction: TransactionInfo,
    /// WAL position of the change itself (the consistent point for snapshot reads).
    pub lsn: Lsn,
    /// Whether the row comes from the initial snapshot.
    pub snapshot: bool,
    /// The table's shape when the change was made.
    pub table: Arc<TableSchema>,
    /// What happened.
    pub op: Op,
    /// The old row: every column under REPLICA IDENTITY FULL, the key columns (others
    /// NULL) for a delete or key change under DEFAULT, absent otherwise.
    pub before: Option<Row>,
    /// The new row for reads, inserts and updates. Unchanged TOASTed columns are
    /// `Value::UnchangedToast`, filled from `before` when the old row has them.
    pub after: Option<Row>,
    /// Set for truncates.
    pub truncate: Option<TruncateOptions>,
}

#[cfg(test)]
mod tests {
    use super::Op;

    #[test]
    fn op_codes_are_one_letter_and_read_back() {
        for op in [Op::Read, Op::Insert, Op::Update, Op::Delete, Op::Truncate] {
            assert_eq!(op.as_str(), op.code().to_string());
            assert_eq!(Op::from_code(op.as_str()), Some(op));
        }
        assert_eq!(Op::from_code("x"), None);
        assert_eq!(Op::from_code("cc"), None);
    }
}
