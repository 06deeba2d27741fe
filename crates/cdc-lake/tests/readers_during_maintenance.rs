//! Readers that know nothing of our layout (DuckDB's delta extension, delta-rs's
//! `deltalake`) read a lake table over and over while a lake writer commits to it and
//! compaction and vacuum run on it, and never see a change twice or miss one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cdc_lake::{
    compact, CompactOptions, FlushPolicy, LakeStore, LakeTables, ParquetOptions, PartitionWriter,
};
use support::{sample_rows, staff_table};

/// Reads the table until the stop file appears, alternating DuckDB and deltalake; each
/// read must hold offsets 0..n, each once. Prints one JSON line at the end.
const READER: &str = r#"
import json, os, sys, time
from deltalake import DeltaTable
table, stop = sys.argv[1], sys.argv[2]
con = delta_duckdb()
reads, bad, largest = 0, [], 0
while not os.path.exists(stop) or reads < 4:
    try:
        if reads % 2 == 0:
            offsets = [r[0] for r in con.sql(f"SELECT _kafka_offset FROM delta_scan('{table}')").fetchall()]
            who = "duckdb"
        else:
            offsets = DeltaTable(table).to_pyarrow_table(columns=["_kafka_offset"]).column(0).to_pylist()
            who = "deltalake"
    except Exception as e:
        bad.append(f"read {reads}: {type(e).__name__}: {e}"[:300])
        reads += 1
        continue
    offsets.sort()
    if offsets != list(range(len(offsets))):
        dups = len(offsets) - len(set(offsets))
        bad.append(f"{who} read {reads}: {len(offsets)} rows, {dups} duplicates, largest {offsets[-1] if offsets else None}")
    largest = max(largest, len(offsets))
    reads += 1
print(json.dumps({"reads": reads, "bad": bad[:10], "rows": largest}), flush=True)
os._exit(0)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_see_each_change_once_during_commits_compaction_and_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let lake = LakeStore::open(dir.path().to_str().unwrap()).unwrap();
    let tables = LakeTables::new(&lake).unwrap();
    let table = staff_table();
    let rows = sample_rows(&table, 0..2_400);
    let mut writer = PartitionWriter::new(
        &tables,
        "t.public.staff",
        0,
        ParquetOptions::default(),
        FlushPolicy::default(),
    );
    let mut chunks = rows.chunks(8);
    for chunk in chunks.by_ref().take(20) {
        for row in chunk.iter().cloned() {
            writer.push(&table, row, 10).await.unwrap();
        }
        writer.flush().await.unwrap().unwrap();
    }
    let table_dir = dir.path().join("raw").join("staff");
    let stop = dir.path().join("stop");
    let python = cdc_testkit::python::venv_python().unwrap_or_else(|e| panic!("{e}"));
    let reader = tokio::process::Command::new(python)
        .arg("-c")
        .arg(format!("{}{READER}", cdc_testkit::python::DELTA_DUCKDB))
        .arg(&table_dir)
        .arg(&stop)
        .kill_on_drop(true)
        .output();
    let reader = tokio::spawn(reader);

    let maintenance = {
        let tables = tables.clone();
        let (done, mut finished) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let options = CompactOptions {
                min_age: Duration::ZERO,
                target_rows: 96,
                retention: Duration::from_secs(5),
                ..CompactOptions::default()
            };
            let (mut merged, mut vacuumed, mut rounds) = (0, 0, 0);
            while !*finished.borrow() || rounds < 3 {
                let report = compact(&tables, Some("staff"), &options).await.unwrap();
                merged += report.merged;
                vacuumed += report.vacuumed;
                rounds += 1;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                    _ = finished.changed() => {}
                }
            }
            // Vacuum what the last rounds replaced, once readers had the retention.
            tokio::time::sleep(Duration::from_secs(6)).await;
            let report = compact(&tables, Some("staff"), &options).await.unwrap();
            (merged + report.merged, vacuumed + report.vacuumed)
        });
        (done, task)
    };
    for chunk in chunks {
        for row in chunk.iter().cloned() {
            writer.push(&table, row, 10).await.unwrap();
        }
        writer.flush().await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    maintenance.0.send(true).unwrap();
    let (merged, vacuumed) = maintenance.1.await.unwrap();
    std::fs::write(&stop, b"").unwrap();
    let output = reader.await.unwrap().unwrap();
    assert!(
        output.status.success(),
        "the reader failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(output.stdout.trim_ascii()).expect("the reader's report");
    eprintln!("reader: {report}; compaction merged {merged} files, vacuum deleted {vacuumed}");
    assert_eq!(report["bad"], serde_json::json!([]), "reads: {report}");
    assert!(report["reads"].as_u64().unwrap() >= 10, "{report}");
    assert_eq!(
        report["rows"].as_u64(),
        Some(2_400),
        "the last reads saw every change: {report}"
    );
    assert!(
        merged > 100 && vacuumed > 100,
        "compaction merged {merged} and vacuum deleted {vacuumed} files"
    );
}

/// A file written long ago and merged away a moment ago stays for the retention counted
/// from its removal (older snapshots still name it); a file no commit ever held goes
/// once it is older than the retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_counts_the_retention_from_the_removal_not_the_writing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = LakeStore::open(dir.path().to_str().unwrap()).unwrap();
    let tables = LakeTables::new(&lake).unwrap();
    let table = staff_table();
    let mut writer = PartitionWriter::new(
        &tables,
        "t.public.staff",
        0,
        ParquetOptions::default(),
        FlushPolicy::default(),
    );
    for chunk in sample_rows(&table, 0..40).chunks(10) {
        for row in chunk.iter().cloned() {
            writer.push(&table, row, 10).await.unwrap();
        }
        writer.flush().await.unwrap().unwrap();
    }
    let (before, written) = tables.live_files("staff").await.unwrap().unwrap();
    assert_eq!(written.len(), 4);
    let on_disk = |path: &object_store::path::Path| dir.path().join(path.as_ref());
    // Two hours old: written files, and one that no commit holds (a dead writer's).
    let orphan = on_disk(&written[0].path).with_file_name("t.public.staff+0+orphan.parquet");
    std::fs::copy(on_disk(&written[0].path), &orphan).unwrap();
    let young_orphan = orphan.with_file_name("t.public.staff+0+young.parquet");
    std::fs::copy(&orphan, &young_orphan).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7_200);
    for path in written
        .iter()
        .map(|f| on_disk(&f.path))
        .chain([orphan.clone()])
    {
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(two_hours_ago).unwrap();
    }

    let options = CompactOptions {
        min_age: Duration::ZERO,
        retention: Duration::from_secs(3_600),
        ..CompactOptions::default()
    };
    let report = compact(&tables, Some("staff"), &options).await.unwrap();
    assert_eq!(report.merged, 4, "{report:?}");
    assert_eq!(report.vacuumed, 1, "only the old orphan goes: {report:?}");
    assert!(!orphan.exists() && young_orphan.exists());
    for file in &written {
        assert!(
            on_disk(&file.path).exists(),
            "{} was merged a moment ago: a reader of version {before} still needs it",
            file.path
        );
    }
    // The old snapshot still reads whole, from any reader.
    let offsets = read_offsets_at(&dir.path().join("raw").join("staff"), before);
    assert_eq!(offsets, (0..40).collect::<Vec<i64>>());

    let now = CompactOptions {
        retention: Duration::ZERO,
        ..options
    };
    let report = compact(&tables, Some("staff"), &now).await.unwrap();
    assert_eq!(
        report.vacuumed, 5,
        "the merged files and the young orphan: {report:?}"
    );
    assert!(written.iter().all(|f| !on_disk(&f.path).exists()));
}

/// The `_kafka_offset`s of the table at `version`, sorted, as delta-rs's `deltalake` reads
/// them (time travel to a snapshot older than the latest).
fn read_offsets_at(table: &std::path::Path, version: u64) -> Vec<i64> {
    let python = cdc_testkit::python::venv_python().unwrap_or_else(|e| panic!("{e}"));
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(
            "import json, sys\n\
             from deltalake import DeltaTable\n\
             t = DeltaTable(sys.argv[1], version=int(sys.argv[2]))\n\
             print(json.dumps(sorted(t.to_pyarrow_table(columns=['_kafka_offset']).column(0).to_pylist())))",
        )
        .arg(table)
        .arg(version.to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "deltalake at version {version}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(output.stdout.trim_ascii()).unwrap()
}
