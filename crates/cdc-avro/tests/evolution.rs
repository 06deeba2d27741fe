//! Schema evolution: a column added to the source yields a BACKWARD-compatible value schema
//! (the new schema reads old data); a type change is refused with a typed error.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use cdc_avro::{
    check_compatible, decode_confluent, decode_value, key_schema, value_schema, AvroCodec,
    AvroError,
};
use cdc_core::{Op, TableSchema, Value};
use cdc_stack::fixtures::*;
use serde_json::json;

fn with_column(base: &TableSchema, c: cdc_core::ColumnSchema) -> TableSchema {
    let mut t = base.clone();
    t.columns.push(c);
    t
}

/// The JSON of the row record's field `name`.
fn row_field(schema: &Schema, name: &str) -> serde_json::Value {
    let json = serde_json::to_value(schema).unwrap();
    json["fields"][0]["type"][1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .cloned()
        .unwrap()
}

#[test]
fn adding_a_nullable_column_is_backward_compatible() {
    let v1 = sales_order();
    let old = value_schema(&v1, None).unwrap();
    let v2 = with_column(&v1, column("discount", 1700, -1, "numeric", true));
    let new = value_schema(&v2, Some(&old)).unwrap();
    SchemaCompatibility::can_read(&old, &new).unwrap();
    check_compatible(&old, &new).unwrap();
    assert_eq!(
        row_field(&new, "discount"),
        json!({"name": "discount", "type": ["null", "string"], "default": null, "pg.type": "numeric"})
    );
    // Keys do not change when a column is added.
    assert_eq!(key_schema(&v1).unwrap(), key_schema(&v2).unwrap());
}

#[test]
fn adding_a_not_null_column_is_backward_compatible() {
    let v1 = sales_order();
    let old = value_schema(&v1, None).unwrap();
    let v2 = with_column(&v1, column("region", 1043, -1, "character varying", false));
    let new = value_schema(&v2, Some(&old)).unwrap();
    SchemaCompatibility::can_read(&old, &new).unwrap();
    check_compatible(&old, &new).unwrap();
    // Emitted nullable with a null default although the column is NOT NULL ...
    assert_eq!(
        row_field(&new, "region"),
        json!({"name": "region", "type": ["null", "string"], "default": null, "pg.type": "character varying"})
    );
    // ... and it stays so in every later version, even with another column added.
    let v3 = with_column(&v2, column("channel", 23, -1, "integer", true));
    let newer = value_schema(&v3, Some(&new)).unwrap();
    assert_eq!(
        row_field(&newer, "region")["type"],
        json!(["null", "string"])
    );
    check_compatible(&new, &newer).unwrap();
    check_compatible(&old, &newer).unwrap();
    // Columns that were NOT NULL from the start keep their plain type.
    assert_eq!(row_field(&newer, "units_sold")["type"], "int");

    // Without the previous schema the column would be a plain string, which cannot read
    // old data: the reason `previous` exists.
    let fresh = value_schema(&v2, None).unwrap();
    let err = check_compatible(&old, &fresh).unwrap_err();
    assert_eq!(
        err.to_string(),
        "new schema totesys_cdc.public.sales_order.Envelope cannot read data written with the old one: Value.region: field added without a default"
    );
}

#[test]
fn old_data_reads_with_the_new_schema() {
    let v1 = Arc::new(sales_order());
    let codec = AvroCodec::new();
    let message = codec
        .encode_value_at(
            &event(&v1, Op::Insert, None, Some(sales_order_row(5))),
            1,
            9,
        )
        .unwrap();
    let old = codec.table(&v1).unwrap().value_schema().clone();
    let v2 = Arc::new(with_column(
        &v1,
        column("region", 1043, -1, "character varying", false),
    ));
    let new = codec.table(&v2).unwrap().value_schema().clone();
    let (_, body) = decode_confluent(&message).unwrap();
    let read = decode_value(&old, body).unwrap().resolve(&new).unwrap();
    let decoded = cdc_avro::decode_event(&v2, &read).unwrap();
    let mut expected = sales_order_row(5);
    expected.push(Value::Null);
    assert_eq!(decoded.after.unwrap(), expected);
}

#[test]
fn a_restarted_codec_evolves_from_the_registered_schema() {
    let v1 = sales_order();
    let registered = value_schema(&v1, None).unwrap();
    let v2 = Arc::new(with_column(
        &v1,
        column("region", 1043, -1, "character varying", false),
    ));
    let codec = AvroCodec::new();
    codec.set_previous_value_schema(v2.id, registered.clone());
    let derived = codec.table(&v2).unwrap();
    check_compatible(&registered, derived.value_schema()).unwrap();
}

#[test]
fn set_not_null_and_drop_column_stay_compatible() {
    let v1 = with_column(&sales_order(), column("note", 25, -1, "text", true));
    let old = value_schema(&v1, None).unwrap();
    // ALTER COLUMN note SET NOT NULL: the field stays nullable.
    let mut v2 = v1.clone();
    v2.columns.last_mut().unwrap().nullable = false;
    let new = value_schema(&v2, Some(&old)).unwrap();
    assert_eq!(row_field(&new, "note")["type"], json!(["null", "string"]));
    check_compatible(&old, &new).unwrap();
    // DROP COLUMN note: readers ignore the writer's extra field.
    let mut v3 = v1.clone();
    v3.columns.pop();
    check_compatible(&old, &value_schema(&v3, Some(&old)).unwrap()).unwrap();
    // DROP NOT NULL: T becomes ["null", T], which reads T.
    let mut v4 = v1.clone();
    v4.columns[4].nullable = true;
    check_compatible(&old, &value_schema(&v4, Some(&old)).unwrap()).unwrap();
}

#[test]
fn a_type_change_is_a_clear_typed_error() {
    let v1 = sales_order();
    let old = value_schema(&v1, None).unwrap();
    let mut v2 = v1.clone();
    let units = v2.column_index("units_sold").unwrap();
    v2.columns[units] = column("units_sold", 25, -1, "text", false);
    let new = value_schema(&v2, Some(&old)).unwrap();
    assert!(SchemaCompatibility::can_read(&old, &new).is_err());
    let err = check_compatible(&old, &new).unwrap_err();
    match &err {
        AvroError::Incompatible {
            schema,
            path,
            reason,
            ..
        } => {
            assert_eq!(schema, "totesys_cdc.public.sales_order.Envelope");
            assert_eq!(path, "Value.units_sold");
            assert_eq!(reason, "written as int, read as string");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "new schema totesys_cdc.public.sales_order.Envelope cannot read data written with the old one: Value.units_sold: written as int, read as string"
    );
    assert!(std::error::Error::source(&err).is_some());

    // A nullable column's type change is found inside the union too.
    let v1 = with_column(&sales_order(), column("note", 23, -1, "integer", true));
    let old = value_schema(&v1, None).unwrap();
    let mut v2 = v1.clone();
    *v2.columns.last_mut().unwrap() = column("note", 17, -1, "bytea", true);
    let err = check_compatible(&old, &value_schema(&v2, Some(&old)).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "new schema totesys_cdc.public.sales_order.Envelope cannot read data written with the old one: Value.note: writer branch int has no reader branch"
    );
    // int → bigint is a promotion Avro allows.
    let mut v3 = sales_order();
    v3.columns[units] = column("units_sold", 20, -1, "bigint", false);
    check_compatible(
        &value_schema(&sales_order(), None).unwrap(),
        &value_schema(&v3, None).unwrap(),
    )
    .unwrap();
}
