//! Avro binary encoding of keys and envelopes, straight from `Value`s to bytes.
//!
//! The encoder walks a [`TablePlan`] instead of building `apache_avro::types::Value`s: no
//! per-field allocation, no validation pass. Tests check that its bytes equal what
//! `apache_avro::to_avro_datum` writes for the same data and that `apache_avro` reads them
//! back.

use cdc_core::{ChangeEvent, ReplicaIdentity, Value};

use crate::decimal::numeric_to_decimal_bytes;
use crate::error::{quote, AvroError, Result};
use crate::mapping::{ColumnPlan, Kind, TablePlan};

/// Appends the zig-zag varint of `v` (Avro `int` and `long`).
pub(crate) fn put_long(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

/// Appends Avro `bytes`: length, then the bytes.
pub(crate) fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_long(buf, len_i64(bytes.len()));
    buf.extend_from_slice(bytes);
}

/// A length as Avro's `long` (a slice is never longer than `isize::MAX`).
fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// Appends the 36-character lowercase hyphenated form of a UUID, as an Avro `string`.
fn put_uuid(buf: &mut Vec<u8>, uuid: &[u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    put_long(buf, 36);
    for (i, b) in uuid.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            buf.push(b'-');
        }
        let digit = |nibble: u8| HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
        buf.push(digit(b >> 4));
        buf.push(digit(b & 0x0F));
    }
}

/// Which image of the row is being written, for error messages and placeholders.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Image {
    Key,
    Before { identity_only: bool },
    After,
}

/// What a `Value` variant is called in messages.
fn variant_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::UnchangedToast => "unchanged-TOAST",
        Value::Bool(_) => "Bool",
        Value::Int16(_) => "Int16",
        Value::Int32(_) => "Int32",
        Value::Int64(_) => "Int64",
        Value::Float32(_) => "Float32",
        Value::Float64(_) => "Float64",
        Value::Numeric(_) => "Numeric",
        Value::Text(_) => "Text",
        Value::Bytes(_) => "Bytes",
        Value::Date(_) => "Date",
        Value::Time(_) => "Time",
        Value::Timestamp(_) => "Timestamp",
        Value::TimestampTz(_) => "TimestampTz",
        Value::Uuid(_) => "Uuid",
        Value::Json(_) => "Json",
        Value::Array(_) => "Array",
        Value::Other(_) => "Other",
    }
}

/// Encodes the key record of `row` (a full row in table column order).
pub(crate) fn encode_key(plan: &TablePlan, row: &[Value], buf: &mut Vec<u8>) -> Result<()> {
    check_len(plan, row)?;
    for &index in &plan.key {
        if let (Some(column), Some(value)) = (plan.columns.get(index), row.get(index)) {
            put_field(plan, column, column.key_nullable, value, Image::Key, buf)?;
        }
    }
    Ok(())
}

/// Encodes the envelope of `event`, stamped `ts_us`.
pub(crate) fn encode_envelope(
    plan: &TablePlan,
    event: &ChangeEvent,
    ts_us: i64,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let identity_only =
        event.before.is_some() && event.table.replica_identity != ReplicaIdentity::Full;
    match &event.before {
        None => put_long(buf, 0),
        Some(row) => {
            put_long(buf, 1);
            put_row(plan, row, Image::Before { identity_only }, buf)?;
        }
    }
    match &event.after {
        None => put_long(buf, 0),
        Some(row) => {
            put_long(buf, 1);
            put_row(plan, row, Image::After, buf)?;
        }
    }
    let mut op = [0u8; 4];
    put_bytes(buf, event.op.code().encode_utf8(&mut op).as_bytes());
    // source
    put_long(buf, long_of(plan, "LSN", event.lsn.as_u64())?);
    put_long(
        buf,
        long_of(plan, "commit LSN", event.position.commit_lsn.as_u64())?,
    );
    match event.transaction.xid {
        None => put_long(buf, 0),
        Some(xid) => {
            put_long(buf, 1);
            put_long(buf, i64::from(xid.0));
        }
    }
    put_long(buf, event.transaction.commit_time_micros);
    put_long(buf, long_of(plan, "ordinal", event.position.ordinal)?);
    buf.push(u8::from(event.snapshot));
    put_bytes(buf, event.table.name.schema.as_bytes());
    put_bytes(buf, event.table.name.name.as_bytes());
    // ts_us
    put_long(buf, ts_us);
    // unchanged_toast: one block with every after-image field that was not sent.
    let toasted = event.after.as_deref().map_or(0, |row| {
        row.iter()
            .filter(|v| matches!(v, Value::UnchangedToast))
            .count()
    });
    if toasted > 0 {
        put_long(buf, len_i64(toasted));
        if let Some(row) = &event.after {
            for (column, value) in plan.columns.iter().zip(row) {
                if matches!(value, Value::UnchangedToast) {
                    put_bytes(buf, column.field.as_bytes());
                }
            }
        }
    }
    put_long(buf, 0);
    // before_identity_only
    buf.push(u8::from(identity_only));
    Ok(())
}

/// An unsigned position as an Avro `long`, refusing the top half of `u64`.
fn long_of(plan: &TablePlan, what: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| AvroError::OutOfRange {
        table: plan.table.clone(),
        what,
        value,
    })
}

fn check_len(plan: &TablePlan, row: &[Value]) -> Result<()> {
    if row.len() == plan.columns.len() {
        Ok(())
    } else {
        Err(AvroError::RowLength {
            table: plan.table.clone(),
            expected: plan.columns.len(),
            found: row.len(),
        })
    }
}

fn put_row(plan: &TablePlan, row: &[Value], image: Image, buf: &mut Vec<u8>) -> Result<()> {
    check_len(plan, row)?;
    for (column, value) in plan.columns.iter().zip(row) {
        let absent = match image {
            // A column PostgreSQL did not log in an identity-only old row.
            Image::Before { identity_only } => identity_only && !column.identity,
            Image::Key | Image::After => false,
        };
        if absent && matches!(value, Value::Null) && !column.value_nullable {
            put_zero(&column.kind, buf);
            continue;
        }
        put_field(plan, column, column.value_nullable, value, image, buf)?;
    }
    Ok(())
}

fn put_field(
    plan: &TablePlan,
    column: &ColumnPlan,
    nullable: bool,
    value: &Value,
    image: Image,
    buf: &mut Vec<u8>,
) -> Result<()> {
    match value {
        Value::Null if nullable => put_long(buf, 0),
        Value::Null => {
            return Err(AvroError::NullInNonNullField {
                table: plan.table.clone(),
                column: column.name.clone(),
            })
        }
        Value::UnchangedToast => match image {
            Image::After if nullable => put_long(buf, 0),
            Image::After => put_zero(&column.kind, buf),
            Image::Key | Image::Before { .. } => {
                return Err(AvroError::UnchangedToast {
                    table: plan.table.clone(),
                    column: column.name.clone(),
                    place: if image == Image::Key {
                        "key"
                    } else {
                        "before image"
                    },
                })
            }
        },
        value => {
            if nullable {
                put_long(buf, 1);
            }
            put_value(plan, column, &column.kind, value, buf)?;
        }
    }
    Ok(())
}

/// The placeholder written for a non-null field whose value was not sent: the type's zero.
fn put_zero(kind: &Kind, buf: &mut Vec<u8>) {
    match kind {
        Kind::Boolean => buf.push(0),
        Kind::Int2
        | Kind::Int4
        | Kind::Int8
        | Kind::Date
        | Kind::Time
        | Kind::Timestamp
        | Kind::TimestampTz => put_long(buf, 0),
        Kind::Float4 => buf.extend_from_slice(&0f32.to_le_bytes()),
        Kind::Float8 => buf.extend_from_slice(&0f64.to_le_bytes()),
        Kind::Decimal { .. } => put_bytes(buf, &[0]),
        Kind::NumericText => put_bytes(buf, b"0"),
        Kind::Text | Kind::Json | Kind::Other | Kind::Bytea => put_long(buf, 0),
        Kind::Uuid => put_uuid(buf, &[0; 16]),
        Kind::Array(_) => put_long(buf, 0),
    }
}

fn put_value(
    plan: &TablePlan,
    column: &ColumnPlan,
    kind: &Kind,
    value: &Value,
    buf: &mut Vec<u8>,
) -> Result<()> {
    match (kind, value) {
        (Kind::Boolean, Value::Bool(b)) => buf.push(u8::from(*b)),
        (Kind::Int2, Value::Int16(v)) => put_long(buf, i64::from(*v)),
        (Kind::Int4, Value::Int32(v)) => put_long(buf, i64::from(*v)),
        (Kind::Int8, Value::Int64(v))
        | (Kind::Time, Value::Time(v))
        | (Kind::Timestamp, Value::Timestamp(v))
        | (Kind::TimestampTz, Value::TimestampTz(v)) => put_long(buf, *v),
        (Kind::Date, Value::Date(v)) => put_long(buf, i64::from(*v)),
        (Kind::Float4, Value::Float32(v)) => buf.extend_from_slice(&v.to_le_bytes()),
        (Kind::Float8, Value::Float64(v)) => buf.extend_from_slice(&v.to_le_bytes()),
        (Kind::Decimal { precision, scale }, Value::Numeric(text)) => {
            let bytes = numeric_to_decimal_bytes(text, *precision, *scale).map_err(|e| {
                AvroError::Numeric {
                    table: plan.table.clone(),
                    column: column.name.clone(),
                    type_name: column.type_name.clone(),
                    text: quote(text),
                    reason: e.reason(*precision, *scale),
                }
            })?;
            put_bytes(buf, &bytes);
        }
        (Kind::NumericText, Value::Numeric(text))
        | (
            Kind::Text | Kind::Json | Kind::Other,
            Value::Text(text) | Value::Json(text) | Value::Other(text),
        ) => put_bytes(buf, text.as_bytes()),
        (Kind::Bytea, Value::Bytes(bytes)) => put_bytes(buf, bytes),
        (Kind::Uuid, Value::Uuid(uuid)) => put_uuid(buf, uuid),
        (Kind::Array(element), Value::Array(items)) => {
            if !items.is_empty() {
                put_long(buf, len_i64(items.len()));
                for item in items {
                    match item {
                        Value::Null => put_long(buf, 0),
                        item => {
                            put_long(buf, 1);
                            put_value(plan, column, element, item, buf)?;
                        }
                    }
                }
            }
            put_long(buf, 0);
        }
        (Kind::Array(_), Value::Other(text)) => {
            return Err(AvroError::ArrayShape {
                table: plan.table.clone(),
                column: column.name.clone(),
                type_name: column.type_name.clone(),
                text: quote(text),
            })
        }
        (_, value) => {
            return Err(AvroError::TypeMismatch {
                table: plan.table.clone(),
                column: column.name.clone(),
                type_name: column.type_name.clone(),
                found: variant_name(value),
            })
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_varints() {
        let cases: [(i64, &[u8]); 8] = [
            (0, &[0]),
            (-1, &[1]),
            (1, &[2]),
            (-64, &[0x7F]),
            (64, &[0x80, 0x01]),
            (300, &[0xD8, 0x04]),
            (
                i64::MAX,
                &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ),
            (
                i64::MIN,
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ),
        ];
        for (v, expected) in cases {
            let mut buf = Vec::new();
            put_long(&mut buf, v);
            assert_eq!(buf, expected, "{v}");
        }
    }

    #[test]
    fn uuid_text() {
        let mut buf = Vec::new();
        let uuid = [
            0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44,
            0x00, 0x00,
        ];
        put_uuid(&mut buf, &uuid);
        assert_eq!(buf[0], 72);
        assert_eq!(&buf[1..], b"550e8400-e29b-41d4-a716-446655440000");
    }
}
