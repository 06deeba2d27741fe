//! The modeler runs as a least-privilege role: DML on the warehouse tables, no DDL
//! (docs/warehouse.md, Roles); `init` runs as the owner.
#![allow(clippy::unwrap_used, missing_docs)]

use cdc_core::{Lsn, MetricSet, Op};
use cdc_modeler::{Change, Modeler, ModelerMetrics, SourceTxn};
use cdc_testkit::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_modeler_needs_only_the_documented_grants() {
    let db = TestDb::create().await.unwrap();
    let owner = db.client().await.unwrap();
    cdc_modeler::warehouse::init(&owner).await.unwrap();
    let role = format!("modeler_{}", db.name);
    owner
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS \"{role}\";
             CREATE ROLE \"{role}\" LOGIN PASSWORD 'modeler-secret';
             GRANT CONNECT ON DATABASE \"{db}\" TO \"{role}\";
             GRANT USAGE ON SCHEMA public, totesys_cdc TO \"{role}\";
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public, totesys_cdc TO \"{role}\";
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public, totesys_cdc TO \"{role}\";
             GRANT EXECUTE ON FUNCTION totesys_cdc.add_dates(date[]) TO \"{role}\";",
            db = db.name
        ))
        .await
        .unwrap();
    let limited =
        cdc_testkit::database::connect(&db.cluster.conn_string(&role, "modeler-secret", &db.name))
            .await
            .unwrap();
    let denied = limited
        .batch_execute("CREATE TABLE public.sneaky (x int)")
        .await;
    assert!(denied.is_err(), "the modeler's role cannot create tables");

    let mut modeler = Modeler::without_lake(limited, ModelerMetrics::unregistered().unwrap())
        .await
        .unwrap();
    let row = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect()
    };
    let changes = vec![
        Change {
            table: "design".into(),
            op: Op::Insert,
            ordinal: 0,
            after: Some(row(&[
                ("design_id", "1"),
                ("design_name", "Granite"),
                ("file_location", "/d"),
                ("file_name", "g.json"),
            ])),
            before: None,
        },
        Change {
            table: "sales_order".into(),
            op: Op::Insert,
            ordinal: 1,
            after: Some(row(&[
                ("sales_order_id", "1"),
                ("design_id", "1"),
                ("staff_id", "9"),
                ("counterparty_id", "4"),
                ("units_sold", "1000"),
                ("unit_price", "2.75"),
                ("currency_id", "1"),
                ("agreed_delivery_date", "2031-02-30"),
                ("agreed_payment_date", "2031-03-01"),
                ("agreed_delivery_location_id", "2"),
                ("created_at", "2026-11-28 10:00:00.000000"),
                ("last_updated", "2026-11-28 10:00:00.000000"),
            ])),
            before: None,
        },
    ];
    modeler
        .apply(vec![SourceTxn {
            commit_lsn: Lsn(100),
            commit_ts_us: 1_800_000_000_000_000,
            changes,
        }])
        .await
        .unwrap();
    let (facts, repairs): (i64, i64) = {
        let row = owner
            .query_one(
                "SELECT (SELECT count(*) FROM fact_sales_order), (SELECT count(*) FROM totesys_cdc.repair)",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(facts, 1);
    assert!(
        repairs >= 2,
        "a bad date and inferred members were kept for repair"
    );
    owner
        .batch_execute(&format!("DROP OWNED BY \"{role}\""))
        .await
        .unwrap();
}
