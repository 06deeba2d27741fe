//! The lake's `processed/` zone: the warehouse's star schema as Delta tables, kept by the
//! modeler in step with its watermark.
//!
//! One table per warehouse table, under `processed/<name>/`:
//! - `dim_date` and the contract dimensions (`dim_staff`, …): their current rows;
//! - `dim_<x>_history`: every SCD2 version of each dimension;
//! - the facts (`fact_sales_order`, …): every fact row with its version's validity
//!   (`valid_from`, `valid_to`, `is_current`, …), so `WHERE is_current` gives each order's
//!   current version.
//!
//! Each export brings each table that changed from the watermark its transaction record
//! holds to the warehouse's watermark in one commit ([`cdc_lake::Upsert`]): the rows of
//! the keys that changed in between are replaced by their rows now. A table with no record
//! (a new lake) is written whole. The record is the table's own watermark, so an export
//! interrupted by a crash is redone from where each table stands, and none is written
//! twice. `totesys_cdc.processed` keeps the watermark every table has reached.
//!
//! Numerics, times and LSNs are PostgreSQL's text (Delta has no time of day).

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use cdc_core::Lsn;
use cdc_lake::{LakeTables, Upsert, Upserted};
use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use crate::spec::{Dim, Fact};
use crate::warehouse::quote;
use crate::ModelerError;

/// The exported watermark.
pub async fn exported(client: &Client) -> Result<Lsn, ModelerError> {
    let row = client
        .query_opt("SELECT commit_lsn::text FROM totesys_cdc.processed", &[])
        .await
        .map_err(ModelerError::sql("read totesys_cdc.processed"))?;
    match row {
        None => Ok(Lsn::ZERO),
        Some(row) => {
            let text: &str = row.get(0);
            text.parse()
                .map_err(|_| ModelerError::Warehouse(format!("bad processed LSN {text:?}")))
        }
    }
}

/// What a processed table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The calendar: rows are only ever added.
    Calendar,
    /// A contract dimension's current rows.
    Current(Dim),
    /// A dimension's SCD2 versions.
    History(Dim),
    /// A fact's rows with their versions' validity.
    Fact(Fact),
}

/// A table of the processed zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedTable {
    /// Its name: its directory under `processed/` and the warehouse table it mirrors.
    pub name: String,
    /// Its key column.
    pub key: &'static str,
    kind: Kind,
}

/// Every table of the processed zone.
pub fn tables() -> Vec<ProcessedTable> {
    let mut out = vec![ProcessedTable {
        name: "dim_date".into(),
        key: "date_id",
        kind: Kind::Calendar,
    }];
    for dim in Dim::ALL {
        out.push(ProcessedTable {
            name: dim.table().into(),
            key: dim.key(),
            kind: Kind::Current(dim),
        });
        out.push(ProcessedTable {
            name: dim.history_table(),
            key: "version_id",
            kind: Kind::History(dim),
        });
    }
    for fact in Fact::ALL {
        out.push(ProcessedTable {
            name: fact.table().into(),
            key: fact.record_id(),
            kind: Kind::Fact(fact),
        });
    }
    out
}

/// Rows of `alias` created or closed by commits in `($1, $2]`.
fn changed(alias: &str) -> String {
    format!(
        "(({a}.source_commit_lsn > $1::text::pg_lsn AND {a}.source_commit_lsn <= $2::text::pg_lsn)
          OR ({a}.closed_commit_lsn > $1::text::pg_lsn AND {a}.closed_commit_lsn <= $2::text::pg_lsn))",
        a = alias
    )
}

impl ProcessedTable {
    /// The query of its rows: all of them, or (`since`) those of keys changed by commits
    /// in `($1, $2]`.
    fn rows_sql(&self, since: bool) -> String {
        match self.kind {
            Kind::Calendar => "SELECT * FROM dim_date ORDER BY date_id".into(),
            Kind::Current(dim) => {
                let filter = if since {
                    format!(
                        "WHERE {k} IN (SELECT h.{k} FROM {h} h WHERE {c})",
                        k = quote(dim.key()),
                        h = quote(&dim.history_table()),
                        c = changed("h")
                    )
                } else {
                    String::new()
                };
                format!(
                    "SELECT * FROM {t} {filter} ORDER BY {k}",
                    t = quote(dim.table()),
                    k = quote(dim.key())
                )
            }
            Kind::History(dim) => format!(
                "SELECT * FROM {h} h {w} ORDER BY version_id",
                h = quote(&dim.history_table()),
                w = if since {
                    format!("WHERE {}", changed("h"))
                } else {
                    String::new()
                }
            ),
            Kind::Fact(fact) => format!(
                "SELECT f.*, v.valid_from, v.valid_to, v.is_current, v.source_commit_lsn,
                        v.source_ordinal, v.closed_commit_lsn
                 FROM {f} f JOIN {v} v USING ({r}) {w}
                 ORDER BY {r}",
                f = quote(fact.table()),
                v = quote(&fact.version_table()),
                r = quote(fact.record_id()),
                w = if since {
                    format!("WHERE {}", changed("v"))
                } else {
                    String::new()
                }
            ),
        }
    }

    /// The query of the keys changed by commits in `($1, $2]`, for a table whose rows can
    /// go (a current dimension loses a deleted key); `None`: the keys of the rows.
    fn keys_sql(&self) -> Option<String> {
        match self.kind {
            Kind::Current(dim) => Some(format!(
                "SELECT DISTINCT h.{k}::int8 FROM {h} h WHERE {c}",
                k = quote(dim.key()),
                h = quote(&dim.history_table()),
                c = changed("h")
            )),
            _ => None,
        }
    }
}

/// Brings every processed table to the watermark `to`; returns the number of tables
/// committed.
pub async fn export(client: &Client, tables: &LakeTables, to: Lsn) -> Result<usize, ModelerError> {
    let through = i64::try_from(to.0)
        .map_err(|_| ModelerError::Warehouse(format!("watermark {to} is beyond a table record")))?;
    let mut committed = 0;
    for table in self::tables() {
        committed += usize::from(export_table(client, tables, &table, to, through).await?);
    }
    client
        .execute(
            "INSERT INTO totesys_cdc.processed (id, commit_lsn, written_at)
             VALUES (true, $1::text::pg_lsn, now())
             ON CONFLICT (id) DO UPDATE SET commit_lsn = EXCLUDED.commit_lsn,
                 written_at = EXCLUDED.written_at",
            &[&to.to_string()],
        )
        .await
        .map_err(ModelerError::sql("record the processed watermark"))?;
    Ok(committed)
}

/// Brings one table to `to`; whether it committed (a table already there, or with no
/// change since its record, commits nothing).
async fn export_table(
    client: &Client,
    tables: &LakeTables,
    table: &ProcessedTable,
    to: Lsn,
    through: i64,
) -> Result<bool, ModelerError> {
    let name = table.name.as_str();
    let lake = |what: &str| ModelerError::lake(format!("{what} processed table {name}"));
    for _ in 0..3 {
        let state = tables.modelled_state(name).await.map_err(lake("read"))?;
        if state.record.is_some_and(|r| r >= through) {
            return Ok(false);
        }
        let since = match (table.kind, state.record) {
            // The calendar only grows: written again when it has rows the table lacks.
            (Kind::Calendar, _) => {
                let rows: i64 = client
                    .query_one("SELECT count(*) FROM dim_date", &[])
                    .await
                    .map_err(ModelerError::sql("count dim_date"))?
                    .get(0);
                if state.record.is_some() && u64::try_from(rows).ok() == Some(state.rows) {
                    return Ok(false);
                }
                None
            }
            (_, Some(record)) => Some(Lsn(u64::try_from(record).unwrap_or(0))),
            (_, None) => None,
        };
        let (from_text, to_text) = (since.unwrap_or(Lsn::ZERO).to_string(), to.to_string());
        let params: Vec<&(dyn ToSql + Sync)> = vec![&from_text, &to_text];
        let params: &[&(dyn ToSql + Sync)] = if since.is_some() { &params } else { &[] };
        let rows = select(client, name, &table.rows_sql(!params.is_empty()), params).await?;
        let keys = if params.is_empty() {
            None
        } else {
            let keys = match table.keys_sql() {
                Some(sql) => client
                    .query(&sql, params)
                    .await
                    .map_err(ModelerError::sql(format!("changed keys of {name}")))?
                    .iter()
                    .map(|row| row.get::<_, i64>(0))
                    .collect(),
                None => key_column(&rows, table.key)?,
            };
            if keys.is_empty() {
                return Ok(false);
            }
            Some(keys)
        };
        let upsert = Upsert {
            name: table.name.clone(),
            key: table.key.to_owned(),
            expect: state.record,
            through,
            keys,
            rows,
        };
        match tables.upsert(upsert).await.map_err(lake("write"))? {
            Upserted::Committed { version } => {
                tracing::debug!(table = name, version, watermark = %to, "processed table written");
                return Ok(true);
            }
            // Another modeler moved it: read where it stands and go on from there.
            Upserted::Moved { record } => {
                tracing::info!(
                    table = name,
                    ?record,
                    "processed table moved under the export; reading it again"
                );
            }
        }
    }
    Err(ModelerError::Warehouse(format!(
        "processed table {name} kept moving under the export: is a second modeler running on this lake?"
    )))
}

/// The values of column `key` of `rows`, none null.
fn key_column(rows: &RecordBatch, key: &str) -> Result<Vec<i64>, ModelerError> {
    let bad = |reason: String| ModelerError::LakeShape {
        what: "processed rows".into(),
        reason,
    };
    let column = rows
        .column_by_name(key)
        .ok_or_else(|| bad(format!("no key column {key}")))?;
    cdc_lake::key_values(column)
        .map_err(|reason| bad(format!("key column {key}: {reason}")))?
        .into_iter()
        .map(|v| v.ok_or_else(|| bad(format!("a null {key}"))))
        .collect()
}

/// The rows of `base` as one batch, numerics, times and LSNs as text.
async fn select(
    client: &Client,
    name: &str,
    base: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<RecordBatch, ModelerError> {
    let probe = client
        .prepare(base)
        .await
        .map_err(ModelerError::sql(format!("prepare the export of {name}")))?;
    let select: Vec<String> = probe
        .columns()
        .iter()
        .map(|c| match *c.type_() {
            Type::NUMERIC | Type::PG_LSN | Type::TIME => {
                format!("{}::text AS {0}", quote(c.name()))
            }
            _ => quote(c.name()),
        })
        .collect();
    let sql = format!("SELECT {} FROM ({base}) q", select.join(", "));
    let statement = client
        .prepare(&sql)
        .await
        .map_err(ModelerError::sql(format!("prepare the export of {name}")))?;
    let rows = client
        .query(&statement, params)
        .await
        .map_err(ModelerError::sql(format!("export {name}")))?;
    to_batch(statement.columns(), &rows).map_err(|reason| ModelerError::LakeShape {
        what: format!("processed {name}"),
        reason,
    })
}

/// The rows as one Arrow batch, typed after their PostgreSQL columns.
fn to_batch(columns: &[tokio_postgres::Column], rows: &[Row]) -> Result<RecordBatch, String> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let name = column.name();
        let get_err = |e: tokio_postgres::Error| format!("{name}: {e}");
        let (data_type, array): (DataType, ArrayRef) = match *column.type_() {
            Type::INT4 => {
                let mut b = Int32Builder::with_capacity(rows.len());
                for row in rows {
                    b.append_option(row.try_get::<_, Option<i32>>(i).map_err(get_err)?);
                }
                (DataType::Int32, Arc::new(b.finish()))
            }
            Type::INT8 => {
                let mut b = Int64Builder::with_capacity(rows.len());
                for row in rows {
                    b.append_option(row.try_get::<_, Option<i64>>(i).map_err(get_err)?);
                }
                (DataType::Int64, Arc::new(b.finish()))
            }
            Type::BOOL => {
                let mut b = BooleanBuilder::with_capacity(rows.len());
                for row in rows {
                    b.append_option(row.try_get::<_, Option<bool>>(i).map_err(get_err)?);
                }
                (DataType::Boolean, Arc::new(b.finish()))
            }
            Type::DATE => {
                let mut b = Date32Builder::with_capacity(rows.len());
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("no epoch")?;
                for row in rows {
                    let d = row.try_get::<_, Option<NaiveDate>>(i).map_err(get_err)?;
                    b.append_option(d.map(|d| (d - epoch).num_days() as i32));
                }
                (DataType::Date32, Arc::new(b.finish()))
            }
            Type::TIMESTAMPTZ => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len());
                for row in rows {
                    let t = row
                        .try_get::<_, Option<DateTime<Utc>>>(i)
                        .map_err(get_err)?;
                    b.append_option(t.map(|t| t.timestamp_micros()));
                }
                let array = b.finish().with_timezone("UTC");
                (
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    Arc::new(array),
                )
            }
            _ => {
                let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                for row in rows {
                    b.append_option(row.try_get::<_, Option<&str>>(i).map_err(get_err)?);
                }
                (DataType::Utf8, Arc::new(b.finish()))
            }
        };
        fields.push(Field::new(name, data_type, true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
}
