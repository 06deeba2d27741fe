//! Compaction: a partition's small files merged into large ones, swapped in with one put.
//!
//! # The swap
//!
//! A compacted file is named `<topic>+<partition>+<first row offset>+<last offset>.parquet`:
//! it *supersedes* every file of its partition (in its directory) whose first row lies in
//! `first..=last`. [`live_files`] leaves superseded files out, so for a reader that lists
//! through it (the modeler, replay, `totesys-cdc lake` tools) the swap is the single
//! create-only put of the compacted file: before it, the small files; after it, the
//! compacted one; never both, never neither. The small files are deleted afterwards, and
//! any left by an interrupted run are deleted by the next one.
//!
//! A reader that globs the directory itself sees the rows of a run twice for the moment
//! between that put and the deletes; docs/lake.md gives the query that never does.
//!
//! # What may be merged
//!
//! Only files wholly below the lake group's committed offset of their partition (a
//! writer restarting there never writes them again) and older than `min_age` (a zombie
//! writer, which could otherwise still create a file the run covers, has long been
//! fenced by then). Runs are consecutive files of one shape, up to `target_rows`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use arrow_array::RecordBatch;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::layout::DataFile;
use crate::parquet_file::{encode_all, ParquetOptions};
use crate::writer::{FIRST_OFFSET_KEY, LAST_OFFSET_KEY};
use crate::{LakeError, LakeStore};

/// Footer key: how many files a compacted file replaced.
pub const COMPACTED_FILES_KEY: &str = "totesys_cdc.compacted_files";

/// How compaction picks and writes files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactOptions {
    /// Rows per compacted file, at most (a run stops before passing it).
    pub target_rows: usize,
    /// Files younger than this are left alone.
    pub min_age: Duration,
    /// How compacted files are written.
    pub parquet: ParquetOptions,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            target_rows: 1_000_000,
            min_age: Duration::from_secs(3600),
            parquet: ParquetOptions::default(),
        }
    }
}

/// What a compaction run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Small files merged (and deleted).
    pub merged: usize,
    /// Compacted files written.
    pub written: usize,
    /// Rows in the compacted files written.
    pub rows: usize,
    /// Superseded files left by an earlier, interrupted run and deleted now.
    pub leftovers: usize,
}

/// A listed lake file.
#[derive(Debug, Clone)]
struct Listed {
    file: DataFile,
    path: Path,
    modified: chrono::DateTime<chrono::Utc>,
}

/// Files under `raw/` (or `raw/<table>/`), grouped per directory and partition, in offset order.
async fn list(
    lake: &LakeStore,
    table: Option<&str>,
) -> Result<BTreeMap<(String, chrono::NaiveDate, String, i32), Vec<Listed>>, LakeError> {
    let mut prefix = lake.root.clone().join("raw");
    if let Some(table) = table {
        prefix = prefix.join(table);
    }
    let objects: Vec<_> = lake
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(LakeError::store(format!("cannot list {prefix}")))?;
    let mut groups: BTreeMap<_, Vec<Listed>> = BTreeMap::new();
    for object in objects {
        let Some(file) = DataFile::parse(&object.location) else {
            continue;
        };
        groups
            .entry((
                file.table.clone(),
                file.date,
                file.topic.clone(),
                file.partition,
            ))
            .or_default()
            .push(Listed {
                file,
                path: object.location,
                modified: object.last_modified,
            });
    }
    for files in groups.values_mut() {
        files.sort_by_key(|l| (l.file.first_offset, l.file.compacted_to));
    }
    Ok(groups)
}

/// Splits a partition directory's files into live and superseded ones.
fn split_superseded(files: Vec<Listed>) -> (Vec<Listed>, Vec<Listed>) {
    let ranges: Vec<(i64, i64, usize)> = files
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.file.compacted_to.map(|to| (l.file.first_offset, to, i)))
        .collect();
    let superseded = |i: usize, l: &Listed| {
        let own_to = l.file.compacted_to.unwrap_or(l.file.first_offset);
        ranges.iter().any(|&(from, to, j)| {
            j != i
                && from <= l.file.first_offset
                && l.file.first_offset <= to
                // A compacted file only loses to a wider one (or an equal one listed first).
                && (to - from > own_to - l.file.first_offset
                    || (to - from == own_to - l.file.first_offset && j < i))
        })
    };
    let (mut live, mut gone) = (Vec::new(), Vec::new());
    for (i, listed) in files.into_iter().enumerate() {
        if superseded(i, &listed) {
            gone.push(listed);
        } else {
            live.push(listed);
        }
    }
    (live, gone)
}

/// The files a reader should read for `table` (every table when `None`): each change
/// exactly once, whether or not a compaction is under way.
pub async fn live_files(lake: &LakeStore, table: Option<&str>) -> Result<Vec<DataFile>, LakeError> {
    let mut live = Vec::new();
    for (_, files) in list(lake, table).await? {
        live.extend(split_superseded(files).0.into_iter().map(|l| l.file));
    }
    Ok(live)
}

/// A file read for merging.
struct Loaded {
    listed: Listed,
    batches: Vec<RecordBatch>,
    rows: usize,
    first: i64,
    last: i64,
}

async fn load(lake: &LakeStore, listed: Listed) -> Result<Loaded, LakeError> {
    let path = &listed.path;
    let bytes = lake.read(path).await?;
    let unreadable = || format!("cannot read {path}");
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(LakeError::parquet(unreadable()))?;
    let footer = |key: &str| -> Result<i64, LakeError> {
        builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kvs| kvs.iter().find(|kv| kv.key == key))
            .and_then(|kv| kv.value.as_deref())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| LakeError::Parquet {
                what: format!("{path}: no {key} in the footer"),
                source: None,
            })
    };
    let (first, last) = (footer(FIRST_OFFSET_KEY)?, footer(LAST_OFFSET_KEY)?);
    let batches: Vec<RecordBatch> = builder
        .build()
        .map_err(LakeError::parquet(unreadable()))?
        .collect::<Result<_, _>>()
        .map_err(LakeError::parquet(unreadable()))?;
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    Ok(Loaded {
        listed,
        batches,
        rows,
        first,
        last,
    })
}

/// Merges small files of every partition directory under `raw/` (or `raw/<table>/`).
/// `committed` holds the lake group's committed offset per `(topic, partition)`; a
/// partition without one is left alone.
pub async fn compact(
    lake: &LakeStore,
    table: Option<&str>,
    committed: &HashMap<(String, i32), i64>,
    options: &CompactOptions,
) -> Result<CompactReport, LakeError> {
    let mut report = CompactReport::default();
    let now = chrono::Utc::now();
    let min_age = chrono::Duration::from_std(options.min_age).unwrap_or(chrono::Duration::MAX);
    for ((_, _, topic, partition), files) in list(lake, table).await? {
        let (live, superseded) = split_superseded(files);
        for gone in &superseded {
            delete(lake, &gone.path).await?;
            report.leftovers += 1;
        }
        let Some(&committed) = committed.get(&(topic.clone(), partition)) else {
            continue;
        };
        // Consecutive old files, in offset order, from the start of the partition directory.
        let candidates = live
            .into_iter()
            .take_while(|l| now - l.modified >= min_age && l.file.first_offset < committed);
        let mut run: Vec<Loaded> = Vec::new();
        for listed in candidates {
            let loaded = load(lake, listed).await?;
            if loaded.last >= committed {
                // Not wholly committed: a restarted writer may write it again.
                break;
            }
            let fits = run.first().is_none_or(|first| {
                first.batches.first().map(RecordBatch::schema)
                    == loaded.batches.first().map(RecordBatch::schema)
                    && run.iter().map(|l| l.rows).sum::<usize>() + loaded.rows
                        <= options.target_rows
            });
            if !fits {
                merge(
                    lake,
                    std::mem::take(&mut run),
                    &topic,
                    partition,
                    options,
                    &mut report,
                )
                .await?;
            }
            run.push(loaded);
        }
        merge(lake, run, &topic, partition, options, &mut report).await?;
    }
    Ok(report)
}

/// Writes a run of two or more files as one compacted file, then deletes them.
async fn merge(
    lake: &LakeStore,
    run: Vec<Loaded>,
    topic: &str,
    partition: i32,
    options: &CompactOptions,
    report: &mut CompactReport,
) -> Result<(), LakeError> {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return Ok(());
    };
    if run.len() < 2 {
        return Ok(());
    }
    let Some(schema) = first.batches.first().map(RecordBatch::schema) else {
        return Ok(());
    };
    let file = DataFile {
        compacted_to: Some(last.last),
        ..first.listed.file.clone()
    };
    let path = file.path(&lake.root);
    let metadata = vec![
        ("totesys_cdc.kafka.topic".to_owned(), topic.to_owned()),
        (
            "totesys_cdc.kafka.partition".to_owned(),
            partition.to_string(),
        ),
        (FIRST_OFFSET_KEY.to_owned(), first.first.to_string()),
        (LAST_OFFSET_KEY.to_owned(), last.last.to_string()),
        (COMPACTED_FILES_KEY.to_owned(), run.len().to_string()),
    ];
    let bytes = encode_all(
        schema,
        run.iter().flat_map(|l| &l.batches),
        &options.parquet,
        metadata,
    )?;
    let put = lake
        .store
        .put_opts(
            &path,
            PutPayload::from(bytes),
            PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            },
        )
        .await;
    match put {
        Ok(_) => {
            report.written += 1;
            report.rows += run.iter().map(|l| l.rows).sum::<usize>();
        }
        // Another compactor wrote the same run: it is in place either way.
        Err(object_store::Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(LakeError::store(format!("cannot write {path}"))(e)),
    }
    tracing::info!(path = %path, files = run.len(), "compacted");
    for loaded in &run {
        delete(lake, &loaded.listed.path).await?;
        report.merged += 1;
    }
    Ok(())
}

async fn delete(lake: &LakeStore, path: &Path) -> Result<(), LakeError> {
    match lake.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(LakeError::store(format!("cannot delete {path}"))(e)),
    }
}
