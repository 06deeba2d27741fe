//! Reading the lake: change rows of a `raw/` Parquet file as [`Change`]s, and the
//! transaction table's `END` rows as [`TxnEnd`]s.

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch, StructArray};
use bytes::Bytes;
use cdc_core::{pg_text, Lsn, Op};
use cdc_lake::columns;
use cdc_lake::{value_at, LakeStore};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::{FooterTail, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;
use parquet::file::FOOTER_SIZE;

use crate::source::{Change, TextRow};
use crate::ModelerError;

/// A change read from the lake with its transaction's position and time.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeChange {
    /// The transaction's commit LSN.
    pub commit_lsn: Lsn,
    /// The transaction's commit time (µs since the epoch).
    pub commit_ts_us: i64,
    /// The change.
    pub change: Change,
}

/// A source transaction's end: how many changes it made per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnEnd {
    /// Its commit LSN.
    pub commit_lsn: Lsn,
    /// Its commit time (µs since the epoch).
    pub commit_ts_us: i64,
    /// Changes per lake table directory (`staff`, `schema.table` outside `public`).
    pub counts: BTreeMap<String, u64>,
}

fn batches(bytes: Bytes, what: &str) -> Result<Vec<RecordBatch>, ModelerError> {
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(ModelerError::lake(what))?
        .build()
        .map_err(ModelerError::lake(what))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(ModelerError::lake(what))
}

/// A closure naming a lake file's shape problem.
fn shape(what: &str) -> impl Fn(&str) -> ModelerError + '_ {
    move |reason| ModelerError::LakeShape {
        what: what.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The changes in a lake file of table `table` whose transaction commits after `after`.
pub fn read_changes(
    table: &str,
    bytes: Bytes,
    after: Lsn,
    what: &str,
) -> Result<Vec<LakeChange>, ModelerError> {
    let bad = shape(what);
    let mut out = Vec::new();
    for batch in batches(bytes, what)? {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| bad(&format!("no {name} column")))
        };
        let ops = column(columns::OP)?
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("_op is not text"))?;
        let commit_lsns = column(columns::COMMIT_LSN)?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| bad("_commit_lsn is not int64"))?;
        let ordinals = column(columns::ORDINAL)?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| bad("_ordinal is not int64"))?;
        let commit_ts = column(columns::COMMIT_TS)?
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| bad("_commit_ts is not a timestamp"))?;
        let toast = batch
            .column_by_name(columns::UNCHANGED_TOAST)
            .and_then(|c| c.as_list_opt::<i32>());
        let before = batch
            .column_by_name(columns::BEFORE)
            .and_then(|c| c.as_struct_opt());
        let schema = batch.schema();
        let sources: Vec<(String, &dyn Array)> = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| !f.name().starts_with('_'))
            .map(|(f, c)| (f.name().clone(), c.as_ref()))
            .collect();
        for i in 0..batch.num_rows() {
            let commit_lsn = Lsn(commit_lsns.value(i) as u64);
            if commit_lsn <= after {
                continue;
            }
            let op = Op::from_code(ops.value(i))
                .ok_or_else(|| bad(&format!("unknown _op {:?}", ops.value(i))))?;
            let row = |cols: &[(String, &dyn Array)]| -> Result<TextRow, ModelerError> {
                cols.iter()
                    .map(|(n, c)| Ok((n.clone(), cell(*c, i, n, what)?)))
                    .collect()
            };
            let after_row = matches!(op, Op::Read | Op::Insert | Op::Update)
                .then(|| -> Result<TextRow, ModelerError> {
                    let mut r = row(&sources)?;
                    if let Some(list) = toast.filter(|l| l.is_valid(i)) {
                        let names = list.value(i);
                        if let Some(names) = names.as_string_opt::<i32>() {
                            for name in names.iter().flatten() {
                                r.remove(name);
                            }
                        }
                    }
                    Ok(r)
                })
                .transpose()?;
            let before_row = before
                .filter(|b| b.is_valid(i))
                .map(|b| struct_row(b, i, what))
                .transpose()?;
            out.push(LakeChange {
                commit_lsn,
                commit_ts_us: commit_ts.value(i),
                change: Change {
                    table: table.to_owned(),
                    op,
                    ordinal: ordinals.value(i) as u64,
                    after: after_row,
                    before: before_row,
                },
            });
        }
    }
    Ok(out)
}

fn struct_row(array: &StructArray, i: usize, what: &str) -> Result<TextRow, ModelerError> {
    array
        .column_names()
        .into_iter()
        .zip(array.columns())
        .filter(|(_, c)| c.is_valid(i))
        .map(|(n, c)| {
            let column = format!("{}.{n}", columns::BEFORE);
            Ok((n.to_owned(), cell(c.as_ref(), i, &column, what)?))
        })
        .collect()
}

/// The largest `_commit_lsn` in the lake file at `path`, read from its footer's column
/// statistics only (two small range reads); `None` when the footer does not say.
pub async fn max_commit_lsn(lake: &LakeStore, path: &Path) -> Result<Option<Lsn>, ModelerError> {
    let what = path.to_string();
    let bad = |reason: String| ModelerError::LakeShape {
        what: what.clone(),
        reason,
    };
    let size = lake
        .store
        .head(path)
        .await
        .map_err(ModelerError::lake(&what))?
        .size;
    let tail_len = FOOTER_SIZE as u64;
    if size < tail_len {
        return Ok(None);
    }
    let tail = lake
        .store
        .get_range(path, size - tail_len..size)
        .await
        .map_err(ModelerError::lake(&what))?;
    let tail: [u8; FOOTER_SIZE] = tail
        .as_ref()
        .try_into()
        .map_err(|_| bad("short footer".into()))?;
    let length = FooterTail::try_new(&tail)
        .map_err(ModelerError::lake(&what))?
        .metadata_length() as u64;
    if length + tail_len > size {
        return Err(bad(format!("footer of {length} bytes in a file of {size}")));
    }
    let metadata = lake
        .store
        .get_range(path, size - tail_len - length..size - tail_len)
        .await
        .map_err(ModelerError::lake(&what))?;
    let metadata =
        ParquetMetaDataReader::decode_metadata(&metadata).map_err(ModelerError::lake(&what))?;
    Ok(max_statistic(&metadata, columns::COMMIT_LSN).map(|max| Lsn(max as u64)))
}

/// The lake's change files against the warehouse watermark (for `status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Change files in the lake (the transactions table left out).
    pub change_files: usize,
    /// Tables they belong to.
    pub tables: usize,
    /// Files holding changes above the watermark, when one was given.
    pub waiting: Option<usize>,
}

/// Counts the lake's change files and, given the warehouse `watermark`, those still
/// holding changes the modeler has not applied, from the tables' logs (their statistics
/// give each file's largest commit LSN; a file without them is read for its footer).
pub async fn backlog(lake: &LakeStore, watermark: Option<Lsn>) -> Result<Backlog, ModelerError> {
    let tables = cdc_lake::LakeTables::new(lake)
        .map_err(ModelerError::lake(format!("open {}", lake.url)))?;
    let files = tables
        .all_live_files()
        .await
        .map_err(ModelerError::lake(format!("list {}", lake.url)))?;
    let transactions = cdc_lake::table_dir(&cdc_lake::TRANSACTIONS_TABLE.name);
    let changes: Vec<_> = files
        .iter()
        .filter(|(dir, _)| *dir != transactions)
        .collect();
    let mut backlog = Backlog {
        change_files: changes.len(),
        tables: changes
            .iter()
            .map(|(dir, _)| dir)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        waiting: None,
    };
    let Some(watermark) = watermark else {
        return Ok(backlog);
    };
    let mut waiting = 0;
    for (_, file) in changes {
        let max = match file.max_commit_lsn {
            Some(max) => Some(Lsn(max as u64)),
            None => max_commit_lsn(lake, &file.path).await?,
        };
        if max.is_none_or(|max| max > watermark) {
            waiting += 1;
        }
    }
    backlog.waiting = Some(waiting);
    Ok(backlog)
}

/// The largest value of Int64 column `name` over every row group, from statistics.
fn max_statistic(metadata: &ParquetMetaData, name: &str) -> Option<i64> {
    let schema = metadata.file_metadata().schema_descr();
    let column = schema.columns().iter().position(|c| c.name() == name)?;
    let mut max: Option<i64> = None;
    for group in metadata.row_groups() {
        match group.column(column).statistics() {
            Some(Statistics::Int64(stats)) => max = max.max(stats.max_opt().copied()),
            _ => return None,
        }
    }
    max
}

/// The `END` rows of a `totesys_cdc.transactions` file committing after `after`.
pub fn read_ends(bytes: Bytes, after: Lsn, what: &str) -> Result<Vec<TxnEnd>, ModelerError> {
    let bad = shape(what);
    let mut out = Vec::new();
    for batch in batches(bytes, what)? {
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>().cloned())
                .ok_or_else(|| bad(&format!("no text column {name}")))
        };
        let (lsns, collections) = (text("commit_lsn")?, text("data_collections")?);
        let ts = batch
            .column_by_name("commit_ts")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>().cloned())
            .ok_or_else(|| bad("no commit_ts column"))?;
        for i in 0..batch.num_rows() {
            let commit_lsn: Lsn = lsns
                .value(i)
                .parse()
                .map_err(|_| bad(&format!("commit_lsn {:?}", lsns.value(i))))?;
            if commit_lsn <= after {
                continue;
            }
            let json: BTreeMap<String, u64> = if collections.is_valid(i) {
                serde_json::from_str(collections.value(i))
                    .map_err(|e| bad(&format!("data_collections: {e}")))?
            } else {
                BTreeMap::new()
            };
            let counts = json
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(name, n)| {
                    let dir = name
                        .strip_prefix("public.")
                        .map_or(name.clone(), str::to_owned);
                    (dir, n)
                })
                .collect();
            out.push(TxnEnd {
                commit_lsn,
                commit_ts_us: ts.value(i),
                counts,
            });
        }
    }
    Ok(out)
}

/// Value `i` of `array` (column `column` of file `what`) in PostgreSQL's text form, `None`
/// for null; a value the modeler cannot represent is an error naming the column.
fn cell(
    array: &dyn Array,
    i: usize,
    column: &str,
    what: &str,
) -> Result<Option<String>, ModelerError> {
    let value = value_at(array, i).map_err(|source| ModelerError::UnreadableValue {
        file: what.to_owned(),
        column: column.to_owned(),
        source,
    })?;
    Ok(pg_text(&value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_footer_tells_the_largest_commit_lsn() {
        use std::sync::Arc;

        use arrow_array::{Int64Array, RecordBatch};
        use arrow_schema::{DataType, Field, Schema};
        use object_store::PutPayload;

        let lake = LakeStore::new(
            Arc::new(object_store::memory::InMemory::new()),
            Path::from("lake"),
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("units", DataType::Int64, false),
            Field::new(columns::COMMIT_LSN, DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Int64Array::from(vec![0x500, 0x900, 0x700])),
            ],
        )
        .unwrap();
        let bytes =
            cdc_lake::encode(&batch, &cdc_lake::ParquetOptions::default(), Vec::new()).unwrap();
        let path = Path::from("lake/raw/t/f.parquet");
        lake.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .unwrap();
        assert_eq!(
            max_commit_lsn(&lake, &path).await.unwrap(),
            Some(Lsn(0x900))
        );

        let other = Path::from("lake/raw/t/g.parquet");
        let no_lsn = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "units",
                DataType::Int64,
                false,
            )])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        let bytes =
            cdc_lake::encode(&no_lsn, &cdc_lake::ParquetOptions::default(), Vec::new()).unwrap();
        lake.store
            .put(&other, PutPayload::from_bytes(bytes))
            .await
            .unwrap();
        assert_eq!(max_commit_lsn(&lake, &other).await.unwrap(), None);
    }

    #[test]
    fn a_column_of_a_type_the_lake_does_not_write_is_an_error_naming_it() {
        use std::sync::Arc;

        use arrow_array::{Int8Array, StringArray, TimestampMicrosecondArray};
        use arrow_schema::{DataType, Field, Schema, TimeUnit};

        let utc = Some("UTC".into());
        let schema = Arc::new(Schema::new(vec![
            Field::new("tiny", DataType::Int8, true),
            Field::new(columns::OP, DataType::Utf8, false),
            Field::new(columns::COMMIT_LSN, DataType::Int64, false),
            Field::new(columns::ORDINAL, DataType::Int64, false),
            Field::new(
                columns::COMMIT_TS,
                DataType::Timestamp(TimeUnit::Microsecond, utc),
                false,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int8Array::from(vec![1])),
                Arc::new(StringArray::from(vec!["c"])),
                Arc::new(arrow_array::Int64Array::from(vec![0x10])),
                Arc::new(arrow_array::Int64Array::from(vec![0])),
                Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC")),
            ],
        )
        .unwrap();
        let bytes =
            cdc_lake::encode(&batch, &cdc_lake::ParquetOptions::default(), Vec::new()).unwrap();
        let err = read_changes("t", bytes, Lsn(0), "raw/t/f.parquet").unwrap_err();
        assert_eq!(
            cdc_core::error_chain(&err),
            "lake: raw/t/f.parquet: column tiny: Arrow type Int8 is not one the lake writes"
        );
        assert_eq!(err.kind(), "unreadable_value");
    }
}
