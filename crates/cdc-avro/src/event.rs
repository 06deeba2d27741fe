//! Decoded envelopes and keys mapped back to `cdc_core` values, column by column.

use apache_avro::types::Value as Avro;
use cdc_core::{Lsn, Op, Position, Row, TableSchema, Value, Xid};

use crate::decimal::decimal_bytes_to_numeric;
use crate::error::{AvroError, Result};
use crate::mapping::{ColumnPlan, Kind, TablePlan};

/// Where a change was read, as carried in the envelope's `source` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// WAL position of the change itself.
    pub lsn: Lsn,
    /// WAL position of its transaction's commit.
    pub commit_lsn: Lsn,
    /// Top-level transaction id; `None` for snapshot reads.
    pub xid: Option<Xid>,
    /// Commit time, microseconds since 1970-01-01 UTC.
    pub commit_ts_us: i64,
    /// Index of the change within its transaction (or the snapshot).
    pub ordinal: u64,
    /// Whether the row comes from the initial snapshot.
    pub snapshot: bool,
    /// Source schema name.
    pub schema: String,
    /// Source table name.
    pub table: String,
}

impl SourceInfo {
    /// The change's place in the source's commit order: its total order and dedup key.
    pub fn position(&self) -> Position {
        Position {
            commit_lsn: self.commit_lsn,
            ordinal: self.ordinal,
        }
    }
}

/// A change event read back from its Avro envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEvent {
    /// What happened.
    pub op: Op,
    /// The old row, in table column order; columns outside the replica identity are NULL
    /// when `before_identity_only` is set.
    pub before: Option<Row>,
    /// The new row, in table column order; unchanged TOASTed columns are
    /// `Value::UnchangedToast`.
    pub after: Option<Row>,
    /// Where it was read.
    pub source: SourceInfo,
    /// When capture produced the event, microseconds since 1970-01-01 UTC.
    pub ts_us: i64,
    /// Whether `before` holds only the replica identity columns.
    pub before_identity_only: bool,
}

/// Maps a decoded envelope (from [`crate::decode_value`] with a value schema derived for
/// `table`) to a [`DecodedEvent`]. [`crate::AvroCodec::decode_value`] does the same without
/// rebuilding the table's column plan on every call.
pub fn decode_event(table: &TableSchema, value: &Avro) -> Result<DecodedEvent> {
    event_from_value(&TablePlan::new(table, None)?, value)
}

/// Maps a decoded key record to the key columns' values, in key order.
pub fn decode_key(table: &TableSchema, value: &Avro) -> Result<Row> {
    key_from_value(&TablePlan::new(table, None)?, value)
}

pub(crate) fn key_from_value(plan: &TablePlan, value: &Avro) -> Result<Row> {
    let fields = record(plan, "key", value)?;
    plan.key_columns()
        .enumerate()
        .map(|(i, column)| {
            let field = field_at(fields, i, &column.field)
                .ok_or_else(|| shape(plan, "key", format!("field {} is missing", column.field)))?;
            column_value(plan, column, field)
        })
        .collect()
}

pub(crate) fn event_from_value(plan: &TablePlan, value: &Avro) -> Result<DecodedEvent> {
    let envelope = record(plan, "envelope", value)?;
    let get = |i: usize, name: &str| {
        field_at(envelope, i, name)
            .ok_or_else(|| shape(plan, "envelope", format!("field {name} is missing")))
    };
    let op = match unwrap_union(get(2, "op")?) {
        Avro::String(code) => match code.as_str() {
            "r" => Op::Read,
            "c" => Op::Insert,
            "u" => Op::Update,
            "d" => Op::Delete,
            "t" => Op::Truncate,
            other => return Err(shape(plan, "envelope", format!("unknown op {other:?}"))),
        },
        other => return Err(wrong(plan, "envelope", "op", other)),
    };
    let before_identity_only = match field_at(envelope, 6, "before_identity_only").map(unwrap_union)
    {
        None => false,
        Some(Avro::Boolean(b)) => *b,
        Some(other) => return Err(wrong(plan, "envelope", "before_identity_only", other)),
    };
    let mut before = image(plan, get(0, "before")?)?;
    if before_identity_only {
        if let Some(row) = before.as_mut() {
            for (value, column) in row.iter_mut().zip(&plan.columns) {
                if !column.identity {
                    *value = Value::Null;
                }
            }
        }
    }
    let mut after = image(plan, get(1, "after")?)?;
    if let Some(Avro::Array(names)) = field_at(envelope, 5, "unchanged_toast").map(unwrap_union) {
        for name in names {
            let Avro::String(name) = name else {
                return Err(wrong(plan, "envelope", "unchanged_toast", name));
            };
            let index = plan
                .columns
                .iter()
                .position(|c| &c.field == name)
                .ok_or_else(|| {
                    shape(
                        plan,
                        "envelope",
                        format!("unchanged_toast names unknown field {name}"),
                    )
                })?;
            let slot = after
                .as_mut()
                .and_then(|row| row.get_mut(index))
                .ok_or_else(|| {
                    shape(
                        plan,
                        "envelope",
                        "unchanged_toast without an after image".to_owned(),
                    )
                })?;
            *slot = Value::UnchangedToast;
        }
    }
    let source = source(plan, get(3, "source")?)?;
    let ts_us = micros(plan, "ts_us", get(4, "ts_us")?)?;
    Ok(DecodedEvent {
        op,
        before,
        after,
        source,
        ts_us,
        before_identity_only,
    })
}

fn source(plan: &TablePlan, value: &Avro) -> Result<SourceInfo> {
    let fields = record(plan, "source", value)?;
    let get = |i: usize, name: &str| {
        field_at(fields, i, name)
            .map(unwrap_union)
            .ok_or_else(|| shape(plan, "source", format!("field {name} is missing")))
    };
    let unsigned = |i: usize, name: &'static str| -> Result<u64> {
        match get(i, name)? {
            Avro::Long(v) => u64::try_from(*v)
                .map_err(|_| shape(plan, "source", format!("{name} {v} is negative"))),
            other => Err(wrong(plan, "source", name, other)),
        }
    };
    let string = |i: usize, name: &'static str| -> Result<String> {
        match get(i, name)? {
            Avro::String(s) => Ok(s.clone()),
            other => Err(wrong(plan, "source", name, other)),
        }
    };
    let xid = match get(2, "xid")? {
        Avro::Null => None,
        Avro::Long(v) => Some(Xid(u32::try_from(*v).map_err(|_| {
            shape(
                plan,
                "source",
                format!("xid {v} is not a 32-bit transaction id"),
            )
        })?)),
        other => return Err(wrong(plan, "source", "xid", other)),
    };
    let snapshot = match get(5, "snapshot")? {
        Avro::Boolean(b) => *b,
        other => return Err(wrong(plan, "source", "snapshot", other)),
    };
    Ok(SourceInfo {
        lsn: Lsn(unsigned(0, "lsn")?),
        commit_lsn: Lsn(unsigned(1, "commit_lsn")?),
        xid,
        commit_ts_us: micros(plan, "commit_ts_us", get(3, "commit_ts_us")?)?,
        ordinal: unsigned(4, "ordinal")?,
        snapshot,
        schema: string(6, "schema")?,
        table: string(7, "table")?,
    })
}

fn micros(plan: &TablePlan, name: &str, value: &Avro) -> Result<i64> {
    match unwrap_union(value) {
        Avro::TimestampMicros(v) | Avro::Long(v) => Ok(*v),
        other => Err(wrong(plan, "envelope", name, other)),
    }
}

/// `before` or `after`: null, or a row record.
fn image(plan: &TablePlan, value: &Avro) -> Result<Option<Row>> {
    match unwrap_union(value) {
        Avro::Null => Ok(None),
        row => {
            let fields = record(plan, "row", row)?;
            plan.columns
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    let field = field_at(fields, i, &column.field).ok_or_else(|| {
                        shape(plan, "row", format!("field {} is missing", column.field))
                    })?;
                    column_value(plan, column, field)
                })
                .collect::<Result<Row>>()
                .map(Some)
        }
    }
}

fn column_value(plan: &TablePlan, column: &ColumnPlan, value: &Avro) -> Result<Value> {
    kind_value(&column.kind, unwrap_union(value)).map_err(|reason| AvroError::Shape {
        table: plan.table.clone(),
        what: format!("column {} ({})", column.name, column.type_name),
        reason,
    })
}

/// One decoded Avro value as the `Value` capture produces for a column of this kind.
fn kind_value(kind: &Kind, value: &Avro) -> std::result::Result<Value, String> {
    Ok(match (kind, value) {
        (_, Avro::Null) => Value::Null,
        (Kind::Boolean, Avro::Boolean(b)) => Value::Bool(*b),
        (Kind::Int2, Avro::Int(v)) => {
            Value::Int16(i16::try_from(*v).map_err(|_| format!("{v} does not fit a smallint"))?)
        }
        (Kind::Int4, Avro::Int(v)) => Value::Int32(*v),
        (Kind::Int8, Avro::Long(v)) => Value::Int64(*v),
        (Kind::Float4, Avro::Float(v)) => Value::Float32(*v),
        (Kind::Float8, Avro::Double(v)) => Value::Float64(*v),
        (Kind::Decimal { scale, .. }, Avro::Decimal(d)) => {
            let bytes = Vec::<u8>::try_from(d).map_err(|e| format!("bad decimal: {e}"))?;
            Value::Numeric(decimal_bytes_to_numeric(&bytes, *scale)?)
        }
        (Kind::NumericText, Avro::String(s)) => Value::Numeric(s.clone()),
        (Kind::Text, Avro::String(s)) => Value::Text(s.clone()),
        (Kind::Json, Avro::String(s)) => Value::Json(s.clone()),
        (Kind::Other, Avro::String(s)) => Value::Other(s.clone()),
        (Kind::Bytea, Avro::Bytes(b)) => Value::Bytes(b.clone()),
        (Kind::Date, Avro::Date(v)) => Value::Date(*v),
        (Kind::Time, Avro::TimeMicros(v)) => Value::Time(*v),
        (Kind::Timestamp, Avro::LocalTimestampMicros(v)) => Value::Timestamp(*v),
        (Kind::TimestampTz, Avro::TimestampMicros(v)) => Value::TimestampTz(*v),
        (Kind::Uuid, Avro::Uuid(u)) => Value::Uuid(*u.as_bytes()),
        (Kind::Array(element), Avro::Array(items)) => Value::Array(
            items
                .iter()
                .map(|item| kind_value(element, unwrap_union(item)))
                .collect::<std::result::Result<_, _>>()?,
        ),
        (kind, other) => {
            return Err(format!(
                "expected {}, found {}",
                kind_name(kind),
                avro_name(other)
            ))
        }
    })
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Boolean => "boolean",
        Kind::Int2 | Kind::Int4 => "int",
        Kind::Int8 => "long",
        Kind::Float4 => "float",
        Kind::Float8 => "double",
        Kind::Decimal { .. } => "decimal",
        Kind::NumericText | Kind::Text | Kind::Json | Kind::Other => "string",
        Kind::Bytea => "bytes",
        Kind::Date => "date",
        Kind::Time => "time-micros",
        Kind::Timestamp => "local-timestamp-micros",
        Kind::TimestampTz => "timestamp-micros",
        Kind::Uuid => "uuid",
        Kind::Array(_) => "array",
    }
}

/// What a decoded Avro value is called in messages.
fn avro_name(value: &Avro) -> &'static str {
    match value {
        Avro::Null => "null",
        Avro::Boolean(_) => "boolean",
        Avro::Int(_) => "int",
        Avro::Long(_) => "long",
        Avro::Float(_) => "float",
        Avro::Double(_) => "double",
        Avro::Bytes(_) => "bytes",
        Avro::String(_) => "string",
        Avro::Fixed(..) => "fixed",
        Avro::Enum(..) => "enum",
        Avro::Union(..) => "union",
        Avro::Array(_) => "array",
        Avro::Map(_) => "map",
        Avro::Record(_) => "record",
        Avro::Date(_) => "date",
        Avro::Decimal(_) => "decimal",
        Avro::BigDecimal(_) => "big-decimal",
        Avro::TimeMillis(_) => "time-millis",
        Avro::TimeMicros(_) => "time-micros",
        Avro::TimestampMillis(_) => "timestamp-millis",
        Avro::TimestampMicros(_) => "timestamp-micros",
        Avro::TimestampNanos(_) => "timestamp-nanos",
        Avro::LocalTimestampMillis(_) => "local-timestamp-millis",
        Avro::LocalTimestampMicros(_) => "local-timestamp-micros",
        Avro::LocalTimestampNanos(_) => "local-timestamp-nanos",
        Avro::Duration(_) => "duration",
        Avro::Uuid(_) => "uuid",
    }
}

fn unwrap_union(value: &Avro) -> &Avro {
    match value {
        Avro::Union(_, inner) => inner,
        other => other,
    }
}

fn record<'v>(plan: &TablePlan, what: &str, value: &'v Avro) -> Result<&'v [(String, Avro)]> {
    match unwrap_union(value) {
        Avro::Record(fields) => Ok(fields),
        other => Err(shape(
            plan,
            what,
            format!("expected a record, found {}", avro_name(other)),
        )),
    }
}

/// The field called `name`, looked for at `index` first (where the schema puts it).
fn field_at<'v>(fields: &'v [(String, Avro)], index: usize, name: &str) -> Option<&'v Avro> {
    match fields.get(index) {
        Some((n, v)) if n == name => Some(v),
        _ => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
    }
}

fn shape(plan: &TablePlan, what: &str, reason: String) -> AvroError {
    AvroError::Shape {
        table: plan.table.clone(),
        what: what.to_owned(),
        reason,
    }
}

fn wrong(plan: &TablePlan, what: &str, field: &str, found: &Avro) -> AvroError {
    shape(
        plan,
        what,
        format!("field {field} holds a {}", avro_name(found)),
    )
}
