//! The modeler at the end of the real pipeline: the simulator's changes in PostgreSQL,
//! capture into Kafka through our registry, the lake writer into Parquet files, the
//! modeler into a warehouse database. The warehouse is then compared with the source:
//! - its current dimensions and current fact versions with a recomputation done by plain
//!   SQL over the source tables, row for row;
//! - every version of every dimension and fact with the source's change history, which
//!   triggers record on the source as it happens (independently of logical decoding).
//!
//! While the changes flow, a reader checks that the warehouse never shows half of a
//! multi-table source transaction; the crash test kills the modeler at random points.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_core::MetricSet;
use cdc_lake::LakeStore;
use cdc_modeler::{Modeler, ModelerConfig, ModelerMetrics};
use cdc_publish::PublishConfig;
use cdc_sim::SchemaVariant;
use cdc_stack::Stack;
use cdc_stack::Writer;
use cdc_testkit::TestDb;
use rand::{Rng, SeedableRng};
use serde_json::Value as Json;
use tokio::sync::watch;

/// Every source table the warehouse is built from.
const AUDITED: [&str; 11] = cdc_sim::TABLES;

/// The source, the lake between, and the warehouse.
struct Pipeline {
    stack: Stack,
    capture: cdc_stack::Capture,
    lake_dir: tempfile::TempDir,
    lake: LakeStore,
    writer: Writer,
    warehouse: TestDb,
}

impl Pipeline {
    /// A seeded source with its change history recorded, capture, a lake writer, and an
    /// initialised warehouse.
    async fn start() -> Pipeline {
        cdc_stack::log_to_test_output();
        let stack = Stack::start().await;
        stack.totesys(SchemaVariant::default(), 3).await;
        record_history(&stack.client).await;
        let capture = stack
            .start_capture(PublishConfig::with_transaction_topic())
            .await;
        let lake_dir = tempfile::tempdir().unwrap();
        let lake = LakeStore::open(lake_dir.path().to_str().unwrap()).unwrap();
        let flush = Writer::small_files(500, 200);
        let writer = Writer::start(
            stack.settings(),
            stack.registry.clone(),
            &lake,
            "lake",
            flush,
        )
        .await;
        writer.assigned().await;
        let warehouse = TestDb::create().await.unwrap();
        cdc_modeler::warehouse::init(&warehouse.client().await.unwrap())
            .await
            .unwrap();
        Pipeline {
            stack,
            capture,
            lake_dir,
            lake,
            writer,
            warehouse,
        }
    }

    async fn modeler(&self) -> Modeler {
        let config = ModelerConfig {
            poll: Duration::from_millis(50),
            ..ModelerConfig::default()
        };
        Modeler::new(
            self.lake.clone(),
            self.warehouse.client().await.unwrap(),
            config,
            ModelerMetrics::unregistered().unwrap(),
        )
        .await
        .unwrap()
    }

    /// Waits until capture has delivered everything, the lake holds it, and a fresh
    /// modeler has applied it all; returns that modeler and how many lake files it did
    /// not read because their footer put them at or below its watermark.
    async fn drain(self) -> (Pipeline, Modeler, usize) {
        self.stack
            .wait_all_acked(&self.capture, Duration::from_secs(120))
            .await;
        let source_end: String = self
            .stack
            .client
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .unwrap()
            .get(0);
        let source_end: cdc_core::Lsn = source_end.parse().unwrap();
        let mut modeler = self.modeler().await;
        let start = Instant::now();
        let mut quiet = 0;
        let mut skipped = 0;
        loop {
            let report = modeler.pass().await.unwrap();
            skipped += report.skipped;
            // The last transaction commits below the insert LSN read after it; once the
            // lake has nothing new for a while and nothing is pending, all is applied.
            if report.files == 0 && modeler.pending() == 0 && modeler.watermark() > cdc_core::Lsn(0)
            {
                quiet += 1;
            } else {
                quiet = 0;
            }
            if quiet >= 10 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the modeler did not catch up: watermark {} of {source_end}, {} pending",
                modeler.watermark(),
                modeler.pending()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        modeler.export_processed().await.unwrap();
        (self, modeler, skipped)
    }

    async fn stop(self) {
        self.writer.stop().await;
        self.capture.stop().await.unwrap();
        drop(self.lake_dir);
    }
}

/// Records every row change of the source tables in `audit.log` (old and new row as
/// JSON, in commit order: the workload runs on one connection), and the tables as they
/// are now in `audit.initial_<table>`.
async fn record_history(client: &tokio_postgres::Client) {
    let mut sql = String::from(cdc_testkit::audit::AUDIT_LOG);
    for table in AUDITED {
        sql.push_str(&format!(
            "CREATE TABLE audit.initial_{table} AS SELECT * FROM public.\"{table}\";\n"
        ));
        sql.push_str(&cdc_testkit::audit::audit_trigger(table));
    }
    client.batch_execute(&sql).await.unwrap();
}

/// A row as the text of each of `columns` (JSON numbers and booleans as PostgreSQL
/// prints them).
fn cells(row: &serde_json::Map<String, Json>, columns: &[&str]) -> Vec<Option<String>> {
    columns
        .iter()
        .map(|c| match row.get(*c) {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        })
        .collect()
}

type Versions = BTreeMap<i64, Vec<Vec<Option<String>>>>;

/// Each dimension's versions per key as the source's history gives them: the state
/// at the start, then after each source transaction whenever the row changed.
async fn expected_dimension_history(
    client: &tokio_postgres::Client,
) -> BTreeMap<&'static str, Versions> {
    let mut state: HashMap<&str, BTreeMap<i64, serde_json::Map<String, Json>>> = HashMap::new();
    for table in AUDITED {
        let rows = client
            .query(
                &format!("SELECT to_jsonb(t) FROM audit.initial_{table} t"),
                &[],
            )
            .await
            .unwrap();
        let rows = rows
            .iter()
            .map(|r| {
                let Json::Object(o) = r.get::<_, Json>(0) else {
                    panic!("row")
                };
                (o[&format!("{table}_id")].as_i64().unwrap(), o)
            })
            .collect();
        state.insert(table, rows);
    }
    // Transactions in commit order: each one's rows together, ordered by its last row.
    // The simulator's transactions run one after another on one connection; the test's
    // renames run beside them, on rows they lock, so a rename and a simulator transaction
    // that touch the same dimension row are serialised, and the later one's last row
    // comes after the earlier one's commit.
    let log = client
        .query(
            "SELECT xid::text, tbl, op, old, new FROM audit.log
             ORDER BY max(id) OVER (PARTITION BY xid), id",
            &[],
        )
        .await
        .unwrap();
    let dims = dimension_rows(&state);
    let mut versions: BTreeMap<&'static str, Versions> = BTreeMap::new();
    let mut current: BTreeMap<&'static str, BTreeMap<i64, Vec<Option<String>>>> = BTreeMap::new();
    for (dim, rows) in dims {
        for (key, row) in rows {
            versions
                .entry(dim)
                .or_default()
                .entry(key)
                .or_default()
                .push(row.clone());
            current.entry(dim).or_default().insert(key, row);
        }
    }
    let mut i = 0;
    while i < log.len() {
        let xid: String = log[i].get(0);
        while i < log.len() && log[i].get::<_, String>(0) == xid {
            let (table, old, new): (String, Option<Json>, Option<Json>) =
                (log[i].get(1), log[i].get(3), log[i].get(4));
            let table = AUDITED.iter().find(|t| **t == table).unwrap();
            let rows = state.get_mut(table).unwrap();
            let key_of = |o: &Json| o[&format!("{table}_id")].as_i64().unwrap();
            if let Some(old) = &old {
                rows.remove(&key_of(old));
            }
            if let Some(Json::Object(new)) = new {
                rows.insert(key_of(&Json::Object(new.clone())), new);
            }
            i += 1;
        }
        // After each transaction: the dimension rows that changed get a version.
        let dims = dimension_rows(&state);
        for (dim, rows) in dims {
            let now = current.entry(dim).or_default();
            for (key, row) in &rows {
                if now.get(key) != Some(row) {
                    versions
                        .entry(dim)
                        .or_default()
                        .entry(*key)
                        .or_default()
                        .push(row.clone());
                    now.insert(*key, row.clone());
                }
            }
            now.retain(|k, _| rows.contains_key(k));
        }
    }
    versions
}

/// The dimension rows of a source state (modelled columns only, as in the contract).
fn dimension_rows(
    state: &HashMap<&str, BTreeMap<i64, serde_json::Map<String, Json>>>,
) -> BTreeMap<&'static str, BTreeMap<i64, Vec<Option<String>>>> {
    let mut out: BTreeMap<&'static str, BTreeMap<i64, Vec<Option<String>>>> = BTreeMap::new();
    let address_columns = cdc_modeler::plan::ADDRESS_COLUMNS;
    for (key, s) in &state["staff"] {
        let d = s["department_id"]
            .as_i64()
            .and_then(|d| state["department"].get(&d));
        let mut row = cells(s, &["first_name", "last_name"]);
        match d {
            Some(d) => row.extend(cells(d, &["department_name", "location"])),
            None => row.extend([Some("unknown".to_owned()), None]),
        }
        row.extend(cells(s, &["email_address"]));
        out.entry("dim_staff").or_default().insert(*key, row);
    }
    for (key, a) in &state["address"] {
        out.entry("dim_location")
            .or_default()
            .insert(*key, cells(a, &address_columns));
    }
    for (key, c) in &state["counterparty"] {
        let a = c["legal_address_id"]
            .as_i64()
            .and_then(|a| state["address"].get(&a));
        let mut row = cells(c, &["counterparty_legal_name"]);
        row.extend(a.map_or(vec![None; 7], |a| cells(a, &address_columns)));
        out.entry("dim_counterparty").or_default().insert(*key, row);
    }
    for (key, c) in &state["currency"] {
        let mut row = cells(c, &["currency_code"]);
        let name = match row[0].as_deref() {
            Some("GBP") => "British Pound",
            Some("USD") => "US Dollar",
            Some("EUR") => "Euro",
            _ => "unknown",
        };
        row.push(Some(name.to_owned()));
        out.entry("dim_currency").or_default().insert(*key, row);
    }
    for (key, d) in &state["design"] {
        out.entry("dim_design").or_default().insert(
            *key,
            cells(d, &["design_name", "file_location", "file_name"]),
        );
    }
    for (key, p) in &state["payment_type"] {
        out.entry("dim_payment_type")
            .or_default()
            .insert(*key, cells(p, &["payment_type_name"]));
    }
    for (key, t) in &state["transaction"] {
        out.entry("dim_transaction").or_default().insert(
            *key,
            cells(
                t,
                &["transaction_type", "sales_order_id", "purchase_order_id"],
            ),
        );
    }
    out
}

/// The warehouse's versions per key of each dimension, in version order, checking the
/// validity chain on the way: each version ends where the next begins, only the last can
/// be current, and it is current unless the row is gone from `dim_x`.
async fn warehouse_dimension_history(
    client: &tokio_postgres::Client,
) -> BTreeMap<&'static str, Versions> {
    let dims: [(&'static str, &str, &[&str]); 7] = [
        (
            "dim_staff",
            "staff_id",
            &[
                "first_name",
                "last_name",
                "department_name",
                "location",
                "email_address",
            ],
        ),
        (
            "dim_location",
            "location_id",
            &cdc_modeler::plan::ADDRESS_COLUMNS,
        ),
        (
            "dim_counterparty",
            "counterparty_id",
            &[
                "counterparty_legal_name",
                "counterparty_legal_address_line_1",
                "counterparty_legal_address_line_2",
                "counterparty_legal_district",
                "counterparty_legal_city",
                "counterparty_legal_postal_code",
                "counterparty_legal_country",
                "counterparty_legal_phone_number",
            ],
        ),
        (
            "dim_currency",
            "currency_id",
            &["currency_code", "currency_name"],
        ),
        (
            "dim_design",
            "design_id",
            &["design_name", "file_location", "file_name"],
        ),
        (
            "dim_payment_type",
            "payment_type_id",
            &["payment_type_name"],
        ),
        (
            "dim_transaction",
            "transaction_id",
            &["transaction_type", "sales_order_id", "purchase_order_id"],
        ),
    ];
    let mut out = BTreeMap::new();
    for (dim, key, columns) in dims {
        let select: Vec<String> = columns.iter().map(|c| format!("{c}::text")).collect();
        let rows = client
            .query(
                &format!(
                    "SELECT {key}::bigint, valid_from, valid_to, is_current, inferred,
                            EXISTS (SELECT 1 FROM {dim} d WHERE d.{key} = h.{key}), {}
                     FROM {dim}_history h ORDER BY {key}, version_id",
                    select.join(", ")
                ),
                &[],
            )
            .await
            .unwrap();
        let mut versions: Versions = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            let key: i64 = row.get(0);
            let to: Option<chrono::DateTime<chrono::Utc>> = row.get(2);
            let last = rows
                .get(i + 1)
                .is_none_or(|next| next.get::<_, i64>(0) != key);
            assert!(
                !row.get::<_, bool>(4),
                "{dim} {key}: no inferred members in a consistent source"
            );
            if last {
                assert_eq!(
                    row.get::<_, bool>(3),
                    row.get::<_, bool>(5),
                    "{dim} {key}: the last version is current iff the row exists"
                );
            } else {
                let next_from: chrono::DateTime<chrono::Utc> = rows[i + 1].get(1);
                assert_eq!(
                    to,
                    Some(next_from),
                    "{dim} {key}: a version ends where the next begins"
                );
            }
            versions.entry(key).or_default().push(
                (6..row.len())
                    .map(|c| row.get::<_, Option<String>>(c))
                    .collect(),
            );
        }
        out.insert(dim, versions);
    }
    out
}

/// Each fact's versions per order as the source's history gives them (the initial row,
/// then each insert or update) and as the warehouse holds them, as text.
async fn fact_histories(
    source: &tokio_postgres::Client,
    warehouse: &tokio_postgres::Client,
) -> Vec<(&'static str, Versions, Versions)> {
    let facts = [
        (
            "fact_sales_order",
            "sales_order",
            "sales_record_id",
            "sales_order_id, created_date, created_time, last_updated_date, last_updated_time, sales_staff_id,
             counterparty_id, units_sold, trim_scale(unit_price), currency_id, design_id, agreed_payment_date,
             agreed_delivery_date, agreed_delivery_location_id",
            "sales_order_id, created_at::date, created_at::time, last_updated::date, last_updated::time, staff_id,
             counterparty_id, units_sold, trim_scale(unit_price), currency_id, design_id,
             agreed_payment_date::date, agreed_delivery_date::date, agreed_delivery_location_id",
        ),
        (
            "fact_purchase_order",
            "purchase_order",
            "purchase_record_id",
            "purchase_order_id, created_date, created_time, last_updated_date, last_updated_time, staff_id,
             counterparty_id, item_code, item_quantity, trim_scale(item_unit_price), currency_id,
             agreed_delivery_date, agreed_payment_date, agreed_delivery_location_id",
            "purchase_order_id, created_at::date, created_at::time, last_updated::date, last_updated::time,
             staff_id, counterparty_id, item_code, item_quantity, trim_scale(item_unit_price), currency_id,
             agreed_delivery_date::date, agreed_payment_date::date, agreed_delivery_location_id",
        ),
        (
            "fact_payment",
            "payment",
            "payment_record_id",
            "payment_id, created_date, created_time, last_updated_date, last_updated_time, transaction_id,
             counterparty_id, trim_scale(payment_amount), currency_id, payment_type_id, paid, payment_date",
            "payment_id, created_at::date, created_at::time, last_updated::date, last_updated::time,
             transaction_id, counterparty_id, trim_scale(payment_amount), currency_id, payment_type_id, paid,
             payment_date::date",
        ),
    ];
    let mut out = Vec::new();
    for (fact, table, record, in_warehouse, in_source) in facts {
        let collect = |rows: Vec<tokio_postgres::Row>| {
            let mut versions: Versions = BTreeMap::new();
            for row in rows {
                versions
                    .entry(row.get::<_, i64>(0))
                    .or_default()
                    .push(vec![row.get::<_, Option<String>>(1)]);
            }
            versions
        };
        let key = format!("{table}_id");
        let expected = source
            .query(
                &format!(
                    "SELECT {key}::bigint, concat_ws('|', {in_source}) FROM (
                         SELECT 0 AS seq, * FROM audit.initial_{table}
                         UNION ALL
                         SELECT l.id, r.* FROM audit.log l,
                             jsonb_populate_record(null::public.\"{table}\", l.new) r
                         WHERE l.tbl = '{table}' AND l.new IS NOT NULL) v
                     ORDER BY {key}, seq"
                ),
                &[],
            )
            .await
            .unwrap();
        let got = warehouse
            .query(
                &format!(
                    "SELECT {}::bigint, concat_ws('|', {in_warehouse}) FROM {fact}_all_versions ORDER BY {record}",
                    in_warehouse.split(',').next().unwrap()
                ),
                &[],
            )
            .await
            .unwrap();
        out.push((fact, collect(expected), collect(got)));
    }
    out
}

/// The warehouse equals the source now and in its history.
async fn check_against_source(pipeline: &Pipeline) {
    let warehouse = pipeline.warehouse.client().await.unwrap();
    let checks = cdc_testkit::check_warehouse(&pipeline.stack.client, &warehouse)
        .await
        .unwrap();
    for check in &checks {
        assert!(check.matches(), "{check:#?}");
        assert!(check.source_rows > 0, "{}: empty", check.table);
    }
    let expected = expected_dimension_history(&pipeline.stack.client).await;
    let got = warehouse_dimension_history(&warehouse).await;
    for (dim, versions) in &expected {
        let held = &got[dim];
        for (key, wanted) in versions {
            assert_eq!(held.get(key), Some(wanted), "{dim} {key}: versions");
        }
        assert_eq!(held.len(), versions.len(), "{dim}: keys with history");
    }
    for (fact, expected, got) in fact_histories(&pipeline.stack.client, &warehouse).await {
        assert_eq!(got.len(), expected.len(), "{fact}: orders with history");
        for (key, wanted) in &expected {
            assert_eq!(got.get(key), Some(wanted), "{fact} {key}: versions");
        }
    }
    let versions: i64 = warehouse
        .query_one(
            "SELECT (SELECT count(*) FROM dim_staff_history) + (SELECT count(*) FROM fact_sales_order_version)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(versions > 0);
}

/// What a reader must always see in the warehouse, whatever moment it reads: sums that
/// each source transaction keeps (a sale adds an order, its transaction and its payment;
/// a cancelled purchase removes all three) and the test's own two-table renames.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Invariants {
    sales_minus_transactions: i64,
    purchases_minus_transactions: i64,
    payments_minus_transactions: i64,
}

async fn read_invariants(
    client: &mut tokio_postgres::Client,
) -> Option<(Invariants, Option<(String, String)>)> {
    let txn = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .unwrap();
    let applied: i64 = txn
        .query_one("SELECT count(*) FROM totesys_cdc.applied", &[])
        .await
        .unwrap()
        .get(0);
    if applied == 0 {
        return None;
    }
    let row = txn
        .query_one(
            "SELECT (SELECT count(*) FROM fact_sales_order_current)
                  - (SELECT count(*) FROM dim_transaction WHERE sales_order_id IS NOT NULL),
                    (SELECT count(*) FROM fact_purchase_order_current)
                  - (SELECT count(*) FROM dim_transaction WHERE purchase_order_id IS NOT NULL),
                    (SELECT count(*) FROM fact_payment_current) - (SELECT count(*) FROM dim_transaction),
                    (SELECT design_name FROM dim_design WHERE design_id = 1),
                    (SELECT counterparty_legal_name FROM dim_counterparty WHERE counterparty_id = 1)",
            &[],
        )
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let names: (Option<String>, Option<String>) = (row.get(3), row.get(4));
    Some((
        Invariants {
            sales_minus_transactions: row.get(0),
            purchases_minus_transactions: row.get(1),
            payments_minus_transactions: row.get(2),
        },
        names.0.zip(names.1),
    ))
}

/// DuckDB's delta extension, delta-rs's `deltalake` and Apache Spark with Delta Lake read
/// every processed table as a Delta table and find exactly the warehouse table's rows:
/// the same keys, the same current versions, and (for the dimensions) the same values;
/// Spark also reads every raw table and counts the rows DuckDB counts.
async fn check_processed_zone(pipeline: &Pipeline) {
    let script = format!(
        "{}{}",
        cdc_testkit::python::DELTA_DUCKDB,
        r#"
import hashlib, json, os, sys
from deltalake import DeltaTable
lake, tables = sys.argv[1], json.loads(sys.argv[2])
con = delta_duckdb()
for t in tables:
    url = os.path.join(lake, "processed", t["name"])
    scan = f"delta_scan('{url}')"
    cols = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
    current = "count(*) FILTER (WHERE is_current)" if "is_current" in cols else "NULL"
    values = ", ".join(f"CAST({c} AS VARCHAR)" for c in t["values"]) if t["values"] else "''"
    rows, keys, cur, vals = con.sql(f"""
        SELECT count(*), md5(string_agg(CAST({t['key']} AS VARCHAR), ',' ORDER BY {t['key']})), {current},
               md5(string_agg(concat_ws('|', {values}), ',' ORDER BY {t['key']}))
        FROM {scan}""").fetchall()[0]
    arrow = DeltaTable(url).to_pyarrow_table()
    rs_keys = hashlib.md5(",".join(str(k) for k in sorted(arrow.column(t["key"]).to_pylist())).encode()).hexdigest()
    print(json.dumps({"name": t["name"], "rows": rows, "keys": keys, "current": cur, "values": vals,
                      "rs_rows": arrow.num_rows, "rs_keys": rs_keys}), flush=True)
raw = os.path.join(lake, "raw")
for d in sorted(os.listdir(raw)):
    if os.path.isdir(os.path.join(raw, d, "_delta_log")):
        n = con.sql(f"SELECT count(*) FROM delta_scan('{os.path.join(raw, d)}')").fetchall()[0][0]
        print(json.dumps({"raw": os.path.join(raw, d), "rows": n}), flush=True)
os._exit(0)
"#
    );
    let warehouse = pipeline.warehouse.client().await.unwrap();
    let mut wanted = Vec::new();
    let mut expected = HashMap::new();
    let mut text_keys = HashMap::new();
    for table in cdc_modeler::processed::tables() {
        let (name, key) = (table.name.clone(), table.key);
        // The values compared: a dimension's contract columns (ints, text and dates print
        // alike in both); the facts and histories by their keys and current versions.
        let values: Vec<String> = if name.starts_with("dim_") && !name.ends_with("_history") {
            warehouse
                .query(
                    "SELECT column_name::text FROM information_schema.columns
                     WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                    &[&name],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        } else {
            Vec::new()
        };
        let versions = if name.starts_with("fact_") {
            format!("{name}_version")
        } else {
            name.clone()
        };
        let current = if name.ends_with("_history") || name.starts_with("fact_") {
            format!("(SELECT count(*) FROM {versions} WHERE is_current)")
        } else {
            "NULL::int8".into()
        };
        let concat = if values.is_empty() {
            "''".to_owned()
        } else {
            values
                .iter()
                .map(|c| format!("{c}::text"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let row = warehouse
            .query_one(
                &format!(
                    "SELECT count(*), md5(string_agg({key}::text, ',' ORDER BY {key})), {current},
                            md5(string_agg(concat_ws('|', {concat}), ',' ORDER BY {key})),
                            md5(string_agg({key}::text, ',' ORDER BY {key}::text COLLATE \"C\"))
                     FROM {name}"
                ),
                &[],
            )
            .await
            .unwrap();
        let (rows, keys, current, vals): (i64, Option<String>, Option<i64>, Option<String>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        text_keys.insert(name.clone(), row.get::<_, Option<String>>(4));
        expected.insert(name.clone(), (rows, keys, current, vals));
        wanted.push(serde_json::json!({"name": name, "key": key, "values": values}));
    }
    let python = cdc_testkit::python::venv_python().unwrap_or_else(|e| panic!("{e}"));
    let output = tokio::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(pipeline.lake_dir.path())
        .arg(Json::Array(wanted).to_string())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "DuckDB and deltalake on the processed zone: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut tables = 0;
    let mut raw_rows = HashMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let read: Json = serde_json::from_str(line).unwrap();
        if let Some(raw) = read["raw"].as_str() {
            raw_rows.insert(raw.to_owned(), read["rows"].as_i64());
            continue;
        }
        let name = read["name"].as_str().unwrap();
        let (rows, keys, current, vals) = &expected[name];
        assert!(*rows > 0, "warehouse {name} has rows to compare");
        assert_eq!(read["rows"].as_i64(), Some(*rows), "processed {name}: rows");
        assert_eq!(
            read["keys"].as_str(),
            keys.as_deref(),
            "processed {name}: keys"
        );
        assert_eq!(
            read["current"].as_i64(),
            *current,
            "processed {name}: current"
        );
        if !read["values"].is_null() && vals.is_some() {
            assert_eq!(
                read["values"].as_str(),
                vals.as_deref(),
                "processed {name}: values"
            );
        }
        assert_eq!(
            read["rs_rows"].as_i64(),
            Some(*rows),
            "deltalake on {name}: rows"
        );
        assert_eq!(
            read["rs_keys"].as_str(),
            keys.as_deref(),
            "deltalake on {name}: keys"
        );
        tables += 1;
    }
    assert_eq!(tables, expected.len(), "every processed table was read");
    assert!(!raw_rows.is_empty(), "DuckDB read the raw tables");

    let (python, jars, script) =
        cdc_testkit::python::spark_reader().unwrap_or_else(|e| panic!("{e}"));
    let processed = pipeline.lake_dir.path().join("processed");
    let mut args: Vec<String> = cdc_modeler::processed::tables()
        .iter()
        .map(|t| format!("{}::{}", processed.join(&t.name).display(), t.key))
        .collect();
    args.extend(raw_rows.keys().cloned());
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg(jars)
        .args(&args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "Spark on the lake: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut read = 0;
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let spark: Json = serde_json::from_str(line).unwrap();
        let path = spark["path"].as_str().unwrap();
        match raw_rows.get(path) {
            Some(rows) => assert_eq!(spark["rows"].as_i64(), *rows, "Spark on {path}: rows"),
            None => {
                let name = path.rsplit('/').next().unwrap();
                assert_eq!(
                    spark["rows"].as_i64(),
                    Some(expected[name].0),
                    "Spark on {name}: rows"
                );
                assert_eq!(
                    spark["md5_keys"].as_str(),
                    text_keys[name].as_deref(),
                    "Spark on {name}: keys"
                );
            }
        }
        read += 1;
    }
    assert_eq!(read, args.len(), "Spark read every table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_warehouse_equals_the_source_and_never_shows_half_a_transaction() {
    let pipeline = Pipeline::start().await;
    let mut modeler = pipeline.modeler().await;
    let (stop_modeler, stopped) = watch::channel(false);
    let running = tokio::spawn(async move {
        modeler.run(stopped).await.unwrap();
        modeler
    });

    // A reader, polling the warehouse while the changes flow.
    let reading = Arc::new(AtomicBool::new(true));
    let reads = Arc::new(AtomicU64::new(0));
    let mut reader_client = pipeline.warehouse.client().await.unwrap();
    let reader = {
        let (reading, reads) = (reading.clone(), reads.clone());
        tokio::spawn(async move {
            let mut baseline: Option<Invariants> = None;
            while reading.load(Ordering::Relaxed) {
                if let Some((now, names)) = read_invariants(&mut reader_client).await {
                    // The snapshot is one transaction: from the first read on, the sums hold.
                    let base = baseline.get_or_insert_with(|| now.clone());
                    assert_eq!(&now, base, "a read saw half of a source transaction");
                    if let Some((design, counterparty)) = names {
                        if design.starts_with("gen-") || counterparty.starts_with("gen-") {
                            assert_eq!(
                                design, counterparty,
                                "a read saw half of a two-table rename"
                            );
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };

    // The simulator's units (a sale is three tables in one transaction), several per
    // transaction at this rate; and two-table renames of our own beside them.
    let workload = pipeline.stack.spawn_workload(4000, 800.0, 11).await;
    let renames = {
        let client = pipeline.stack.db.client().await.unwrap();
        tokio::spawn(async move {
            for generation in 0..60 {
                client
                    .batch_execute(&format!(
                        "BEGIN;
                         SELECT 1 FROM address WHERE address_id =
                             (SELECT legal_address_id FROM counterparty WHERE counterparty_id = 1) FOR UPDATE;
                         UPDATE design SET design_name = 'gen-{generation}', last_updated = now() WHERE design_id = 1;
                         UPDATE counterparty SET counterparty_legal_name = 'gen-{generation}', last_updated = now()
                             WHERE counterparty_id = 1;
                         COMMIT;"
                    ))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };
    workload.await.unwrap();
    renames.await.unwrap();

    let (pipeline, _, skipped) = {
        // Let the background modeler catch up, then stop it and drain with a fresh one.
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop_modeler.send(true).unwrap();
        let modeler = running.await.unwrap();
        assert!(modeler.watermark() > cdc_core::Lsn(0));
        pipeline.drain().await
    };
    assert!(
        skipped > 0,
        "a restarted modeler skips the files its watermark covers, by their footer"
    );
    reading.store(false, Ordering::Relaxed);
    reader.await.unwrap();
    assert!(
        reads.load(Ordering::Relaxed) > 20,
        "the reader read often enough"
    );

    check_against_source(&pipeline).await;

    check_processed_zone(&pipeline).await;
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_modeler_killed_at_random_points_leaves_no_duplicates() {
    let pipeline = Pipeline::start().await;
    let workload = pipeline.stack.spawn_workload(3000, 600.0, 23).await;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
    let mut kills = 0;
    while !workload.is_finished() || kills < 6 {
        let mut modeler = pipeline.modeler().await;
        let (_stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move { modeler.run(stopped).await });
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..900))).await;
        // Like a crash: the task stops at whatever await it is in; its connection closes
        // and PostgreSQL rolls back the open transaction.
        task.abort();
        let _ = task.await;
        kills += 1;
    }
    workload.await.unwrap();
    let (pipeline, modeler, _) = pipeline.drain().await;
    assert!(modeler.watermark() > cdc_core::Lsn(0));
    check_against_source(&pipeline).await;
    pipeline.stop().await;
}
