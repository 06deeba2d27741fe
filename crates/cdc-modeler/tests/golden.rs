//! Golden-file tests: sequences of source transactions in (`tests/golden/<case>.json`),
//! the warehouse's rows out (`tests/golden/<case>.expected`), on a real PostgreSQL.
//!
//! Each case runs twice on fresh warehouses: one source transaction per apply, and all
//! of them in one apply. Both must give the expected rows, so batching never changes
//! the result. `UPDATE_GOLDEN=1` rewrites the expected files (review the diff!).
//! A third run applies everything again and must change nothing (exactly once).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use cdc_core::{Lsn, MetricSet, Op};
use cdc_modeler::{Change, Modeler, ModelerMetrics, SourceTxn, TextRow};
use cdc_testkit::TestDb;
use serde_json::Value as Json;

/// The modelled tables and the order their rows are listed in.
const DUMPED: [(&str, &str); 22] = [
    ("dim_staff", "staff_id"),
    ("dim_staff_history", "version_id"),
    ("dim_location", "location_id"),
    ("dim_location_history", "version_id"),
    ("dim_currency", "currency_id"),
    ("dim_currency_history", "version_id"),
    ("dim_design", "design_id"),
    ("dim_design_history", "version_id"),
    ("dim_counterparty", "counterparty_id"),
    ("dim_counterparty_history", "version_id"),
    ("dim_payment_type", "payment_type_id"),
    ("dim_payment_type_history", "version_id"),
    ("dim_transaction", "transaction_id"),
    ("dim_transaction_history", "version_id"),
    ("fact_sales_order_all_versions", "sales_record_id"),
    ("fact_purchase_order_all_versions", "purchase_record_id"),
    ("fact_payment_all_versions", "payment_record_id"),
    ("fact_sales_order_current", "sales_record_id"),
    ("fact_purchase_order_current", "purchase_record_id"),
    ("fact_payment_current", "payment_record_id"),
    ("totesys_cdc.repair", "repair_id"),
    ("totesys_cdc.applied", "id"),
];

/// Columns whose values depend on when the test ran.
const VOLATILE: [&str; 2] = ["applied_at", "recorded_at"];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn text(value: &Json) -> Option<String> {
    match value {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn row(value: Option<&Json>) -> Option<TextRow> {
    let object = value?.as_object()?;
    Some(object.iter().map(|(k, v)| (k.clone(), text(v))).collect())
}

/// The case's source transactions: commit LSNs 0/1000, 0/2000, …; times from `at`.
fn transactions(case: &Json) -> Vec<SourceTxn> {
    case["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .enumerate()
        .map(|(i, txn)| {
            let at = txn["at"].as_str().expect("at");
            let ts = chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S")
                .expect("at is YYYY-MM-DD HH:MM:SS")
                .and_utc()
                .timestamp_micros();
            let changes = txn["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .enumerate()
                .map(|(ordinal, c)| Change {
                    table: c["table"].as_str().expect("table").to_owned(),
                    op: Op::from_code(c["op"].as_str().expect("op")).expect("op code"),
                    ordinal: ordinal as u64,
                    after: row(c.get("after")),
                    before: row(c.get("before")),
                })
                .collect();
            SourceTxn {
                commit_lsn: Lsn(1000 * (i as u64 + 1)),
                commit_ts_us: ts,
                changes,
            }
        })
        .collect()
}

async fn modeler(db: &TestDb) -> Modeler {
    let client = db.client().await.unwrap();
    cdc_modeler::warehouse::init(&client).await.unwrap();
    Modeler::without_lake(client, ModelerMetrics::unregistered().unwrap())
        .await
        .unwrap()
}

/// Every modelled table's rows, one JSON object per line.
async fn dump(db: &TestDb) -> String {
    let client = db.client().await.unwrap();
    client.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    let mut out = String::new();
    for (table, order) in DUMPED {
        out.push_str(&format!("# {table}\n"));
        // PostgreSQL's own JSON text: numerics keep their digits (2.50, not 2.5).
        let volatile: String = VOLATILE.iter().map(|k| format!(" - '{k}'")).collect();
        let rows = client
            .query(
                &format!("SELECT (to_jsonb(t){volatile})::text FROM {table} t ORDER BY {order}"),
                &[],
            )
            .await
            .unwrap();
        for r in rows {
            out.push_str(r.get::<_, &str>(0));
            out.push('\n');
        }
    }
    out
}

async fn run_case(name: &str) {
    let input = std::fs::read_to_string(golden_dir().join(format!("{name}.json"))).unwrap();
    let case: Json = serde_json::from_str(&input).unwrap();
    let txns = transactions(&case);

    let one_by_one = TestDb::create().await.unwrap();
    let mut m = modeler(&one_by_one).await;
    for txn in &txns {
        m.apply(vec![txn.clone()]).await.unwrap();
    }
    let got = dump(&one_by_one).await;

    let expected_path = golden_dir().join(format!("{name}.expected"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|_| panic!("{name}.expected is missing; run with UPDATE_GOLDEN=1"));
    assert_eq!(got, expected, "{name}: one source transaction per apply");

    // Applying again, by a fresh modeler, changes nothing.
    let mut again = modeler(&one_by_one).await;
    again.apply(txns.clone()).await.unwrap();
    assert_eq!(dump(&one_by_one).await, expected, "{name}: re-applied");

    let batched = TestDb::create().await.unwrap();
    let mut m = modeler(&batched).await;
    m.apply(txns).await.unwrap();
    assert_eq!(dump(&batched).await, expected, "{name}: all in one apply");
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run_case(stringify!($name)).await;
            }
        )*
    };
}

golden!(
    scd2_versions,
    staff_follow_their_department,
    counterparties_follow_their_legal_address,
    facts_append_a_row_per_change,
    key_changes,
    late_arrivals,
    bad_input,
    truncates,
    truncate_keeps_inferred_members,
);
