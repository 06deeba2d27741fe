//! Avro schemas from table schemas, their JSON text, and backward-compatibility checks.

use std::collections::HashSet;

use apache_avro::schema::{RecordField, RecordSchema};
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use cdc_core::TableSchema;
use serde_json::{json, Map, Value as Json};

use crate::decode::Names;
use crate::error::{AvroError, Result};
use crate::mapping::{ColumnPlan, TablePlan};

/// The key schema of `table`: record `Key` of its primary-key columns (replica identity
/// columns when it has no primary key), in table order.
pub fn key_schema(table: &TableSchema) -> Result<Schema> {
    key_schema_of(&TablePlan::new(table, None)?)
}

/// The value schema of `table`: record `Envelope` around two images of record `Value`.
///
/// `previous` is the value schema in use before this one (the subject's latest version), if
/// any. A field it declared nullable, or did not have, stays nullable even where the column
/// is `NOT NULL`: that keeps every new version able to read data written with the old ones.
pub fn value_schema(table: &TableSchema, previous: Option<&Schema>) -> Result<Schema> {
    value_schema_of(&plan_with_previous(table, previous)?)
}

/// The plan of `table`, with nullability carried over from `previous`.
pub(crate) fn plan_with_previous(
    table: &TableSchema,
    previous: Option<&Schema>,
) -> Result<TablePlan> {
    match previous {
        None => TablePlan::new(table, None),
        Some(previous) => {
            let non_null = non_null_fields(&table.name.to_string(), previous)?;
            TablePlan::new(table, Some(&|field: &str| non_null.contains(field)))
        }
    }
}

/// The pretty-printed JSON text of `schema`, ending in a newline: the form that is checked
/// in under `schemas/avro/` and registered. Field order is the schema's; attribute order is
/// fixed by `apache_avro`.
pub fn schema_json(schema: &Schema) -> Result<String> {
    let mut text =
        serde_json::to_string_pretty(schema).map_err(|source| AvroError::SchemaJson {
            name: full_name(schema),
            source,
        })?;
    text.push('\n');
    Ok(text)
}

/// Checks that `new` can read everything written with `old` (Avro BACKWARD compatibility).
///
/// The error names the innermost record field where the two disagree, e.g. `Value.units_sold`
/// for a column whose type changed from `int` to `text`.
pub fn check_compatible(old: &Schema, new: &Schema) -> Result<()> {
    let Err(source) = SchemaCompatibility::can_read(old, new) else {
        return Ok(());
    };
    let old_names = Names::of(old);
    let new_names = Names::of(new);
    let (path, reason) = locate(old, new, &old_names, &new_names, ".")
        .unwrap_or_else(|| (".".to_owned(), mismatch(old, new)));
    Err(AvroError::Incompatible {
        schema: full_name(new),
        path,
        reason,
        source: Box::new(source),
    })
}

/// The full name of a named schema, or its type for an unnamed one.
pub(crate) fn full_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(RecordSchema { name, .. }) => name.fullname(None),
        other => describe(other),
    }
}

pub(crate) fn key_schema_of(plan: &TablePlan) -> Result<Schema> {
    let fields: Vec<Json> = plan
        .key_columns()
        .map(|column| column_field(column, column.key_nullable))
        .collect();
    let doc = if fields.is_empty() {
        format!(
            "{} has no primary key or replica identity: the key is empty.",
            plan.table
        )
    } else {
        format!("Primary key (or replica identity) of {}.", plan.table)
    };
    parse(
        plan,
        json!({
            "type": "record",
            "name": "Key",
            "namespace": plan.namespace,
            "doc": doc,
            "fields": fields,
        }),
    )
}

pub(crate) fn value_schema_of(plan: &TablePlan) -> Result<Schema> {
    let columns: Vec<Json> = plan
        .columns
        .iter()
        .map(|column| column_field(column, column.value_nullable))
        .collect();
    let row = json!({
        "type": "record",
        "name": "Value",
        "doc": format!("A row of {}.", plan.table),
        "fields": columns,
    });
    let timestamp = json!({"type": "long", "logicalType": "timestamp-micros"});
    let source = json!({
        "type": "record",
        "name": "Source",
        "doc": "Where the change was read: WAL positions, transaction, source table.",
        "fields": [
            {"name": "lsn", "type": "long"},
            {"name": "commit_lsn", "type": "long"},
            {"name": "xid", "type": ["null", "long"], "default": null},
            {"name": "commit_ts_us", "type": timestamp},
            {"name": "ordinal", "type": "long"},
            {"name": "snapshot", "type": "boolean"},
            {"name": "schema", "type": "string"},
            {"name": "table", "type": "string"},
        ],
    });
    let doc = format!(
        "A change to {}. op: r snapshot read, c insert, u update, d delete, t truncate. \
         Fields listed in unchanged_toast were not sent (unchanged TOASTed values): their \
         slots in after hold null, or the type's zero where the field is not nullable. When \
         before_identity_only is true, before holds only the replica identity columns; its \
         other fields hold null, or the type's zero where the field is not nullable.",
        plan.table
    );
    parse(
        plan,
        json!({
            "type": "record",
            "name": "Envelope",
            "namespace": plan.namespace,
            "doc": doc,
            "fields": [
                {"name": "before", "type": ["null", row], "default": null},
                {"name": "after", "type": ["null", "Value"], "default": null},
                {"name": "op", "type": "string"},
                {"name": "source", "type": source},
                {"name": "ts_us", "type": timestamp},
                {"name": "unchanged_toast", "type": {"type": "array", "items": "string"}, "default": []},
                {"name": "before_identity_only", "type": "boolean", "default": false},
            ],
        }),
    )
}

/// The field of one column: its Avro type, and its PostgreSQL type (and name, when the field
/// name differs) as `pg.type` and `pg.column` attributes.
fn column_field(column: &ColumnPlan, nullable: bool) -> Json {
    let mut field = Map::new();
    field.insert("name".into(), json!(column.field));
    if nullable {
        field.insert("type".into(), json!(["null", column.kind.avro_type()]));
        field.insert("default".into(), Json::Null);
    } else {
        field.insert("type".into(), column.kind.avro_type());
    }
    field.insert("pg.type".into(), json!(column.type_name));
    if column.field != column.name {
        field.insert("pg.column".into(), json!(column.name));
    }
    Json::Object(field)
}

fn parse(plan: &TablePlan, json: Json) -> Result<Schema> {
    Schema::parse(&json).map_err(|source| AvroError::SchemaBuild {
        table: plan.table.clone(),
        source,
    })
}

/// Names of the row-record fields that `previous` declares non-null.
fn non_null_fields(table: &str, previous: &Schema) -> Result<HashSet<String>> {
    let bad = |reason| AvroError::PreviousSchema {
        table: table.to_owned(),
        reason,
    };
    let Schema::Record(envelope) = previous else {
        return Err(bad("it is not a record"));
    };
    let row = ["before", "after"]
        .iter()
        .filter_map(|name| {
            envelope
                .lookup
                .get(*name)
                .and_then(|&i| envelope.fields.get(i))
        })
        .find_map(|field| match &field.schema {
            Schema::Union(union) => union.variants().iter().find_map(|v| match v {
                Schema::Record(record) => Some(record),
                _ => None,
            }),
            _ => None,
        })
        .ok_or_else(|| bad("it has no before or after field holding a row record"))?;
    Ok(row
        .fields
        .iter()
        .filter(|f| !matches!(f.schema, Schema::Union(_)))
        .map(|f| f.name.clone())
        .collect())
}

/// The innermost place where `reader` cannot read `writer`, with the reason; `None` when no
/// finer place than `path` explains it.
fn locate(
    writer: &Schema,
    reader: &Schema,
    writer_names: &Names,
    reader_names: &Names,
    path: &str,
) -> Option<(String, String)> {
    let writer = writer_names.resolve(writer);
    let reader = reader_names.resolve(reader);
    let fails = |w: &Schema, r: &Schema| SchemaCompatibility::can_read(w, r).is_err();
    match (writer, reader) {
        (Schema::Record(w), Schema::Record(r)) => {
            if w.name.fullname(None) != r.name.fullname(None) {
                return Some((
                    path.to_owned(),
                    format!(
                        "record {} became {}",
                        w.name.fullname(None),
                        r.name.fullname(None)
                    ),
                ));
            }
            for rf in &r.fields {
                let here = format!("{}.{}", r.name.name, rf.name);
                match field(w, &rf.name) {
                    Some(wf) if fails(&wf.schema, &rf.schema) => {
                        return locate(&wf.schema, &rf.schema, writer_names, reader_names, &here)
                            .or_else(|| Some((here, mismatch(&wf.schema, &rf.schema))));
                    }
                    None if rf.default.is_none() => {
                        return Some((here, "field added without a default".to_owned()));
                    }
                    _ => {}
                }
            }
            None
        }
        (Schema::Union(w), Schema::Union(r)) => {
            for wv in w.variants() {
                if r.variants().iter().all(|rv| fails(wv, rv)) {
                    let same_kind = r.variants().iter().find(|rv| {
                        std::mem::discriminant(reader_names.resolve(rv))
                            == std::mem::discriminant(writer_names.resolve(wv))
                    });
                    return same_kind
                        .and_then(|rv| locate(wv, rv, writer_names, reader_names, path))
                        .or_else(|| {
                            Some((
                                path.to_owned(),
                                format!("writer branch {} has no reader branch", describe(wv)),
                            ))
                        });
                }
            }
            None
        }
        (Schema::Union(w), reader) => w.variants().iter().find(|wv| fails(wv, reader)).map(|wv| {
            locate(wv, reader, writer_names, reader_names, path)
                .unwrap_or_else(|| (path.to_owned(), mismatch(wv, reader)))
        }),
        (Schema::Array(w), Schema::Array(r)) => locate(
            &w.items,
            &r.items,
            writer_names,
            reader_names,
            &format!("{path}[]"),
        ),
        (writer, reader) => Some((path.to_owned(), mismatch(writer, reader))),
    }
}

fn field<'a>(record: &'a RecordSchema, name: &str) -> Option<&'a RecordField> {
    record.lookup.get(name).and_then(|&i| record.fields.get(i))
}

fn mismatch(writer: &Schema, reader: &Schema) -> String {
    format!(
        "written as {}, read as {}",
        describe(writer),
        describe(reader)
    )
}

/// A short name for a schema's type: `int`, `decimal(10,2)`, `union [null, string]`, ….
pub(crate) fn describe(schema: &Schema) -> String {
    match schema {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int => "int".into(),
        Schema::Long => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes => "bytes".into(),
        Schema::String => "string".into(),
        Schema::Array(a) => format!("array<{}>", describe(&a.items)),
        Schema::Map(m) => format!("map<{}>", describe(&m.types)),
        Schema::Union(u) => format!(
            "union [{}]",
            u.variants()
                .iter()
                .map(describe)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Schema::Record(r) => format!("record {}", r.name.name),
        Schema::Enum(e) => format!("enum {}", e.name.name),
        Schema::Fixed(f) => format!("fixed {}", f.name.name),
        Schema::Decimal(d) => format!("decimal({},{})", d.precision, d.scale),
        Schema::BigDecimal => "big-decimal".into(),
        Schema::Uuid => "uuid".into(),
        Schema::Date => "date".into(),
        Schema::TimeMillis => "time-millis".into(),
        Schema::TimeMicros => "time-micros".into(),
        Schema::TimestampMillis => "timestamp-millis".into(),
        Schema::TimestampMicros => "timestamp-micros".into(),
        Schema::TimestampNanos => "timestamp-nanos".into(),
        Schema::LocalTimestampMillis => "local-timestamp-millis".into(),
        Schema::LocalTimestampMicros => "local-timestamp-micros".into(),
        Schema::LocalTimestampNanos => "local-timestamp-nanos".into(),
        Schema::Duration => "duration".into(),
        Schema::Ref { name } => name.name.clone(),
    }
}
