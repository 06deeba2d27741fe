//! Maintenance of the lake's tables: small files merged into large ones, the logs
//! checkpointed, and files no snapshot needs any more deleted.
//!
//! # The swap
//!
//! A run of small files of one Kafka partition in one partition directory (consecutive in
//! offset order) is rewritten as one file, and the
//! swap is one commit to the table's log: the run's files removed and the new file added,
//! both with `dataChange = false`. A reader of any snapshot, before or after the commit,
//! reads each row exactly once; the modeler, which reads what commits *add*, skips the
//! rewritten file (it brings no new change).
//!
//! # Vacuum
//!
//! A file the latest snapshot no longer holds is deleted once the retention has passed
//! since the commit that removed it (merged away), or since it was written when no commit
//! ever held it (a writer stopped before its commit, or its commit was refused): a reader
//! still reading an older snapshot had that long to finish. Counting from the removal,
//! not from the file's writing, is what keeps a day-old file that compaction merged a
//! second ago readable by the snapshots that still name it.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow_array::RecordBatch;
use object_store::{ObjectStoreExt, PutPayload};

use crate::layout::{new_attempt, DataFile};
use crate::parquet_file::{encode_all, read_all, ParquetOptions};
use crate::table::{LakeTables, LiveFile, NewFile, Replace};
use crate::LakeError;

/// Footer key: how many files a compacted file replaced.
pub const COMPACTED_FILES_KEY: &str = "totesys_cdc.compacted_files";

/// How compaction picks and writes files, and how long vacuum keeps what it replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactOptions {
    /// Rows per compacted file, at most (a run stops before passing it).
    pub target_rows: usize,
    /// Files younger than this are left alone.
    pub min_age: Duration,
    /// Files no snapshot holds are deleted once this old.
    pub retention: Duration,
    /// How compacted files are written.
    pub parquet: ParquetOptions,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            target_rows: 1_000_000,
            min_age: Duration::from_secs(3600),
            retention: Duration::from_secs(3600),
            parquet: ParquetOptions::default(),
        }
    }
}

/// What a maintenance run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Small files merged (removed from their tables).
    pub merged: usize,
    /// Compacted files written.
    pub written: usize,
    /// Rows in the compacted files written.
    pub rows: usize,
    /// Files no snapshot holds, deleted.
    pub vacuumed: usize,
}

/// Merges the small files of every table (or of `table`), checkpoints each log it changed
/// and vacuums each table (with every table, the processed zone's too).
pub async fn compact(
    tables: &LakeTables,
    table: Option<&str>,
    options: &CompactOptions,
) -> Result<CompactReport, LakeError> {
    let mut report = CompactReport::default();
    let dirs = match table {
        Some(table) => vec![table.to_owned()],
        None => tables.tables().await?,
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let min_age_ms = i64::try_from(options.min_age.as_millis()).unwrap_or(i64::MAX);
    for dir in dirs {
        let Some((_, live)) = tables.live_files(&dir).await? else {
            continue;
        };
        let mut partitions: BTreeMap<_, Vec<(DataFile, LiveFile)>> = BTreeMap::new();
        for file in live {
            let small = file
                .rows
                .is_none_or(|rows| rows < options.target_rows as u64);
            if small && now_ms.saturating_sub(file.modified_ms) >= min_age_ms {
                // Runs stay within a Kafka partition: its rows in offset order, and the
                // name of the run's first file says where they came from.
                if let (Some(date), Some(name)) = (file.date, DataFile::parse(&file.path)) {
                    let source = (name.topic.clone(), name.partition);
                    partitions
                        .entry((date, source))
                        .or_default()
                        .push((name, file));
                }
            }
        }
        let mut changed = false;
        for (_, mut files) in partitions {
            files.sort_by_key(|(name, _)| name.first_offset);
            let mut run: Vec<(DataFile, LiveFile, RecordBatch)> = Vec::new();
            for (name, file) in files {
                let batch = read_all(tables.lake().read(&file.path).await?)
                    .map_err(LakeError::parquet(format!("cannot read {}", file.path)))?;
                let fits = run.first().is_none_or(|(_, _, first)| {
                    first.schema() == batch.schema()
                        && run.iter().map(|(_, _, b)| b.num_rows()).sum::<usize>()
                            + batch.num_rows()
                            <= options.target_rows
                });
                if !fits {
                    changed |=
                        merge(tables, &dir, std::mem::take(&mut run), options, &mut report).await?;
                }
                run.push((name, file, batch));
            }
            changed |= merge(tables, &dir, run, options, &mut report).await?;
        }
        if changed {
            tables.checkpoint(&dir).await?;
        }
        report.vacuumed += tables.vacuum(&dir, options.retention).await?;
    }
    // The processed zone's commits replace files too (the modeler compacts as it writes).
    if table.is_none() {
        for dir in tables.processed_tables().await? {
            report.vacuumed += tables.vacuum(&dir, options.retention).await?;
        }
    }
    Ok(report)
}

/// Writes a run of two or more files (consecutive files of one Kafka partition and date,
/// in offset order) as one and swaps it in; whether it did.
async fn merge(
    tables: &LakeTables,
    dir: &str,
    run: Vec<(DataFile, LiveFile, RecordBatch)>,
    options: &CompactOptions,
    report: &mut CompactReport,
) -> Result<bool, LakeError> {
    let Some((first, _, batch)) = run.first() else {
        return Ok(false);
    };
    if run.len() < 2 {
        return Ok(false);
    }
    let schema = batch.schema();
    // Named after the run's first file, with an attempt of its own.
    let file = DataFile {
        attempt: Some(format!("{}-compacted", new_attempt())),
        ..first.clone()
    };
    let all = arrow_select::concat::concat_batches(&schema, run.iter().map(|(_, _, b)| b))
        .map_err(LakeError::parquet(format!(
            "cannot merge the rows of {} files of table {dir}",
            run.len()
        )))?;
    let bytes = encode_all(
        schema,
        [&all],
        &options.parquet,
        vec![(COMPACTED_FILES_KEY.to_owned(), run.len().to_string())],
    )?;
    let size = bytes.len() as u64;
    let rows = all.num_rows();
    let path = file.path(&tables.lake().root);
    tables
        .lake()
        .store
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(LakeError::store(format!("cannot write {path}")))?;
    let swapped = tables
        .replace(Replace {
            dir: dir.to_owned(),
            removed: run.iter().map(|(_, f, _)| f.table_path.clone()).collect(),
            added: NewFile {
                date: file.date,
                name: file.name(),
                size,
                batch: all,
            },
        })
        .await?;
    if !swapped {
        // Another compaction took some of these files; vacuum deletes ours.
        tracing::info!(table = dir, path = %path, "files already compacted by another run; left");
        return Ok(false);
    }
    tracing::info!(table = dir, path = %path, files = run.len(), rows, "compacted");
    report.merged += run.len();
    report.written += 1;
    report.rows += rows;
    Ok(true)
}
