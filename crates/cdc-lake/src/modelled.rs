//! The lake's modelled tables: one Delta table per warehouse table at `processed/<name>/`,
//! each holding the warehouse table's rows as of a watermark.
//!
//! A commit replaces the rows of some keys with their current rows (none, for a key the
//! warehouse no longer has) and records the watermark it brings the table to in a
//! transaction record ([`MODELLED_APP`]). It is made only on top of a version whose record
//! is the one its rows were read against ([`Upsert::expect`]), so the table always equals
//! the warehouse table at its recorded watermark, and a commit redone after a crash, or
//! by a second modeler, finds the record moved and commits nothing.
//!
//! Each key is in at most one file: the files whose key range (from the log's statistics)
//! holds a key being replaced are rewritten without it, in the same commit that adds the
//! new rows. Small files are rewritten into the new one, so a table has about one file
//! per [`TARGET_ROWS`] rows however many commits made it.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::transaction::{CommitResult, UpdateTableOperation};
use object_store::path::Path;
use object_store::ObjectStoreExt;

use crate::parquet_file::{encode_all, read_all};
use crate::table::{blocking, kernel, pause, Layout, LiveFile, ENGINE_INFO, MAX_ATTEMPTS};
use crate::{new_attempt, LakeError, LakeTables, ParquetOptions};

/// The application id of the modeler's transaction records in modelled tables.
pub const MODELLED_APP: &str = "totesys-cdc-modeler";

/// Rows per file a modelled table aims at; smaller files are merged by the next commit.
pub const TARGET_ROWS: usize = 250_000;

/// A modelled table's commit: the rows of some keys replaced by their current rows.
#[derive(Debug, Clone)]
pub struct Upsert {
    /// The table's name (`dim_staff`): its directory under `processed/`.
    pub name: String,
    /// The key column: Int32, Int64 or Date32, unique in the table.
    pub key: String,
    /// The transaction record the rows were read against (`None`: the table has none).
    pub expect: Option<i64>,
    /// The record the commit brings the table to (the watermark it holds after it).
    pub through: i64,
    /// The keys whose rows are replaced; `None`: every row (the table is rewritten).
    pub keys: Option<Vec<i64>>,
    /// The current rows of those keys (keys without a row are removed).
    pub rows: RecordBatch,
}

/// What became of an [`Upsert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// Committed as this table version.
    Committed {
        /// The table version.
        version: u64,
    },
    /// The table's record is no longer the one expected: nothing was committed.
    Moved {
        /// The record the table has.
        record: Option<i64>,
    },
}

/// A modelled table as its log has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelledState {
    /// The watermark it holds (its transaction record), `None` before the first commit.
    pub record: Option<i64>,
    /// Its rows, from the log's statistics.
    pub rows: u64,
    /// Its files.
    pub files: usize,
}

/// The table directory of modelled table `name`.
fn dir_of(name: &str) -> String {
    format!("processed/{name}")
}

impl LakeTables {
    /// The URL of modelled table `name` as a Delta reader opens it.
    pub fn modelled_url(&self, name: &str) -> Result<url::Url, LakeError> {
        self.inner.table_url(&dir_of(name))
    }

    /// Modelled table `name`'s watermark, rows and files (all empty when there is no table).
    pub async fn modelled_state(&self, name: &str) -> Result<ModelledState, LakeError> {
        let dir = dir_of(name);
        let Some(snapshot) = self.snapshot(&dir).await? else {
            return Ok(ModelledState::default());
        };
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let record = snapshot
                .get_app_id_version(MODELLED_APP, inner.engine.as_ref())
                .map_err(kernel(format!("cannot read the watermark of {dir}")))?;
            let files = inner.live_files(&dir, &snapshot)?;
            Ok(ModelledState {
                record,
                rows: files.iter().filter_map(|f| f.rows).sum(),
                files: files.len(),
            })
        })
        .await
    }

    /// Commits `upsert`, unless the table's record moved from the one it expects.
    pub async fn upsert(&self, upsert: Upsert) -> Result<Upserted, LakeError> {
        let dir = dir_of(&upsert.name);
        if !self.exists(&dir).await? {
            self.inner.lake.ensure_dir(&self.inner.table_path(&dir))?;
        }
        let key_index =
            upsert.rows.schema().index_of(&upsert.key).map_err(|_| {
                LakeError::bad_shape(format!("{dir} has no key column {}", upsert.key))
            })?;
        let mut keys: Option<Vec<i64>> = upsert.keys.clone();
        if let Some(keys) = &mut keys {
            keys.sort_unstable();
            keys.dedup();
        }
        for attempt in 0..MAX_ATTEMPTS {
            // The table as it stands, and the files the commit rewrites.
            let inner = Arc::clone(&self.inner);
            let (table_dir, schema, key) = (dir.clone(), upsert.rows.schema(), upsert.key.clone());
            let (snapshot, record, live) = blocking(move || {
                let snapshot = inner.latest_or_create(&table_dir, &schema, Layout::Keyed(&key))?;
                let record = snapshot
                    .get_app_id_version(MODELLED_APP, inner.engine.as_ref())
                    .map_err(kernel(format!("cannot read the watermark of {table_dir}")))?;
                let snapshot = inner.evolve(&table_dir, snapshot, &schema)?;
                let live = inner.live_files(&table_dir, &snapshot)?;
                Ok((snapshot, record, live))
            })
            .await?;
            if record != upsert.expect {
                return Ok(Upserted::Moved { record });
            }
            let rewritten: Vec<&LiveFile> = live
                .iter()
                .filter(|file| rewrite(file, keys.as_deref()))
                .collect();
            let mut batches = Vec::with_capacity(rewritten.len() + 1);
            for file in &rewritten {
                // A rewrite of every row keeps none of the old ones.
                let Some(keys) = &keys else {
                    continue;
                };
                let batch = read_all(self.inner.lake.read(&file.path).await?)
                    .map_err(LakeError::parquet(format!("cannot read {}", file.path)))?;
                let kept = without_keys(&batch, key_index, keys)
                    .map_err(|reason| LakeError::bad_shape(format!("{}: {reason}", file.path)))?;
                batches.push(
                    align(&kept, &upsert.rows.schema()).map_err(|reason| {
                        LakeError::bad_shape(format!("{}: {reason}", file.path))
                    })?,
                );
            }
            batches.push(upsert.rows.clone());
            let merged = sorted(&upsert.rows.schema(), &batches, key_index)
                .map_err(|reason| LakeError::bad_shape(format!("{dir}: {reason}")))?;
            let written = self.write_files(&dir, &merged, upsert.through).await?;

            let inner = Arc::clone(&self.inner);
            let table_dir = dir.clone();
            let removed: Vec<String> = rewritten.iter().map(|f| f.table_path.clone()).collect();
            let through = upsert.through;
            let files = written.clone();
            let result = blocking(move || {
                let cannot = || kernel(format!("cannot commit to {table_dir}"));
                let engine = inner.engine.as_ref();
                let mut txn = Arc::clone(&snapshot)
                    .update_table(UpdateTableOperation::Write, ENGINE_INFO, true)
                    .with_transaction_id(MODELLED_APP.to_owned(), through)
                    .with_operation_parameters([("watermark", Some(through.to_string()))])
                    .build(engine, Box::new(FileSystemCommitter::new()))
                    .map_err(cannot())?;
                let wanted: HashSet<&str> = removed.iter().map(String::as_str).collect();
                let found = inner.remove_files(&table_dir, &snapshot, &mut txn, &wanted)?;
                if found != wanted.len() {
                    return Err(LakeError::bad_store(format!(
                        "{table_dir}: files of its snapshot are not in it"
                    )));
                }
                for (name, size, batch) in &files {
                    let add = inner.add_action(&table_dir, &txn, batch, *size, name, None)?;
                    txn.add_files(add);
                }
                Ok(match txn.commit(engine).map_err(cannot())? {
                    CommitResult::Committed(committed) => {
                        let version = committed.commit_version();
                        if let Some(after) = committed.post_commit_snapshot() {
                            inner.remember(&table_dir, after);
                        }
                        if version % crate::table::CHECKPOINT_EVERY == 0 {
                            if let Err(e) = inner.checkpoint(&table_dir, &inner.latest(&table_dir)?) {
                                tracing::warn!(table = table_dir, version, error = %cdc_core::error_chain(&e), "cannot checkpoint the modelled table's log; the next try will");
                            }
                        }
                        Some(version)
                    }
                    CommitResult::Conflicted(_) => None,
                    CommitResult::Retryable(_) => {
                        pause(attempt);
                        None
                    }
                })
            })
            .await;
            match result {
                Ok(Some(version)) => return Ok(Upserted::Committed { version }),
                Ok(None) => self.delete_files(&dir, &written).await,
                Err(e) => {
                    self.delete_files(&dir, &written).await;
                    return Err(e);
                }
            }
        }
        Err(LakeError::bad_store(format!(
            "gave up committing {dir} through {} after {MAX_ATTEMPTS} attempts met newer versions",
            upsert.through
        )))
    }

    /// Writes `batch` as files of at most [`TARGET_ROWS`] rows into table `dir` (none for
    /// no rows); their names, sizes and rows.
    async fn write_files(
        &self,
        dir: &str,
        batch: &RecordBatch,
        through: i64,
    ) -> Result<Vec<(String, u64, RecordBatch)>, LakeError> {
        let attempt = new_attempt();
        let table = self.inner.table_path(dir);
        let mut files = Vec::new();
        let mut offset = 0;
        while offset < batch.num_rows() {
            let part = batch.slice(offset, TARGET_ROWS.min(batch.num_rows() - offset));
            offset += part.num_rows();
            let name = format!("{through:016X}.{attempt}.{}.parquet", files.len());
            let bytes = encode_all(
                part.schema(),
                [&part],
                &ParquetOptions::default(),
                vec![("totesys_cdc.watermark".to_owned(), through.to_string())],
            )?;
            let size = bytes.len() as u64;
            let path = table.clone().join(name.as_str());
            self.inner.lake.put_new(&path, bytes).await?;
            files.push((name, size, part));
        }
        Ok(files)
    }

    /// Deletes files `write_files` wrote for a commit that was not made (best effort:
    /// vacuum deletes what is left).
    async fn delete_files(&self, dir: &str, files: &[(String, u64, RecordBatch)]) {
        let table = self.inner.table_path(dir);
        for (name, _, _) in files {
            let path: Path = table.clone().join(name.as_str());
            if let Err(e) = self.inner.lake.store.delete(&path).await {
                tracing::debug!(path = %path, error = %e, "cannot delete an uncommitted file; vacuum will");
            }
        }
    }
}

/// Whether a commit replacing `keys` (sorted; `None`: all) rewrites `file`: it may hold one
/// of them, or it is small enough to merge into the new file.
fn rewrite(file: &LiveFile, keys: Option<&[i64]>) -> bool {
    let Some(keys) = keys else {
        return true;
    };
    if file.rows.is_none_or(|rows| rows < (TARGET_ROWS / 4) as u64) {
        return true;
    }
    match file.key_range {
        None => true,
        Some((low, high)) => {
            let first = keys.partition_point(|k| *k < low);
            keys.get(first).is_some_and(|k| *k <= high)
        }
    }
}

/// A key column's values as i64 (Int32, Int64, or Date32 as days since 1970-01-01).
pub fn key_values(column: &ArrayRef) -> Result<Vec<Option<i64>>, String> {
    let values = match column.data_type() {
        DataType::Int32 => column
            .as_primitive::<Int32Type>()
            .iter()
            .map(|v| v.map(i64::from))
            .collect(),
        DataType::Int64 => column.as_primitive::<Int64Type>().iter().collect(),
        DataType::Date32 => column
            .as_primitive::<Date32Type>()
            .iter()
            .map(|v| v.map(i64::from))
            .collect(),
        other => return Err(format!("a key column cannot be {other}")),
    };
    Ok(values)
}

/// The rows of `batch` whose key is not in `keys` (sorted).
fn without_keys(batch: &RecordBatch, key: usize, keys: &[i64]) -> Result<RecordBatch, String> {
    let values = key_values(batch.column(key))?;
    let keep: BooleanArray = values
        .iter()
        .map(|v| Some(v.is_none_or(|v| keys.binary_search(&v).is_err())))
        .collect();
    arrow_select::filter::filter_record_batch(batch, &keep).map_err(|e| e.to_string())
}

/// `batch` with the columns of `schema` (those it lacks as nulls; a file written before a
/// column was added lacks it).
fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
            Some(column) => Err(format!(
                "column {} is {} in a file but {} in the table",
                field.name(),
                column.data_type(),
                field.data_type()
            )),
            None => Ok(arrow_array::new_null_array(
                field.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| e.to_string())
}

/// `batches` as one batch sorted by the key column.
fn sorted(schema: &SchemaRef, batches: &[RecordBatch], key: usize) -> Result<RecordBatch, String> {
    let all = arrow_select::concat::concat_batches(schema, batches).map_err(|e| e.to_string())?;
    let values = key_values(all.column(key))?;
    let mut order: Vec<u32> =
        (0..u32::try_from(all.num_rows()).map_err(|e| e.to_string())?).collect();
    order.sort_by_key(|&i| values.get(i as usize).copied().flatten());
    let indices = arrow_array::UInt32Array::from(order);
    arrow_select::take::take_record_batch(&all, &indices).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use arrow_array::{Int32Array, StringArray};
    use arrow_schema::{Field, Schema};
    use object_store::memory::InMemory;

    fn rows(keys: &[i32], name: &str) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("staff_id", DataType::Int32, true),
            Field::new("first_name", DataType::Utf8, true),
        ]));
        let names: Vec<String> = keys.iter().map(|k| format!("{name}{k}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(keys.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    async fn read(tables: &LakeTables) -> Vec<(i32, String)> {
        let (_, files) = tables
            .live_files("processed/dim_staff")
            .await
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        for file in files {
            let batch = read_all(tables.lake().read(&file.path).await.unwrap()).unwrap();
            let keys = batch.column(0).as_primitive::<Int32Type>();
            let names = batch.column(1).as_string::<i32>();
            for i in 0..batch.num_rows() {
                out.push((keys.value(i), names.value(i).to_owned()));
            }
        }
        out.sort();
        out
    }

    fn upsert(
        expect: Option<i64>,
        through: i64,
        keys: Option<Vec<i64>>,
        batch: RecordBatch,
    ) -> Upsert {
        Upsert {
            name: "dim_staff".into(),
            key: "staff_id".into(),
            expect,
            through,
            keys,
            rows: batch,
        }
    }

    #[tokio::test]
    async fn rows_of_keys_are_replaced_removed_and_added_once_per_watermark() {
        let lake = crate::LakeStore::new(Arc::new(InMemory::new()), Path::from("lake"));
        let tables = LakeTables::new(&lake).unwrap();
        let first = tables
            .upsert(upsert(None, 10, None, rows(&[1, 2, 3], "a")))
            .await
            .unwrap();
        assert_eq!(first, Upserted::Committed { version: 1 });
        // Key 2 changes, key 3 is gone, key 4 is new.
        let change = || upsert(Some(10), 20, Some(vec![2, 3, 4]), rows(&[2, 4], "b"));
        let second = tables.upsert(change()).await.unwrap();
        assert!(matches!(second, Upserted::Committed { .. }));
        assert_eq!(
            read(&tables).await,
            vec![(1, "a1".into()), (2, "b2".into()), (4, "b4".into())]
        );
        // The same commit again (a crash before the watermark was kept) finds it made.
        let again = tables.upsert(change()).await.unwrap();
        assert_eq!(again, Upserted::Moved { record: Some(20) });
        let state = tables.modelled_state("dim_staff").await.unwrap();
        assert_eq!((state.record, state.rows, state.files), (Some(20), 3, 1));
        // The file the second commit replaced goes with the raw zone's vacuum.
        let vacuum = crate::CompactOptions {
            retention: std::time::Duration::ZERO,
            ..crate::CompactOptions::default()
        };
        let report = crate::compact(&tables, None, &vacuum).await.unwrap();
        assert_eq!(report.vacuumed, 1, "{report:?}");
        assert_eq!(read(&tables).await.len(), 3);
    }

    #[test]
    fn only_files_that_may_hold_a_key_or_are_small_are_rewritten() {
        let file = |rows: u64, range: (i64, i64)| LiveFile {
            path: Path::from("f"),
            table_path: "f".into(),
            size: 1,
            date: None,
            rows: Some(rows),
            max_commit_lsn: None,
            modified_ms: 0,
            key_range: Some(range),
        };
        let big = TARGET_ROWS as u64;
        assert!(rewrite(&file(big, (10, 20)), Some(&[5, 15])));
        assert!(!rewrite(&file(big, (10, 20)), Some(&[5, 25])));
        assert!(rewrite(&file(10, (10, 20)), Some(&[5, 25])));
        assert!(rewrite(&file(big, (10, 20)), None));
    }
}
