//! Capture against a real PostgreSQL: snapshot, streaming, and every kind of change.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use cdc_core::{Op, ReplicaIdentity, Value};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_update_delete_truncate_arrive_exactly() {
    let (db, client) = db_with(
        "CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL, qty int, price numeric);",
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let capture = start(config(&db, &state));
    wait_slot(&client, &db.name).await;

    for statement in [
        "INSERT INTO item VALUES (1, 'tote', 5, 2.50), (2, 'bag', NULL, 1234567890.0123456789)",
        "UPDATE item SET qty = 6 WHERE id = 1",
        "DELETE FROM item WHERE id = 2",
        "BEGIN; INSERT INTO item VALUES (3, 'x', 1, 0); TRUNCATE item; COMMIT;",
    ] {
        client.batch_execute(statement).await.unwrap();
    }
    capture.wait_count(6, |e| !e.snapshot).await;
    let sink = capture.stop().await.unwrap();
    let events = sink.events();
    let streamed = streamed(&events);
    assert_eq!(ops(&streamed), "ccudct");

    let n = |v: &str| Value::Numeric(v.into());
    assert_eq!(
        streamed[0].after,
        Some(vec![
            Value::Int32(1),
            text("tote"),
            Value::Int32(5),
            n("2.50")
        ])
    );
    assert_eq!(
        streamed[1].after,
        Some(vec![
            Value::Int32(2),
            text("bag"),
            Value::Null,
            n("1234567890.0123456789")
        ])
    );
    assert_eq!(
        streamed[2].after,
        Some(vec![
            Value::Int32(1),
            text("tote"),
            Value::Int32(6),
            n("2.50")
        ])
    );
    assert_eq!(
        streamed[2].before, None,
        "REPLICA IDENTITY DEFAULT sends no old row for a non-key update"
    );
    assert_eq!(
        streamed[3].before,
        Some(vec![Value::Int32(2), Value::Null, Value::Null, Value::Null])
    );
    assert_eq!(streamed[3].after, None);
    assert_eq!(
        streamed[5].truncate,
        Some(cdc_core::TruncateOptions::default())
    );

    // Position: a total order, ordinals restart per transaction, commit LSNs increase.
    let positions: Vec<_> = streamed.iter().map(|e| e.position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions strictly increase: {positions:?}"
    );
    assert_eq!(streamed[4].position.ordinal, 0);
    assert_eq!(streamed[5].position.ordinal, 1);
    assert_eq!(streamed[4].transaction, streamed[5].transaction);
    assert!(streamed
        .iter()
        .all(|e| e.transaction.xid.is_some() && e.transaction.commit_time_micros > 0));

    let table = &streamed[0].table;
    assert_eq!(table.name.to_string(), "public.item");
    assert_eq!(table.key_indexes(), vec![0]);
    assert!(!table.columns[1].nullable && table.columns[2].nullable);
    assert_eq!(table.replica_identity, ReplicaIdentity::Default);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_key_change_carries_the_old_key() {
    let (db, client) =
        db_with("CREATE TABLE k (id int PRIMARY KEY, v text); INSERT INTO k VALUES (1, 'a');")
            .await;
    let state = tempfile::tempdir().unwrap();
    let capture = start(config(&db, &state));
    capture.wait_count(1, |e| e.snapshot).await;
    client
        .batch_execute("UPDATE k SET id = 10 WHERE id = 1")
        .await
        .unwrap();
    capture.wait_count(1, |e| !e.snapshot).await;
    let events = capture.stop().await.unwrap().events();
    let update = streamed(&events)[0];
    assert_eq!(update.op, Op::Update);
    assert_eq!(update.before, Some(vec![Value::Int32(1), Value::Null]));
    assert_eq!(update.after, Some(vec![Value::Int32(10), text("a")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_identity_full_gives_whole_before_images() {
    let (db, client) = db_with(
        "CREATE TABLE f (id int PRIMARY KEY, v text, n int); ALTER TABLE f REPLICA IDENTITY FULL;
         INSERT INTO f VALUES (1, 'a', 1);",
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let capture = start(config(&db, &state));
    capture.wait_count(1, |e| e.snapshot).await;
    client
        .batch_execute("UPDATE f SET n = 2 WHERE id = 1; DELETE FROM f WHERE id = 1;")
        .await
        .unwrap();
    capture.wait_count(2, |e| !e.snapshot).await;
    let events = capture.stop().await.unwrap().events();
    let s = streamed(&events);
    assert_eq!(
        s[0].before,
        Some(vec![Value::Int32(1), text("a"), Value::Int32(1)])
    );
    assert_eq!(
        s[0].after,
        Some(vec![Value::Int32(1), text("a"), Value::Int32(2)])
    );
    assert_eq!(
        s[1].before,
        Some(vec![Value::Int32(1), text("a"), Value::Int32(2)])
    );
    assert_eq!(s[0].table.replica_identity, ReplicaIdentity::Full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_toasted_value_is_marked_not_nulled() {
    let (db, client) = db_with(
        "CREATE TABLE doc (id int PRIMARY KEY, body text, n int);
         ALTER TABLE doc ALTER COLUMN body SET STORAGE EXTERNAL;",
    )
    .await;
    let big: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    client
        .execute("INSERT INTO doc VALUES (1, $1, 0)", &[&big])
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let capture = start(config(&db, &state));
    capture.wait_count(1, |e| e.snapshot).await;
    client
        .batch_execute("UPDATE doc SET n = 1 WHERE id = 1")
        .await
        .unwrap();
    capture.wait_count(1, |e| !e.snapshot).await;
    let events = capture.stop().await.unwrap().events();
    assert_eq!(
        events[0].after.as_ref().unwrap()[1],
        Value::Text(big),
        "snapshot has the full value"
    );
    let update = streamed(&events)[0];
    assert_eq!(
        update.after,
        Some(vec![
            Value::Int32(1),
            Value::UnchangedToast,
            Value::Int32(1)
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_add_column_mid_stream() {
    let (db, client) = db_with("CREATE TABLE a (id int PRIMARY KEY, v text);").await;
    let state = tempfile::tempdir().unwrap();
    let capture = start(config(&db, &state));
    wait_slot(&client, &db.name).await;
    client
        .batch_execute(
            "INSERT INTO a VALUES (1, 'before');
             ALTER TABLE a ADD COLUMN extra int NOT NULL DEFAULT 7;
             INSERT INTO a VALUES (2, 'after', 8);
             UPDATE a SET v = 'x' WHERE id = 1;",
        )
        .await
        .unwrap();
    capture.wait_count(3, |e| !e.snapshot).await;
    let events = capture.stop().await.unwrap().events();
    let s = streamed(&events);
    assert_eq!(s[0].table.columns.len(), 2);
    assert_eq!(s[0].after, Some(vec![Value::Int32(1), text("before")]));
    assert_eq!(s[1].table.columns.len(), 3);
    assert_eq!(s[1].table.columns[2].name, "extra");
    assert!(!s[1].table.columns[2].nullable);
    assert_eq!(
        s[1].after,
        Some(vec![Value::Int32(2), text("after"), Value::Int32(8)])
    );
    assert_eq!(
        s[2].after,
        Some(vec![Value::Int32(1), text("x"), Value::Int32(7)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_stream_has_no_gap_and_no_overlap_under_concurrent_writes() {
    let (db, client) = db_with("CREATE TABLE w (id bigint PRIMARY KEY, v int NOT NULL);").await;
    client
        .batch_execute("INSERT INTO w SELECT g, 0 FROM generate_series(1, 20000) g")
        .await
        .unwrap();
    let writer_db = db.client().await.unwrap();
    // Writers run before, during and after the snapshot: inserts of new ids and bumps of v.
    let writer = tokio::spawn(async move {
        for i in 0..300i64 {
            writer_db
                .execute("INSERT INTO w VALUES ($1, 0)", &[&(100_000 + i)])
                .await
                .unwrap();
            writer_db
                .execute("UPDATE w SET v = v + 1 WHERE id = $1", &[&(1 + i * 7)])
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(&db, &state);
    cfg.snapshot.batch_size = 500;
    let capture = start(cfg);
    writer.await.unwrap();
    let expected: BTreeMap<i64, i32> = client
        .query("SELECT id, v FROM w", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let last_commit = wal_insert_lsn(&client).await;
    capture
        .wait_for(
            "every change up to the writers' end",
            Duration::from_secs(60),
            |events| {
                events
                    .iter()
                    .any(|e| !e.snapshot && e.transaction.end_lsn >= last_commit)
                    || replay(events) == expected
            },
        )
        .await;
    let events = capture.stop().await.unwrap().events();
    // No overlap: no streamed transaction at or before the snapshot's consistent point.
    let snapshot_point = events
        .iter()
        .find(|e| e.snapshot)
        .unwrap()
        .position
        .commit_lsn;
    assert!(events
        .iter()
        .filter(|e| !e.snapshot)
        .all(|e| e.position.commit_lsn > snapshot_point));
    // No duplicates: every position once.
    let mut seen = HashSet::new();
    assert!(
        events.iter().all(|e| seen.insert((e.snapshot, e.position))),
        "duplicate positions"
    );
    // No gap: snapshot + stream reproduce the final table exactly.
    assert_eq!(replay(&events), expected);
}

/// Applies events in order to rebuild table `w` as id → v.
fn replay(events: &[cdc_core::ChangeEvent]) -> BTreeMap<i64, i32> {
    let mut table = BTreeMap::new();
    for e in events {
        let key = |row: &Vec<Value>| match row[0] {
            Value::Int64(id) => id,
            ref other => panic!("id {other:?}"),
        };
        match e.op {
            Op::Read | Op::Insert | Op::Update => {
                let row = e.after.as_ref().unwrap();
                if let Some(before) = &e.before {
                    table.remove(&key(before));
                }
                let Value::Int32(v) = row[1] else { panic!("v") };
                table.insert(key(row), v);
            }
            Op::Delete => {
                table.remove(&key(e.before.as_ref().unwrap()));
            }
            Op::Truncate => table.clear(),
        }
    }
    table
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_common_type_is_typed_losslessly_in_snapshot_and_stream() {
    let (db, client) = db_with(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE types (
            id serial PRIMARY KEY, s smallint, i int, b bigint, n numeric, n2 numeric(10,2),
            t text, vc varchar(5), c char(3), flag boolean, ts timestamp, tstz timestamptz,
            d date, tm time, u uuid, j json, jb jsonb, by bytea, f4 real, f8 double precision,
            m mood, ia int[], ta text[]);",
    )
    .await;
    let insert = "INSERT INTO types (s, i, b, n, n2, t, vc, c, flag, ts, tstz, d, tm, u, j, jb, by, f4, f8, m, ia, ta) VALUES
        (-32768, 2147483647, -9223372036854775808, 123456789012345678901234567890.000000000000000000001, 3.14,
         'tab\there ''q'' \\ ü', 'abc', 'x', true, '2024-02-29 23:59:59.999999', '2024-01-01 12:00:00+05:30',
         '1999-12-31', '24:00:00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2]}', '{\"b\": null}',
         '\\x00ff10', 1.5, -0.1, 'happy', '{1,NULL,3}', '{\"a,b\",\"c\\\"d\",NULL}')";
    client.batch_execute(insert).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let capture = start(config(&db, &state));
    capture.wait_count(1, |e| e.snapshot).await;
    client.batch_execute(insert).await.unwrap();
    capture.wait_count(1, |e| !e.snapshot).await;
    let events = capture.stop().await.unwrap().events();
    let snapshot_row = events[0].after.clone().unwrap();
    let streamed_row = streamed(&events)[0].after.clone().unwrap();
    let expected = vec![
        Value::Int16(-32768),
        Value::Int32(2147483647),
        Value::Int64(i64::MIN),
        Value::Numeric("123456789012345678901234567890.000000000000000000001".into()),
        Value::Numeric("3.14".into()),
        text("tab\there 'q' \\ ü"),
        text("abc"),
        text("x  "),
        Value::Bool(true),
        Value::Timestamp(1_709_251_199_999_999),
        Value::TimestampTz(1_704_090_600_000_000),
        Value::Date(10956),
        Value::Time(86_400_000_000),
        Value::Uuid([
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ]),
        Value::Json("{\"a\": [1, 2]}".into()),
        Value::Json("{\"b\": null}".into()),
        Value::Bytes(vec![0x00, 0xff, 0x10]),
        Value::Float32(1.5),
        Value::Float64(-0.1),
        Value::Other("happy".into()),
        Value::Array(vec![Value::Int32(1), Value::Null, Value::Int32(3)]),
        Value::Array(vec![text("a,b"), text("c\"d"), Value::Null]),
    ];
    assert_eq!(&snapshot_row[1..], &expected[..]);
    assert_eq!(&streamed_row[1..], &expected[..]);
    let table = &streamed(&events)[0].table;
    assert_eq!(table.columns[5].numeric_precision_scale(), Some((10, 2)));
    assert_eq!(table.columns[20].type_name, "mood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_transactions_arrive_at_commit_and_aborted_ones_vanish() {
    let (db, client) = db_with("CREATE TABLE s (id int PRIMARY KEY, pad text NOT NULL);").await;
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(&db, &state);
    // Past 64kB of changes the server streams the transaction before it commits.
    cfg.logical_decoding_work_mem = Some("64kB".into());
    let capture = start(cfg);
    wait_slot(&client, &db.name).await;
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO s SELECT g, repeat('a', 100) FROM generate_series(1, 5000) g;
             ROLLBACK;
             BEGIN;
             INSERT INTO s SELECT g, repeat('b', 100) FROM generate_series(1, 5000) g;
             SAVEPOINT sp;
             INSERT INTO s SELECT g, repeat('c', 100) FROM generate_series(5001, 10000) g;
             ROLLBACK TO SAVEPOINT sp;
             INSERT INTO s SELECT g, 'd' FROM generate_series(20001, 20010) g;
             COMMIT;
             INSERT INTO s VALUES (0, 'after');",
        )
        .await
        .unwrap();
    capture.wait_count(5011, |e| !e.snapshot).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = capture.stats.lock().unwrap().clone();
    let events = capture.stop().await.unwrap().events();
    let s = streamed(&events);
    assert_eq!(s.len(), 5011, "only the committed rows, once each");
    assert!(
        stats.streamed_transactions >= 1,
        "the big transaction was streamed: {stats:?}"
    );
    assert!(
        stats.aborted_streams >= 1,
        "the rolled-back work was streamed and discarded: {stats:?}"
    );
    let ids: Vec<i64> = s.iter().map(|e| int(e, "id")).collect();
    let mut expected: Vec<i64> = (1..=5000).chain(20001..=20010).collect();
    expected.push(0);
    assert_eq!(
        ids, expected,
        "commit order and in-transaction order kept, nothing from aborted work"
    );
    assert!(s[..5010]
        .windows(2)
        .all(|w| w[0].position.ordinal + 1 == w[1].position.ordinal));
    assert!(s[..5010].iter().all(|e| e.transaction == s[0].transaction));
}
