//! Migration of a lake written before its tables (Parquet files under
//! `raw/<table>/date=<YYYY-MM-DD>/`, no Delta log) to the table layout.
//!
//! Per Kafka partition, in offset order, each file the old readers read (a file merged by
//! an unfinished old compaction is left out: the merged file holds its rows) is rewritten
//! into `_commit_date=` with `time` columns as text (Delta Lake has no time-of-day type),
//! and committed to its table with the transaction record a lake writer would have
//! written (topic+partition, the file's last offset); the old file is deleted after the
//! commit. A run stopped at any moment is finished by running it again: a commit the
//! table already holds is refused by its transaction record (the old file is then only
//! deleted), and a new file written but never committed is an orphan that vacuum removes.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Time64MicrosecondType;
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Schema, TimeUnit};
use chrono::NaiveDate;
use futures_util::TryStreamExt;
use object_store::path::Path;

use crate::layout::{new_attempt, raw_path, DataFile};
use crate::parquet_file::{encode, footer_metadata, read_all, ParquetOptions};
use crate::table::{Append, Appended, LakeTables, NewFile};
use crate::writer::{FIRST_OFFSET_KEY, LAST_OFFSET_KEY};
use crate::LakeError;

/// The group the migration's commits name in their operation parameters.
pub const MIGRATION_GROUP: &str = "totesys-cdc-migrate";

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Old files committed to their tables.
    pub committed: usize,
    /// Old files whose offsets their table already held (an earlier, stopped run).
    pub already: usize,
    /// Old files left out because an old compaction's merged file holds their rows.
    pub superseded: usize,
    /// Rows committed.
    pub rows: usize,
    /// Tables that received commits.
    pub tables: usize,
    /// Files of the old processed zone deleted (the modeler rebuilds its tables).
    pub processed: usize,
}

/// A file of the old layout: `<topic>+<partition>+<first>.parquet`, or
/// `<topic>+<partition>+<first>+<last>.parquet` for one an old compaction wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OldFile {
    path: Path,
    table: String,
    date: NaiveDate,
    topic: String,
    partition: i32,
    first: i64,
    merged_to: Option<i64>,
}

impl OldFile {
    fn parse(path: &Path) -> Option<OldFile> {
        let parts: Vec<String> = path.parts().map(|p| p.as_ref().to_owned()).collect();
        let [.., raw, table, date, name] = parts.as_slice() else {
            return None;
        };
        if raw != "raw" {
            return None;
        }
        let date = NaiveDate::parse_from_str(date.strip_prefix("date=")?, "%Y-%m-%d").ok()?;
        let fields: Vec<&str> = name.strip_suffix(".parquet")?.split('+').collect();
        let (topic, partition, first, merged_to) = match fields.as_slice() {
            [topic, partition, first] => (topic, partition, first, None),
            [topic, partition, first, last] => (topic, partition, first, Some(last.parse().ok()?)),
            _ => return None,
        };
        Some(OldFile {
            path: path.clone(),
            table: table.clone(),
            date,
            topic: (*topic).to_owned(),
            partition: partition.parse().ok()?,
            first: first.parse().ok()?,
            merged_to,
        })
    }

    /// The offsets the name says it covers (a small file: its first only).
    fn range(&self) -> (i64, i64) {
        (self.first, self.merged_to.unwrap_or(self.first))
    }
}

/// Splits one Kafka partition's old files into those the old readers read and those an
/// old compaction's merged file replaced (its put done, its deletes not yet): a file
/// whose first offset lies in a wider merged file's range (or an equal one listed first).
fn split_superseded(files: Vec<OldFile>) -> (Vec<OldFile>, Vec<OldFile>) {
    let merged: Vec<(usize, i64, i64)> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.merged_to.is_some())
        .map(|(i, f)| (i, f.range().0, f.range().1))
        .collect();
    let (mut live, mut gone) = (Vec::new(), Vec::new());
    for (i, file) in files.into_iter().enumerate() {
        let (first, last) = file.range();
        let width = last - first;
        let replaced = merged.iter().any(|&(j, from, to)| {
            j != i
                && from <= first
                && first <= to
                && (to - from > width || (to - from == width && j < i))
        });
        if replaced {
            gone.push(file);
        } else {
            live.push(file);
        }
    }
    live.sort_by_key(|f| f.first);
    (live, gone)
}

/// Moves every old-layout file under the lake's `raw/` into its table, as described in
/// the module's documentation. Files already in the table layout are left alone.
pub async fn migrate(
    tables: &LakeTables,
    parquet: &ParquetOptions,
) -> Result<MigrateReport, LakeError> {
    let lake = tables.lake();
    let listed = list_under(tables, &raw_path(&lake.root)).await?;
    let mut partitions: BTreeMap<(String, String, i32), Vec<OldFile>> = BTreeMap::new();
    for path in &listed {
        if let Some(old) = OldFile::parse(path) {
            partitions
                .entry((old.table.clone(), old.topic.clone(), old.partition))
                .or_default()
                .push(old);
        }
    }
    let mut report = MigrateReport::default();
    let mut touched = std::collections::BTreeSet::new();
    for ((table, topic, partition), files) in partitions {
        let (live, gone) = split_superseded(files);
        for old in live {
            let bytes = lake.read(&old.path).await?;
            let footer = footer_metadata(bytes.clone()).map_err(|e| LakeError::Parquet {
                what: format!("{}: {e}", old.path),
                source: None,
            })?;
            let offset = |key: &str| -> Result<i64, LakeError> {
                footer
                    .iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, v)| v.parse().ok())
                    .ok_or_else(|| LakeError::Parquet {
                        what: format!("{}: no {key} in the footer", old.path),
                        source: None,
                    })
            };
            let (first, last) = (offset(FIRST_OFFSET_KEY)?, offset(LAST_OFFSET_KEY)?);
            let batch =
                read_all(bytes).map_err(LakeError::parquet(format!("cannot read {}", old.path)))?;
            let batch = with_text_times(&batch).map_err(|e| LakeError::Parquet {
                what: format!("{}: cannot write its time columns as text: {e}", old.path),
                source: None,
            })?;
            let rows = batch.num_rows();
            let file = DataFile {
                table: table.clone(),
                date: old.date,
                topic: topic.clone(),
                partition,
                first_offset: old.first,
                attempt: Some(new_attempt()),
            };
            // The footer's keys go along (topic, partition, offsets), minus Arrow's own
            // copy of the schema, which the writer makes afresh.
            let metadata: Vec<(String, String)> = footer
                .into_iter()
                .filter(|(k, _)| k != "ARROW:schema")
                .collect();
            let encoded = encode(&batch, parquet, metadata)?;
            let size = encoded.len() as u64;
            let path = file.path(&lake.root);
            lake.ensure_dir(&file.dir(&lake.root))?;
            lake.put_new(&path, encoded).await?;
            let appended = tables
                .append(Append {
                    dir: table.clone(),
                    topic: topic.clone(),
                    partition,
                    first_offset: first,
                    last_offset: last,
                    group: MIGRATION_GROUP.to_owned(),
                    schema: batch.schema(),
                    file: Some(NewFile {
                        date: old.date,
                        name: file.name(),
                        size,
                        batch,
                    }),
                })
                .await?;
            match appended {
                Appended::Committed { .. } => {
                    report.committed += 1;
                    report.rows += rows;
                    touched.insert(table.clone());
                }
                Appended::Covered { .. } => {
                    report.already += 1;
                    lake.delete_if_present(&path).await?;
                }
            }
            lake.delete_if_present(&old.path).await?;
        }
        for old in gone {
            report.superseded += 1;
            lake.delete_if_present(&old.path).await?;
        }
    }
    for table in &touched {
        tables.checkpoint(table).await?;
    }
    report.tables = touched.len();
    report.processed = delete_old_processed(tables).await?;
    Ok(report)
}

/// Every object under `prefix`.
async fn list_under(tables: &LakeTables, prefix: &Path) -> Result<Vec<Path>, LakeError> {
    tables
        .lake()
        .store
        .list(Some(prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(LakeError::store(format!("cannot list {prefix}")))
}

/// Deletes the old processed zone's files (`processed/<name>/<from LSN>-<to LSN>.parquet`,
/// 16 hex digits each): version rows of the warehouse, which the modeler now keeps as
/// tables it writes whole when they have no record yet.
async fn delete_old_processed(tables: &LakeTables) -> Result<usize, LakeError> {
    let lake = tables.lake();
    let listed = list_under(tables, &lake.root.clone().join("processed")).await?;
    let mut deleted = 0;
    for path in listed.iter().filter(|p| is_old_processed(p)) {
        lake.delete_if_present(path).await?;
        deleted += 1;
    }
    Ok(deleted)
}

fn is_old_processed(path: &Path) -> bool {
    let parts: Vec<String> = path.parts().map(|p| p.as_ref().to_owned()).collect();
    let [.., zone, _, name] = parts.as_slice() else {
        return false;
    };
    let hex16 = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    zone == "processed"
        && name
            .strip_suffix(".parquet")
            .and_then(|n| n.split_once('-'))
            .is_some_and(|(from, to)| hex16(from) && hex16(to))
}

/// `batch` with every `time` column (Time64, or a list of them) as PostgreSQL's text.
fn with_text_times(batch: &RecordBatch) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| holds_time(f.data_type())) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let (data_type, column) = retype(column)?;
        fields.push(field.as_ref().clone().with_data_type(data_type));
        columns.push(column);
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns)
}

fn holds_time(data_type: &DataType) -> bool {
    match data_type {
        DataType::Time64(_) | DataType::Time32(_) => true,
        DataType::List(item) => holds_time(item.data_type()),
        _ => false,
    }
}

/// A column with its times as text, and its new type.
fn retype(column: &ArrayRef) -> Result<(DataType, ArrayRef), arrow_schema::ArrowError> {
    match column.data_type() {
        DataType::Time64(TimeUnit::Microsecond) => {
            let times = column.as_primitive::<Time64MicrosecondType>();
            let text: StringArray = (0..times.len())
                .map(|i| {
                    times
                        .is_valid(i)
                        .then(|| cdc_core::pg_text(&cdc_core::Value::Time(times.value(i))))
                        .flatten()
                })
                .collect();
            Ok((DataType::Utf8, Arc::new(text)))
        }
        DataType::List(item) if holds_time(item.data_type()) => {
            let list = column.as_list::<i32>();
            let (item_type, values) = retype(list.values())?;
            let item = Arc::new(item.as_ref().clone().with_data_type(item_type));
            let rebuilt = ListArray::try_new(
                Arc::clone(&item),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?;
            Ok((DataType::List(item), Arc::new(rebuilt)))
        }
        other if holds_time(other) => Err(arrow_schema::ArrowError::NotYetImplemented(format!(
            "a {other} column (the lake wrote times as microseconds)"
        ))),
        _ => Ok((column.data_type().clone(), Arc::clone(column))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use arrow_schema::Field;

    use super::*;

    fn old(name: &str) -> OldFile {
        OldFile::parse(&Path::from(format!(
            "lake/raw/staff/date=2026-11-21/{name}"
        )))
        .unwrap()
    }

    #[test]
    fn old_names_parse_and_new_ones_do_not() {
        let small = old("t.public.staff+2+00000000000000000040.parquet");
        assert_eq!(
            (small.topic.as_str(), small.partition),
            ("t.public.staff", 2)
        );
        assert_eq!((small.range(), small.merged_to), ((40, 40), None));
        let merged = old("t.public.staff+2+00000000000000000040+00000000000000000099.parquet");
        assert_eq!(merged.range(), (40, 99));
        for new in [
            "lake/raw/staff/_commit_date=2026-11-21/t.public.staff+2+00000000000000000040.abc.parquet",
            "lake/raw/staff/_delta_log/00000000000000000000.json",
            "lake/raw/staff/date=2026-13-01/t+0+1.parquet",
            "lake/processed/staff/date=2026-11-21/t+0+1.parquet",
        ] {
            assert_eq!(OldFile::parse(&Path::from(new)), None, "{new}");
        }
    }

    #[test]
    fn old_processed_files_are_told_from_the_tables_files() {
        let old = "lake/processed/dim_staff/0000000001A2B3C4-0000000001A2B3FF.parquet";
        assert!(is_old_processed(&Path::from(old)));
        for new in [
            "lake/processed/dim_staff/part-00000-abc.parquet",
            "lake/processed/dim_staff/_delta_log/00000000000000000000.json",
            "lake/raw/dim_staff/0000000001A2B3C4-0000000001A2B3FF.parquet",
        ] {
            assert!(!is_old_processed(&Path::from(new)), "{new}");
        }
    }

    #[test]
    fn a_merged_file_replaces_the_small_files_in_its_range_and_no_others() {
        let files = vec![
            old("t+0+00000000000000000000.parquet"),
            old("t+0+00000000000000000010.parquet"),
            old("t+0+00000000000000000000+00000000000000000019.parquet"),
            old("t+0+00000000000000000020.parquet"),
            // Two merges of the same range (two old compactors): one is kept.
            old("t+0+00000000000000000030+00000000000000000039.parquet"),
            old("t+0+00000000000000000030+00000000000000000039.parquet"),
        ];
        let (live, gone) = split_superseded(files);
        let ranges: Vec<_> = live.iter().map(OldFile::range).collect();
        assert_eq!(ranges, [(0, 19), (20, 20), (30, 39)]);
        assert_eq!(gone.len(), 3);
    }

    #[test]
    fn times_become_their_postgres_text_and_other_columns_stay() {
        use arrow_array::{Int32Array, Time64MicrosecondArray};
        let times = Time64MicrosecondArray::from(vec![Some(8 * 3_600_000_000 + 1), None]);
        let item = Arc::new(Field::new(
            "item",
            DataType::Time64(TimeUnit::Microsecond),
            true,
        ));
        let lists = ListArray::try_new(
            Arc::clone(&item),
            arrow_buffer::OffsetBuffer::from_lengths([1, 0]),
            Arc::new(Time64MicrosecondArray::from(vec![Some(90_000_000)])),
            None,
        )
        .unwrap();
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("at", DataType::Time64(TimeUnit::Microsecond), true),
            Field::new("ats", DataType::List(item), true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(times),
                Arc::new(lists),
            ],
        )
        .unwrap();
        let text = with_text_times(&batch).unwrap();
        assert_eq!(text.column(0).as_ref(), batch.column(0).as_ref());
        let at = text.column(1).as_string::<i32>();
        assert_eq!((at.value(0), at.is_null(1)), ("08:00:00.000001", true));
        let ats = text.column(2).as_list::<i32>();
        assert_eq!(ats.value(0).as_string::<i32>().value(0), "00:01:30");
        assert_eq!(ats.value(1).len(), 0);
        assert!(!holds_time(text.schema().field(2).data_type()));
    }
}
