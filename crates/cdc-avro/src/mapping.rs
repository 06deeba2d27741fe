//! How each PostgreSQL column travels in Avro: its [`Kind`], its field name, its nullability.
//!
//! The schema text ([`crate::schema`]), the encoder ([`crate::encode`]) and the mapping of
//! decoded values back to [`cdc_core::Value`]s ([`crate::event`]) all read the same
//! [`ColumnPlan`]s, so they cannot disagree about a column.

use std::collections::HashMap;

use cdc_core::{ColumnKind, NumericTypmod, PgType, TableSchema};
use serde_json::{json, Value as Json};

use crate::error::{AvroError, Result};

/// Type OIDs by name, for tests.
#[cfg(test)]
pub(crate) mod oid {
    use cdc_core::PgType;

    pub const BOOL: u32 = PgType::Bool.oid();
    pub const BYTEA: u32 = PgType::Bytea.oid();
    pub const CHAR: u32 = PgType::Char.oid();
    pub const NAME: u32 = PgType::Name.oid();
    pub const INT8: u32 = PgType::Int8.oid();
    pub const INT2: u32 = PgType::Int2.oid();
    pub const INT4: u32 = PgType::Int4.oid();
    pub const TEXT: u32 = PgType::Text.oid();
    pub const OID: u32 = PgType::Oid.oid();
    pub const JSON: u32 = PgType::Json.oid();
    pub const FLOAT4: u32 = PgType::Float4.oid();
    pub const FLOAT8: u32 = PgType::Float8.oid();
    pub const BPCHAR: u32 = PgType::Bpchar.oid();
    pub const VARCHAR: u32 = PgType::Varchar.oid();
    pub const DATE: u32 = PgType::Date.oid();
    pub const TIME: u32 = PgType::Time.oid();
    pub const TIMESTAMP: u32 = PgType::Timestamp.oid();
    pub const TIMESTAMPTZ: u32 = PgType::TimestampTz.oid();
    pub const NUMERIC: u32 = PgType::Numeric.oid();
    pub const UUID: u32 = PgType::Uuid.oid();
    pub const JSONB: u32 = PgType::Jsonb.oid();
}

/// The Avro representation of one PostgreSQL type, and which `Value` variant it decodes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `boolean` ⇄ `Value::Bool`.
    Boolean,
    /// `int` ⇄ `Value::Int16`.
    Int2,
    /// `int` ⇄ `Value::Int32`.
    Int4,
    /// `long` ⇄ `Value::Int64` (`int8`, `oid`).
    Int8,
    /// `float` ⇄ `Value::Float32`.
    Float4,
    /// `double` ⇄ `Value::Float64`.
    Float8,
    /// `bytes` with logical type `decimal` ⇄ `Value::Numeric`.
    Decimal {
        /// Declared precision, at least 1.
        precision: u32,
        /// Declared scale, at most the precision.
        scale: u32,
    },
    /// `string` holding PostgreSQL's exact text ⇄ `Value::Numeric`.
    NumericText,
    /// `string` ⇄ `Value::Text`.
    Text,
    /// `string` ⇄ `Value::Json`.
    Json,
    /// `string` ⇄ `Value::Other` (enum labels, interval, money, …).
    Other,
    /// `bytes` ⇄ `Value::Bytes`.
    Bytea,
    /// `int` with logical type `date` ⇄ `Value::Date`.
    Date,
    /// `long` with logical type `time-micros` ⇄ `Value::Time`.
    Time,
    /// `long` with logical type `local-timestamp-micros` ⇄ `Value::Timestamp`.
    Timestamp,
    /// `long` with logical type `timestamp-micros` ⇄ `Value::TimestampTz`.
    TimestampTz,
    /// `string` with logical type `uuid` ⇄ `Value::Uuid`.
    Uuid,
    /// `array` of nullable elements ⇄ `Value::Array`.
    Array(Box<Kind>),
}

impl Kind {
    /// The representation of a column of type `type_oid` with modifier `type_modifier`.
    pub(crate) fn of(type_oid: u32, type_modifier: i32) -> Kind {
        match ColumnKind::of(type_oid) {
            ColumnKind::Scalar(ty) => Kind::scalar(ty, type_modifier),
            // An array column's modifier applies to its elements (`numeric(10,2)[]`).
            ColumnKind::Array(ty) => Kind::Array(Box::new(Kind::scalar(ty, type_modifier))),
            ColumnKind::Verbatim => Kind::Other,
        }
    }

    fn scalar(ty: PgType, type_modifier: i32) -> Kind {
        match ty {
            PgType::Bool => Kind::Boolean,
            PgType::Bytea => Kind::Bytea,
            PgType::Char | PgType::Name | PgType::Text | PgType::Bpchar | PgType::Varchar => {
                Kind::Text
            }
            PgType::Int2 => Kind::Int2,
            PgType::Int4 => Kind::Int4,
            PgType::Int8 | PgType::Oid => Kind::Int8,
            PgType::Float4 => Kind::Float4,
            PgType::Float8 => Kind::Float8,
            PgType::Numeric => numeric_kind(type_modifier),
            PgType::Date => Kind::Date,
            PgType::Time => Kind::Time,
            PgType::Timestamp => Kind::Timestamp,
            PgType::TimestampTz => Kind::TimestampTz,
            PgType::Uuid => Kind::Uuid,
            PgType::Json | PgType::Jsonb => Kind::Json,
        }
    }

    /// The Avro type, as schema JSON.
    pub(crate) fn avro_type(&self) -> Json {
        match self {
            Kind::Boolean => json!("boolean"),
            Kind::Int2 | Kind::Int4 => json!("int"),
            Kind::Int8 => json!("long"),
            Kind::Float4 => json!("float"),
            Kind::Float8 => json!("double"),
            Kind::Decimal { precision, scale } => json!({
                "type": "bytes",
                "logicalType": "decimal",
                "precision": precision,
                "scale": scale,
            }),
            Kind::NumericText | Kind::Text | Kind::Json | Kind::Other => json!("string"),
            Kind::Bytea => json!("bytes"),
            Kind::Date => json!({"type": "int", "logicalType": "date"}),
            Kind::Time => json!({"type": "long", "logicalType": "time-micros"}),
            Kind::Timestamp => json!({"type": "long", "logicalType": "local-timestamp-micros"}),
            Kind::TimestampTz => json!({"type": "long", "logicalType": "timestamp-micros"}),
            Kind::Uuid => json!({"type": "string", "logicalType": "uuid"}),
            Kind::Array(element) => json!({
                "type": "array",
                "items": ["null", element.avro_type()],
            }),
        }
    }
}

/// `numeric(p,s)` as an Avro decimal when Avro can declare it, otherwise exact text.
///
/// Avro decimals need `1 <= precision` and `0 <= scale <= precision`; PostgreSQL 15 also
/// allows a negative scale or one above the precision, which then travel as text.
fn numeric_kind(type_modifier: i32) -> Kind {
    match NumericTypmod::decode(type_modifier).and_then(NumericTypmod::plain) {
        Some((precision, scale)) => Kind::Decimal { precision, scale },
        None => Kind::NumericText,
    }
}

/// One column's place in the Avro records.
#[derive(Debug, Clone)]
pub(crate) struct ColumnPlan {
    /// The column's PostgreSQL name.
    pub name: String,
    /// The Avro field name: [`avro_name`] of `name`.
    pub field: String,
    /// PostgreSQL's name for the type, as `format_type` prints it.
    pub type_name: String,
    /// How it travels.
    pub kind: Kind,
    /// Whether the field is `["null", T]` in the key record.
    pub key_nullable: bool,
    /// Whether the field is `["null", T]` in the row record of the value schema.
    pub value_nullable: bool,
    /// Whether the column is part of the replica identity (logged in old rows).
    pub identity: bool,
}

/// A table's columns as Avro sees them, plus which of them form the key.
#[derive(Debug, Clone)]
pub(crate) struct TablePlan {
    /// `schema.name`, for messages.
    pub table: String,
    /// The Avro namespace, `totesys_cdc.<schema>.<table>` (sanitized).
    pub namespace: String,
    /// Every column, in the table's order.
    pub columns: Vec<ColumnPlan>,
    /// Indexes of the key columns in `columns`.
    pub key: Vec<usize>,
}

/// Namespace prefix of every schema.
pub(crate) const NAMESPACE_ROOT: &str = "totesys_cdc";

impl TablePlan {
    /// The plan for `table`; `non_null_before` says, per column name, whether an earlier
    /// value schema declared the field non-null (`None`: there is no earlier schema).
    pub(crate) fn new(
        table: &TableSchema,
        non_null_before: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<Self> {
        let mut seen = HashMap::new();
        for column in &table.columns {
            let field = avro_name(&column.name);
            if let Some(first) = seen.insert(field.clone(), column.name.as_str()) {
                return Err(AvroError::NameCollision {
                    table: table.name.to_string(),
                    first: first.to_owned(),
                    second: column.name.clone(),
                    field,
                });
            }
        }
        let columns = table
            .columns
            .iter()
            .map(|column| {
                let field = avro_name(&column.name);
                let sticky_null = match non_null_before {
                    Some(was_non_null) => !was_non_null(&field),
                    None => false,
                };
                ColumnPlan {
                    name: column.name.clone(),
                    type_name: column.type_name.clone(),
                    kind: Kind::of(column.type_oid, column.type_modifier),
                    key_nullable: column.nullable,
                    value_nullable: column.nullable || sticky_null,
                    identity: column.replica_identity,
                    field,
                }
            })
            .collect();
        Ok(TablePlan {
            table: table.name.to_string(),
            namespace: format!(
                "{NAMESPACE_ROOT}.{}.{}",
                avro_name(&table.name.schema),
                avro_name(&table.name.name)
            ),
            columns,
            key: table.key_indexes(),
        })
    }

    /// The key columns, in table order.
    pub(crate) fn key_columns(&self) -> impl Iterator<Item = &ColumnPlan> {
        self.key.iter().filter_map(|&i| self.columns.get(i))
    }
}

/// Whether `name` is a valid Avro name as it stands: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_avro_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The Avro name for a PostgreSQL identifier (column, schema or table name).
///
/// A valid Avro name is kept as it is. Any other name has every character outside
/// `[A-Za-z0-9_]` replaced by `_`, a leading `_` added if it is empty or starts with a digit,
/// and `_` plus eight hex digits of the FNV-1a hash of its UTF-8 bytes appended, so that
/// `a-b` and `a b` stay apart. The result depends on the name alone: adding or dropping
/// another column never renames a field.
pub fn avro_name(name: &str) -> String {
    if is_avro_name(name) {
        return name.to_owned();
    }
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !matches!(out.chars().next(), Some(c) if c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out.push_str(&format!("_{:08x}", fnv1a32(name.as_bytes())));
    out
}

/// The 32-bit FNV-1a hash: small, stable across versions and platforms.
pub(crate) fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typmod(precision: i32, scale: i32) -> i32 {
        cdc_core::NumericTypmod::encode(precision, scale).unwrap()
    }

    #[test]
    fn scalar_kinds() {
        assert_eq!(Kind::of(oid::BOOL, -1), Kind::Boolean);
        assert_eq!(Kind::of(oid::INT2, -1), Kind::Int2);
        assert_eq!(Kind::of(oid::INT4, -1), Kind::Int4);
        assert_eq!(Kind::of(oid::INT8, -1), Kind::Int8);
        assert_eq!(Kind::of(oid::OID, -1), Kind::Int8);
        assert_eq!(Kind::of(oid::FLOAT4, -1), Kind::Float4);
        assert_eq!(Kind::of(oid::FLOAT8, -1), Kind::Float8);
        for text in [oid::CHAR, oid::NAME, oid::TEXT, oid::BPCHAR, oid::VARCHAR] {
            assert_eq!(Kind::of(text, 7), Kind::Text);
        }
        assert_eq!(Kind::of(oid::BYTEA, -1), Kind::Bytea);
        assert_eq!(Kind::of(oid::DATE, -1), Kind::Date);
        assert_eq!(Kind::of(oid::TIME, -1), Kind::Time);
        assert_eq!(Kind::of(oid::TIMESTAMP, -1), Kind::Timestamp);
        assert_eq!(Kind::of(oid::TIMESTAMPTZ, -1), Kind::TimestampTz);
        assert_eq!(Kind::of(oid::UUID, -1), Kind::Uuid);
        assert_eq!(Kind::of(oid::JSON, -1), Kind::Json);
        assert_eq!(Kind::of(oid::JSONB, -1), Kind::Json);
        // interval, timetz, xml, money, an enum's OID.
        for other in [1186, 1266, 142, 790, 16_385] {
            assert_eq!(Kind::of(other, -1), Kind::Other);
        }
    }

    #[test]
    fn numeric_kinds() {
        assert_eq!(Kind::of(oid::NUMERIC, -1), Kind::NumericText);
        assert_eq!(
            Kind::of(oid::NUMERIC, typmod(10, 2)),
            Kind::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            Kind::of(oid::NUMERIC, typmod(5, 0)),
            Kind::Decimal {
                precision: 5,
                scale: 0
            }
        );
        assert_eq!(
            Kind::of(oid::NUMERIC, typmod(1000, 1000)),
            Kind::Decimal {
                precision: 1000,
                scale: 1000
            }
        );
        // PostgreSQL 15: numeric(2,5) and numeric(3,-2) have no Avro decimal.
        assert_eq!(Kind::of(oid::NUMERIC, typmod(2, 5)), Kind::NumericText);
        assert_eq!(Kind::of(oid::NUMERIC, typmod(3, -2)), Kind::NumericText);
    }

    #[test]
    fn array_kinds() {
        assert_eq!(Kind::of(1007, -1), Kind::Array(Box::new(Kind::Int4)));
        assert_eq!(
            Kind::of(1231, typmod(10, 2)),
            Kind::Array(Box::new(Kind::Decimal {
                precision: 10,
                scale: 2
            }))
        );
        assert_eq!(Kind::of(3807, -1), Kind::Array(Box::new(Kind::Json)));
        // An array of an enum or of interval is kept as text by capture.
        assert_eq!(Kind::of(1187, -1), Kind::Other);
        let arrays = (0..5000)
            .filter(|&oid| matches!(Kind::of(oid, -1), Kind::Array(_)))
            .count();
        assert_eq!(arrays, 21, "oid[] included");
    }

    #[test]
    fn avro_types() {
        assert_eq!(Kind::Int2.avro_type(), json!("int"));
        assert_eq!(
            Kind::Decimal {
                precision: 10,
                scale: 2
            }
            .avro_type(),
            json!({"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2})
        );
        assert_eq!(
            Kind::Array(Box::new(Kind::Date)).avro_type(),
            json!({"type": "array", "items": ["null", {"type": "int", "logicalType": "date"}]})
        );
    }

    #[test]
    fn names_are_sanitized_deterministically() {
        assert!(is_avro_name("sales_order_id"));
        assert!(is_avro_name("_x9"));
        assert!(!is_avro_name("9lives"));
        assert!(!is_avro_name(""));
        assert!(!is_avro_name("unit price"));
        assert!(!is_avro_name("prix_€"));
        assert_eq!(avro_name("sales_order_id"), "sales_order_id");
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        let spaced = avro_name("unit price");
        assert!(
            spaced.starts_with("unit_price_") && spaced.len() == 19,
            "{spaced}"
        );
        assert!(avro_name("9lives").starts_with("_9lives_"));
        assert!(avro_name("").starts_with("__"));
        assert!(avro_name("prix_€").starts_with("prix___"));
        assert_ne!(avro_name("a-b"), avro_name("a b"));
        for name in ["a-b", "9", "", "ünïcode", "a.b.c"] {
            assert!(is_avro_name(&avro_name(name)), "{name}");
            assert_eq!(avro_name(name), avro_name(name));
        }
    }
}
