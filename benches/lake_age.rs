//! What a modeler pass costs on a lake table as it ages: a fresh table against one of
//! 100,000 commits (and the steps between), on a local disk, with what the same work cost
//! before, measured on the same lake in the same run.
//!
//! ```text
//!   grow: N lake-writer commits (one small file each) to raw/t through LakeTables::append
//!   at each size:
//!     pass, idle      tables() + added_since(t, v)  (the modeler's lake work, nothing new)
//!     pass, 1 commit  added_since(t, v - 1)         (one commit to read)
//!     commit          append of one file            (the lake writer's cost)
//!   before, on the same files:
//!     log walk        LocalFileSystem::list_with_offset(_delta_log, v): each snapshot
//!                     update's listing before the log was listed by name
//!     lake LIST       LocalFileSystem::list(raw/): every modeler pass before the tables
//! ```
//!
//! Usage: `cargo run --release -p cdc-benches --bin lake-age -- [COMMITS] [--dir DIR] [--real]`
//! (COMMITS 100000; the lake goes in a temporary directory unless `--dir` names one).
//! Prints a table and one JSON line.
//!
//! Growing the table through `append` takes about 18 ms a commit here (half an hour for
//! 100,000), so by default the commits between stages are written as the lake writer
//! writes them, without the writer: each is the last real commit's JSON with its offsets
//! moved on (`commitInfo`, `txn`, the `add` action's path and statistics), and its data
//! file a hard link to the last real one; a checkpoint is written at each stage, as the
//! writer writes one every 100 commits. The figures are taken with real commits
//! through `append` either way; `--real` grows through `append` too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use cdc_lake::{columns, encode, partition_dir, Append, Appended, LakeStore, LakeTables, NewFile};
use chrono::NaiveDate;
use futures_util::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::json;

/// Samples per figure (the median is printed).
const SAMPLES: usize = 30;

struct Lake {
    store: LakeStore,
    tables: LakeTables,
    schema: Arc<Schema>,
    date: NaiveDate,
    commits: i64,
    dir: std::path::PathBuf,
}

impl Lake {
    /// Commits one one-row file; how long the commit (not the file's put) took.
    async fn commit(&mut self) -> anyhow::Result<Duration> {
        let offset = self.commits;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![offset])),
            Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC")),
            Arc::new(Int32Array::from(vec![0])),
            Arc::new(Int64Array::from(vec![offset])),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let bytes = encode(&batch, &Default::default(), vec![])?;
        let name = format!("topic+0+{offset:020}.a.parquet");
        let path = self
            .tables
            .table_path("t")
            .join(partition_dir(self.date))
            .join(name.as_str());
        let size = bytes.len() as u64;
        self.store.store.put(&path, PutPayload::from(bytes)).await?;
        let append = Append {
            dir: "t".into(),
            topic: "topic".into(),
            partition: 0,
            first_offset: offset,
            last_offset: offset,
            group: "bench".into(),
            schema: Arc::clone(&self.schema),
            file: Some(NewFile {
                date: self.date,
                name,
                size,
                batch,
            }),
        };
        let start = Instant::now();
        let appended = self.tables.append(append).await?;
        let took = start.elapsed();
        ensure!(
            matches!(appended, Appended::Committed { .. }),
            "commit {offset} was refused"
        );
        self.commits += 1;
        Ok(took)
    }

    /// Writes commits up to `until` as the lake writer would, from the last real one (see
    /// the module's notes), then a checkpoint.
    async fn grow_fast(&mut self, until: i64) -> anyhow::Result<()> {
        let log = self.dir.join("raw/t/_delta_log");
        let last = self.version();
        let template = std::fs::read_to_string(log.join(format!("{last:020}.json")))?;
        let template: Vec<serde_json::Value> = template
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        let partition = self.dir.join("raw/t").join(partition_dir(self.date));
        let last_offset = self.commits - 1;
        let mut data = partition.join(format!("topic+0+{last_offset:020}.a.parquet"));
        while self.commits < until {
            let offset = self.commits;
            let name = format!("topic+0+{offset:020}.a.parquet");
            // A file system allows so many links to a file: a copy every 50,000.
            if offset % 50_000 == 0 {
                std::fs::copy(&data, partition.join(&name))?;
                data = partition.join(&name);
            } else {
                std::fs::hard_link(&data, partition.join(&name))?;
            }
            let mut lines = Vec::with_capacity(template.len());
            for action in &template {
                let mut action = action.clone();
                if let Some(params) = action.pointer_mut("/commitInfo/operationParameters") {
                    params["firstOffset"] = json!(offset.to_string());
                    params["lastOffset"] = json!(offset.to_string());
                }
                if let Some(txn) = action.get_mut("txn") {
                    txn["version"] = json!(offset);
                }
                if let Some(add) = action.get_mut("add") {
                    add["path"] = json!(format!("{}/{name}", partition_dir(self.date)));
                    let mut stats: serde_json::Value =
                        serde_json::from_str(add["stats"].as_str().context("add without stats")?)?;
                    for bound in ["minValues", "maxValues"] {
                        stats[bound][columns::COMMIT_LSN] = json!(offset);
                        stats[bound][columns::KAFKA_OFFSET] = json!(offset);
                    }
                    add["stats"] = json!(stats.to_string());
                }
                lines.push(action.to_string());
            }
            let version = offset as u64 + 1;
            std::fs::write(
                log.join(format!("{version:020}.json")),
                lines.join("\n") + "\n",
            )?;
            self.commits += 1;
        }
        self.tables.checkpoint("t").await?;
        Ok(())
    }

    /// The table's version (creation is version 0, so one per commit after it).
    fn version(&self) -> u64 {
        self.commits as u64
    }
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples
        .get(samples.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// One row of figures at the table's current size, in milliseconds.
async fn measure(lake: &mut Lake) -> anyhow::Result<serde_json::Value> {
    let mut idle = Vec::new();
    for _ in 0..SAMPLES {
        let start = Instant::now();
        let dirs = lake.tables.tables().await?;
        let (version, files) = lake
            .tables
            .added_since("t", lake.version())
            .await?
            .context("no table")?;
        idle.push(start.elapsed());
        ensure!(
            dirs == ["t"] && files.is_empty() && version == lake.version(),
            "idle pass read something"
        );
    }
    let (mut one, mut commit) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        commit.push(lake.commit().await?);
        let start = Instant::now();
        let (_, files) = lake
            .tables
            .added_since("t", lake.version() - 1)
            .await?
            .context("no table")?;
        one.push(start.elapsed());
        ensure!(
            files.len() == 1,
            "a pass after one commit read {} files",
            files.len()
        );
    }
    // Before: the whole log walked per snapshot update; the whole lake listed per pass.
    let plain = LocalFileSystem::new();
    let root = Path::from_filesystem_path(&lake.dir)?;
    let log = root.clone().join("raw").join("t").join("_delta_log");
    let offset = log.clone().join(format!("{:020}", lake.version() + 1));
    let (mut walk, mut list) = (Vec::new(), Vec::new());
    let mut objects = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let after: Vec<_> = plain
            .list_with_offset(Some(&log), &offset)
            .try_collect()
            .await?;
        walk.push(start.elapsed());
        ensure!(
            after
                .iter()
                .all(|m| m.location.filename().is_some_and(|n| n.starts_with('_'))),
            "the log has files after its last version"
        );
        let start = Instant::now();
        objects = plain
            .list(Some(&root.clone().join("raw")))
            .try_fold(0usize, |n, _| async move { Ok(n + 1) })
            .await?;
        list.push(start.elapsed());
    }
    Ok(json!({
        "commits": lake.commits,
        "objects": objects,
        "pass_idle_ms": median(idle),
        "pass_one_commit_ms": median(one),
        "commit_ms": median(commit),
        "before_log_walk_ms": median(walk),
        "before_lake_list_ms": median(list),
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut commits, mut dir, mut real) = (100_000i64, None, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => dir = Some(std::path::PathBuf::from(args.next().context("--dir DIR")?)),
            "--real" => real = true,
            "--help" | "-h" => {
                println!("lake-age [COMMITS] [--dir DIR] [--real]");
                return Ok(());
            }
            n => commits = n.parse().with_context(|| format!("COMMITS, not {n:?}"))?,
        }
    }
    ensure!(commits >= 100, "COMMITS must be at least 100");
    let temp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| temp.path().to_path_buf());
    if dir.join("raw").exists() {
        bail!(
            "{} already holds a lake: name an empty directory",
            dir.display()
        );
    }
    let store = LakeStore::open(&format!("file://{}", dir.display()))?;
    let tables = LakeTables::new(&store)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new(columns::COMMIT_LSN, DataType::Int64, false),
        Field::new(
            columns::COMMIT_TS,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(columns::KAFKA_PARTITION, DataType::Int32, false),
        Field::new(columns::KAFKA_OFFSET, DataType::Int64, false),
    ]));
    let mut lake = Lake {
        store,
        tables,
        schema,
        date: NaiveDate::from_ymd_opt(2026, 12, 7).context("date")?,
        commits: 0,
        dir: std::fs::canonicalize(&dir)?,
    };
    let mut stages = vec![100i64];
    while stages.last().is_some_and(|&s| s * 10 <= commits) {
        let next = stages.last().copied().unwrap_or(100) * 10;
        stages.push(next);
    }
    if stages.last() != Some(&commits) {
        stages.push(commits);
    }
    let mut rows = Vec::new();
    let grow_start = Instant::now();
    for stage in stages {
        let target = stage - SAMPLES as i64;
        if !real && lake.commits >= SAMPLES as i64 && lake.commits < target {
            lake.grow_fast(target).await?;
        }
        while lake.commits < target {
            lake.commit().await?;
        }
        let row = measure(&mut lake).await?;
        eprintln!(
            "{row} (grown for {:.0} s)",
            grow_start.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    println!(
        "{:>9} {:>9} | {:>10} {:>12} {:>9} | {:>11} {:>11}",
        "commits", "objects", "pass idle", "pass 1 commit", "commit", "before: log", "before: LIST"
    );
    for r in &rows {
        println!(
            "{:>9} {:>9} | {:>8.2}ms {:>11.2}ms {:>7.2}ms | {:>9.2}ms {:>10.1}ms",
            r["commits"],
            r["objects"],
            r["pass_idle_ms"].as_f64().unwrap_or(0.0),
            r["pass_one_commit_ms"].as_f64().unwrap_or(0.0),
            r["commit_ms"].as_f64().unwrap_or(0.0),
            r["before_log_walk_ms"].as_f64().unwrap_or(0.0),
            r["before_lake_list_ms"].as_f64().unwrap_or(0.0)
        );
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let ratio =
            |k: &str| last[k].as_f64().unwrap_or(0.0) / first[k].as_f64().unwrap_or(1.0).max(1e-9);
        println!(
            "aged / fresh: pass idle {:.2}x, pass with a commit {:.2}x, commit {:.2}x; before: log walk {:.0}x, lake LIST {:.0}x",
            ratio("pass_idle_ms"), ratio("pass_one_commit_ms"), ratio("commit_ms"),
            ratio("before_log_walk_ms"), ratio("before_lake_list_ms")
        );
    }
    println!(
        "{}",
        json!({ "bench": "lake-age", "grown": if real { "append" } else { "written" }, "stages": rows })
    );
    Ok(())
}
