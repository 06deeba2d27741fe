//! Table contents as PostgreSQL renders them, and the same rebuilt from change events,
//! for comparing what the pipeline carried with what the source has.

use std::collections::BTreeMap;

use cdc_core::{Op, Value};

/// A value as PostgreSQL renders it in [`source_rows`], for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// Integers, and timestamps as microseconds since the epoch.
    Int(i64),
    /// Everything else, as PostgreSQL's text.
    Text(String),
    /// Booleans.
    Bool(bool),
}

/// A captured value as the [`Cell`] [`source_rows`] renders it as.
pub fn cell(value: &Value) -> Cell {
    match value {
        Value::Null => Cell::Null,
        Value::Int16(v) => Cell::Int(i64::from(*v)),
        Value::Int32(v) => Cell::Int(i64::from(*v)),
        Value::Int64(v) => Cell::Int(*v),
        Value::Timestamp(v) | Value::TimestampTz(v) => Cell::Int(*v),
        Value::Numeric(s) | Value::Text(s) | Value::Other(s) => Cell::Text(s.clone()),
        Value::Bool(b) => Cell::Bool(*b),
        other => panic!("unexpected totesys value {other:?}"),
    }
}

/// Every row of `table` keyed by its first column, each column rendered by SQL:
/// integers as bigint, timestamps as microseconds since the epoch, everything else as text.
pub async fn source_rows(client: &tokio_postgres::Client, table: &str) -> BTreeMap<i64, Vec<Cell>> {
    let columns = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .expect("column query");
    let exprs: Vec<String> = columns
        .iter()
        .map(|c| {
            let (name, kind): (String, String) = (c.get(0), c.get(1));
            match kind.as_str() {
                "integer" | "smallint" | "bigint" => format!("\"{name}\"::int8::text"),
                "timestamp without time zone" => {
                    format!("(extract(epoch FROM \"{name}\") * 1000000)::int8::text")
                }
                "boolean" => format!("'b:' || \"{name}\"::text"),
                _ => format!("'t:' || \"{name}\"::text"),
            }
        })
        .collect();
    let sql = format!("SELECT {} FROM public.\"{table}\"", exprs.join(", "));
    let mut rows = BTreeMap::new();
    for row in client.query(&sql, &[]).await.expect("table query") {
        let cells: Vec<Cell> = (0..columns.len())
            .map(|i| match row.get::<_, Option<String>>(i) {
                None => Cell::Null,
                Some(s) if s.starts_with("t:") => Cell::Text(s[2..].to_owned()),
                Some(s) if s.starts_with("b:") => Cell::Bool(&s[2..] == "true"),
                Some(s) => Cell::Int(s.parse().expect("integer")),
            })
            .collect();
        let Cell::Int(key) = cells[0] else {
            panic!("key")
        };
        rows.insert(key, cells);
    }
    rows
}

/// Replays changes (`op`, `before`, `after`) of one table in position order; rows are
/// keyed by their first column.
pub fn replay<'a>(
    changes: impl IntoIterator<Item = (Op, Option<&'a [Value]>, Option<&'a [Value]>)>,
) -> BTreeMap<i64, Vec<Cell>> {
    let mut rows = BTreeMap::new();
    let key = |row: &[Value]| match cell(&row[0]) {
        Cell::Int(k) => k,
        other => panic!("key {other:?}"),
    };
    for (op, before, after) in changes {
        match op {
            Op::Read | Op::Insert | Op::Update => {
                let after = after.expect("an insert or update has a new row");
                assert!(!after.contains(&Value::UnchangedToast));
                if let Some(before) = before {
                    rows.remove(&key(before));
                }
                rows.insert(key(after), after.iter().map(cell).collect());
            }
            Op::Delete => {
                rows.remove(&key(before.expect("a delete has an old row")));
            }
            Op::Truncate => rows.clear(),
        }
    }
    rows
}
