//! What a workload run changed, per table.

use std::fmt;
use std::ops::AddAssign;
use std::time::Duration;

use crate::Table;

/// Rows inserted, updated and deleted in one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Rows inserted.
    pub inserts: u64,
    /// Rows updated in place.
    pub updates: u64,
    /// Rows deleted.
    pub deletes: u64,
}

impl TableCounts {
    /// Rows changed: inserts + updates + deletes.
    pub fn changes(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }
}

impl AddAssign for TableCounts {
    fn add_assign(&mut self, other: TableCounts) {
        self.inserts += other.inserts;
        self.updates += other.updates;
        self.deletes += other.deletes;
    }
}

/// What [`run_workload`](crate::run_workload) committed; its `Display` is a per-table table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    per_table: [TableCounts; 11],
    /// Database transactions committed.
    pub transactions: u64,
    /// Units of work committed (a sale, an update, a cancellation, …).
    pub units: u64,
    /// Updates that left `last_updated` as it was (the rest set it to `now()`).
    pub updates_keeping_last_updated: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl WorkloadStats {
    /// The counts of `table`.
    pub fn table(&self, table: Table) -> TableCounts {
        self.per_table[table.index()]
    }

    /// Every table with its counts, in [`Table::ALL`] order.
    pub fn per_table(&self) -> [(Table, TableCounts); 11] {
        Table::ALL.map(|t| (t, self.table(t)))
    }

    /// The counts summed over all tables.
    pub fn totals(&self) -> TableCounts {
        let mut totals = TableCounts::default();
        for counts in self.per_table {
            totals += counts;
        }
        totals
    }

    /// Rows changed in all tables.
    pub fn changes(&self) -> u64 {
        self.totals().changes()
    }

    /// Changes per second of wall-clock time.
    pub fn changes_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.changes() as f64 / secs
        } else {
            0.0
        }
    }

    pub(crate) fn inserted(&mut self, table: Table, rows: u64) {
        self.per_table[table.index()].inserts += rows;
    }

    pub(crate) fn updated(&mut self, table: Table, rows: u64) {
        self.per_table[table.index()].updates += rows;
    }

    pub(crate) fn deleted(&mut self, table: Table, rows: u64) {
        self.per_table[table.index()].deletes += rows;
    }
}

impl fmt::Display for WorkloadStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, c: TableCounts| {
            writeln!(
                f,
                "{name:<16} {:>10} {:>10} {:>10} {:>10}",
                c.inserts,
                c.updates,
                c.deletes,
                c.changes()
            )
        };
        writeln!(
            f,
            "{:<16} {:>10} {:>10} {:>10} {:>10}",
            "table", "inserts", "updates", "deletes", "changes"
        )?;
        for (table, counts) in self.per_table() {
            row(f, table.name(), counts)?;
        }
        row(f, "total", self.totals())?;
        write!(
            f,
            "{} changes in {} transactions ({} units of work) over {:.1} s: {:.1} changes/s; \
             {} updates left last_updated as it was",
            self.changes(),
            self.transactions,
            self.units,
            self.elapsed.as_secs_f64(),
            self.changes_per_sec(),
            self.updates_keeping_last_updated
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_display() {
        let mut stats = WorkloadStats::default();
        stats.inserted(Table::SalesOrder, 3);
        stats.updated(Table::SalesOrder, 2);
        stats.deleted(Table::Payment, 1);
        stats.transactions = 2;
        stats.units = 4;
        stats.elapsed = Duration::from_secs(2);
        assert_eq!(
            stats.table(Table::SalesOrder),
            TableCounts {
                inserts: 3,
                updates: 2,
                deletes: 0
            }
        );
        assert_eq!(stats.changes(), 6);
        assert_eq!(stats.changes_per_sec(), 3.0);
        let text = stats.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 11 + 1 + 1);
        assert!(
            lines[7].starts_with("sales_order") && lines[7].ends_with(" 5"),
            "{text}"
        );
        assert!(
            lines[12].starts_with("total") && lines[12].ends_with(" 6"),
            "{text}"
        );
        assert!(lines[13].starts_with("6 changes in 2 transactions (4 units of work) over 2.0 s"));
    }
}
