//! Where lake files live: `raw/<table>/_commit_date=<YYYY-MM-DD>/<topic>+<partition>+<first offset>.<attempt>.parquet`;
//! the table's Delta log says which of them the table holds.

use chrono::{DateTime, NaiveDate};
use object_store::path::Path;

use cdc_core::TableName;

/// Width the first offset is zero-padded to, so names sort in offset order.
const OFFSET_WIDTH: usize = 20;

/// The name of a raw data file: which Kafka records it starts with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataFile {
    /// Source table directory (`sales_order`, or `schema.table` outside `public`).
    pub table: String,
    /// The source commit date of the file's rows (UTC).
    pub date: NaiveDate,
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// Offset of the file's first row.
    pub first_offset: i64,
    /// What makes the name the writer's own (two writers of the same rows write two
    /// files; the table's log takes one); `None` in a lake written before its tables.
    pub attempt: Option<String>,
}

/// A name part no other writer, process or flush uses.
pub fn new_attempt() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let micros = chrono::Utc::now().timestamp_micros();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{micros:x}{:x}{n:x}", std::process::id())
}

impl DataFile {
    /// The file's path under `root`.
    pub fn path(&self, root: &Path) -> Path {
        self.dir(root).join(self.name())
    }

    /// Its partition directory under `root`.
    pub fn dir(&self, root: &Path) -> Path {
        table_path(root, &self.table).join(crate::table::partition_dir(self.date))
    }

    /// Its name inside the partition directory.
    pub fn name(&self) -> String {
        let mut name = format!(
            "{}+{}+{:0width$}",
            self.topic,
            self.partition,
            self.first_offset,
            width = OFFSET_WIDTH
        );
        if let Some(attempt) = &self.attempt {
            name.push('.');
            name.push_str(attempt);
        }
        name.push_str(".parquet");
        name
    }

    /// Parses a path made by [`DataFile::path`] (under any root).
    pub fn parse(path: &Path) -> Option<DataFile> {
        let parts: Vec<_> = path.parts().map(|p| p.as_ref().to_owned()).collect();
        let [.., raw, table, date, name] = parts.as_slice() else {
            return None;
        };
        if raw != "raw" {
            return None;
        }
        // `date=` is where a lake written before its tables kept them.
        let date = date
            .strip_prefix(&format!("{}=", crate::table::DATE_COLUMN))
            .or_else(|| date.strip_prefix("date="))?;
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        // Kafka topic names have no `+`.
        let parts: Vec<&str> = name.strip_suffix(".parquet")?.split('+').collect();
        let [topic, partition, first] = parts.as_slice() else {
            return None;
        };
        let (first, attempt) = match first.split_once('.') {
            Some((first, attempt)) => (first, Some(attempt.to_owned())),
            None => (*first, None),
        };
        Some(DataFile {
            table: table.clone(),
            date,
            topic: (*topic).to_owned(),
            partition: partition.parse().ok()?,
            first_offset: first.parse().ok()?,
            attempt,
        })
    }
}

/// The directory of the lake table `dir` under `root`: `raw/<dir>`.
pub fn table_path(root: &Path, dir: &str) -> Path {
    raw_path(root).join(dir)
}

/// The directory of the lake's tables under `root`: `raw`.
pub fn raw_path(root: &Path) -> Path {
    root.clone().join("raw")
}

/// The directory name of a table: its name in `public`, `schema.table` elsewhere.
pub fn table_dir(table: &TableName) -> String {
    if table.schema == "public" {
        table.name.clone()
    } else {
        format!("{}.{}", table.schema, table.name)
    }
}

/// The UTC date of a commit time in microseconds since the epoch.
pub fn commit_date(commit_ts_us: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(commit_ts_us)
        .map(|t| t.date_naive())
        .unwrap_or(NaiveDate::MIN)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_offset() {
        let file = DataFile {
            table: "sales_order".into(),
            date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
            topic: "totesys.public.sales_order".into(),
            partition: 2,
            first_offset: 1234,
            attempt: None,
        };
        let path = file.path(&Path::from("lake"));
        assert_eq!(
            path.as_ref(),
            "lake/raw/sales_order/_commit_date=2026-11-22/totesys.public.sales_order+2+00000000000000001234.parquet"
        );
        assert_eq!(DataFile::parse(&path), Some(file.clone()));
        let attempt = DataFile {
            attempt: Some(new_attempt()),
            ..file
        };
        let path = attempt.path(&Path::from("lake"));
        assert!(path.as_ref().contains("+2+00000000000000001234."));
        assert_eq!(DataFile::parse(&path), Some(attempt));
        assert_ne!(new_attempt(), new_attempt());
        assert_eq!(
            DataFile::parse(&Path::from("lake/raw/x/date=2026-13-01/t+0+1.parquet")),
            None
        );
    }

    #[test]
    fn dates_are_utc_commit_dates() {
        assert_eq!(commit_date(0), NaiveDate::from_ymd_opt(1970, 1, 1).unwrap());
        assert_eq!(
            commit_date(-1),
            NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()
        );
        assert_eq!(table_dir(&TableName::new("sales", "order")), "sales.order");
    }
}
