//! The lake's `processed/` zone: the modelled tables as Parquet, written after applies.
//!
//! Each export covers the applies between two watermarks `(from, to]` and writes, per
//! modelled table, the version rows those applies created or closed, as they stand:
//! `processed/<dim_x | fact_x>/<from>-<to>.parquet` (LSNs as 16 hex digits, so names
//! sort in apply order). A row closed later appears again in a later file with its
//! `valid_to`; readers keep the last file's copy of each version (`version_id`, or the
//! fact's record id). The exported watermark is kept in `totesys_cdc.processed`; an
//! export interrupted by a crash is redone under the same name, so nothing is lost or
//! written twice.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Int32Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use cdc_core::Lsn;
use cdc_lake::{LakeStore, ParquetOptions};
use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};
use object_store::{ObjectStoreExt, PutPayload};
use tokio_postgres::types::Type;
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

/// The queries of the processed tables: (name, SQL over `$1` < LSN ≤ `$2`).
fn queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dim in Dim::ALL {
        out.push((
            dim.table().to_owned(),
            format!(
                "SELECT * FROM {h} WHERE (source_commit_lsn > $1::text::pg_lsn AND source_commit_lsn <= $2::text::pg_lsn)
                    OR (closed_commit_lsn > $1::text::pg_lsn AND closed_commit_lsn <= $2::text::pg_lsn)
                 ORDER BY version_id",
                h = quote(&dim.history_table())
            ),
        ));
    }
    for fact in Fact::ALL {
        out.push((
            fact.table().to_owned(),
            format!(
                "SELECT f.*, v.valid_from, v.valid_to, v.is_current, v.source_commit_lsn,
                        v.source_ordinal, v.closed_commit_lsn
                 FROM {f} f JOIN {v} v USING ({r})
                 WHERE (v.source_commit_lsn > $1::text::pg_lsn AND v.source_commit_lsn <= $2::text::pg_lsn)
                    OR (v.closed_commit_lsn > $1::text::pg_lsn AND v.closed_commit_lsn <= $2::text::pg_lsn)
                 ORDER BY {r}",
                f = quote(fact.table()),
                v = quote(&fact.version_table()),
                r = quote(fact.record_id())
            ),
        ));
    }
    out
}

/// Writes the processed files for `(from, to]` and records `to` as exported; returns the
/// number of files written.
pub async fn export(
    client: &Client,
    lake: &LakeStore,
    from: Lsn,
    to: Lsn,
) -> Result<usize, ModelerError> {
    if to <= from {
        return Ok(0);
    }
    let (from_text, to_text) = (from.to_string(), to.to_string());
    let mut files = 0;
    for (name, base) in queries() {
        // Numerics and LSNs travel as text; everything else keeps its type.
        let probe = client
            .prepare(&base)
            .await
            .map_err(ModelerError::sql(format!("prepare the export of {name}")))?;
        let select: Vec<String> = probe
            .columns()
            .iter()
            .map(|c| match *c.type_() {
                Type::NUMERIC | Type::PG_LSN => format!("{}::text AS {0}", quote(c.name())),
                _ => quote(c.name()),
            })
            .collect();
        let sql = format!("SELECT {} FROM ({base}) q", select.join(", "));
        let statement = client
            .prepare(&sql)
            .await
            .map_err(ModelerError::sql(format!("prepare the export of {name}")))?;
        let rows = client
            .query(&statement, &[&from_text, &to_text])
            .await
            .map_err(ModelerError::sql(format!("export {name}")))?;
        if rows.is_empty() {
            continue;
        }
        let batch =
            to_batch(statement.columns(), &rows).map_err(|reason| ModelerError::LakeShape {
                what: format!("processed {name}"),
                reason,
            })?;
        let bytes = cdc_lake::encode(
            &batch,
            &ParquetOptions::default(),
            vec![
                ("totesys_cdc.from_lsn".into(), from_text.clone()),
                ("totesys_cdc.to_lsn".into(), to_text.clone()),
            ],
        )
        .map_err(ModelerError::lake(format!("encode processed {name}")))?;
        let path = lake
            .root
            .clone()
            .join("processed")
            .join(name.as_str())
            .join(format!("{:016X}-{:016X}.parquet", from.0, to.0).as_str());
        lake.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(ModelerError::lake(format!("write {path}")))?;
        files += 1;
    }
    client
        .execute(
            "INSERT INTO totesys_cdc.processed (id, commit_lsn, written_at)
             VALUES (true, $1::text::pg_lsn, now())
             ON CONFLICT (id) DO UPDATE SET commit_lsn = EXCLUDED.commit_lsn,
                 written_at = EXCLUDED.written_at",
            &[&to_text],
        )
        .await
        .map_err(ModelerError::sql("record the processed watermark"))?;
    Ok(files)
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
            Type::TIME => {
                let mut b = Time64MicrosecondBuilder::with_capacity(rows.len());
                for row in rows {
                    let t = row.try_get::<_, Option<NaiveTime>>(i).map_err(get_err)?;
                    b.append_option(t.map(|t| {
                        i64::from(t.num_seconds_from_midnight()) * 1_000_000
                            + i64::from(t.nanosecond() / 1000)
                    }));
                }
                (
                    DataType::Time64(TimeUnit::Microsecond),
                    Arc::new(b.finish()),
                )
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
