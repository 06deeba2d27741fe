//! Capture across restarts, idle periods, bad setups and authentication methods.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use cdc_core::{Op, Position, Value};
use cdc_postgres::connection::ConnectParams;
use cdc_postgres::error::SourceError;
use cdc_postgres::reader::SnapshotMode;
use cdc_testkit::{PgCluster, TestDb, AUTH_ROLES, AUTH_ROLE_PASSWORD};
use rand::Rng;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_at_a_random_point_loses_nothing() {
    let (db, client) = db_with("CREATE TABLE r (id int PRIMARY KEY, v int NOT NULL)").await;
    let state = tempfile::tempdir().unwrap();
    let capture = start(config(&db, &state));
    wait_slot(&client, &db.name).await;

    let writer_client = db.client().await.unwrap();
    let writer = tokio::spawn(async move {
        for i in 0..400 {
            writer_client
                .batch_execute(&format!(
                    "BEGIN; INSERT INTO r VALUES ({i}, 0); UPDATE r SET v = v + 1 WHERE id = {i}; COMMIT;"
                ))
                .await
                .unwrap();
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    // Crash capture somewhere in the middle, twice, and resume from the slot each time.
    let mut sink = None;
    let mut running = capture;
    for _ in 0..2 {
        let delay = rand::rng().random_range(50..400);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let crashed = running.crash().await;
        running = start_into(config(&db, &state), crashed);
    }
    writer.await.unwrap();
    // Re-sent events count once: wait for 800 distinct positions, not 800 events.
    running
        .wait_for("800 distinct changes", Duration::from_secs(60), |events| {
            let distinct: std::collections::HashSet<Position> = events
                .iter()
                .filter(|e| !e.snapshot)
                .map(|e| e.position)
                .collect();
            distinct.len() >= 800
        })
        .await;
    // Let a little more arrive (duplicates, if any), then stop cleanly.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sink.replace(running.stop().await.unwrap());
    let events = sink.unwrap().events();

    // Every change arrived; any duplicate carries the same position and content.
    let mut by_position: HashMap<Position, &cdc_core::ChangeEvent> = HashMap::new();
    for event in events.iter().filter(|e| !e.snapshot) {
        if let Some(previous) = by_position.insert(event.position, event) {
            assert_eq!(
                previous.after, event.after,
                "a duplicate differs from its original"
            );
        }
    }
    assert_eq!(
        by_position.len(),
        800,
        "400 inserts and 400 updates, each exactly once after dedup"
    );
    let mut final_rows = BTreeMap::new();
    let mut ordered: Vec<_> = by_position.values().collect();
    ordered.sort_by_key(|e| e.position);
    for e in ordered {
        let row = e.after.as_ref().unwrap();
        let Value::Int32(id) = row[0] else {
            panic!("id {:?}", row[0])
        };
        final_rows.insert(id, row[1].clone());
    }
    assert_eq!(final_rows.len(), 400);
    assert!(final_rows.values().all(|v| *v == Value::Int32(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_published_tables_with_a_busy_unpublished_table_still_advance_the_slot() {
    let (db, client) = db_with("CREATE TABLE quiet (id int PRIMARY KEY); CREATE TABLE busy (id serial PRIMARY KEY, pad text);").await;
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(&db, &state);
    cfg.tables = vec![cdc_core::TableName::new("public", "quiet")];
    let capture = start(cfg);
    wait_slot(&client, &db.name).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = confirmed_flush(&client, &db.name).await;
    for _ in 0..50 {
        client
            .batch_execute(
                "INSERT INTO busy (pad) SELECT repeat('x', 500) FROM generate_series(1, 200)",
            )
            .await
            .unwrap();
    }
    let busy_end: cdc_core::Lsn = wal_insert_lsn(&client).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut after = before;
    while std::time::Instant::now() < deadline {
        after = confirmed_flush(&client, &db.name).await;
        if after >= busy_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sink = capture.stop().await.unwrap();
    assert!(sink.is_empty(), "nothing published changed");
    assert!(
        after >= busy_end,
        "confirmed_flush_lsn {after} did not pass {busy_end} (was {before})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_in_use_gives_a_one_line_error() {
    let (db, client) = db_with("CREATE TABLE t (id int PRIMARY KEY)").await;
    let state = tempfile::tempdir().unwrap();
    let first = start(config(&db, &state));
    wait_slot(&client, &db.name).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state2 = tempfile::tempdir().unwrap();
    let mut second_cfg = config(&db, &state2);
    second_cfg.snapshot_mode = SnapshotMode::Never;
    let second = start(second_cfg);
    let err = second
        .task_result()
        .await
        .expect_err("second reader must fail");
    assert!(matches!(err, SourceError::SlotInUse { .. }), "{err:?}");
    let line = err.to_string();
    assert!(
        line.contains(&db.name) && line.contains("in use") && !line.contains('\n'),
        "{line}"
    );
    first.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_replication_gives_a_one_line_error() {
    let db = TestDb::create().await.unwrap();
    let client = db.client().await.unwrap();
    let role = format!("{}_norepl", db.name);
    client
        .batch_execute(&format!(
            "CREATE TABLE t (id int PRIMARY KEY);
             DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw';
             GRANT SELECT ON t TO {role};"
        ))
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(&db, &state);
    cfg.connection.user = role.clone();
    cfg.connection.password = Some(cdc_core::Secret::new("pw"));
    let err = start(cfg).task_result().await.expect_err("must fail");
    assert!(
        matches!(err, SourceError::NoReplicationPrivilege { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("lacks the REPLICATION attribute"),
        "{err}"
    );
    client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_level_replica_gives_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    cdc_testkit::open_to_postgres(dir.path()).unwrap();
    let root = dir.path().join("replica");
    let cluster = PgCluster::ensure_running_with(&root, &[("wal_level", "replica")]).unwrap();
    let params = ConnectParams::parse(&cluster.superuser_conn_string("postgres")).unwrap();
    let mut cfg = cdc_postgres::reader::CaptureConfig::new(params);
    cfg.state_dir = dir.path().join("state");
    let result = start(cfg).task_result().await;
    cluster.stop().unwrap();
    let err = result.expect_err("must fail");
    assert!(
        matches!(err, SourceError::WalLevel { ref actual } if actual == "replica"),
        "{err:?}"
    );
    assert!(err.to_string().contains("set wal_level = logical"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_gives_a_one_line_error() {
    let db = TestDb::create().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(&db, &state);
    cfg.tables = vec![cdc_core::TableName::new("public", "no_such_table")];
    let err = start(cfg).task_result().await.expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "table public.no_such_table does not exist in the source database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authentication_method_streams() {
    for (role, method) in AUTH_ROLES {
        let db = TestDb::create().await.unwrap();
        let client = db.client().await.unwrap();
        client
            .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
            .await
            .unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut cfg = config(&db, &state);
        cfg.connection.user = role.to_owned();
        cfg.connection.password = Some(cdc_core::Secret::new(AUTH_ROLE_PASSWORD));
        let capture = start(cfg);
        capture.wait_count(1, |e| e.snapshot).await;
        client
            .batch_execute("INSERT INTO t VALUES (2)")
            .await
            .unwrap();
        capture
            .wait_count(1, |e| !e.snapshot && e.op == Op::Insert)
            .await;
        capture
            .stop()
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
    }
    // A wrong password is a clear, one-line error.
    let db = TestDb::create().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(&db, &state);
    cfg.connection.user = "cdc_scram".into();
    cfg.connection.password = Some(cdc_core::Secret::new("wrong"));
    let err = start(cfg).task_result().await.expect_err("wrong password");
    let line = err.to_string();
    assert!(line.contains("password authentication failed"), "{line}");
    assert!(
        !line.contains("wrong"),
        "the password must not be printed: {line}"
    );
}

/// A sink that holds every acknowledgement until the test releases it.
#[derive(Clone, Default)]
struct GatedSink {
    events: std::sync::Arc<std::sync::Mutex<Vec<cdc_core::ChangeEvent>>>,
    pending: std::sync::Arc<std::sync::Mutex<Vec<cdc_postgres::sink::AckSender>>>,
}

impl cdc_postgres::sink::ChangeSink for GatedSink {
    async fn write(
        &mut self,
        batch: Vec<cdc_core::ChangeEvent>,
    ) -> Result<cdc_postgres::sink::WriteAck, cdc_postgres::sink::SinkError> {
        self.events.lock().unwrap().extend(batch);
        let (ack, sender) = cdc_postgres::sink::WriteAck::pending();
        self.pending.lock().unwrap().push(sender);
        Ok(ack)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_advances_only_past_what_the_sink_made_durable() {
    let (db, client) = db_with("CREATE TABLE d (id int PRIMARY KEY)").await;
    let state = tempfile::tempdir().unwrap();
    let cfg = config(&db, &state);
    let sink = GatedSink::default();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let stats = std::sync::Arc::new(std::sync::Mutex::new(
        cdc_postgres::reader::CaptureStats::default(),
    ));
    let mut task_sink = sink.clone();
    let task = tokio::spawn(async move {
        cdc_postgres::reader::run(&cfg, &mut task_sink, stop_rx, stats, None).await
    });
    wait_slot(&client, &db.name).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_insert = confirmed_flush(&client, &db.name).await;
    client
        .batch_execute("INSERT INTO d VALUES (1)")
        .await
        .unwrap();
    let insert_end: cdc_core::Lsn = wal_insert_lsn(&client).await;
    // The event arrives, but its ack is held: the slot must stay before the insert,
    // even though keepalives and heartbeats keep coming.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sink.events.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "event never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = confirmed_flush(&client, &db.name).await;
    assert!(
        held < insert_end,
        "slot confirmed {held} past the undurable insert ending at {insert_end}"
    );
    assert!(held >= before_insert);

    // Durable now: the slot moves past the insert.
    for sender in sink.pending.lock().unwrap().drain(..) {
        sender.send(Ok(()));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = confirmed_flush(&client, &db.name).await;
        if now >= insert_end {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slot stuck at {now} after the ack"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    // Stopping waits for in-flight acks; release anything written meanwhile.
    for sender in sink.pending.lock().unwrap().drain(..) {
        sender.send(Ok(()));
    }
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_least_privilege_role_captures_with_a_prepared_publication() {
    let (db, client) = db_with("CREATE TABLE lp (id int PRIMARY KEY, v text)").await;
    let role = format!("{}_cdc", db.name);
    // What an administrator grants: log in, replicate, read the tables. The
    // publication is made by the tables' owner, since creating one needs ownership.
    client
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role};
             CREATE ROLE {role} LOGIN REPLICATION PASSWORD 'pw';
             GRANT SELECT ON lp TO {role};
             CREATE PUBLICATION totesys_cdc FOR TABLE lp;
             INSERT INTO lp VALUES (1, 'a');"
        ))
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(&db, &state);
    cfg.connection.user = role.clone();
    cfg.connection.password = Some(cdc_core::Secret::new("pw"));
    let capture = start(cfg);
    capture.wait_count(1, |e| e.snapshot).await;
    client
        .batch_execute("INSERT INTO lp VALUES (2, 'b')")
        .await
        .unwrap();
    capture.wait_count(1, |e| !e.snapshot).await;
    capture.stop().await.unwrap();
    client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}
