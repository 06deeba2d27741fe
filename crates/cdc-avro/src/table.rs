//! The table shape back from its key and value schemas, for consumers of the topics.
//!
//! ```text
//!   Kafka record: key schema id, value schema id ──► registry ──► Key, Envelope (JSON)
//!                                                                  │
//!                             table_from_schemas(Some(&key), &value)
//!                                                                  ▼
//!   TableSchema ──► TableAvro::new(table, Some(&value)) ──► read_key / read_value ──► Value
//! ```
//!
//! A consumer holds, per record, the writer schemas of its key and value. The fast decoder
//! ([`TableAvro::read_value`]) reads along a plan built from a [`TableSchema`]; this module
//! rebuilds that table from the two schemas, then re-derives both schemas from it and checks
//! that they are the writer schemas, so the plan reads exactly the bytes they describe.
//!
//! What comes back, and from where:
//!
//! - **Name**: the namespace `totesys_cdc.<schema>.<table>` holds the names after
//!   [`avro_name`](crate::avro_name), which may have changed them; the records' `doc`
//!   (`A row of <schema>.<table>.`) holds them as they are. The doc's text is split at the
//!   dot whose two sides map to the namespace's two parts. Without such a doc the namespace's
//!   parts are used as they stand, which are the PostgreSQL names whenever those were valid
//!   Avro names (every totesys name is).
//! - **Id**: the schemas carry no relation OID. [`TableId`] is the 32-bit FNV-1a hash of the
//!   schema name, a zero byte and the table name: the same table gets the same id from every
//!   version of its schemas.
//! - **Columns**, in field order: the name from `pg.column`, else the field name; the type
//!   name from `pg.type`; the type OID and modifier parsed from that text (below);
//!   nullability from the field's union.
//! - **Key**: the `Key` record's fields are the primary key (`primary_key` and
//!   `replica_identity` set); a key field's nullability is the column's. Without a key schema
//!   no column is in the key. Whether the producer's key was the primary key or the replica
//!   identity is not recorded, nor is the table's replica identity setting
//!   ([`ReplicaIdentity::Default`] comes back).
//!
//! Type texts are what `format_type` prints. Each type this crate maps to an Avro type other
//! than a plain string of text is recognized, with its modifier (`numeric(10,2)`,
//! `character varying(20)`, `timestamp(3) with time zone`) and as a one-dimensional array
//! (`integer[]`). Capture's fallback `oid:<n>` (a relation the catalog no longer describes)
//! gives the OID `n`, with a numeric's modifier read from the Avro decimal. Any other text
//! (enums, `interval`, `money`, arrays of those, …) travels as a string under its own name and
//! comes back with type OID 0 and modifier -1, which decodes the same way (`Value::Other`).

use std::sync::Arc;

use apache_avro::schema::{RecordField, RecordSchema};
use apache_avro::Schema;
use cdc_core::{
    ColumnSchema, NumericTypmod, PgType, ReplicaIdentity, TableId, TableName, TableSchema,
};
use serde_json::Value as Json;

use crate::codec::TableAvro;
use crate::error::{AvroError, Result};
use crate::mapping::{avro_name, fnv1a32, is_avro_name, Kind, NAMESPACE_ROOT};
use crate::schema::{describe, full_name, key_schema, value_schema};

/// The fields of record `Envelope`, in order.
const ENVELOPE_FIELDS: [&str; 7] = [
    "before",
    "after",
    "op",
    "source",
    "ts_us",
    "unchanged_toast",
    "before_identity_only",
];

/// The table shape that `value` (and `key`, when given) were derived from.
///
/// `value` must be a value schema of this crate (record `Envelope`) and `key` the key schema
/// (record `Key`) of the same table, as a consumer fetches them from the registry by the ids
/// in a record. For the table `t` returned:
///
/// - `key_schema(&t)` is `key` (or, without a key, an empty `Key`), and
///   `value_schema(&t, Some(value))` is `value`: this is checked before returning (names,
///   fields, types and logical types), so [`crate::TableAvro::new`]`(t, Some(value))`
///   decodes exactly what `value` describes. For schemas this crate derived they are equal
///   as JSON text too, docs and attributes included.
/// - `value_schema(&t, None)` is `value` as well, except where a key column is `NOT NULL` in
///   the key but nullable in the value (nullability is sticky in values, see
///   [`value_schema`]): the column is then `NOT NULL`, as the key says.
///
/// See the module docs for what is recovered exactly (the name, the columns) and what is
/// not (the relation OID, the replica identity setting, enum OIDs).
///
/// # Errors
///
/// [`AvroError::ForeignSchema`], naming the field, for a schema this crate would not have
/// derived: a record with another name, a column field without `pg.type`, a field whose Avro
/// type does not fit its `pg.type`, a key field that is not a column of the value, an
/// envelope or `Source` record with other fields.
pub fn table_from_schemas(key: Option<&Schema>, value: &Schema) -> Result<TableSchema> {
    let in_value = |path: &str, reason: String| foreign(value, path, reason);
    let envelope = record_named(value, "Envelope").map_err(|reason| in_value(".", reason))?;
    let namespace = envelope.name.namespace.as_deref().unwrap_or_default();
    let (schema_part, table_part) = split_namespace(namespace).ok_or_else(|| {
        in_value(
            ".",
            format!("namespace {namespace:?} is not {NAMESPACE_ROOT}.<schema>.<table>"),
        )
    })?;
    for (i, expected) in ENVELOPE_FIELDS.iter().enumerate() {
        match envelope.fields.get(i) {
            Some(field) if field.name == *expected => {}
            Some(field) => {
                return Err(in_value(
                    &format!("Envelope.{}", field.name),
                    format!("found where field {expected} belongs"),
                ))
            }
            None => return Err(in_value("Envelope", format!("has no field {expected}"))),
        }
    }
    if let Some(extra) = envelope.fields.get(ENVELOPE_FIELDS.len()) {
        return Err(in_value(
            &format!("Envelope.{}", extra.name),
            "is not a field of the envelope".to_owned(),
        ));
    }
    let row = envelope
        .fields
        .first()
        .and_then(|before| match &before.schema {
            Schema::Union(union) => match union.variants() {
                [Schema::Null, Schema::Record(row)] => Some(row),
                _ => None,
            },
            _ => None,
        })
        .ok_or_else(|| {
            in_value(
                "Envelope.before",
                "is not [\"null\", record Value]".to_owned(),
            )
        })?;
    if row.name.name != "Value" {
        return Err(in_value(
            "Envelope.before",
            format!("holds record {}, not Value", row.name.name),
        ));
    }
    let mut columns = row
        .fields
        .iter()
        .map(|field| {
            column_of(field).map_err(|reason| in_value(&format!("Value.{}", field.name), reason))
        })
        .collect::<Result<Vec<_>>>()?;

    let key_record = match key {
        Some(key) => {
            let record = record_named(key, "Key").map_err(|reason| foreign(key, ".", reason))?;
            if record.name.namespace != envelope.name.namespace {
                return Err(foreign(
                    key,
                    ".",
                    format!(
                        "namespace {:?} is not the value schema's {namespace:?}",
                        record.name.namespace.as_deref().unwrap_or_default()
                    ),
                ));
            }
            mark_key(record, &mut columns).map_err(|(path, reason)| foreign(key, &path, reason))?;
            Some(record)
        }
        None => None,
    };

    let docs = [
        row.doc.as_deref(),
        key_record.and_then(|k| k.doc.as_deref()),
        envelope.doc.as_deref(),
    ];
    let name = table_name(schema_part, table_part, &docs);
    let mut id_bytes = Vec::with_capacity(name.schema.len() + 1 + name.name.len());
    id_bytes.extend_from_slice(name.schema.as_bytes());
    id_bytes.push(0);
    id_bytes.extend_from_slice(name.name.as_bytes());
    let table = TableSchema {
        id: TableId(fnv1a32(&id_bytes)),
        name,
        columns,
        replica_identity: ReplicaIdentity::Default,
    };

    // The backstop: both schemas derived again from the table must be the writer schemas, so
    // that a plan built from the table reads their bytes and nothing else.
    let derived = value_schema(&table, Some(value))?;
    if let Some((path, reason)) = difference(&derived, value, "Envelope") {
        return Err(in_value(&path, reason));
    }
    if let Some(key) = key {
        if let Some((path, reason)) = difference(&key_schema(&table)?, key, "Key") {
            return Err(foreign(key, &path, reason));
        }
    }
    Ok(table)
}

impl TableAvro {
    /// The reader of records written with these writer schemas: [`table_from_schemas`],
    /// then the schemas derived again from that table with `value` as the previous value
    /// schema, which gives back `value` (and `key`) exactly, sticky nullability included.
    ///
    /// A consumer keeps one per value schema id. Without a `key`, the key schema is the
    /// empty `Key` record and [`TableAvro::read_key`] reads nothing useful.
    pub fn from_schemas(key: Option<&Schema>, value: &Schema) -> Result<TableAvro> {
        TableAvro::new(Arc::new(table_from_schemas(key, value)?), Some(value))
    }
}

fn foreign(schema: &Schema, path: &str, reason: String) -> AvroError {
    AvroError::ForeignSchema {
        schema: full_name(schema),
        path: path.to_owned(),
        reason,
    }
}

/// The record of `schema` if it is a record called `name`.
fn record_named<'s>(
    schema: &'s Schema,
    name: &str,
) -> std::result::Result<&'s RecordSchema, String> {
    match schema {
        Schema::Record(record) if record.name.name == name => Ok(record),
        Schema::Record(record) => Err(format!("is record {}, not {name}", record.name.name)),
        other => Err(format!("is {}, not record {name}", describe(other))),
    }
}

/// `(schema, table)` Avro names from `totesys_cdc.<schema>.<table>`.
fn split_namespace(namespace: &str) -> Option<(&str, &str)> {
    let rest = namespace.strip_prefix(NAMESPACE_ROOT)?.strip_prefix('.')?;
    let (schema, table) = rest.split_once('.')?;
    (is_avro_name(schema) && is_avro_name(table)).then_some((schema, table))
}

/// The PostgreSQL names of the table whose Avro names are `schema_part` and `table_part`.
fn table_name(schema_part: &str, table_part: &str, docs: &[Option<&str>]) -> TableName {
    let from_doc = docs
        .iter()
        .flatten()
        .filter_map(|doc| doc_table_text(doc))
        .find_map(|text| {
            text.match_indices('.').find_map(|(dot, _)| {
                let (schema, table) = (&text[..dot], &text[dot + 1..]);
                (avro_name(schema) == schema_part && avro_name(table) == table_part)
                    .then(|| TableName::new(schema, table))
            })
        });
    from_doc.unwrap_or_else(|| TableName::new(schema_part, table_part))
}

/// The `<schema>.<table>` text a doc of the row, key or envelope record was written with.
fn doc_table_text(doc: &str) -> Option<&str> {
    if let Some(rest) = doc.strip_prefix("A row of ") {
        return rest.strip_suffix('.');
    }
    if let Some(rest) = doc.strip_prefix("Primary key (or replica identity) of ") {
        return rest.strip_suffix('.');
    }
    if let Some(text) =
        doc.strip_suffix(" has no primary key or replica identity: the key is empty.")
    {
        return Some(text);
    }
    let rest = doc.strip_prefix("A change to ")?;
    rest.rfind(". op: r snapshot read").map(|end| &rest[..end])
}

/// Marks the columns named by the key record's fields as the primary key, with the key's
/// nullability. The error is a field path and a reason.
fn mark_key(
    key: &RecordSchema,
    columns: &mut [ColumnSchema],
) -> std::result::Result<(), (String, String)> {
    let mut next = 0;
    for field in &key.fields {
        let path = format!("Key.{}", field.name);
        let here = |reason: String| (path.clone(), reason);
        let index = columns
            .iter()
            .position(|c| avro_name(&c.name) == field.name)
            .ok_or_else(|| here("is not a field of the value schema's row".to_owned()))?;
        if index < next {
            return Err(here("is out of the table's column order".to_owned()));
        }
        next = index + 1;
        let key_column = column_of(field).map_err(&here)?;
        let Some(column) = columns.get_mut(index) else {
            return Err(here("is not a field of the value schema's row".to_owned()));
        };
        if key_column.type_name != column.type_name {
            return Err(here(format!(
                "pg.type {:?} differs from the row's {:?}",
                key_column.type_name, column.type_name
            )));
        }
        if key_column.name != column.name {
            return Err(here(format!(
                "pg.column {:?} differs from the row's {:?}",
                key_column.name, column.name
            )));
        }
        if key_column.nullable && !column.nullable {
            return Err(here("is nullable in the key but not in the row".to_owned()));
        }
        column.nullable = key_column.nullable;
        column.primary_key = true;
        column.replica_identity = true;
    }
    Ok(())
}

/// The column a row (or key) field describes; not in the key.
fn column_of(field: &RecordField) -> std::result::Result<ColumnSchema, String> {
    let type_name = match field.custom_attributes.get("pg.type") {
        Some(Json::String(text)) => text.clone(),
        Some(_) => return Err("pg.type is not a string".to_owned()),
        None => return Err("has no pg.type attribute".to_owned()),
    };
    let name = match field.custom_attributes.get("pg.column") {
        Some(Json::String(name)) if avro_name(name) == field.name => name.clone(),
        Some(Json::String(name)) => {
            return Err(format!(
                "pg.column {name:?} would be field {}",
                avro_name(name)
            ))
        }
        Some(_) => return Err("pg.column is not a string".to_owned()),
        None => field.name.clone(),
    };
    let (nullable, avro) = nullable_parts(&field.schema)?;
    let (type_oid, type_modifier) = pg_type(&type_name, avro)?;
    let kind = Kind::of(type_oid, type_modifier);
    if !fits(&kind, avro) {
        let expected = Schema::parse(&kind.avro_type())
            .map(|s| describe(&s))
            .unwrap_or_else(|_| kind.avro_type().to_string());
        return Err(format!(
            "pg.type {type_name:?} travels as {expected}, but the field is {}",
            describe(avro)
        ));
    }
    Ok(ColumnSchema {
        name,
        type_oid,
        type_modifier,
        type_name,
        nullable,
        primary_key: false,
        replica_identity: false,
    })
}

/// Whether a field is `["null", T]`, and its `T`.
fn nullable_parts(schema: &Schema) -> std::result::Result<(bool, &Schema), String> {
    match schema {
        Schema::Union(union) => match union.variants() {
            [Schema::Null, inner] => Ok((true, inner)),
            _ => Err(format!("is {}, not [\"null\", T]", describe(schema))),
        },
        other => Ok((false, other)),
    }
}

/// Whether `schema` is the Avro type of `kind`.
fn fits(kind: &Kind, schema: &Schema) -> bool {
    match (kind, schema) {
        (Kind::Boolean, Schema::Boolean)
        | (Kind::Int2 | Kind::Int4, Schema::Int)
        | (Kind::Int8, Schema::Long)
        | (Kind::Float4, Schema::Float)
        | (Kind::Float8, Schema::Double)
        | (Kind::NumericText | Kind::Text | Kind::Json | Kind::Other, Schema::String)
        | (Kind::Bytea, Schema::Bytes)
        | (Kind::Date, Schema::Date)
        | (Kind::Time, Schema::TimeMicros)
        | (Kind::Timestamp, Schema::LocalTimestampMicros)
        | (Kind::TimestampTz, Schema::TimestampMicros)
        | (Kind::Uuid, Schema::Uuid) => true,
        (Kind::Decimal { precision, scale }, Schema::Decimal(decimal)) => {
            matches!(*decimal.inner, Schema::Bytes)
                && usize::try_from(*precision).is_ok_and(|p| p == decimal.precision)
                && usize::try_from(*scale).is_ok_and(|s| s == decimal.scale)
        }
        (Kind::Array(element), Schema::Array(array)) => {
            matches!(nullable_parts(&array.items), Ok((true, items)) if fits(element, items))
        }
        _ => false,
    }
}

/// `(type_oid, type_modifier)` of a `pg.type` text; `(0, -1)` for a type sent as text under
/// its own name. `avro` is the field's type, which alone has a numeric's modifier when the
/// text is capture's fallback `oid:<n>`.
fn pg_type(text: &str, avro: &Schema) -> std::result::Result<(u32, i32), String> {
    if let Some(number) = text.strip_prefix("oid:") {
        let type_oid = number
            .parse::<u32>()
            .map_err(|_| format!("pg.type {text:?} has no valid OID"))?;
        return Ok((type_oid, decimal_modifier(avro).unwrap_or(-1)));
    }
    let (element, array) = match text.strip_suffix("[]") {
        Some(element) => (element, true),
        None => (text, false),
    };
    let Some((element_oid, modifier)) =
        scalar_type(element).map_err(|reason| format!("pg.type {text:?}: {reason}"))?
    else {
        return Ok((0, -1));
    };
    if !array {
        return Ok((element_oid, modifier));
    }
    // An array's modifier is its elements' (`numeric(10,2)[]`).
    Ok(array_oid(element_oid).map_or((0, -1), |oid| (oid, modifier)))
}

/// The type modifier `numeric(p,s)` has, from an Avro decimal (or an array of them).
fn decimal_modifier(avro: &Schema) -> Option<i32> {
    match avro {
        Schema::Decimal(decimal) => {
            let precision = i32::try_from(decimal.precision).ok()?;
            let scale = i32::try_from(decimal.scale).ok()?;
            NumericTypmod::encode(precision, scale)
        }
        Schema::Array(array) => match nullable_parts(&array.items) {
            Ok((_, items)) => decimal_modifier(items),
            Err(_) => None,
        },
        _ => None,
    }
}

/// `(type_oid, type_modifier)` of a `format_type` text of a non-array type this crate maps;
/// `None` for any other type. An error for a known type with a modifier PostgreSQL would not
/// print.
fn scalar_type(text: &str) -> std::result::Result<Option<(u32, i32)>, String> {
    // `timestamp(3) with time zone`: the base name is the text without the parenthesis.
    let (base, modifier) = match (text.find('('), text.find(')')) {
        (Some(open), Some(close)) if open < close => (
            format!("{}{}", &text[..open], &text[close + 1..]),
            Some(&text[open + 1..close]),
        ),
        _ => (text.to_owned(), None),
    };
    let number = |text: &str, range: std::ops::RangeInclusive<i32>| {
        text.trim()
            .parse::<i32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| format!("modifier ({text}) is out of range"))
    };
    let plain = |type_oid: u32| match modifier {
        None => Ok(Some((type_oid, -1))),
        Some(m) => Err(format!("{base} takes no modifier, found ({m})")),
    };
    // varchar(n), char(n): the length plus VARHDRSZ.
    let length = |type_oid: u32| match modifier {
        None => Ok(Some((type_oid, -1))),
        Some(m) => Ok(Some((type_oid, number(m, 1..=10_485_760)? + 4))),
    };
    // time(p), timestamp(p): the fractional-second precision itself.
    let precision = |type_oid: u32| match modifier {
        None => Ok(Some((type_oid, -1))),
        Some(m) => Ok(Some((type_oid, number(m, 0..=6)?))),
    };
    let Some(ty) = PgType::from_sql_name(&base) else {
        return Ok(None);
    };
    match ty {
        // `format_type` prints `character(n)` with a length, `bpchar` without one.
        PgType::Bpchar if base == "bpchar" => plain(ty.oid()),
        PgType::Bpchar | PgType::Varchar => length(ty.oid()),
        PgType::Time | PgType::Timestamp | PgType::TimestampTz => precision(ty.oid()),
        PgType::Numeric => match modifier {
            None => Ok(Some((ty.oid(), -1))),
            Some(m) => {
                let (p, s) = m
                    .split_once(',')
                    .ok_or_else(|| format!("numeric modifier ({m}) is not (precision,scale)"))?;
                let (p, s) = (number(p, 1..=1000)?, number(s, -1000..=1000)?);
                let modifier = NumericTypmod::encode(p, s)
                    .ok_or_else(|| format!("numeric modifier ({m}) is out of range"))?;
                Ok(Some((ty.oid(), modifier)))
            }
        },
        _ => plain(ty.oid()),
    }
}

/// The one-dimensional array type of `element`, for the element types whose arrays capture
/// decodes.
fn array_oid(element: u32) -> Option<u32> {
    PgType::from_oid(element).map(PgType::array_oid)
}

/// The first place where `found` is not `expected`, as a field path and a reason; `None`
/// when they are equal (Avro's structural equality: names, fields, types and logical types).
fn difference(expected: &Schema, found: &Schema, path: &str) -> Option<(String, String)> {
    if expected == found {
        return None;
    }
    match (expected, found) {
        (Schema::Record(e), Schema::Record(f)) if e.name == f.name => {
            for (i, ef) in e.fields.iter().enumerate() {
                let here = format!("{}.{}", e.name.name, ef.name);
                match f.fields.get(i) {
                    Some(ff) if ff.name == ef.name => {
                        if let Some(found) = difference(&ef.schema, &ff.schema, &here) {
                            return Some(found);
                        }
                    }
                    Some(ff) => {
                        return Some((
                            format!("{}.{}", f.name.name, ff.name),
                            format!("found where field {} belongs", ef.name),
                        ))
                    }
                    None => return Some((path.to_owned(), format!("has no field {}", ef.name))),
                }
            }
            if let Some(extra) = f.fields.get(e.fields.len()) {
                return Some((
                    format!("{}.{}", f.name.name, extra.name),
                    "is not a field this crate writes".to_owned(),
                ));
            }
        }
        (Schema::Union(e), Schema::Union(f)) if e.variants().len() == f.variants().len() => {
            if let Some(found) = e
                .variants()
                .iter()
                .zip(f.variants())
                .find_map(|(e, f)| difference(e, f, path))
            {
                return Some(found);
            }
        }
        (Schema::Array(e), Schema::Array(f)) => {
            if let Some(found) = difference(&e.items, &f.items, path) {
                return Some(found);
            }
        }
        _ => {}
    }
    let name = |schema: &Schema| match schema {
        Schema::Record(record) => format!("record {}", record.name.fullname(None)),
        other => describe(other),
    };
    Some((
        path.to_owned(),
        format!("is {}, expected {}", name(found), name(expected)),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design

    use super::*;
    use crate::mapping::oid;

    fn typmod(precision: i32, scale: i32) -> i32 {
        cdc_core::NumericTypmod::encode(precision, scale).unwrap()
    }

    fn parsed(text: &str) -> (u32, i32) {
        pg_type(text, &Schema::String).unwrap()
    }

    #[test]
    fn every_mapped_type_text_gives_its_oid() {
        for (text, expected) in [
            ("boolean", (16, -1)),
            ("bytea", (17, -1)),
            ("\"char\"", (18, -1)),
            ("name", (19, -1)),
            ("bigint", (20, -1)),
            ("smallint", (21, -1)),
            ("integer", (23, -1)),
            ("text", (25, -1)),
            ("oid", (26, -1)),
            ("json", (114, -1)),
            ("real", (700, -1)),
            ("double precision", (701, -1)),
            ("bpchar", (1042, -1)),
            ("character(3)", (1042, 7)),
            ("character varying", (1043, -1)),
            ("character varying(10)", (1043, 14)),
            ("date", (1082, -1)),
            ("time without time zone", (1083, -1)),
            ("time(3) without time zone", (1083, 3)),
            ("timestamp without time zone", (1114, -1)),
            ("timestamp(0) without time zone", (1114, 0)),
            ("timestamp with time zone", (1184, -1)),
            ("timestamp(6) with time zone", (1184, 6)),
            ("numeric", (1700, -1)),
            ("numeric(10,2)", (1700, typmod(10, 2))),
            ("numeric(2,5)", (1700, typmod(2, 5))),
            ("numeric(3,-2)", (1700, typmod(3, -2))),
            ("uuid", (2950, -1)),
            ("jsonb", (3802, -1)),
            ("boolean[]", (1000, -1)),
            ("bytea[]", (1001, -1)),
            ("\"char\"[]", (1002, -1)),
            ("name[]", (1003, -1)),
            ("smallint[]", (1005, -1)),
            ("integer[]", (1007, -1)),
            ("text[]", (1009, -1)),
            ("character(3)[]", (1014, 7)),
            ("character varying(10)[]", (1015, 14)),
            ("bigint[]", (1016, -1)),
            ("real[]", (1021, -1)),
            ("double precision[]", (1022, -1)),
            ("date[]", (1182, -1)),
            ("time without time zone[]", (1183, -1)),
            ("timestamp(3) without time zone[]", (1115, 3)),
            ("timestamp with time zone[]", (1185, -1)),
            ("numeric(10,2)[]", (1231, typmod(10, 2))),
            ("uuid[]", (2951, -1)),
            ("json[]", (199, -1)),
            ("jsonb[]", (3807, -1)),
        ] {
            assert_eq!(parsed(text), expected, "{text}");
        }
        // PostgreSQL's own typmod for numeric(3,-2) is 11-bit: it must read as text.
        assert_eq!(typmod(3, -2), ((3 << 16) | 0x7fe) + 4);
        assert_eq!(Kind::of(1700, typmod(3, -2)), Kind::NumericText);
    }

    #[test]
    fn other_types_are_text_under_their_own_name() {
        for text in [
            "interval",
            "time with time zone",
            "money",
            "transaction_type_enum",
            "public.mood",
            "\"Mood\"",
            "interval[]",
            "bit(3)",
            "numeric_like",
            "",
        ] {
            assert_eq!(parsed(text), (0, -1), "{text}");
        }
        // oid[] is typed (an array of long), as in the decoder and the lake.
        assert_eq!(parsed("oid[]"), (1028, -1));
    }

    #[test]
    fn capture_fallback_names_give_the_oid() {
        assert_eq!(parsed("oid:23"), (23, -1));
        assert_eq!(parsed("oid:16385"), (16_385, -1));
        let decimal = Schema::parse_str(
            r#"{"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}"#,
        )
        .unwrap();
        assert_eq!(
            pg_type("oid:1700", &decimal).unwrap(),
            (1700, typmod(10, 2))
        );
        let array = Schema::parse_str(
            r#"{"type": "array", "items": ["null",
                {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 0}]}"#,
        )
        .unwrap();
        assert_eq!(pg_type("oid:1231", &array).unwrap(), (1231, typmod(5, 0)));
        assert!(pg_type("oid:x", &Schema::Int).is_err());
        assert!(pg_type("oid:-1", &Schema::Int).is_err());
    }

    #[test]
    fn malformed_modifiers_are_errors() {
        for text in [
            "numeric(10)",
            "numeric(0,0)",
            "numeric(1001,2)",
            "numeric(a,b)",
            "character varying(0)",
            "character varying(x)",
            "timestamp(7) with time zone",
            "integer(3)",
            "numeric(10,2)[]x",
        ] {
            let result = pg_type(text, &Schema::String);
            // `numeric(10,2)[]x` is not an array text: it is an unknown type.
            if text.ends_with('x') {
                assert_eq!(result.unwrap(), (0, -1));
            } else {
                let err = result.unwrap_err();
                assert!(err.starts_with(&format!("pg.type {text:?}: ")), "{err}");
            }
        }
    }

    #[test]
    fn array_oids_invert_the_mapping() {
        let mut arrays = 0;
        for array in 0..5000 {
            if let Some(element) = PgType::from_array_oid(array) {
                arrays += 1;
                assert_eq!(array_oid(element.oid()), Some(array), "{array}");
            }
        }
        assert_eq!(arrays, 21, "oid[] included");
        assert_eq!(array_oid(oid::OID), Some(1028));
        assert_eq!(array_oid(1186), None);
    }

    #[test]
    fn names_come_from_the_doc_where_the_namespace_agrees() {
        let schema = "sales.eu";
        let table = "order lines";
        let (s, t) = (avro_name(schema), avro_name(table));
        let doc = format!("A row of {schema}.{table}.");
        assert_eq!(
            table_name(&s, &t, &[Some(&doc)]),
            TableName::new(schema, table)
        );
        // The key's and the envelope's docs say it too.
        let key_doc = format!("Primary key (or replica identity) of {schema}.{table}.");
        let empty_key_doc =
            format!("{schema}.{table} has no primary key or replica identity: the key is empty.");
        let envelope_doc = format!("A change to {schema}.{table}. op: r snapshot read, c insert");
        for doc in [key_doc, empty_key_doc, envelope_doc] {
            assert_eq!(
                table_name(&s, &t, &[None, Some(&doc)]),
                TableName::new(schema, table),
                "{doc}"
            );
        }
        // A doc that disagrees with the namespace is not believed; the Avro names are used.
        assert_eq!(
            table_name(&s, &t, &[Some("A row of public.other.")]),
            TableName::new(s.clone(), t.clone())
        );
        assert_eq!(
            table_name("public", "t", &[None]),
            TableName::new("public", "t")
        );
    }

    #[test]
    fn namespaces_have_three_parts() {
        assert_eq!(
            split_namespace("totesys_cdc.public.sales_order"),
            Some(("public", "sales_order"))
        );
        for bad in [
            "",
            "totesys_cdc",
            "totesys_cdc.public",
            "totesys_cdc.a.b.c",
            "other.public.t",
            "totesys_cdcx.public.t",
            "totesys_cdc..t",
        ] {
            assert_eq!(split_namespace(bad), None, "{bad}");
        }
    }
}
