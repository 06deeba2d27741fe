//! How each PostgreSQL column travels in Avro: its [`Kind`], its field name, its nullability.
//!
//! The schema text ([`crate::schema`]), the encoder ([`crate::encode`]) and the mapping of
//! decoded values back to [`cdc_core::Value`]s ([`crate::event`]) all read the same
//! [`ColumnPlan`]s, so they cannot disagree about a column.

use std::collections::HashMap;

use cdc_core::TableSchema;
use serde_json::{json, Value as Json};

use crate::error::{AvroError, Result};

/// PostgreSQL type OIDs this crate gives an Avro type other than `string`.
pub(crate) mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// The element type of the one-dimensional array types capture types as `Value::Array`.
pub(crate) fn array_element_oid(array_oid: u32) -> Option<u32> {
    Some(match array_oid {
        1000 => oid::BOOL,
        1001 => oid::BYTEA,
        1002 => oid::CHAR,
        1003 => oid::NAME,
        1005 => oid::INT2,
        1007 => oid::INT4,
        1009 => oid::TEXT,
        1014 => oid::BPCHAR,
        1015 => oid::VARCHAR,
        1016 => oid::INT8,
        1021 => oid::FLOAT4,
        1022 => oid::FLOAT8,
        1182 => oid::DATE,
        1183 => oid::TIME,
        1115 => oid::TIMESTAMP,
        1185 => oid::TIMESTAMPTZ,
        1231 => oid::NUMERIC,
        2951 => oid::UUID,
        199 => oid::JSON,
        3807 => oid::JSONB,
        _ => return None,
    })
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
        if let Some(element) = array_element_oid(type_oid) {
            // An array column's modifier applies to its elements (`numeric(10,2)[]`).
            return Kind::Array(Box::new(Kind::of(element, type_modifier)));
        }
        match type_oid {
            oid::BOOL => Kind::Boolean,
            oid::BYTEA => Kind::Bytea,
            oid::CHAR | oid::NAME | oid::TEXT | oid::BPCHAR | oid::VARCHAR => Kind::Text,
            oid::INT2 => Kind::Int2,
            oid::INT4 => Kind::Int4,
            oid::INT8 | oid::OID => Kind::Int8,
            oid::FLOAT4 => Kind::Float4,
            oid::FLOAT8 => Kind::Float8,
            oid::NUMERIC => numeric_kind(type_modifier),
            oid::DATE => Kind::Date,
            oid::TIME => Kind::Time,
            oid::TIMESTAMP => Kind::Timestamp,
            oid::TIMESTAMPTZ => Kind::TimestampTz,
            oid::UUID => Kind::Uuid,
            oid::JSON | oid::JSONB => Kind::Json,
            _ => Kind::Other,
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
    const VARHDRSZ: i32 = 4;
    if type_modifier < VARHDRSZ {
        return Kind::NumericText;
    }
    let raw = type_modifier - VARHDRSZ;
    let precision = (raw >> 16) & 0xFFFF;
    let scale = raw & 0xFFFF;
    // PostgreSQL 15 stores a negative scale as 11-bit two's complement: such a value
    // reads here as a scale above the precision (at most 1000), so it lands on text.
    match (u32::try_from(precision), u32::try_from(scale)) {
        (Ok(precision), Ok(scale)) if precision >= 1 && scale <= precision => {
            Kind::Decimal { precision, scale }
        }
        _ => Kind::NumericText,
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
        ((precision << 16) | (scale & 0xFFFF)) + 4
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
        let mut arrays = 0;
        for oid in 0..5000 {
            if let Some(element) = array_element_oid(oid) {
                arrays += 1;
                assert!(array_element_oid(element).is_none());
            }
        }
        assert_eq!(arrays, 20);
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
