//! The modeler writes to a warehouse that accepts TLS only, reached with
//! `sslmode=verify-full` and a CA made by the test.
#![allow(clippy::unwrap_used, missing_docs)]

use cdc_core::{Lsn, MetricSet, Op};
use cdc_modeler::{Change, Modeler, ModelerMetrics, SourceTxn};
use cdc_testkit::TlsCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_modeler_applies_changes_to_a_warehouse_over_verify_full_tls() {
    let tls = TlsCluster::start().await.unwrap();
    let conn = tls.verify_full();
    let warehouse = cdc_pgtls::PgConnect::parse(&conn)
        .unwrap()
        .connect()
        .await
        .unwrap();
    cdc_modeler::warehouse::init(&warehouse).await.unwrap();
    let encrypted: bool = warehouse
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the warehouse connection uses TLS");

    let mut modeler = Modeler::without_lake(warehouse, ModelerMetrics::unregistered().unwrap())
        .await
        .unwrap();
    let after = [
        ("currency_id", "1"),
        ("currency_code", "GBP"),
        ("created_at", "2026-11-28 10:00:00.000000"),
        ("last_updated", "2026-11-28 10:00:00.000000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
    .collect();
    modeler
        .apply(vec![SourceTxn {
            commit_lsn: Lsn(100),
            commit_ts_us: 1_800_000_000_000_000,
            changes: vec![Change {
                table: "currency".into(),
                op: Op::Insert,
                ordinal: 0,
                after: Some(after),
                before: None,
            }],
        }])
        .await
        .unwrap();
    let check = cdc_pgtls::PgConnect::parse(&conn)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let code: String = check
        .query_one("SELECT currency_code::text FROM dim_currency", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(code, "GBP");
}
