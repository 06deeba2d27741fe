//! SCD2 merge planning: source transactions in, the warehouse writes that apply them out.
//! Pure logic over the modeler's in-memory state (source mirrors and current dimension
//! versions); [`crate::warehouse`] executes a [`Plan`] in one warehouse transaction.
//!
//! Rules (docs/warehouse.md):
//! - Per source transaction, its changes to mirrored tables first; then every dimension
//!   row they touch (directly or through a join) is recomputed, and a new version is made,
//!   valid from the transaction's commit time, only when the row differs from the
//!   current one. A row gone from the source closes its current version.
//! - Then its fact changes in order: an insert or update appends a fact row and closes
//!   the order's previous version; a delete closes it; a truncate closes them all.
//! - A fact referring to a dimension key with no current row gets an inferred member.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cdc_core::{Lsn, Op};

use crate::source::{int, text, Change, SourceTxn, TextRow};
use crate::spec::{source_key, Dim, Fact, From, JOINED, MIRRORED, UNKNOWN};

/// The address columns `dim_location` and `dim_counterparty` take, in contract order.
pub const ADDRESS_COLUMNS: [&str; 7] = [
    "address_line_1",
    "address_line_2",
    "district",
    "city",
    "postal_code",
    "country",
    "phone",
];

/// A dimension row's contract values (after the key) and whether it is inferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimRow {
    /// Values in [`Dim::columns`] order, in PostgreSQL text form.
    pub values: Vec<Option<String>>,
    /// Made up for a key a fact referred to before its source row arrived.
    pub inferred: bool,
}

/// A new version of a dimension row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimVersion {
    /// Which dimension.
    pub dim: Dim,
    /// Its natural key.
    pub key: i64,
    /// The row.
    pub row: DimRow,
    /// The change that made it.
    pub at: Stamp,
    /// When it stopped being current within the same plan.
    pub closed: Option<Stamp>,
}

/// A new fact row and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactVersion {
    /// Which fact table.
    pub fact: Fact,
    /// The order's (payment's) key.
    pub key: i64,
    /// Values in [`Fact::columns`] order, in PostgreSQL text form.
    pub values: Vec<Option<String>>,
    /// The change that made it.
    pub at: Stamp,
    /// When it stopped being current within the same plan.
    pub closed: Option<Stamp>,
}

/// A position and time in the source: a version's start or end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The source transaction's commit LSN.
    pub commit_lsn: Lsn,
    /// The change's ordinal in it.
    pub ordinal: u64,
    /// The transaction's commit time (µs since the epoch).
    pub ts_us: i64,
}

/// Closing a version that was current before the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<T> {
    /// The dimension or fact.
    pub target: T,
    /// The key whose current version closes.
    pub key: i64,
    /// When.
    pub at: Stamp,
}

/// A change kept for repair: what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The source table.
    pub table: String,
    /// The change's position.
    pub at: Stamp,
    /// Why (`bad_date`, `numeric_out_of_contract`, `inferred_member`).
    pub reason: &'static str,
    /// The source row as JSON.
    pub row: serde_json::Value,
}

/// Everything one apply writes to the warehouse.
#[derive(Debug, Default)]
pub struct Plan {
    /// The last applied transaction's commit LSN and time: the new watermark.
    pub watermark: Option<Stamp>,
    /// Source transactions in the plan.
    pub transactions: usize,
    /// Changes in the plan, per source table.
    pub changes: BTreeMap<String, u64>,
    /// Commit time and streamed (not snapshot) change count per transaction, for freshness.
    pub commits: Vec<(i64, u64)>,
    /// Pre-existing dimension versions to close, in order.
    pub dim_closes: Vec<Close<Dim>>,
    /// New dimension versions.
    pub dim_versions: Vec<DimVersion>,
    /// The final current row of every dimension key the plan touched (`None`: gone).
    pub dim_current: BTreeMap<(Dim, i64), Option<DimRow>>,
    /// Pre-existing fact versions to close, by key, in order.
    pub fact_closes: Vec<Close<Fact>>,
    /// Fact tables whose pre-existing current versions all close (truncates), after the
    /// key closes.
    pub fact_truncates: Vec<Close<Fact>>,
    /// New fact rows.
    pub fact_versions: Vec<FactVersion>,
    /// The final mirror row of every source key the plan touched (`None`: deleted).
    pub mirror: BTreeMap<(String, i64), Option<TextRow>>,
    /// Mirrored tables truncated by the plan (emptied before `mirror` is written).
    pub mirror_truncated: BTreeSet<String>,
    /// Every date a fact row refers to (`dim_date` must hold them).
    pub dates: BTreeSet<String>,
    /// Changes kept for repair.
    pub repairs: Vec<Repair>,
    /// Bad input per reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Truncates per source table.
    pub truncates: BTreeMap<String, u64>,
}

/// The modeler's state between applies: the mirrored source rows and each dimension
/// key's current row, as the warehouse holds them.
#[derive(Debug, Default, Clone)]
pub struct Model {
    mirrors: HashMap<String, HashMap<i64, TextRow>>,
    dims: HashMap<Dim, HashMap<i64, DimRow>>,
}

/// Where the plan's open versions are while planning.
#[derive(Default)]
struct Open {
    dims: HashMap<(Dim, i64), usize>,
    facts: HashMap<(Fact, i64), usize>,
    facts_closed_before: BTreeSet<(Fact, i64)>,
    facts_truncated_before: BTreeSet<Fact>,
}

impl Model {
    /// A model from the warehouse's mirrors and current dimension rows.
    pub fn new(
        mirrors: HashMap<String, HashMap<i64, TextRow>>,
        dims: HashMap<Dim, HashMap<i64, DimRow>>,
    ) -> Model {
        Model { mirrors, dims }
    }

    /// The current row of a dimension key.
    pub fn dim(&self, dim: Dim, key: i64) -> Option<&DimRow> {
        self.dims.get(&dim)?.get(&key)
    }

    /// Plans `txns` (in commit order) and advances the model past them. If the plan is
    /// not applied, the model no longer matches the warehouse and must be reloaded.
    pub fn plan(&mut self, txns: &[SourceTxn]) -> Plan {
        let mut plan = Plan::default();
        let mut open = Open::default();
        for txn in txns {
            self.plan_txn(txn, &mut plan, &mut open);
        }
        plan
    }

    fn plan_txn(&mut self, txn: &SourceTxn, plan: &mut Plan, open: &mut Open) {
        let stamp = |ordinal| Stamp {
            commit_lsn: txn.commit_lsn,
            ordinal,
            ts_us: txn.commit_ts_us,
        };
        plan.transactions += 1;
        let streamed = txn.changes.iter().filter(|c| c.op != Op::Read).count();
        plan.commits.push((txn.commit_ts_us, streamed as u64));
        plan.watermark = Some(stamp(0));
        // Mirrored tables first; the dimension keys they touch, with the last ordinal.
        let mut touched: BTreeMap<(Dim, i64), u64> = BTreeMap::new();
        for change in &txn.changes {
            *plan.changes.entry(change.table.clone()).or_default() += 1;
            if change.op == Op::Truncate {
                *plan.truncates.entry(change.table.clone()).or_default() += 1;
            }
            if MIRRORED.contains(&change.table.as_str()) {
                for key in self.mirror_change(change, plan) {
                    touched.insert(key, change.ordinal);
                }
            }
        }
        for ((dim, key), ordinal) in touched {
            let row = self.compute(dim, key);
            self.set_dim(dim, key, row, stamp(ordinal), plan, open);
        }
        // Rows no dimension joins are not needed after their own transaction.
        self.mirrors
            .retain(|table, _| JOINED.contains(&table.as_str()));
        for change in &txn.changes {
            if let Some(fact) = Fact::of_source(&change.table) {
                self.fact_change(fact, change, stamp(change.ordinal), plan, open);
            }
        }
    }

    /// Applies a change to its mirror; returns the dimension keys it touches.
    fn mirror_change(&mut self, change: &Change, plan: &mut Plan) -> Vec<(Dim, i64)> {
        let table = change.table.as_str();
        let key_column = source_key(table);
        let kept = JOINED.contains(&table);
        let mirror = self.mirrors.entry(table.to_owned()).or_default();
        let mut keys = Vec::new();
        match change.op {
            Op::Truncate => {
                keys.extend(mirror.keys().copied());
                mirror.clear();
                if kept {
                    plan.mirror.retain(|(t, _), _| t != table);
                    plan.mirror_truncated.insert(table.to_owned());
                }
            }
            Op::Delete => {
                if let Some(key) = change.before_key(&key_column).or(change.key(&key_column)) {
                    mirror.remove(&key);
                    if kept {
                        plan.mirror.insert((table.to_owned(), key), None);
                    }
                    keys.push(key);
                }
            }
            Op::Insert | Op::Update | Op::Read => {
                let Some(after) = &change.after else {
                    return Vec::new();
                };
                let Some(key) = int(after, &key_column) else {
                    return Vec::new();
                };
                let mut previous = mirror.get(&key).cloned();
                if let Some(old) = change.before_key(&key_column).filter(|old| *old != key) {
                    previous = mirror.remove(&old);
                    if kept {
                        plan.mirror.insert((table.to_owned(), old), None);
                    }
                    keys.push(old);
                }
                // Columns the source did not send (unchanged TOAST) keep their value.
                let mut row = after.clone();
                for (column, value) in previous.into_iter().flatten() {
                    row.entry(column).or_insert(value);
                }
                if kept {
                    plan.mirror
                        .insert((table.to_owned(), key), Some(row.clone()));
                }
                mirror.insert(key, row);
                keys.push(key);
            }
        }
        let mut touched = Vec::new();
        for key in keys {
            self.dependents(table, key, &mut touched);
        }
        if change.op == Op::Truncate {
            // Every row of the dimensions whose own table it is, inferred members
            // included (rows that only join the table were found through the mirror).
            for dim in Dim::ALL.into_iter().filter(|d| d.source() == table) {
                if let Some(rows) = self.dims.get(&dim) {
                    touched.extend(rows.keys().map(|k| (dim, *k)));
                }
            }
        }
        touched
    }

    /// The dimension keys whose row depends on source row `table`/`key`.
    fn dependents(&self, table: &str, key: i64, out: &mut Vec<(Dim, i64)>) {
        let referring = |source: &str, column: &str| -> Vec<i64> {
            self.mirrors
                .get(source)
                .map(|rows| {
                    rows.iter()
                        .filter(|(_, row)| int(row, column) == Some(key))
                        .map(|(k, _)| *k)
                        .collect()
                })
                .unwrap_or_default()
        };
        match table {
            "staff" => out.push((Dim::Staff, key)),
            "department" => out.extend(
                referring("staff", "department_id")
                    .into_iter()
                    .map(|k| (Dim::Staff, k)),
            ),
            "address" => {
                out.push((Dim::Location, key));
                out.extend(
                    referring("counterparty", "legal_address_id")
                        .into_iter()
                        .map(|k| (Dim::Counterparty, k)),
                );
            }
            "counterparty" => out.push((Dim::Counterparty, key)),
            "currency" => out.push((Dim::Currency, key)),
            "design" => out.push((Dim::Design, key)),
            "payment_type" => out.push((Dim::PaymentType, key)),
            "transaction" => out.push((Dim::Transaction, key)),
            _ => {}
        }
    }

    fn mirrored(&self, table: &str, key: i64) -> Option<&TextRow> {
        self.mirrors.get(table)?.get(&key)
    }

    /// A dimension row recomputed from the mirrors; `None` when its source row is gone.
    fn compute(&self, dim: Dim, key: i64) -> Option<DimRow> {
        let own = |table: &str| self.mirrored(table, key);
        let get = |row: Option<&TextRow>, column: &str| {
            row.and_then(|r| text(r, column)).map(str::to_owned)
        };
        let values: Vec<Option<String>> = match dim {
            Dim::Staff => {
                let staff = own("staff")?;
                let department =
                    int(staff, "department_id").and_then(|d| self.mirrored("department", d));
                vec![
                    get(Some(staff), "first_name"),
                    get(Some(staff), "last_name"),
                    get(department, "department_name"),
                    get(department, "location"),
                    get(Some(staff), "email_address"),
                ]
            }
            Dim::Location => {
                let address = own("address")?;
                ADDRESS_COLUMNS
                    .iter()
                    .map(|c| get(Some(address), c))
                    .collect()
            }
            Dim::Currency => {
                let currency = own("currency")?;
                let code = get(Some(currency), "currency_code");
                let name = code
                    .as_deref()
                    .and_then(crate::iso4217::dimension_name)
                    .map(str::to_owned);
                vec![code, name]
            }
            Dim::Design => {
                let design = own("design")?;
                ["design_name", "file_location", "file_name"]
                    .iter()
                    .map(|c| get(Some(design), c))
                    .collect()
            }
            Dim::Counterparty => {
                let counterparty = own("counterparty")?;
                let address =
                    int(counterparty, "legal_address_id").and_then(|a| self.mirrored("address", a));
                let mut values = vec![get(Some(counterparty), "counterparty_legal_name")];
                values.extend(ADDRESS_COLUMNS.iter().map(|c| get(address, c)));
                values
            }
            Dim::PaymentType => vec![get(Some(own("payment_type")?), "payment_type_name")],
            Dim::Transaction => {
                let transaction = own("transaction")?;
                ["transaction_type", "sales_order_id", "purchase_order_id"]
                    .iter()
                    .map(|c| get(Some(transaction), c))
                    .collect()
            }
        };
        Some(DimRow {
            values: fill_unknown(dim, values),
            inferred: false,
        })
    }

    /// Makes `row` the current row of `dim`/`key` at `at`, versioning only real changes.
    fn set_dim(
        &mut self,
        dim: Dim,
        key: i64,
        row: Option<DimRow>,
        at: Stamp,
        plan: &mut Plan,
        open: &mut Open,
    ) {
        let current = self.dims.get(&dim).and_then(|rows| rows.get(&key));
        if current == row.as_ref() {
            return;
        }
        if current.is_some() {
            match open.dims.remove(&(dim, key)) {
                Some(i) => plan.dim_versions[i].closed = Some(at),
                None => plan.dim_closes.push(Close {
                    target: dim,
                    key,
                    at,
                }),
            }
        }
        let rows = self.dims.entry(dim).or_default();
        match row {
            Some(row) => {
                open.dims.insert((dim, key), plan.dim_versions.len());
                plan.dim_versions.push(DimVersion {
                    dim,
                    key,
                    row: row.clone(),
                    at,
                    closed: None,
                });
                rows.insert(key, row.clone());
                plan.dim_current.insert((dim, key), Some(row));
            }
            None => {
                rows.remove(&key);
                plan.dim_current.insert((dim, key), None);
            }
        }
    }

    fn fact_change(
        &mut self,
        fact: Fact,
        change: &Change,
        at: Stamp,
        plan: &mut Plan,
        open: &mut Open,
    ) {
        match change.op {
            Op::Truncate => {
                let keys: Vec<(Fact, i64)> = open
                    .facts
                    .keys()
                    .filter(|(f, _)| *f == fact)
                    .copied()
                    .collect();
                for k in keys {
                    close_fact(k.0, k.1, at, plan, open);
                }
                if open.facts_truncated_before.insert(fact) {
                    plan.fact_truncates.push(Close {
                        target: fact,
                        key: 0,
                        at,
                    });
                }
            }
            Op::Delete => {
                if let Some(key) = change.before_key(fact.key()).or(change.key(fact.key())) {
                    close_fact(fact, key, at, plan, open);
                }
            }
            Op::Insert | Op::Update | Op::Read => {
                let Some(after) = &change.after else {
                    return;
                };
                let Some(key) = int(after, fact.key()) else {
                    return;
                };
                if let Some(old) = change.before_key(fact.key()).filter(|old| *old != key) {
                    close_fact(fact, old, at, plan, open);
                }
                let values = self.fact_values(fact, change, after, at, plan, open);
                close_fact(fact, key, at, plan, open);
                open.facts.insert((fact, key), plan.fact_versions.len());
                plan.fact_versions.push(FactVersion {
                    fact,
                    key,
                    values,
                    at,
                    closed: None,
                });
            }
        }
    }

    /// The fact row of `after`, with bad values nulled and kept for repair, and inferred
    /// members made for keys no dimension row has.
    fn fact_values(
        &mut self,
        fact: Fact,
        change: &Change,
        after: &TextRow,
        at: Stamp,
        plan: &mut Plan,
        open: &mut Open,
    ) -> Vec<Option<String>> {
        let reject = |plan: &mut Plan, reason: &'static str| {
            *plan.rejected.entry(reason).or_default() += 1;
            plan.repairs.push(Repair {
                table: change.table.clone(),
                at,
                reason,
                row: row_json(after),
            });
        };
        let mut values = Vec::with_capacity(fact.columns().len());
        for (_, from) in fact.columns() {
            let value = match *from {
                From::Copy(c) => text(after, c).map(str::to_owned),
                From::DateOf(c) => text(after, c)
                    .and_then(|ts| ts.get(..10))
                    .map(str::to_owned),
                From::TimeOf(c) => text(after, c)
                    .and_then(|ts| ts.get(11..))
                    .map(str::to_owned),
                From::Date(c) => match text(after, c) {
                    None => None,
                    Some(s) => match parse_date(s) {
                        Some(d) => Some(d),
                        None => {
                            reject(plan, "bad_date");
                            None
                        }
                    },
                },
                From::Money(c) => match text(after, c) {
                    None => None,
                    Some(s) => match fit_numeric(s, 10, 2) {
                        Some(v) => Some(v),
                        None => {
                            reject(plan, "numeric_out_of_contract");
                            None
                        }
                    },
                },
            };
            // Every date a fact row holds must be in dim_date.
            if let (Some(v), From::DateOf(_) | From::Date(_)) = (&value, from) {
                plan.dates.insert(v.clone());
            }
            values.push(value);
        }
        for (column, dim) in fact.references() {
            let Some(key) = int(after, column) else {
                continue;
            };
            if self.dim(*dim, key).is_none() {
                reject(plan, "inferred_member");
                let row = DimRow {
                    values: fill_unknown(*dim, vec![None; dim.columns().len()]),
                    inferred: true,
                };
                self.set_dim(*dim, key, Some(row), at, plan, open);
            }
        }
        values
    }
}

/// Closes the current version of fact `key`: one made in this plan, or the warehouse's.
fn close_fact(fact: Fact, key: i64, at: Stamp, plan: &mut Plan, open: &mut Open) {
    if let Some(i) = open.facts.remove(&(fact, key)) {
        plan.fact_versions[i].closed = Some(at);
    } else if !open.facts_truncated_before.contains(&fact)
        && open.facts_closed_before.insert((fact, key))
    {
        plan.fact_closes.push(Close {
            target: fact,
            key,
            at,
        });
    }
}

/// `NOT NULL` contract columns without a value hold [`UNKNOWN`].
fn fill_unknown(dim: Dim, mut values: Vec<Option<String>>) -> Vec<Option<String>> {
    for (value, column) in values.iter_mut().zip(dim.columns()) {
        if value.is_none() && column.not_null {
            *value = Some(UNKNOWN.to_owned());
        }
    }
    values
}

/// A strict `YYYY-MM-DD` date, as PostgreSQL's text form; `None` if it is not one.
pub fn parse_date(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let shape = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape {
        return None;
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// `s` (a PostgreSQL numeric's text) if it fits `numeric(precision, scale)` without
/// rounding; trailing fractional zeros do not count.
pub fn fit_numeric(s: &str, precision: usize, scale: usize) -> Option<String> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    (fraction.len() <= scale && whole.len() <= precision - scale).then(|| s.to_owned())
}

/// A source row as a JSON object (for `totesys_cdc.repair` and the mirrors).
pub fn row_json(row: &TextRow) -> serde_json::Value {
    serde_json::Value::Object(
        row.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_ref().map_or(serde_json::Value::Null, |s| {
                        serde_json::Value::String(s.clone())
                    }),
                )
            })
            .collect(),
    )
}

/// A source row from its JSON object.
pub fn row_from_json(value: &serde_json::Value) -> Option<TextRow> {
    let object = value.as_object()?;
    Some(
        object
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dates_must_be_strict_iso() {
        assert_eq!(parse_date("2026-02-28").as_deref(), Some("2026-02-28"));
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "tomorrow",
            "2026-2-28",
            "26-02-28",
            "2026-02-28 ",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numerics_fit_without_rounding_or_not_at_all() {
        for good in [
            "2.50",
            "3.1",
            "3.100",
            "12345678.99",
            "-1.5",
            "0",
            "0.00",
            "007.10",
        ] {
            assert_eq!(fit_numeric(good, 10, 2).as_deref(), Some(good), "{good}");
        }
        for bad in [
            "2.345",
            "123456789.1",
            "1e5",
            "NaN",
            "",
            ".",
            "1.2.3",
            "--1",
        ] {
            assert_eq!(fit_numeric(bad, 10, 2), None, "{bad:?}");
        }
    }

    fn row(pairs: &[(&str, String)]) -> TextRow {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some(v.clone())))
            .collect()
    }

    /// A random change: (table, op, key, referenced key, value).
    type RawChange = (u8, u8, i64, i64, u8);
    /// A fact version: (key, values, from, to).
    type FactRow = (i64, Vec<Option<String>>, i64, Option<i64>);

    /// One random source change over a few keys of department, staff and sales_order.
    fn change() -> impl Strategy<Value = RawChange> {
        (0u8..3, 0u8..3, 1i64..4, 1i64..4, 0u8..4)
    }

    fn to_change(ordinal: u64, (table, op, key, other, value): RawChange) -> Change {
        let (name, after) = match table {
            0 => (
                "department",
                row(&[
                    ("department_id", key.to_string()),
                    ("department_name", format!("dept-{key}")),
                    ("location", format!("city-{value}")),
                ]),
            ),
            1 => (
                "staff",
                row(&[
                    ("staff_id", key.to_string()),
                    ("first_name", format!("first-{value}")),
                    ("last_name", "last".into()),
                    ("department_id", other.to_string()),
                    ("email_address", "a@b".into()),
                ]),
            ),
            _ => (
                "sales_order",
                row(&[
                    ("sales_order_id", key.to_string()),
                    ("staff_id", other.to_string()),
                    ("units_sold", value.to_string()),
                    ("unit_price", "2.50".into()),
                    ("agreed_delivery_date", "2026-01-01".into()),
                    ("created_at", "2026-01-01 10:00:00.000000".into()),
                ]),
            ),
        };
        let key_column = if table == 2 {
            "sales_order_id".to_owned()
        } else {
            source_key(name)
        };
        let (op, after, before) = match op {
            0 => (Op::Insert, Some(after), None),
            1 => (Op::Update, Some(after), None),
            _ => (
                Op::Delete,
                None,
                Some(row(&[(key_column.as_str(), key.to_string())])),
            ),
        };
        Change {
            table: name.to_owned(),
            op,
            ordinal,
            after,
            before,
        }
    }

    fn transactions(raw: Vec<Vec<RawChange>>) -> Vec<SourceTxn> {
        raw.into_iter()
            .enumerate()
            .map(|(i, changes)| SourceTxn {
                commit_lsn: Lsn(100 * (i as u64 + 1)),
                commit_ts_us: 1_000_000 * (i as i64 + 1),
                changes: changes
                    .into_iter()
                    .enumerate()
                    .map(|(o, c)| to_change(o as u64, c))
                    .collect(),
            })
            .collect()
    }

    /// The versions a sequence of plans leaves, as (dim, key, row, from, to): closes of
    /// earlier plans' versions applied as the warehouse would.
    fn history(plans: &[Plan]) -> Vec<(Dim, i64, DimRow, i64, Option<i64>)> {
        let mut out: Vec<(Dim, i64, DimRow, i64, Option<i64>)> = Vec::new();
        for plan in plans {
            for close in &plan.dim_closes {
                let open = out
                    .iter_mut()
                    .find(|v| v.0 == close.target && v.1 == close.key && v.4.is_none())
                    .expect("a close finds its open version");
                open.4 = Some(close.at.ts_us);
            }
            for v in &plan.dim_versions {
                out.push((
                    v.dim,
                    v.key,
                    v.row.clone(),
                    v.at.ts_us,
                    v.closed.map(|c| c.ts_us),
                ));
            }
        }
        out
    }

    fn fact_history(plans: &[Plan]) -> Vec<FactRow> {
        let mut out: Vec<FactRow> = Vec::new();
        for plan in plans {
            for close in &plan.fact_closes {
                if let Some(open) = out.iter_mut().find(|v| v.0 == close.key && v.3.is_none()) {
                    open.3 = Some(close.at.ts_us);
                }
            }
            for v in &plan.fact_versions {
                out.push((
                    v.key,
                    v.values.clone(),
                    v.at.ts_us,
                    v.closed.map(|c| c.ts_us),
                ));
            }
        }
        out
    }

    proptest! {
        /// Planning transactions one at a time or all together gives the same history;
        /// every key has at most one open version, which is the model's current row,
        /// and the current rows equal a recomputation from the mirrors.
        #[test]
        fn batching_never_changes_the_history(
            raw in proptest::collection::vec(proptest::collection::vec(change(), 1..5), 1..12)
        ) {
            let txns = transactions(raw);
            let mut one_by_one = Model::default();
            let plans: Vec<Plan> = txns.iter().map(|t| one_by_one.plan(std::slice::from_ref(t))).collect();
            let mut batched = Model::default();
            let plan = batched.plan(&txns);
            let separate = history(&plans);
            prop_assert_eq!(&separate, &history(std::slice::from_ref(&plan)));
            prop_assert_eq!(fact_history(&plans), fact_history(std::slice::from_ref(&plan)));
            for (dim, key, row, from, to) in &separate {
                prop_assert!(to.is_none_or(|to| to >= *from));
                let open = separate.iter().filter(|v| v.0 == *dim && v.1 == *key && v.4.is_none()).count();
                prop_assert!(open <= 1, "{:?} {} has {} open versions", dim, key, open);
                if to.is_none() {
                    prop_assert_eq!(batched.dim(*dim, *key), Some(row));
                }
            }
            for (dim, rows) in &batched.dims {
                for (key, row) in rows {
                    if !row.inferred && JOINED.contains(&dim.source()) {
                        let recomputed = batched.compute(*dim, *key);
                        prop_assert_eq!(recomputed.as_ref(), Some(row));
                    }
                }
            }
        }
    }
}
