//! Where lake files live: `raw/<table>/date=<YYYY-MM-DD>/<topic>+<partition>+<first offset>.parquet`,
//! and `…+<first offset>+<last offset>.parquet` for a compacted file covering up to `last`.

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
    /// For a compacted file, the last offset it covers: it supersedes every file of its
    /// partition whose first row lies in `first_offset..=compacted_to`.
    pub compacted_to: Option<i64>,
}

impl DataFile {
    /// The file's path under `root`.
    pub fn path(&self, root: &Path) -> Path {
        let mut name = format!(
            "{}+{}+{:0width$}",
            self.topic,
            self.partition,
            self.first_offset,
            width = OFFSET_WIDTH
        );
        if let Some(last) = self.compacted_to {
            name.push_str(&format!("+{last:0OFFSET_WIDTH$}"));
        }
        name.push_str(".parquet");
        let mut path = root.clone();
        for part in [
            "raw".to_owned(),
            self.table.clone(),
            format!("date={}", self.date.format("%Y-%m-%d")),
            name,
        ] {
            path = path.clone().join(part);
        }
        path
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
        let date = NaiveDate::parse_from_str(date.strip_prefix("date=")?, "%Y-%m-%d").ok()?;
        // Kafka topic names have no `+`.
        let parts: Vec<&str> = name.strip_suffix(".parquet")?.split('+').collect();
        let (topic, partition, first, last) = match parts.as_slice() {
            [topic, partition, first] => (topic, partition, first, None),
            [topic, partition, first, last] => (topic, partition, first, Some(last.parse().ok()?)),
            _ => return None,
        };
        Some(DataFile {
            table: table.clone(),
            date,
            topic: (*topic).to_owned(),
            partition: partition.parse().ok()?,
            first_offset: first.parse().ok()?,
            compacted_to: last,
        })
    }
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
            compacted_to: None,
        };
        let path = file.path(&Path::from("lake"));
        assert_eq!(
            path.as_ref(),
            "lake/raw/sales_order/date=2026-11-22/totesys.public.sales_order+2+00000000000000001234.parquet"
        );
        assert_eq!(DataFile::parse(&path), Some(file.clone()));
        let compacted = DataFile {
            compacted_to: Some(99_999),
            ..file
        };
        let path = compacted.path(&Path::from("lake"));
        assert!(path
            .as_ref()
            .ends_with("+2+00000000000000001234+00000000000000099999.parquet"));
        assert_eq!(DataFile::parse(&path), Some(compacted));
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
