//! The lake's Arrow schema of a table: its source columns with their real types, then the
//! change metadata columns.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use cdc_core::{ColumnKind, ColumnSchema, NumericTypmod, PgType, TableSchema};

/// `_op`: `r`, `c`, `u`, `d` or `t`.
pub const OP: &str = "_op";
/// `_lsn`: WAL position of the change.
pub const LSN: &str = "_lsn";
/// `_commit_lsn`: WAL position of the transaction's commit (with `_ordinal`, the position).
pub const COMMIT_LSN: &str = "_commit_lsn";
/// `_ordinal`: the change's place in its transaction.
pub const ORDINAL: &str = "_ordinal";
/// `_xid`: the source transaction id (null for snapshot reads).
pub const XID: &str = "_xid";
/// `_commit_ts`: the source commit time (UTC); the `date=` partition is its date.
pub const COMMIT_TS: &str = "_commit_ts";
/// `_snapshot`: whether the row was read by the initial snapshot.
pub const SNAPSHOT: &str = "_snapshot";
/// `_unchanged_toast`: columns whose value did not change and was not sent (null here).
pub const UNCHANGED_TOAST: &str = "_unchanged_toast";
/// `_before`: the old row when the source sent one (key changes, deletes, REPLICA IDENTITY FULL).
pub const BEFORE: &str = "_before";
/// `_before_identity_only`: `_before` holds only the replica identity columns.
pub const BEFORE_IDENTITY_ONLY: &str = "_before_identity_only";
/// `_kafka_partition`: the Kafka partition the change was read from.
pub const KAFKA_PARTITION: &str = "_kafka_partition";
/// `_kafka_offset`: its offset there.
pub const KAFKA_OFFSET: &str = "_kafka_offset";

/// Field metadata key holding the column's PostgreSQL type (`format_type` text).
pub const PG_TYPE: &str = "pg.type";

/// How a source column is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `numeric(p,s)` with `1 ≤ p ≤ 38`, `0 ≤ s ≤ p`.
    Decimal(u8, i8),
    /// Text, unconstrained numeric, JSON, UUID, enums and anything else: PostgreSQL's text.
    Utf8,
    Binary,
    Date,
    Timestamp,
    TimestampTz,
    List(Box<Kind>),
}

impl Kind {
    /// The storage of a column of type `oid` with modifier `typmod`.
    pub(crate) fn of(oid: u32, typmod: i32) -> Kind {
        match ColumnKind::of(oid) {
            ColumnKind::Scalar(ty) => Kind::scalar(ty, typmod),
            // An array column's modifier is its elements' (`numeric(10,2)[]`).
            ColumnKind::Array(ty) => Kind::List(Box::new(Kind::scalar(ty, typmod))),
            ColumnKind::Verbatim => Kind::Utf8,
        }
    }

    fn scalar(ty: PgType, typmod: i32) -> Kind {
        match ty {
            PgType::Bool => Kind::Bool,
            PgType::Bytea => Kind::Binary,
            PgType::Int2 => Kind::Int16,
            PgType::Int4 => Kind::Int32,
            PgType::Int8 | PgType::Oid => Kind::Int64,
            PgType::Float4 => Kind::Float32,
            PgType::Float8 => Kind::Float64,
            PgType::Date => Kind::Date,
            // Delta Lake has no time-of-day type; the text sorts as the time does.
            PgType::Time => Kind::Utf8,
            PgType::Timestamp => Kind::Timestamp,
            PgType::TimestampTz => Kind::TimestampTz,
            PgType::Numeric => decimal(typmod).unwrap_or(Kind::Utf8),
            PgType::Char
            | PgType::Name
            | PgType::Text
            | PgType::Bpchar
            | PgType::Varchar
            | PgType::Uuid
            | PgType::Json
            | PgType::Jsonb => Kind::Utf8,
        }
    }

    pub(crate) fn data_type(&self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int16 => DataType::Int16,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Decimal(p, s) => DataType::Decimal128(*p, *s),
            Kind::Utf8 => DataType::Utf8,
            Kind::Binary => DataType::Binary,
            Kind::Date => DataType::Date32,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::List(element) => {
                DataType::List(Arc::new(Field::new("item", element.data_type(), true)))
            }
        }
    }
}

/// `numeric(p,s)` as an Arrow decimal, when it fits one (at most 38 digits, scale in
/// `0..=p`).
fn decimal(typmod: i32) -> Option<Kind> {
    let (precision, scale) = NumericTypmod::decode(typmod)?.plain()?;
    (precision <= 38).then_some(Kind::Decimal(precision as u8, scale as i8))
}

/// The Arrow field of a source column (always nullable: deletes and unchanged TOAST
/// values leave columns empty).
pub(crate) fn column_field(column: &ColumnSchema) -> Field {
    Field::new(
        &column.name,
        Kind::of(column.type_oid, column.type_modifier).data_type(),
        true,
    )
    .with_metadata(HashMap::from([(
        PG_TYPE.to_owned(),
        column.type_name.clone(),
    )]))
}

/// The lake schema of `table`: source columns in table order, then the metadata columns.
pub fn lake_schema(table: &TableSchema) -> Schema {
    let source: Vec<Field> = table.columns.iter().map(column_field).collect();
    let mut fields = source.clone();
    let utc = Some("UTC".into());
    fields.extend([
        Field::new(OP, DataType::Utf8, false),
        Field::new(LSN, DataType::Int64, false),
        Field::new(COMMIT_LSN, DataType::Int64, false),
        Field::new(ORDINAL, DataType::Int64, false),
        Field::new(XID, DataType::Int64, true),
        Field::new(
            COMMIT_TS,
            DataType::Timestamp(TimeUnit::Microsecond, utc),
            false,
        ),
        Field::new(SNAPSHOT, DataType::Boolean, false),
        Field::new(
            UNCHANGED_TOAST,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
            true,
        ),
        Field::new(BEFORE, DataType::Struct(Fields::from(source)), true),
        Field::new(BEFORE_IDENTITY_ONLY, DataType::Boolean, false),
        Field::new(KAFKA_PARTITION, DataType::Int32, false),
        Field::new(KAFKA_OFFSET, DataType::Int64, false),
    ]);
    Schema::new(fields).with_metadata(HashMap::from([(
        "totesys_cdc.table".to_owned(),
        table.name.to_string(),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmods_become_decimals_only_when_they_fit() {
        const NUMERIC: u32 = PgType::Numeric.oid();
        let typmod = |p, s| cdc_core::NumericTypmod::encode(p, s).unwrap();
        assert_eq!(Kind::of(NUMERIC, typmod(10, 2)), Kind::Decimal(10, 2));
        assert_eq!(Kind::of(NUMERIC, typmod(38, 0)), Kind::Decimal(38, 0));
        assert_eq!(Kind::of(NUMERIC, -1), Kind::Utf8, "unconstrained");
        assert_eq!(Kind::of(NUMERIC, typmod(39, 2)), Kind::Utf8, "too wide");
        assert_eq!(
            Kind::of(NUMERIC, typmod(5, -2)),
            Kind::Utf8,
            "negative scale"
        );
        assert_eq!(
            Kind::of(NUMERIC, typmod(2, 5)),
            Kind::Utf8,
            "scale above precision"
        );
    }

    #[test]
    fn arrays_are_lists_of_their_elements() {
        assert_eq!(Kind::of(1007, -1), Kind::List(Box::new(Kind::Int32)));
        assert_eq!(Kind::of(1231, -1), Kind::List(Box::new(Kind::Utf8)));
        assert_eq!(
            Kind::of(1231, ((10 << 16) | 2) + 4),
            Kind::List(Box::new(Kind::Decimal(10, 2))),
            "numeric(10,2)[] keeps its elements' modifier, as in Avro"
        );
        for (array, element) in [(199, Kind::Utf8), (1002, Kind::Utf8), (1003, Kind::Utf8)] {
            assert_eq!(Kind::of(array, -1), Kind::List(Box::new(element)));
        }
        assert_eq!(
            Kind::of(999_999, -1),
            Kind::Utf8,
            "unknown types keep their text"
        );
    }
}
