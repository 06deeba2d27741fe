//! Capture against a server that accepts TLS only (`ssl = on`, `hostssl` lines only), with
//! a CA and certificates made by the test: `verify-full` streams a snapshot and changes;
//! a wrong CA, a wrong host name and `sslmode=disable` each fail in one line naming the
//! setting; a client certificate logs in where `pg_hba.conf` asks for one.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use cdc_postgres::connection::{connect_regular, ConnectParams, ReplicationConnection};
use cdc_testkit::{TlsCluster, CERT_ROLE};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_streams_the_snapshot_and_changes_over_tls() {
    let tls = TlsCluster::start().await.unwrap();
    let client = tls.db.client().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t VALUES (1, 'snapshot'), (2, 'snapshot');",
        )
        .await
        .unwrap();
    let params = ConnectParams::parse(&tls.verify_full()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut config = config(&tls.db, &state);
    config.connection = params;
    let capture = start(config);
    wait_slot(&client, &tls.db.name).await;
    client
        .batch_execute(
            "INSERT INTO t VALUES (3, 'streamed'); UPDATE t SET v = 'again' WHERE id = 1;",
        )
        .await
        .unwrap();
    capture.wait_count(4, |_| true).await;
    // The walsender serving the slot is on an encrypted connection.
    let encrypted: bool = client
        .query_one(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_replication_slots r ON r.active_pid = s.pid \
             WHERE r.slot_name = $1",
            &[&tls.db.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the replication connection uses TLS");
    let sink = capture.stop().await.unwrap();
    let events = sink.events();
    let snapshot = events.iter().filter(|e| e.snapshot).count();
    assert_eq!(snapshot, 2, "both rows read by the snapshot");
    assert_eq!(ops(&streamed(&events)), "cu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_that_cannot_work_fail_in_one_line_naming_the_setting() {
    let tls = TlsCluster::start().await.unwrap();
    let ca = tls.certs.ca.display().to_string();
    let other_ca = tls.certs.other_ca.display().to_string();
    let attempt = |host: &str, settings: String| {
        let conn = tls.conn(host, &settings);
        async move {
            let params = ConnectParams::parse(&conn).unwrap();
            let regular = connect_regular(&params, "the test").await.map(|_| ());
            let replication = ReplicationConnection::connect(&params).await.map(|_| ());
            (regular, replication)
        }
    };

    // The chain is checked against the CA: a CA that signed nothing here is refused.
    let (regular, replication) = attempt(
        "localhost",
        format!("sslmode=verify-full sslrootcert={other_ca}"),
    )
    .await;
    for error in [regular.unwrap_err(), replication.unwrap_err()] {
        let line = cdc_core::error_chain(&error);
        assert!(
            line.contains("sslmode=verify-full")
                && line.contains(&format!("sslrootcert={other_ca}"))
                && line.contains("UnknownIssuer"),
            "{line}"
        );
        assert!(!error.is_retryable(), "{line}");
    }

    // verify-full checks the name: the certificate is for localhost, not 127.0.0.1.
    let (regular, replication) =
        attempt("127.0.0.1", format!("sslmode=verify-full sslrootcert={ca}")).await;
    for error in [regular.unwrap_err(), replication.unwrap_err()] {
        let line = cdc_core::error_chain(&error);
        assert!(
            line.contains("sslmode=verify-full") && line.contains("not valid for name"),
            "{line}"
        );
    }
    // verify-ca checks the chain only.
    let (regular, replication) =
        attempt("127.0.0.1", format!("sslmode=verify-ca sslrootcert={ca}")).await;
    regular.unwrap();
    replication.unwrap();

    // Without TLS the server's pg_hba.conf has no line for the client.
    let (regular, replication) = attempt("localhost", "sslmode=disable".to_owned()).await;
    for error in [regular.unwrap_err(), replication.unwrap_err()] {
        let line = cdc_core::error_chain(&error);
        assert!(
            line.contains("sslmode=disable") && line.contains("no encryption"),
            "{line}"
        );
        assert!(!error.is_retryable(), "{line}");
    }
    // allow tries plain first, then TLS.
    let (regular, replication) = attempt("localhost", "sslmode=allow".to_owned()).await;
    regular.unwrap();
    replication.unwrap();

    // A root certificate file that is not there is a settings error before any connection.
    let missing = tls.conn(
        "localhost",
        "sslmode=verify-full sslrootcert=/nonexistent/ca.crt",
    );
    let error = ConnectParams::parse(&missing).unwrap_err();
    assert!(
        cdc_core::error_chain(&error).starts_with("sslrootcert: cannot use /nonexistent/ca.crt"),
        "{}",
        cdc_core::error_chain(&error)
    );
    let error = ConnectParams::parse(&tls.conn("localhost", "sslmode=verify")).unwrap_err();
    assert!(
        cdc_core::error_chain(&error).starts_with("sslmode: "),
        "{}",
        cdc_core::error_chain(&error)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_logs_in_where_pg_hba_asks_for_one() {
    let tls = TlsCluster::start().await.unwrap();
    let admin = tls.db.client().await.unwrap();
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {CERT_ROLE} LOGIN REPLICATION; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
        ))
        .await
        .unwrap();
    let as_cert_role = |tls_settings: String| {
        format!(
            "host=localhost port={} user={CERT_ROLE} dbname={} {tls_settings}",
            tls.cluster.port, tls.db.name
        )
    };
    let ca = tls.certs.ca.display();
    let with_cert = as_cert_role(format!(
        "sslmode=verify-full sslrootcert={ca} sslcert={} sslkey={}",
        tls.certs.client_cert.display(),
        tls.certs.client_key.display()
    ));
    let params = ConnectParams::parse(&with_cert).unwrap();
    let client = connect_regular(&params, "the test").await.unwrap();
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, CERT_ROLE);
    let mut replication = ReplicationConnection::connect(&params).await.unwrap();
    let system = replication.simple_query("IDENTIFY_SYSTEM").await.unwrap();
    assert_eq!(system.len(), 1);

    // Without the certificate the server has nothing to check: the login is refused.
    let without = ConnectParams::parse(&as_cert_role(format!(
        "sslmode=verify-full sslrootcert={ca}"
    )))
    .unwrap();
    let error = connect_regular(&without, "the test").await.unwrap_err();
    assert!(
        cdc_core::error_chain(&error).contains("certificate"),
        "{}",
        cdc_core::error_chain(&error)
    );
}
