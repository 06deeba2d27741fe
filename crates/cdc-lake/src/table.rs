//! The lake's tables: one Delta Lake table per source table at `raw/<table>/`, its log in
//! `raw/<table>/_delta_log/`, read and written through `delta_kernel`.
//!
//! # Exactly once
//!
//! Each commit of a lake writer carries a transaction record (`txn`) whose application id
//! names the Kafka topic and partition ([`app_id`]) and whose version is the last offset
//! the commit covers. A commit is made only on top of a table version whose record for
//! that partition is below the first offset it covers; Delta's put-if-absent of the next
//! log entry makes that check and the commit one step, so of two writers (a crashed one
//! restarted, a zombie and the partition's new owner) committing the same range, one
//! commits and the other finds the range covered ([`Appended::Covered`]) and drops it.
//!
//! Kernel calls block, so each runs on tokio's blocking pool.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::Schema;
use chrono::NaiveDate;
use delta_kernel::commit_range::{CommitRange, DeltaAction};
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::engine::arrow_conversion::TryFromArrow;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::expressions::{ColumnName, Scalar};
use delta_kernel::schema::{DataType, StructField, StructType};
use delta_kernel::transaction::create_table::create_table;
use delta_kernel::transaction::data_layout::DataLayout;
use delta_kernel::transaction::{CommitResult, UpdateTableOperation};
use delta_kernel::{Engine, EngineData, FileMeta, FilteredEngineData, Snapshot, SnapshotRef};
use delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor;
use delta_kernel_default_engine::parquet::DataFileMetadata;
use delta_kernel_default_engine::stats::collect_stats;
use delta_kernel_default_engine::{build_add_file_metadata, DefaultEngineBuilder};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;
use url::Url;

use crate::layout::{raw_path, table_path};
use crate::{columns, LakeError, LakeStore};

/// The partition column of every lake table: the UTC date of the source commit.
pub const DATE_COLUMN: &str = "_commit_date";

/// The columns each file's statistics cover (the modeler skips files by `_commit_lsn`).
const STATS_COLUMNS: [&str; 4] = [
    columns::COMMIT_LSN,
    columns::COMMIT_TS,
    columns::KAFKA_PARTITION,
    columns::KAFKA_OFFSET,
];

/// Who wrote a commit, in its `commitInfo.engineInfo`.
pub(crate) const ENGINE_INFO: &str = concat!("totesys-cdc/", env!("CARGO_PKG_VERSION"));

/// A checkpoint of a table's log is written every this many commits.
pub(crate) const CHECKPOINT_EVERY: u64 = 100;

/// Versions a cached snapshot is read on from before it is read afresh from the latest
/// checkpoint.
const REREAD_AFTER: u64 = 2 * CHECKPOINT_EVERY;

/// Commit attempts before a commit that keeps meeting newer versions gives up.
pub(crate) const MAX_ATTEMPTS: usize = 1_000;

/// The application id of a Kafka partition's transaction records in a table.
pub fn app_id(topic: &str, partition: i32) -> String {
    format!("{topic}+{partition}")
}

/// A file of a table's current snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Where it is in the lake's store.
    pub path: Path,
    /// Its path relative to the table, as the log has it.
    pub table_path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its partition's commit date, when the path names one.
    pub date: Option<NaiveDate>,
    /// Rows, from the log's statistics.
    pub rows: Option<u64>,
    /// The largest `_commit_lsn` in it, from the log's statistics.
    pub max_commit_lsn: Option<i64>,
    /// When it was written, milliseconds since the epoch.
    pub modified_ms: i64,
    /// The smallest and largest key in it, from the log's statistics (modelled tables).
    pub key_range: Option<(i64, i64)>,
}

/// A data file already in the store, to be committed to a table.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Its partition's commit date.
    pub date: NaiveDate,
    /// Its name inside the partition directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its rows, for the log's statistics.
    pub batch: RecordBatch,
}

/// A lake writer's commit: a file (or none, for a range with no row to keep) covering a
/// partition's offsets `first_offset..=last_offset`.
#[derive(Debug, Clone)]
pub struct Append {
    /// The table directory (`staff`, `schema.table` outside `public`).
    pub dir: String,
    /// The Kafka topic.
    pub topic: String,
    /// The Kafka partition.
    pub partition: i32,
    /// The first offset covered.
    pub first_offset: i64,
    /// The last offset covered: the transaction record's version.
    pub last_offset: i64,
    /// The lake group, recorded in the commit's operation parameters.
    pub group: String,
    /// The shape of the rows (the table is created or evolved to hold it).
    pub schema: Arc<Schema>,
    /// The file, when there is one.
    pub file: Option<NewFile>,
}

/// What became of an [`Append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Committed as this table version.
    Committed {
        /// The table version.
        version: u64,
    },
    /// The table already holds the partition's offsets up to `through` (at or after the
    /// append's first offset): another writer committed them; nothing was committed.
    Covered {
        /// The last offset the table holds for the partition.
        through: i64,
    },
}

/// A compaction's commit: files of one partition directory replaced by one holding their rows.
#[derive(Debug, Clone)]
pub struct Replace {
    /// The table directory.
    pub dir: String,
    /// The files replaced (their paths relative to the table).
    pub removed: Vec<String>,
    /// The file holding their rows.
    pub added: NewFile,
}

/// The lake's tables, with a cache of their latest snapshots. Cheap to clone.
#[derive(Clone)]
pub struct LakeTables {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) lake: LakeStore,
    pub(crate) engine: Arc<dyn Engine>,
    /// The URL of the lake's root as the engine's store sees it (ends in `/`).
    base: Url,
    /// The latest snapshot of each table read, and the version it was last read afresh at.
    snapshots: Mutex<HashMap<String, (SnapshotRef, u64)>>,
}

/// How a new table is laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layout<'a> {
    /// A raw table: partitioned by commit date, statistics on the change metadata.
    Raw,
    /// A modelled table: one directory, statistics on its key column.
    Keyed(&'a str),
}

impl std::fmt::Debug for LakeTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeTables")
            .field("lake", &self.inner.lake.url)
            .field("base", &self.inner.base.as_str())
            .finish()
    }
}

pub(crate) fn kernel(
    what: impl Into<String>,
) -> impl FnOnce(delta_kernel::KernelError) -> LakeError {
    LakeError::store(what)
}

impl LakeTables {
    /// The tables of `lake`.
    pub fn new(lake: &LakeStore) -> Result<LakeTables, LakeError> {
        let (store, base): (Arc<dyn ObjectStore>, Url) = match &lake.local_dir {
            // The engine takes `file://` URLs as absolute paths (and sorts local listings).
            Some(dir) => (
                Arc::new(crate::log_listing::LogListing::new()),
                Url::from_directory_path(dir).map_err(|()| {
                    LakeError::bad_store(format!(
                        "lake directory {} is not absolute",
                        dir.display()
                    ))
                })?,
            ),
            None => {
                let text = match lake.url.split_once("://") {
                    Some((scheme, rest)) if lake.url_is_store_root => {
                        format!("{scheme}://{}/", rest.trim_end_matches('/'))
                    }
                    _ => format!("lake://store/{}/", lake.root),
                };
                let base = Url::parse(&text).map_err(LakeError::store(format!(
                    "lake URL {:?} is not a URL the tables can use",
                    lake.url
                )))?;
                (Arc::clone(&lake.store), base)
            }
        };
        let engine = DefaultEngineBuilder::new(store)
            .with_task_executor(executor()?)
            .build();
        Ok(LakeTables {
            inner: Arc::new(Inner {
                lake: lake.clone(),
                engine: Arc::new(engine),
                base,
                snapshots: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The lake these tables are in.
    pub fn lake(&self) -> &LakeStore {
        &self.inner.lake
    }

    /// The URL of table `dir` as a Delta reader outside the lake's store opens it
    /// (`file:///…/raw/staff/` for a local lake).
    pub fn table_url(&self, dir: &str) -> Result<Url, LakeError> {
        self.inner.table_url(dir)
    }

    /// The directory of table `dir` in the lake's store.
    pub fn table_path(&self, dir: &str) -> Path {
        self.inner.table_path(dir)
    }

    /// The table directories under `raw/` that hold a table.
    pub async fn tables(&self) -> Result<Vec<String>, LakeError> {
        self.tables_in(None).await
    }

    /// The table directories (`processed/<name>`) of the processed zone that hold a table.
    pub async fn processed_tables(&self) -> Result<Vec<String>, LakeError> {
        self.tables_in(Some("processed")).await
    }

    /// The tables under `raw/` (their names), or under `<zone>/` (as `<zone>/<name>`).
    async fn tables_in(&self, zone: Option<&str>) -> Result<Vec<String>, LakeError> {
        let parent = match zone {
            None => raw_path(&self.inner.lake.root),
            Some(zone) => self.inner.lake.root.clone().join(zone),
        };
        let listed = self
            .inner
            .lake
            .store
            .list_with_delimiter(Some(&parent))
            .await
            .map_err(LakeError::store(format!("cannot list {parent}")))?;
        let mut dirs = Vec::new();
        for prefix in listed.common_prefixes {
            if let Some(name) = prefix.filename() {
                let dir = match zone {
                    None => name.to_owned(),
                    Some(zone) => format!("{zone}/{name}"),
                };
                if self.exists(&dir).await? {
                    dirs.push(dir);
                }
            }
        }
        dirs.sort();
        Ok(dirs)
    }

    /// Whether table `dir` has a log.
    pub(crate) async fn exists(&self, dir: &str) -> Result<bool, LakeError> {
        if self.cached(dir).is_some() {
            return Ok(true);
        }
        let log = self.table_path(dir).join("_delta_log");
        match self.inner.lake.store.list(Some(&log)).next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(LakeError::store(format!("cannot list {log}"))(e)),
        }
    }

    fn cached(&self, dir: &str) -> Option<SnapshotRef> {
        self.inner
            .snapshots
            .lock()
            .ok()
            .and_then(|s| s.get(dir).map(|(snapshot, _)| Arc::clone(snapshot)))
    }

    /// Table `dir`'s latest snapshot (`None`: no table yet), read on from the cached one.
    pub async fn snapshot(&self, dir: &str) -> Result<Option<SnapshotRef>, LakeError> {
        if !self.exists(dir).await? {
            return Ok(None);
        }
        let inner = Arc::clone(&self.inner);
        let dir = dir.to_owned();
        blocking(move || inner.latest(&dir).map(Some)).await
    }

    /// The last offset of `topic`'s `partition` that table `dir` holds, if any.
    pub async fn committed_through(
        &self,
        dir: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, LakeError> {
        let Some(snapshot) = self.snapshot(dir).await? else {
            return Ok(None);
        };
        let inner = Arc::clone(&self.inner);
        let app = app_id(topic, partition);
        blocking(move || {
            snapshot
                .get_app_id_version(&app, inner.engine.as_ref())
                .map_err(kernel(format!("cannot read the transaction record {app}")))
        })
        .await
    }

    /// Commits a lake writer's range, unless the table already holds some of it.
    pub async fn append(&self, append: Append) -> Result<Appended, LakeError> {
        if !self.exists(&append.dir).await? {
            self.inner.lake.ensure_dir(&self.table_path(&append.dir))?;
        }
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.append(&append)).await
    }

    /// The files of table `dir`'s latest snapshot, and its version (`None`: no table).
    pub async fn live_files(&self, dir: &str) -> Result<Option<(u64, Vec<LiveFile>)>, LakeError> {
        let Some(snapshot) = self.snapshot(dir).await? else {
            return Ok(None);
        };
        let inner = Arc::clone(&self.inner);
        let dir = dir.to_owned();
        blocking(move || {
            let files = inner.live_files(&dir, &snapshot)?;
            Ok(Some((snapshot.version(), files)))
        })
        .await
    }

    /// Every table's files (each change once), with their table directories.
    pub async fn all_live_files(&self) -> Result<Vec<(String, LiveFile)>, LakeError> {
        let mut all = Vec::new();
        for dir in self.tables().await? {
            if let Some((_, files)) = self.live_files(&dir).await? {
                all.extend(files.into_iter().map(|f| (dir.clone(), f)));
            }
        }
        Ok(all)
    }

    /// The files table `dir` gained with new data after version `after` (not those a
    /// compaction rewrote), and the version read to; `None` when there is no table.
    pub async fn added_since(
        &self,
        dir: &str,
        after: u64,
    ) -> Result<Option<(u64, Vec<LiveFile>)>, LakeError> {
        let Some(snapshot) = self.snapshot(dir).await? else {
            return Ok(None);
        };
        if snapshot.version() <= after {
            return Ok(Some((snapshot.version(), Vec::new())));
        }
        let inner = Arc::clone(&self.inner);
        let dir = dir.to_owned();
        blocking(move || {
            let files = inner.added_since(&dir, &snapshot, after)?;
            Ok(Some((snapshot.version(), files)))
        })
        .await
    }

    /// Commits a compaction; `Ok(false)` when a file it replaces is no longer in the table
    /// (another compaction took it), and nothing was committed.
    pub async fn replace(&self, replace: Replace) -> Result<bool, LakeError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.replace(&replace)).await
    }

    /// Writes a checkpoint of table `dir`'s log at its latest version.
    pub async fn checkpoint(&self, dir: &str) -> Result<(), LakeError> {
        let Some(snapshot) = self.snapshot(dir).await? else {
            return Ok(());
        };
        let inner = Arc::clone(&self.inner);
        let dir = dir.to_owned();
        blocking(move || inner.checkpoint(&dir, &snapshot)).await
    }

    /// Deletes the data files of table `dir` that its latest snapshot does not hold and
    /// that left it (or, never committed, were written) more than `retention` ago:
    /// readers of older snapshots had that long; returns how many were deleted.
    pub async fn vacuum(&self, dir: &str, retention: Duration) -> Result<usize, LakeError> {
        let Some((_, live)) = self.live_files(dir).await? else {
            return Ok(0);
        };
        let live: HashSet<Path> = live.into_iter().map(|f| f.path).collect();
        let table = self.table_path(dir);
        let log = table.clone().join("_delta_log");
        // A retention longer than time itself keeps everything.
        let Some(cutoff) = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|retention| chrono::Utc::now().checked_sub_signed(retention))
        else {
            return Ok(0);
        };
        let store = &self.inner.lake.store;
        let listed: Vec<object_store::ObjectMeta> = store
            .list(Some(&table))
            .try_collect()
            .await
            .map_err(LakeError::store(format!("cannot list {table}")))?;
        // A file's age is counted from the commit that removed it, not from its writing:
        // a file written a day ago and merged away a second ago is still being read.
        let mut recently_removed = HashSet::new();
        for commit in listed.iter().filter(|meta| {
            meta.location.prefix_matches(&log)
                && meta.last_modified > cutoff
                && meta.location.as_ref().ends_with(".json")
        }) {
            let bytes = self.inner.lake.read(&commit.location).await?;
            recently_removed.extend(removed_paths(&table, &commit.location, &bytes)?);
        }
        let stale: Vec<Path> = listed
            .into_iter()
            .filter(|meta| {
                !(meta.location.prefix_matches(&log)
                    || live.contains(&meta.location)
                    || recently_removed.contains(&meta.location)
                    || meta.last_modified > cutoff
                    || !meta.location.as_ref().ends_with(".parquet"))
            })
            .map(|meta| meta.location)
            .collect();
        for path in &stale {
            self.inner.lake.delete_if_present(path).await?;
        }
        Ok(stale.len())
    }
}

/// `relative` (a path the log names) under the table directory `table`.
fn under(table: &Path, relative: &Path) -> Path {
    relative
        .parts()
        .fold(table.clone(), |path, part| path.join(part))
}

/// The files a commit's `remove` actions name, as paths in the store under `table`.
fn removed_paths(table: &Path, commit: &Path, bytes: &[u8]) -> Result<Vec<Path>, LakeError> {
    let bad = |what: String| LakeError::bad_store(format!("commit {commit}: {what}"));
    let mut paths = Vec::new();
    for line in bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
    {
        let action: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let Some(removed) = action.get("remove") else {
            continue;
        };
        let Some(relative) = removed.get("path").and_then(|p| p.as_str()) else {
            return Err(bad("a remove action without a path".to_owned()));
        };
        let relative = Path::from_url_path(relative)
            .map_err(|e| bad(format!("file path {relative:?}: {e}")))?;
        paths.push(under(table, &relative));
    }
    Ok(paths)
}

/// The runtime the tables' I/O runs on: one per process, never dropped (a runtime cannot
/// be dropped from async code, where the last table handle may go).
fn executor() -> Result<Arc<TokioMultiThreadExecutor>, LakeError> {
    static EXECUTOR: std::sync::OnceLock<Arc<TokioMultiThreadExecutor>> =
        std::sync::OnceLock::new();
    if let Some(executor) = EXECUTOR.get() {
        return Ok(Arc::clone(executor));
    }
    let executor = TokioMultiThreadExecutor::new_owned_runtime(Some(2), Some(16))
        .map_err(kernel("cannot start the lake tables' I/O runtime"))?;
    Ok(Arc::clone(EXECUTOR.get_or_init(|| Arc::new(executor))))
}

/// Waits before attempt `attempt + 1` of a commit that hit a retryable I/O error:
/// 20 ms more each time, at most 1 s.
pub(crate) fn pause(attempt: usize) {
    std::thread::sleep(Duration::from_millis(20 * (attempt as u64 + 1).min(50)));
}

/// Runs a kernel call on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, LakeError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, LakeError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(LakeError::store("a lake table call did not finish"))?
}

impl Inner {
    /// The URL of table `dir`: `raw/<dir>/`, or `<zone>/<name>/` for a `dir` of
    /// `<zone>/<name>` (raw directories hold no `/`).
    pub(crate) fn table_url(&self, dir: &str) -> Result<Url, LakeError> {
        let relative = match dir.split_once('/') {
            Some((zone, name)) => format!("{}/{}/", urlencode(zone), urlencode(name)),
            None => format!("raw/{}/", urlencode(dir)),
        };
        self.base
            .join(&relative)
            .map_err(LakeError::store(format!("no URL for table {dir}")))
    }

    /// The directory of table `dir` in the lake's store.
    pub(crate) fn table_path(&self, dir: &str) -> Path {
        match dir.split_once('/') {
            Some((zone, name)) => self.lake.root.clone().join(zone).join(name),
            None => table_path(&self.lake.root, dir),
        }
    }

    pub(crate) fn latest(&self, dir: &str) -> Result<SnapshotRef, LakeError> {
        let cached = self.snapshots.lock().ok().and_then(|s| s.get(dir).cloned());
        let engine = self.engine.as_ref();
        // A snapshot read on from an older one keeps every commit since the checkpoint it
        // was first read from (a checkpoint at or before its version is never seen), and
        // each read costs them all; past a few checkpoints, it is read afresh from the
        // latest checkpoint.
        let (snapshot, fresh) = match cached {
            Some((old, fresh)) if old.version() < fresh + REREAD_AFTER => {
                (Snapshot::builder_from(old).build(engine), false)
            }
            _ => (
                Snapshot::builder_for(self.table_url(dir)?.as_str()).build(engine),
                true,
            ),
        };
        let snapshot = snapshot.map_err(kernel(format!("cannot read the log of table {dir}")))?;
        if fresh {
            if let Ok(mut snapshots) = self.snapshots.lock() {
                snapshots.insert(dir.to_owned(), (Arc::clone(&snapshot), snapshot.version()));
            }
        } else {
            self.remember(dir, &snapshot);
        }
        Ok(snapshot)
    }

    pub(crate) fn remember(&self, dir: &str, snapshot: &SnapshotRef) {
        if let Ok(mut snapshots) = self.snapshots.lock() {
            match snapshots.get_mut(dir) {
                Some((old, _)) if old.version() >= snapshot.version() => {}
                Some((old, _)) => *old = Arc::clone(snapshot),
                None => {
                    snapshots.insert(dir.to_owned(), (Arc::clone(snapshot), snapshot.version()));
                }
            }
        }
    }

    fn forget(&self, dir: &str) {
        if let Ok(mut snapshots) = self.snapshots.lock() {
            snapshots.remove(dir);
        }
    }

    /// The table's latest snapshot, creating the table (shaped like `schema`) when it has none.
    pub(crate) fn latest_or_create(
        &self,
        dir: &str,
        schema: &Schema,
        layout: Layout<'_>,
    ) -> Result<SnapshotRef, LakeError> {
        let url = self.table_url(dir)?;
        let engine = self.engine.as_ref();
        let known = self.snapshots.lock().is_ok_and(|s| s.contains_key(dir));
        match self.latest(dir) {
            Ok(snapshot) => return Ok(snapshot),
            // A table read before that cannot be read now: a real failure.
            Err(e) if known => return Err(e),
            // No table yet (or one being created by another writer): create it.
            Err(_) => {}
        }
        let mut fields = delta_fields(dir, schema)?;
        if let Layout::Raw = layout {
            fields.push(StructField::not_null(DATE_COLUMN, DataType::DATE));
        }
        let table_schema = StructType::try_new(fields).map_err(kernel(format!(
            "the shape of table {dir} is not a Delta schema"
        )))?;
        let create = create_table(url.as_str(), Arc::new(table_schema), ENGINE_INFO, false);
        let create = match layout {
            Layout::Raw => create
                .with_data_layout(DataLayout::partitioned([DATE_COLUMN]))
                .with_table_properties([(
                    "delta.dataSkippingStatsColumns",
                    STATS_COLUMNS.join(","),
                )]),
            Layout::Keyed(key) => {
                create.with_table_properties([("delta.dataSkippingStatsColumns", key.to_owned())])
            }
        };
        let created = create
            .build(engine, Box::new(FileSystemCommitter::new()))
            .map_err(kernel(format!("cannot create table {dir}")))?
            .commit(engine);
        if let Err(e) = created {
            // Another writer may have created it in the meantime; reading it tells.
            tracing::debug!(table = dir, error = %e, "creating the lake table failed; reading it");
        }
        self.latest(dir)
    }

    /// Adds the columns of `schema` the table lacks, and lets columns that now hold nulls
    /// hold them; returns the snapshot after the change (the same one when none is needed).
    pub(crate) fn evolve(
        &self,
        dir: &str,
        snapshot: SnapshotRef,
        schema: &Schema,
    ) -> Result<SnapshotRef, LakeError> {
        let table = snapshot.schema();
        let change = StructType::try_new(delta_fields(dir, schema)?).map_err(kernel(format!(
            "the shape of table {dir} is not a Delta schema"
        )))?;
        let (mut added, mut nullable) = (Vec::new(), Vec::new());
        schema_diff(&[], &table, &change, &mut added, &mut nullable).map_err(|what| {
            LakeError::bad_shape(format!(
                "{what} of lake table {dir}: the table cannot change a column's type \
                 (write the new shape under another topic prefix)"
            ))
        })?;
        if added.is_empty() && nullable.is_empty() {
            return Ok(snapshot);
        }
        let engine = self.engine.as_ref();
        let mut builder = Arc::clone(&snapshot).update_table(
            UpdateTableOperation::AlterTable,
            ENGINE_INFO,
            false,
        );
        for (parent, field) in added {
            builder = if parent.is_empty() {
                builder.add_column(field)
            } else {
                builder.add_column_at(ColumnName::new(parent), field)
            };
        }
        for path in nullable {
            builder = builder.set_nullable(ColumnName::new(path));
        }
        let result = builder
            .build(engine, Box::new(FileSystemCommitter::new()))
            .map_err(kernel(format!("cannot change the schema of table {dir}")))?
            .commit(engine)
            .map_err(kernel(format!("cannot change the schema of table {dir}")))?;
        if let CommitResult::Committed(committed) = &result {
            tracing::info!(
                table = dir,
                version = committed.commit_version(),
                "lake table schema evolved"
            );
        }
        // Committed here or raced by another writer's change: read the table again.
        self.latest(dir)
    }

    fn append(&self, append: &Append) -> Result<Appended, LakeError> {
        let dir = append.dir.as_str();
        let app = app_id(&append.topic, append.partition);
        let engine = self.engine.as_ref();
        for attempt in 0..MAX_ATTEMPTS {
            let snapshot = self.latest_or_create(dir, &append.schema, Layout::Raw)?;
            let through = snapshot
                .get_app_id_version(&app, engine)
                .map_err(kernel(format!("cannot read the transaction record {app}")))?;
            if let Some(through) = through.filter(|&t| t >= append.first_offset) {
                return Ok(Appended::Covered { through });
            }
            let snapshot = self.evolve(dir, snapshot, &append.schema)?;
            let parameters = [
                ("group", append.group.clone()),
                ("topic", append.topic.clone()),
                ("partition", append.partition.to_string()),
                ("firstOffset", append.first_offset.to_string()),
                ("lastOffset", append.last_offset.to_string()),
            ];
            let mut txn = Arc::clone(&snapshot)
                .update_table(UpdateTableOperation::StreamingUpdate, ENGINE_INFO, true)
                .with_transaction_id(app.clone(), append.last_offset)
                .with_operation_parameters(parameters.map(|(k, v)| (k, Some(v))))
                .build(engine, Box::new(FileSystemCommitter::new()))
                .map_err(kernel(format!("cannot start a commit to table {dir}")))?;
            if let Some(file) = &append.file {
                let add = self.add_metadata(dir, &txn, file)?;
                txn.add_files(add);
            }
            match txn
                .commit(engine)
                .map_err(kernel(format!("cannot commit to table {dir}")))?
            {
                CommitResult::Committed(committed) => {
                    let version = committed.commit_version();
                    if let Some(after) = committed.post_commit_snapshot() {
                        self.remember(dir, after);
                    }
                    if version % CHECKPOINT_EVERY == 0 {
                        if let Ok(latest) = self.latest(dir) {
                            if let Err(e) = self.checkpoint(dir, &latest) {
                                tracing::warn!(table = dir, version, error = %cdc_core::error_chain(&e), "cannot checkpoint the lake table's log; the next try will");
                            }
                        }
                    }
                    return Ok(Appended::Committed { version });
                }
                CommitResult::Conflicted(conflict) => {
                    tracing::debug!(
                        table = dir,
                        attempt,
                        version = conflict.conflict_version(),
                        "another commit took the version; trying on top of it"
                    );
                }
                CommitResult::Retryable(_) => {
                    pause(attempt);
                }
            }
        }
        Err(LakeError::bad_store(format!(
            "gave up committing offsets {}..={} of {} to table {dir} after {MAX_ATTEMPTS} attempts met newer versions",
            append.first_offset,
            append.last_offset,
            app
        )))
    }

    /// The add action of `file` for `txn`, with statistics of its rows.
    fn add_metadata<S>(
        &self,
        dir: &str,
        txn: &delta_kernel::transaction::Transaction<S>,
        file: &NewFile,
    ) -> Result<Box<dyn EngineData>, LakeError> {
        self.add_action(
            dir,
            txn,
            &file.batch,
            file.size,
            &file.name,
            Some(file.date),
        )
    }

    /// The add action of the file `name` (in partition `date`, or in the table's directory)
    /// holding `batch` in `size` bytes, with statistics of its rows.
    pub(crate) fn add_action<S>(
        &self,
        dir: &str,
        txn: &delta_kernel::transaction::Transaction<S>,
        batch: &RecordBatch,
        size: u64,
        name: &str,
        date: Option<NaiveDate>,
    ) -> Result<Box<dyn EngineData>, LakeError> {
        let bad = |what: &str| kernel(format!("cannot add {name} to table {dir}: {what}"));
        let mut context = txn
            .write_state()
            .map_err(bad("no write state"))?
            .write_context_builder();
        if let Some(date) = date {
            let days = date.signed_duration_since(NaiveDate::default()).num_days();
            context = context.with_partition_values(HashMap::from([(
                DATE_COLUMN.to_owned(),
                Scalar::Date(i32::try_from(days).unwrap_or(i32::MAX)),
            )]));
        }
        let context = context.build().map_err(bad("bad partition value"))?;
        let stats = collect_stats(
            batch,
            context.stats_columns(),
            context.physical_data_schema(),
        )
        .map_err(bad("no statistics"))?;
        let relative = match date {
            Some(date) => format!("{}/{}", partition_dir(date), urlencode(name)),
            None => urlencode(name),
        };
        let location = self
            .table_url(dir)?
            .join(&relative)
            .map_err(LakeError::store(format!("no URL for {name}")))?;
        let meta = DataFileMetadata::new(
            FileMeta {
                location,
                last_modified: chrono::Utc::now().timestamp_millis(),
                size,
            },
            stats,
        );
        build_add_file_metadata(meta, &context).map_err(bad("bad add action"))
    }

    pub(crate) fn live_files(
        &self,
        dir: &str,
        snapshot: &SnapshotRef,
    ) -> Result<Vec<LiveFile>, LakeError> {
        let cannot = || kernel(format!("cannot list the files of table {dir}"));
        let scan = Arc::clone(snapshot)
            .scan_builder()
            .build()
            .map_err(cannot())?;
        let mut files = Vec::new();
        for metadata in scan.scan_metadata(self.engine.as_ref()).map_err(cannot())? {
            let metadata = metadata.map_err(cannot())?;
            let (data, selected) = metadata.scan_files.into_parts();
            let batch = arrow_batch(data).map_err(cannot())?;
            files
                .extend(self.file_rows(dir, &batch, |i| selected.get(i).copied().unwrap_or(true))?);
        }
        Ok(files)
    }

    fn added_since(
        &self,
        dir: &str,
        snapshot: &SnapshotRef,
        after: u64,
    ) -> Result<Vec<LiveFile>, LakeError> {
        let cannot = || {
            kernel(format!(
                "cannot read the log of table {dir} after version {after}"
            ))
        };
        // Listed from the log, not taken from the snapshot: a snapshot read from a
        // checkpoint holds only the commits after it.
        let range = CommitRange::builder_for(self.table_url(dir)?.as_str(), after + 1)
            .with_end_version(snapshot.version())
            .build(self.engine.as_ref())
            .map_err(cannot())?;
        let mut files = Vec::new();
        for commit in range
            .commits(Arc::clone(&self.engine), None, &[DeltaAction::Add])
            .map_err(cannot())?
        {
            let commit = commit.map_err(cannot())?;
            for data in commit.get_actions(self.engine.as_ref()).map_err(cannot())? {
                let batch = arrow_batch(data.map_err(cannot())?).map_err(cannot())?;
                let Some(adds) = batch.column_by_name("add").and_then(|c| c.as_struct_opt()) else {
                    continue;
                };
                // The actions of other kinds are null rows of `add`: its fields as nullable
                // columns (the validity of `add` says which rows are adds).
                let (fields, columns, _) = adds.clone().into_parts();
                let fields: Vec<arrow_schema::Field> = fields
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect();
                let adds = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(
                    LakeError::store(format!(
                        "the log of table {dir} has add actions of another shape"
                    )),
                )?;
                let changed = adds
                    .column_by_name("dataChange")
                    .and_then(|c| c.as_boolean_opt().cloned());
                let valid = batch.column_by_name("add").map(|c| c.logical_nulls());
                files.extend(self.file_rows(dir, &adds, |i| {
                    valid
                        .as_ref()
                        .is_none_or(|v| v.as_ref().is_none_or(|n| n.is_valid(i)))
                        && changed.as_ref().is_none_or(|c| c.is_null(i) || c.value(i))
                })?);
            }
        }
        Ok(files)
    }

    /// The files in the rows of `batch` (scan rows or add actions) that `take` selects.
    fn file_rows(
        &self,
        dir: &str,
        batch: &RecordBatch,
        take: impl Fn(usize) -> bool,
    ) -> Result<Vec<LiveFile>, LakeError> {
        let bad = |what: &str| LakeError::bad_store(format!("the log of table {dir}: {what}"));
        let paths = batch
            .column_by_name("path")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| bad("no path column"))?;
        let sizes = batch
            .column_by_name("size")
            .and_then(|c| c.as_primitive_opt::<arrow_array::types::Int64Type>());
        let times = batch
            .column_by_name("modificationTime")
            .and_then(|c| c.as_primitive_opt::<arrow_array::types::Int64Type>());
        let stats = batch
            .column_by_name("stats")
            .and_then(|c| c.as_string_opt::<i32>());
        let table = self.table_path(dir);
        let mut files = Vec::new();
        for i in 0..batch.num_rows() {
            if paths.is_null(i) || !take(i) {
                continue;
            }
            let table_path = paths.value(i).to_owned();
            let relative = Path::from_url_path(&table_path)
                .map_err(|e| bad(&format!("file path {table_path:?}: {e}")))?;
            let path = under(&table, &relative);
            let stats = stats
                .filter(|s| s.is_valid(i))
                .map(|s| parse_stats(s.value(i)));
            let (rows, max_commit_lsn, key_range) = stats.unwrap_or((None, None, None));
            files.push(LiveFile {
                date: relative.parts().next().and_then(|p| {
                    p.as_ref()
                        .strip_prefix(&format!("{DATE_COLUMN}="))
                        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                }),
                path,
                table_path,
                size: sizes
                    .filter(|s| s.is_valid(i))
                    .map_or(0, |s| u64::try_from(s.value(i)).unwrap_or(0)),
                rows,
                max_commit_lsn,
                modified_ms: times.filter(|t| t.is_valid(i)).map_or(0, |t| t.value(i)),
                key_range,
            });
        }
        Ok(files)
    }

    fn replace(&self, replace: &Replace) -> Result<bool, LakeError> {
        let dir = replace.dir.as_str();
        let engine = self.engine.as_ref();
        let wanted: HashSet<&str> = replace.removed.iter().map(String::as_str).collect();
        for attempt in 0..MAX_ATTEMPTS {
            let snapshot = self.latest(dir)?;
            let cannot = || kernel(format!("cannot compact table {dir}"));
            let mut txn = Arc::clone(&snapshot)
                .update_table(UpdateTableOperation::Optimize, ENGINE_INFO, false)
                .with_operation_parameters([("files", Some(replace.removed.len().to_string()))])
                .build(engine, Box::new(FileSystemCommitter::new()))
                .map_err(cannot())?;
            let found = self.remove_files(dir, &snapshot, &mut txn, &wanted)?;
            if found != wanted.len() {
                return Ok(false);
            }
            let add = self.add_metadata(dir, &txn, &replace.added)?;
            txn.add_files(add);
            match txn.commit(engine).map_err(cannot())? {
                CommitResult::Committed(committed) => {
                    if let Some(after) = committed.post_commit_snapshot() {
                        self.remember(dir, after);
                    }
                    return Ok(true);
                }
                CommitResult::Conflicted(_) => {}
                CommitResult::Retryable(_) => {
                    pause(attempt);
                }
            }
        }
        self.forget(dir);
        Err(LakeError::bad_store(format!(
            "gave up compacting table {dir} after {MAX_ATTEMPTS} attempts met newer versions"
        )))
    }

    /// Removes the files of `snapshot` whose table paths are in `wanted` in `txn`; how many
    /// it found.
    pub(crate) fn remove_files(
        &self,
        dir: &str,
        snapshot: &SnapshotRef,
        txn: &mut delta_kernel::transaction::Transaction,
        wanted: &HashSet<&str>,
    ) -> Result<usize, LakeError> {
        let cannot = || kernel(format!("cannot remove files of table {dir}"));
        let engine = self.engine.as_ref();
        let scan = Arc::clone(snapshot)
            .scan_builder()
            .build()
            .map_err(cannot())?;
        let mut found = 0;
        for metadata in scan.scan_metadata(engine).map_err(cannot())? {
            let metadata = metadata.map_err(cannot())?;
            let (data, selected) = metadata.scan_files.into_parts();
            let batch = arrow_batch_ref(data.as_ref()).map_err(cannot())?;
            let paths = batch
                .column_by_name("path")
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| LakeError::bad_store(format!("table {dir}: no path column")))?;
            let chosen: Vec<bool> = (0..batch.num_rows())
                .map(|i| {
                    selected.get(i).copied().unwrap_or(true)
                        && paths.is_valid(i)
                        && wanted.contains(paths.value(i))
                })
                .collect();
            let n = chosen.iter().filter(|c| **c).count();
            if n > 0 {
                found += n;
                txn.remove_files(FilteredEngineData::try_new(data, chosen).map_err(cannot())?);
            }
        }
        Ok(found)
    }

    pub(crate) fn checkpoint(&self, dir: &str, snapshot: &SnapshotRef) -> Result<(), LakeError> {
        snapshot
            .checkpoint(self.engine.as_ref(), None)
            .map_err(kernel(format!("cannot checkpoint table {dir}")))?;
        Ok(())
    }
}

/// What `change` has that `table` lacks: fields to add (with the path of their parent
/// struct, nullable since older files lack them) and paths of fields that now hold nulls.
/// `Err` names a field whose type changed.
fn schema_diff(
    prefix: &[String],
    table: &StructType,
    change: &StructType,
    added: &mut Vec<(Vec<String>, StructField)>,
    nullable: &mut Vec<Vec<String>>,
) -> Result<(), String> {
    for field in change.fields() {
        let mut path = prefix.to_vec();
        path.push(field.name().clone());
        match table.field(field.name()) {
            None => added.push((
                prefix.to_vec(),
                StructField::nullable(field.name(), field.data_type().clone()),
            )),
            Some(existing) => {
                match (existing.data_type(), field.data_type()) {
                    (DataType::Struct(old), DataType::Struct(new)) => {
                        schema_diff(&path, old, new, added, nullable)?;
                    }
                    (old, new) if old != new => {
                        return Err(format!(
                            "column {} is {old} in the table but {new} in this change",
                            path.join(".")
                        ));
                    }
                    _ => {}
                }
                if field.is_nullable() && !existing.is_nullable() {
                    nullable.push(path);
                }
            }
        }
    }
    Ok(())
}

/// The Delta fields of a lake schema (the lake writes only types Delta has).
fn delta_fields(dir: &str, schema: &Schema) -> Result<Vec<StructField>, LakeError> {
    let delta = StructType::try_from_arrow(schema).map_err(|e| LakeError::Shape {
        what: format!("lake table {dir} has a column Delta cannot hold"),
        source: Some(Box::new(e)),
    })?;
    Ok(delta.fields().cloned().collect())
}

fn arrow_batch(data: Box<dyn EngineData>) -> Result<RecordBatch, delta_kernel::KernelError> {
    Ok(ArrowEngineData::try_from_engine_data(data)?
        .record_batch()
        .clone())
}

fn arrow_batch_ref(data: &dyn EngineData) -> Result<RecordBatch, delta_kernel::KernelError> {
    data.any_ref()
        .downcast_ref::<ArrowEngineData>()
        .map(|d| d.record_batch().clone())
        .ok_or_else(|| delta_kernel::KernelError::generic("engine data is not Arrow"))
}

/// Rows, the largest `_commit_lsn` and the range of the one other column with both bounds
/// (a modelled table's key) from a file's statistics (JSON).
fn parse_stats(json: &str) -> (Option<u64>, Option<i64>, Option<(i64, i64)>) {
    let Ok(stats) = serde_json::from_str::<serde_json::Value>(json) else {
        return (None, None, None);
    };
    let bound = |which: &str, column: &str| {
        stats
            .get(which)
            .and_then(|m| m.get(column))
            .and_then(key_value)
    };
    let key_range = stats
        .get("minValues")
        .and_then(serde_json::Value::as_object)
        .and_then(|mins| {
            let mut keys = mins.keys().filter(|k| !k.starts_with('_'));
            match (keys.next(), keys.next()) {
                (Some(key), None) => bound("minValues", key).zip(bound("maxValues", key)),
                _ => None,
            }
        });
    (
        stats.get("numRecords").and_then(serde_json::Value::as_u64),
        bound("maxValues", columns::COMMIT_LSN),
        key_range,
    )
}

/// A key as statistics hold it: an integer, or a date as days since 1970-01-01.
pub(crate) fn key_value(value: &serde_json::Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        let date = NaiveDate::parse_from_str(value.as_str()?, "%Y-%m-%d").ok()?;
        Some(date.signed_duration_since(NaiveDate::default()).num_days())
    })
}

/// The partition directory of a commit date.
pub fn partition_dir(date: NaiveDate) -> String {
    format!("{DATE_COLUMN}={}", date.format("%Y-%m-%d"))
}

/// `name` as one URL path segment.
pub(crate) fn urlencode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~+=".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use object_store::ObjectStoreExt;

    use super::*;

    #[test]
    fn statistics_give_rows_and_the_highest_commit_lsn() {
        assert_eq!(
            parse_stats(r#"{"numRecords":3,"maxValues":{"_commit_lsn":42}}"#),
            (Some(3), Some(42), None)
        );
        assert_eq!(parse_stats("not json"), (None, None, None));
    }

    #[test]
    fn statistics_give_a_modelled_tables_key_range() {
        assert_eq!(
            parse_stats(
                r#"{"numRecords":2,"minValues":{"staff_id":3},"maxValues":{"staff_id":9}}"#
            ),
            (Some(2), None, Some((3, 9)))
        );
        assert_eq!(
            parse_stats(
                r#"{"numRecords":2,"minValues":{"date_id":"1970-01-02"},"maxValues":{"date_id":"1970-01-31"}}"#
            ),
            (Some(2), None, Some((1, 30)))
        );
    }

    #[tokio::test]
    async fn files_added_after_a_version_before_a_checkpoint_are_found() {
        use arrow_array::{ArrayRef, Int32Array, Int64Array, TimestampMicrosecondArray};
        use arrow_schema::{DataType as Arrow, Field, TimeUnit};
        use object_store::memory::InMemory;
        use object_store::PutPayload;

        let lake = LakeStore::new(Arc::new(InMemory::new()), Path::from("lake"));
        let writer = LakeTables::new(&lake).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new(columns::COMMIT_LSN, Arrow::Int64, false),
            Field::new(
                columns::COMMIT_TS,
                Arrow::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new(columns::KAFKA_PARTITION, Arrow::Int32, false),
            Field::new(columns::KAFKA_OFFSET, Arrow::Int64, false),
        ]));
        let date = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let commits = CHECKPOINT_EVERY as i64 + 5;
        for offset in 0..commits {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(vec![offset])),
                Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC")),
                Arc::new(Int32Array::from(vec![0])),
                Arc::new(Int64Array::from(vec![offset])),
            ];
            let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
            let bytes = crate::parquet_file::encode(&batch, &Default::default(), vec![]).unwrap();
            let name = format!("f{offset}.parquet");
            let path = writer
                .table_path("t")
                .join(partition_dir(date))
                .join(name.as_str());
            let size = bytes.len() as u64;
            lake.store
                .put(&path, PutPayload::from(bytes))
                .await
                .unwrap();
            let append = Append {
                dir: "t".into(),
                topic: "topic".into(),
                partition: 0,
                first_offset: offset,
                last_offset: offset,
                group: "g".into(),
                schema: schema.clone(),
                file: Some(NewFile {
                    date,
                    name,
                    size,
                    batch,
                }),
            };
            assert!(matches!(
                writer.append(append).await.unwrap(),
                Appended::Committed { .. }
            ));
        }
        // Another process opens the table from its checkpoint, then asks what came after
        // version 5 (table creation is version 0).
        let reader = LakeTables::new(&lake).unwrap();
        let (version, files) = reader.added_since("t", 5).await.unwrap().unwrap();
        assert_eq!(version, commits as u64);
        assert_eq!(files.len(), commits as usize - 5);
        assert_eq!(files.iter().filter_map(|f| f.max_commit_lsn).min(), Some(5));
        let (_, live) = reader.live_files("t").await.unwrap().unwrap();
        assert_eq!(live.len(), commits as usize);
        assert_eq!(
            reader.committed_through("t", "topic", 0).await.unwrap(),
            Some(commits - 1)
        );
    }

    #[test]
    fn names_are_one_url_segment() {
        assert_eq!(urlencode("a+0+0001.parquet"), "a+0+0001.parquet");
        assert_eq!(urlencode("sales order/x"), "sales%20order%2Fx");
    }
}
