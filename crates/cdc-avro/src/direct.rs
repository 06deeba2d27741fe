//! Decoding straight from bytes to `cdc_core` values along a [`TablePlan`].
//!
//! The mirror of [`crate::encode`]: it reads a body written with the schema derived for the
//! plan's table shape without building `apache_avro::types::Value`s first, which saves most
//! of the allocations of [`crate::decode_value`] followed by [`crate::decode_event`]. The
//! tests decode every body both ways and compare. Every length is checked by the same
//! [`Reader`] as the generic decoder; nothing here can panic.

use cdc_core::{Lsn, Op, Row, Value, Xid};

use crate::decimal::decimal_bytes_to_numeric;
use crate::decode::{Names, Reader};
use crate::error::Result;
use crate::event::{DecodedEvent, SourceInfo};
use crate::mapping::{Kind, TablePlan};

/// Nesting allowed for array columns (arrays of arrays do not occur; one level is used).
const MAX_ARRAY_DEPTH: usize = 4;

/// Reads a key body: the key columns' values, in key order.
pub(crate) fn read_key(plan: &TablePlan, body: &[u8]) -> Result<Row> {
    let names = Names::default();
    let mut r = Reader::new(body, &names);
    let mut key = Vec::with_capacity(plan.key.len());
    for column in plan.key_columns() {
        r.path.push(&column.field);
        key.push(read_field(&mut r, &column.kind, column.key_nullable)?);
        r.path.pop();
    }
    r.finish()?;
    Ok(key)
}

/// Reads an envelope body.
pub(crate) fn read_envelope(plan: &TablePlan, body: &[u8]) -> Result<DecodedEvent> {
    let names = Names::default();
    let mut r = Reader::new(body, &names);
    r.path.push("before");
    let mut before = read_image(&mut r, plan)?;
    r.path.pop();
    r.path.push("after");
    let mut after = read_image(&mut r, plan)?;
    r.path.pop();

    r.path.push("op");
    let op = match r.string()?.as_str() {
        "r" => Op::Read,
        "c" => Op::Insert,
        "u" => Op::Update,
        "d" => Op::Delete,
        "t" => Op::Truncate,
        other => return Err(r.error(format!("unknown op {other:?}"))),
    };
    r.path.pop();

    r.path.push("source");
    let source = read_source(&mut r)?;
    r.path.pop();

    r.path.push("ts_us");
    let ts_us = r.long()?;
    r.path.pop();

    r.path.push("unchanged_toast");
    loop {
        let count = r.block_count(1, "array")?;
        if count == 0 {
            break;
        }
        for _ in 0..count {
            let name = r.string()?;
            let slot = plan
                .columns
                .iter()
                .position(|c| c.field == name)
                .and_then(|i| after.as_mut().and_then(|row| row.get_mut(i)));
            match slot {
                Some(slot) => *slot = Value::UnchangedToast,
                None => {
                    return Err(r.error(format!(
                        "names {name:?}, which is not a field of the after image"
                    )))
                }
            }
        }
    }
    r.path.pop();

    r.path.push("before_identity_only");
    let before_identity_only = r.boolean()?;
    r.path.pop();
    r.finish()?;

    if before_identity_only {
        if let Some(row) = before.as_mut() {
            for (value, column) in row.iter_mut().zip(&plan.columns) {
                if !column.identity {
                    *value = Value::Null;
                }
            }
        }
    }
    Ok(DecodedEvent {
        op,
        before,
        after,
        source,
        ts_us,
        before_identity_only,
    })
}

fn read_source(r: &mut Reader<'_, '_>) -> Result<SourceInfo> {
    let unsigned = |r: &mut Reader<'_, '_>, name: &'static str| -> Result<u64> {
        r.path.push(name);
        let v = r.long()?;
        let v = u64::try_from(v).map_err(|_| r.error(format!("negative value {v}")))?;
        r.path.pop();
        Ok(v)
    };
    let lsn = Lsn(unsigned(r, "lsn")?);
    let commit_lsn = Lsn(unsigned(r, "commit_lsn")?);
    r.path.push("xid");
    let xid = match r.branch(2)? {
        0 => None,
        _ => {
            let v = r.long()?;
            Some(Xid(u32::try_from(v).map_err(|_| {
                r.error(format!("{v} is not a 32-bit transaction id"))
            })?))
        }
    };
    r.path.pop();
    let commit_ts_us = r.long()?;
    let ordinal = unsigned(r, "ordinal")?;
    let snapshot = r.boolean()?;
    let schema = r.string()?;
    let table = r.string()?;
    Ok(SourceInfo {
        lsn,
        commit_lsn,
        xid,
        commit_ts_us,
        ordinal,
        snapshot,
        schema,
        table,
    })
}

/// `["null", Value]`: no row, or one value per column.
fn read_image<'s>(r: &mut Reader<'_, 's>, plan: &'s TablePlan) -> Result<Option<Row>> {
    if r.branch(2)? == 0 {
        return Ok(None);
    }
    let mut row = Vec::with_capacity(plan.columns.len());
    for column in &plan.columns {
        r.path.push(&column.field);
        row.push(read_field(r, &column.kind, column.value_nullable)?);
        r.path.pop();
    }
    Ok(Some(row))
}

fn read_field(r: &mut Reader<'_, '_>, kind: &Kind, nullable: bool) -> Result<Value> {
    if nullable && r.branch(2)? == 0 {
        return Ok(Value::Null);
    }
    read_kind(r, kind, 0)
}

fn read_kind(r: &mut Reader<'_, '_>, kind: &Kind, depth: usize) -> Result<Value> {
    Ok(match kind {
        Kind::Boolean => Value::Bool(r.boolean()?),
        Kind::Int2 => {
            let v = r.int()?;
            Value::Int16(
                i16::try_from(v).map_err(|_| r.error(format!("{v} does not fit a smallint")))?,
            )
        }
        Kind::Int4 => Value::Int32(r.int()?),
        Kind::Int8 => Value::Int64(r.long()?),
        Kind::Float4 => Value::Float32(r.float()?),
        Kind::Float8 => Value::Float64(r.double()?),
        Kind::Decimal { scale, .. } => {
            let bytes = r.bytes("decimal")?;
            Value::Numeric(decimal_bytes_to_numeric(&bytes, *scale).map_err(|e| r.error(e))?)
        }
        Kind::NumericText => Value::Numeric(r.string()?),
        Kind::Text => Value::Text(r.string()?),
        Kind::Json => Value::Json(r.string()?),
        Kind::Other => Value::Other(r.string()?),
        Kind::Bytea => Value::Bytes(r.bytes("bytes")?),
        Kind::Date => Value::Date(r.int()?),
        Kind::Time => Value::Time(r.long()?),
        Kind::Timestamp => Value::Timestamp(r.long()?),
        Kind::TimestampTz => Value::TimestampTz(r.long()?),
        Kind::Uuid => {
            // As the generic reader: 16 raw bytes, or the text form.
            let bytes = r.bytes("uuid")?;
            match <[u8; 16]>::try_from(bytes.as_slice()) {
                Ok(raw) => Value::Uuid(raw),
                Err(_) => match std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| apache_avro::Uuid::parse_str(s).ok())
                {
                    Some(uuid) => Value::Uuid(*uuid.as_bytes()),
                    None => return Err(r.error("uuid is neither 16 bytes nor UUID text")),
                },
            }
        }
        Kind::Array(element) => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(r.error("arrays nested too deeply"));
            }
            let mut items = Vec::new();
            loop {
                // Every item is a union index at least: one byte or more.
                let count = r.block_count(1, "array")?;
                if count == 0 {
                    break;
                }
                items.reserve(count.min(4096));
                for _ in 0..count {
                    items.push(match r.branch(2)? {
                        0 => Value::Null,
                        _ => read_kind(r, element, depth + 1)?,
                    });
                }
            }
            Value::Array(items)
        }
    })
}
