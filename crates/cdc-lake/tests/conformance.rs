//! The lake's storage conformance suite: the same checks on every object store the lake
//! runs on (memory, local filesystem, and a real S3-protocol server), covering typed
//! Parquet round trips, create-only names, and exactly-once files when writers race,
//! crash and restart.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use cdc_lake::{compact, CompactOptions, FlushPolicy, LakeStore, ParquetOptions, PartitionWriter};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use proptest::prelude::*;
use support::*;

/// Every conformance check against one store.
async fn suite(lake: LakeStore) {
    typed_rows_round_trip(&lake).await;
    a_restarted_writer_adopts_what_it_wrote_before(&lake).await;
    racing_writers_leave_each_row_once(&lake, &[3, 9, 14], &[5, 12]).await;
    dates_and_shapes_split_files(&lake).await;
    a_new_shape_after_a_shorter_adopted_file_keeps_the_old_rows_whole(&lake).await;
    compaction_swaps_small_files_for_one(&lake).await;
    rowless_tails_redeliveries_and_restarts(&lake).await;
    repeated_changes_are_left_out_and_the_chain_agrees(&lake).await;
    a_zombie_writers_commit_is_refused(&lake).await;
    an_old_lake_is_migrated_into_its_tables(&lake).await;
}

/// A lake written before its tables (`date=` directories, no log, a `time` column as
/// microseconds, and an old compaction stopped between its put and its deletes) moves
/// into its table: each change once, times as text, the old files gone; a run stopped
/// after a commit but before deleting its old file commits nothing twice when run again.
async fn an_old_lake_is_migrated_into_its_tables(lake: &LakeStore) {
    use arrow_array::{Array, RecordBatch, Time64MicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    let topic = "t.public.old_staff";
    let table = staff_table();
    let builder = cdc_lake::BatchBuilder::new(table.clone());
    let dir = lake
        .root
        .clone()
        .join("raw")
        .join("old_staff")
        .join("date=2026-11-21");
    let put_old = |rows: Vec<cdc_lake::LakeRow>, merged_to: Option<i64>| {
        let batch = builder.build(&rows).unwrap();
        let shift =
            Time64MicrosecondArray::from_iter_values(rows.iter().map(|r| r.offset * 1_000_000));
        let mut fields = batch.schema().fields().to_vec();
        fields
            .push(Field::new("shift_start", DataType::Time64(TimeUnit::Microsecond), true).into());
        let mut columns = batch.columns().to_vec();
        columns.push(std::sync::Arc::new(shift));
        let batch = RecordBatch::try_new(Schema::new(fields).into(), columns).unwrap();
        let (first, partition) = (rows[0].offset, rows[0].partition);
        let last = merged_to.unwrap_or(rows[rows.len() - 1].offset);
        let bytes = cdc_lake::encode(
            &batch,
            &ParquetOptions::default(),
            vec![
                ("totesys_cdc.kafka.topic".into(), topic.into()),
                (cdc_lake::FIRST_OFFSET_KEY.into(), first.to_string()),
                (cdc_lake::LAST_OFFSET_KEY.into(), last.to_string()),
            ],
        )
        .unwrap();
        let mut name = format!("{topic}+{partition}+{first:020}");
        if let Some(last) = merged_to {
            name.push_str(&format!("+{last:020}"));
        }
        (dir.clone().join(format!("{name}.parquet")), bytes)
    };
    let rows = sample_rows(&table, 0..15);
    let mut second: Vec<_> = sample_rows(&table, 0..5);
    for row in &mut second {
        row.partition = 1;
    }
    let files = [
        put_old(rows[0..5].to_vec(), None),
        put_old(rows[5..10].to_vec(), None),
        put_old(rows[0..10].to_vec(), Some(9)), // merged, its small files not yet deleted
        put_old(rows[10..15].to_vec(), None),
        put_old(second.clone(), None),
    ];
    for (path, bytes) in &files {
        lake.store.put(path, bytes.clone().into()).await.unwrap();
    }
    let old_processed = lake
        .root
        .clone()
        .join("processed")
        .join("dim_staff")
        .join("0000000000000001-00000000000000FF.parquet");
    lake.store
        .put(&old_processed, files[0].1.clone().into())
        .await
        .unwrap();

    let tables = cdc_lake::LakeTables::new(lake).unwrap();
    let parquet = ParquetOptions::default();
    let report = cdc_lake::migrate(&tables, &parquet).await.unwrap();
    assert_eq!(
        (
            report.committed,
            report.superseded,
            report.rows,
            report.already,
            report.processed
        ),
        (3, 2, 20, 0, 1),
        "{report:?}"
    );
    let mut expected: Vec<(i64, Vec<String>)> = rows
        .iter()
        .chain(&second)
        .map(|r| (r.offset, expected_cells(r)))
        .collect();
    expected.sort();
    let mut migrated = read_rows(lake, topic).await;
    migrated.sort();
    assert_eq!(migrated, expected, "each change once");
    assert_eq!(
        tables
            .committed_through("old_staff", topic, 0)
            .await
            .unwrap(),
        Some(14)
    );
    assert_eq!(
        tables
            .committed_through("old_staff", topic, 1)
            .await
            .unwrap(),
        Some(4)
    );
    let (_, live) = tables.live_files("old_staff").await.unwrap().unwrap();
    for file in &live {
        let data = lake
            .store
            .get(&file.path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let batch = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let offsets = batch.column_by_name("_kafka_offset").unwrap();
        let offsets = offsets
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        let shifts = batch.column_by_name("shift_start").unwrap();
        let shifts = shifts
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        for i in 0..batch.num_rows() {
            let seconds = offsets.value(i);
            assert_eq!(shifts.value(i), format!("00:00:{seconds:02}"));
        }
    }
    for path in files.iter().map(|(p, _)| p).chain([&old_processed]) {
        assert!(lake.store.head(path).await.is_err(), "{path} is gone");
    }

    // Stopped after its commit, before deleting the old file: the next run only deletes it.
    let (path, bytes) = &files[4];
    lake.store.put(path, bytes.clone().into()).await.unwrap();
    let report = cdc_lake::migrate(&tables, &parquet).await.unwrap();
    assert_eq!((report.committed, report.already), (0, 1), "{report:?}");
    let mut again = read_rows(lake, topic).await;
    again.sort();
    assert_eq!(again, expected, "nothing twice");
    assert!(lake.store.head(path).await.is_err());
}

/// A writer that lost its partition (a zombie: paused past its session, then back) flushes
/// what it buffered after the new owner committed those offsets: the table refuses the
/// commit, the zombie's file is deleted, and each row is in the table once.
async fn a_zombie_writers_commit_is_refused(lake: &LakeStore) {
    let topic = "t.public.zombie";
    let table = staff_table();
    let rows = sample_rows(&table, 0..15);
    let mut zombie = writer(lake, topic, 0);
    zombie.start_at(0);
    for row in rows[..10].iter().cloned() {
        zombie.push(&table, row, 10).await.unwrap();
    }
    let mut owner = writer(lake, topic, 0);
    owner.start_at(0);
    for row in rows.iter().cloned() {
        owner.push(&table, row, 10).await.unwrap();
    }
    let committed = owner.flush().await.unwrap().unwrap();
    assert!(!committed.adopted && committed.last_offset == 14);
    let refused = zombie.flush().await.unwrap().unwrap();
    assert!(refused.adopted && refused.rows == 0, "{refused:?}");
    assert_eq!(
        refused.last_offset, 14,
        "the table's record for the partition"
    );
    assert!(
        lake.store
            .head(&refused.file.path(&lake.root))
            .await
            .is_err(),
        "the refused file is deleted"
    );
    let offsets: Vec<i64> = read_rows(lake, topic)
        .await
        .iter()
        .map(|(o, _)| *o)
        .collect();
    assert_eq!(offsets, (0..15).collect::<Vec<_>>());
    let tables = cdc_lake::LakeTables::new(lake).unwrap();
    assert_eq!(
        tables.committed_through("staff", topic, 0).await.unwrap(),
        Some(14)
    );
}

/// Changes re-sent at later offsets (the same source positions again) are left out of the
/// lake and counted; a writer that never saw the originals, starting at a later boundary,
/// finds the table holding those offsets, so no row is written twice.
async fn repeated_changes_are_left_out_and_the_chain_agrees(lake: &LakeStore) {
    let topic = "t.public.repeats";
    let table = staff_table();
    let originals = sample_rows(&table, 0..20);
    // Offsets 10..14 carry the changes of offsets 6..10 again; 14.. are new changes.
    let mut records: Vec<_> = originals[..10].to_vec();
    for (i, offset) in (10..14).enumerate() {
        let mut again = originals[6 + i].clone();
        again.offset = offset;
        records.push(again);
    }
    records.extend(originals[14..].iter().cloned());

    let mut first = writer(lake, topic, 0);
    first.start_at(0);
    let mut duplicates = 0;
    let mut files = Vec::new();
    for record in records.iter().cloned() {
        let offset = record.offset;
        first.push(&table, record, 10).await.unwrap();
        if [9, 12, 19].contains(&offset) {
            let flushed = first.flush().await.unwrap().unwrap();
            duplicates += flushed.duplicates;
            files.push((flushed.file.first_offset, flushed.last_offset, flushed.rows));
        }
    }
    assert_eq!(duplicates, 4);
    // The file of [10, 12] holds only repeats: it is written empty, named after offset 10.
    assert_eq!(files, [(0, 9, 10), (10, 12, 0), (13, 19, 6)]);
    let expected: Vec<i64> = (0..10).chain(14..20).collect();
    let offsets =
        |rows: Vec<(i64, Vec<String>)>| rows.into_iter().map(|(o, _)| o).collect::<Vec<_>>();
    assert_eq!(offsets(read_rows(lake, topic).await), expected);

    // A writer starting at boundary 10 does not know offsets 6..10: it would keep the
    // repeats, but the table holds the partition's offsets through 19 already, so its
    // first commit is refused and it moves past them.
    let mut second = writer(lake, topic, 0);
    second.start_at(10);
    let mut covered = Vec::new();
    for record in records[10..].iter().cloned() {
        let offset = record.offset;
        second.push(&table, record, 10).await.unwrap();
        if [12, 19].contains(&offset) {
            covered.extend(second.flush().await.unwrap());
        }
    }
    assert_eq!(covered.len(), 1, "{covered:?}");
    assert!(
        covered[0].adopted && covered[0].last_offset == 19,
        "{covered:?}"
    );
    assert_eq!(
        (second.buffered(), second.next_offset()),
        (0, Some(20)),
        "nothing buffered, the chain past the table's record"
    );
    assert_eq!(offsets(read_rows(lake, topic).await), expected);
}

async fn rowless_tails_redeliveries_and_restarts(lake: &LakeStore) {
    let topic = "t.public.tails";
    let table = staff_table();
    let rows = sample_rows(&table, 0..10);
    let mut first = writer(lake, topic, 0);
    first.start_at(0);
    for row in rows[..4].iter().cloned() {
        first.push(&table, row, 10).await.unwrap();
    }
    // A redelivered record is taken once.
    first.push(&table, rows[2].clone(), 10).await.unwrap();
    assert_eq!(first.buffered(), 4);
    assert_eq!(first.settle(), None, "rows are buffered");
    let flushed = first.flush().await.unwrap().unwrap();
    assert_eq!((flushed.last_offset, flushed.rows), (3, 4));
    // Tombstones at the tail: nothing to write, but the chain moves past them.
    first.skip(4);
    first.skip(5);
    assert_eq!(first.flush().await.unwrap(), None);
    assert_eq!(first.settle(), Some(6));
    assert_eq!(first.settle(), None, "nothing new");

    // A writer starting at the committed offset 6 ignores what came before.
    let mut second = writer(lake, topic, 0);
    second.start_at(6);
    second.push(&table, rows[5].clone(), 10).await.unwrap();
    assert_eq!(second.buffered(), 0, "offset 5 is before the start");
    for row in rows[6..].iter().cloned() {
        second.push(&table, row, 10).await.unwrap();
    }
    let flushed = second.flush().await.unwrap().unwrap();
    assert_eq!((flushed.file.first_offset, flushed.last_offset), (6, 9));
    let offsets: Vec<i64> = read_rows(lake, topic)
        .await
        .iter()
        .map(|(o, _)| *o)
        .collect();
    assert_eq!(offsets, [0, 1, 2, 3, 6, 7, 8, 9]);
}

async fn compaction_swaps_small_files_for_one(lake: &LakeStore) {
    let topic = "t.public.compact";
    let table = staff_table();
    let rows = sample_rows(&table, 0..650);
    let mut writer = writer(lake, topic, 0);
    for chunk in rows.chunks(50) {
        for row in chunk.iter().cloned() {
            writer.push(&table, row, 10).await.unwrap();
        }
        writer.flush().await.unwrap().unwrap();
    }
    let tables = cdc_lake::LakeTables::new(lake).unwrap();
    // Other tests' topics share the table: look at this topic's files.
    let live = || async {
        let files = tables.live_files("staff").await.unwrap().unwrap().1;
        files
            .into_iter()
            .filter(|f| cdc_lake::DataFile::parse(&f.path).is_some_and(|d| d.topic == topic))
            .collect::<Vec<_>>()
    };
    let before = read_rows(lake, topic).await;
    assert_eq!(before.len(), 650);
    let young = CompactOptions {
        min_age: std::time::Duration::from_secs(3600),
        ..CompactOptions::default()
    };
    let report = compact(&tables, Some("staff"), &young).await.unwrap();
    assert_eq!(report.written, 0, "files younger than min_age stay");
    let small: Vec<_> = live().await.into_iter().map(|f| f.path).collect();

    let options = CompactOptions {
        min_age: std::time::Duration::ZERO,
        target_rows: 500,
        retention: std::time::Duration::from_secs(3600),
        ..CompactOptions::default()
    };
    let report = compact(&tables, Some("staff"), &options).await.unwrap();
    assert!(
        report.merged >= 13 && report.written >= 2 && report.vacuumed == 0,
        "{report:?}"
    );
    let files = live().await;
    let mut counts: Vec<_> = files.iter().map(|f| f.rows).collect();
    counts.sort();
    assert_eq!(counts, [Some(150), Some(500)]);
    assert_eq!(read_rows(lake, topic).await, before, "same rows, each once");
    // The replaced files stay for readers of older snapshots until the retention.
    for path in &small {
        lake.store.head(path).await.unwrap();
    }
    let vacuum = CompactOptions {
        retention: std::time::Duration::ZERO,
        ..options
    };
    let report = compact(&tables, Some("staff"), &vacuum).await.unwrap();
    assert!(report.written == 0 && report.vacuumed >= 13, "{report:?}");
    for path in &small {
        assert!(lake.store.head(path).await.is_err(), "{path} is vacuumed");
    }
    assert_eq!(read_rows(lake, topic).await, before);
}

async fn typed_rows_round_trip(lake: &LakeStore) {
    let topic = "t.public.round_trip";
    let table = staff_table();
    let mut writer = writer(lake, topic, 0);
    let rows = sample_rows(&table, 0..6);
    for row in rows.clone() {
        assert!(writer.push(&table, row, 100).await.unwrap().is_empty());
    }
    writer.skip(6); // a tombstone
    let flushed = writer.flush().await.unwrap().unwrap();
    assert_eq!(
        (flushed.first_offset, flushed.last_offset, flushed.rows),
        (0, 6, 6)
    );
    assert_eq!(flushed.commit_offset(), 7);
    let read = read_rows(lake, topic).await;
    assert_eq!(read.len(), 6);
    for (row, (offset, values)) in rows.iter().zip(&read) {
        assert_eq!(row.offset, *offset);
        assert_eq!(&expected_cells(row), values, "offset {offset}");
    }
}

async fn a_restarted_writer_adopts_what_it_wrote_before(lake: &LakeStore) {
    let topic = "t.public.restart";
    let table = staff_table();
    let rows = sample_rows(&table, 0..20);
    let mut first = writer(lake, topic, 0);
    for row in rows[..12].iter().cloned() {
        first.push(&table, row, 10).await.unwrap();
    }
    first.flush().await.unwrap().unwrap();
    // Crash before committing: the new writer starts over from offset 0.
    let mut second = writer(lake, topic, 0);
    let mut adopted = 0;
    for row in rows.iter().cloned() {
        second.push(&table, row, 10).await.unwrap();
        if second.buffered() == 5 {
            let flushed = second.flush().await.unwrap().unwrap();
            adopted += usize::from(flushed.adopted);
        }
    }
    second.flush().await.unwrap();
    assert_eq!(adopted, 1, "the first flush finds the old file");
    let offsets: Vec<i64> = read_rows(lake, topic)
        .await
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>(), "each row once");
}

/// Two writers read the same 20 records and flush after different counts; whoever wins
/// each name, every row lands exactly once.
async fn racing_writers_leave_each_row_once(lake: &LakeStore, cuts_a: &[i64], cuts_b: &[i64]) {
    let topic = format!("t.public.race_{}_{}", cuts_a.len(), cuts_b.len());
    let table = staff_table();
    let rows = sample_rows(&table, 0..20);
    let mut a = writer(lake, &topic, 1);
    let mut b = writer(lake, &topic, 1);
    for row in rows {
        let offset = row.offset;
        a.push(&table, row.clone(), 10).await.unwrap();
        b.push(&table, row, 10).await.unwrap();
        if cuts_a.contains(&offset) {
            a.flush().await.unwrap();
        }
        if cuts_b.contains(&offset) {
            b.flush().await.unwrap();
        }
    }
    b.flush().await.unwrap();
    a.flush().await.unwrap();
    let offsets: Vec<i64> = read_rows(lake, &topic)
        .await
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(
        offsets,
        (0..20).collect::<Vec<_>>(),
        "each row once, cuts {cuts_a:?} / {cuts_b:?}"
    );
}

async fn dates_and_shapes_split_files(lake: &LakeStore) {
    let topic = "t.public.split";
    let table = staff_table();
    let wider = wider_staff_table();
    let mut writer = writer(lake, topic, 2);
    let mut rows = sample_rows(&table, 0..4);
    rows[2].event.source.commit_ts_us += DAY_US; // the next day
    rows[3].event.source.commit_ts_us += DAY_US;
    let mut flushed = Vec::new();
    for row in rows {
        flushed.extend(writer.push(&table, row, 10).await.unwrap());
    }
    let mut late = sample_rows(&wider, 4..5);
    late[0].event.source.commit_ts_us += DAY_US;
    flushed.extend(writer.push(&wider, late.remove(0), 10).await.unwrap());
    flushed.extend(writer.flush().await.unwrap());
    let names: Vec<String> = flushed
        .iter()
        .map(|f| format!("{}+{}", f.file.date, f.file.first_offset))
        .collect();
    assert_eq!(names, ["2026-11-21+0", "2026-11-22+2", "2026-11-22+4"]);
    let files = list(lake, topic).await;
    assert_eq!(files.len(), 3, "{files:?}");
}

/// A writer whose first file turns out to be another's shorter one (it flushed at an
/// earlier row) still writes the rest of its old-shape rows before a new shape starts:
/// every row once, none written in the wrong shape.
async fn a_new_shape_after_a_shorter_adopted_file_keeps_the_old_rows_whole(lake: &LakeStore) {
    let topic = "t.public.adopt_then_widen";
    let table = staff_table();
    let wider = wider_staff_table();
    let rows = sample_rows(&table, 0..8);
    // Another writer got to offsets 0..=3 first.
    let mut other = writer(lake, topic, 3);
    for row in rows[..4].iter().cloned() {
        other.push(&table, row, 10).await.unwrap();
    }
    other.flush().await.unwrap().unwrap();
    let mut late = writer(lake, topic, 3);
    for row in rows.iter().cloned() {
        assert!(late.push(&table, row, 10).await.unwrap().is_empty());
    }
    let widened = sample_rows(&wider, 8..10);
    let mut flushed = Vec::new();
    for row in widened {
        flushed.extend(late.push(&wider, row, 10).await.unwrap());
    }
    flushed.extend(late.flush().await.unwrap());
    let ranges: Vec<(i64, i64, bool)> = flushed
        .iter()
        .map(|f| (f.first_offset, f.last_offset, f.adopted))
        .collect();
    assert_eq!(ranges, [(0, 3, true), (4, 7, false), (8, 9, false)]);
    let offsets: Vec<i64> = read_rows(lake, topic)
        .await
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>(), "each row once");
}

fn writer(lake: &LakeStore, topic: &str, partition: i32) -> PartitionWriter {
    PartitionWriter::new(
        &cdc_lake::LakeTables::new(lake).unwrap(),
        topic,
        partition,
        ParquetOptions::default(),
        FlushPolicy::default(),
    )
}

#[tokio::test]
async fn conformance_in_memory() {
    suite(LakeStore::new(
        std::sync::Arc::new(InMemory::new()),
        Path::from("lake"),
    ))
    .await;
}

#[tokio::test]
async fn conformance_on_the_local_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    suite(LakeStore::open(dir.path().to_str().unwrap()).unwrap()).await;
}

#[tokio::test]
async fn conformance_on_s3() {
    let server = S3Server::start().await;
    server.create_bucket("lake").await;
    let lake = server.open("s3://lake/prefix");
    suite(lake).await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_two_writers_leave_each_row_once(
        cuts_a in proptest::collection::btree_set(0i64..20, 0..6),
        cuts_b in proptest::collection::btree_set(0i64..20, 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let lake = LakeStore::new(std::sync::Arc::new(InMemory::new()), Path::from("lake"));
        let cuts_a: Vec<i64> = cuts_a.into_iter().collect();
        let cuts_b: Vec<i64> = cuts_b.into_iter().collect();
        runtime.block_on(racing_writers_leave_each_row_once(&lake, &cuts_a, &cuts_b));
    }
}
