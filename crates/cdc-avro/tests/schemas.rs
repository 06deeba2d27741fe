//! What the derived schemas look like: one test per type mapping, names, keys, envelope.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use cdc_avro::{key_schema, schema_json, value_schema, AvroError};
use cdc_core::{ColumnSchema, ReplicaIdentity};
use cdc_stack::fixtures::*;
use serde_json::{json, Value as Json};

/// The JSON of the row record `Value` inside a value schema.
fn row_record(schema: &apache_avro::Schema) -> Json {
    let json = serde_json::to_value(schema).unwrap();
    assert_eq!(json["fields"][0]["name"], "before");
    json["fields"][0]["type"][1].clone()
}

/// The Avro type a lone column gets in the value schema.
fn avro_type(c: ColumnSchema) -> Json {
    let t = table(1, "t", vec![pk("id"), c]);
    let row = row_record(&value_schema(&t, None).unwrap());
    row["fields"][1]["type"].clone()
}

fn not_null(oid: u32, typmod: i32, type_name: &str) -> Json {
    avro_type(column("c", oid, typmod, type_name, false))
}

macro_rules! maps_to {
    ($($name:ident: $oid:expr, $typmod:expr => $expected:tt;)*) => {
        $(
            #[test]
            fn $name() {
                assert_eq!(not_null($oid, $typmod, stringify!($name)), json!($expected));
            }
        )*
    };
}

maps_to! {
    bool_is_boolean: 16, -1 => "boolean";
    int2_is_int: 21, -1 => "int";
    int4_is_int: 23, -1 => "int";
    int8_is_long: 20, -1 => "long";
    oid_is_long: 26, -1 => "long";
    float4_is_float: 700, -1 => "float";
    float8_is_double: 701, -1 => "double";
    numeric_10_2_is_decimal: 1700, numeric_typmod(10, 2) =>
        {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2};
    numeric_5_0_is_decimal: 1700, numeric_typmod(5, 0) =>
        {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 0};
    unconstrained_numeric_is_exact_text: 1700, -1 => "string";
    numeric_with_scale_above_precision_is_text: 1700, numeric_typmod(2, 5) => "string";
    numeric_with_negative_scale_is_text: 1700, numeric_typmod(3, -2) => "string";
    text_is_string: 25, -1 => "string";
    varchar_is_string: 1043, 14 => "string";
    bpchar_is_string: 1042, 7 => "string";
    name_is_string: 19, -1 => "string";
    char_is_string: 18, -1 => "string";
    enum_is_string: 16_385, -1 => "string";
    json_is_string: 114, -1 => "string";
    jsonb_is_string: 3802, -1 => "string";
    bytea_is_bytes: 17, -1 => "bytes";
    date_is_date: 1082, -1 => {"type": "int", "logicalType": "date"};
    time_is_time_micros: 1083, -1 => {"type": "long", "logicalType": "time-micros"};
    timestamp_is_local_timestamp_micros: 1114, -1 =>
        {"type": "long", "logicalType": "local-timestamp-micros"};
    timestamptz_is_timestamp_micros: 1184, -1 =>
        {"type": "long", "logicalType": "timestamp-micros"};
    uuid_is_uuid_string: 2950, -1 => {"type": "string", "logicalType": "uuid"};
    interval_is_string: 1186, -1 => "string";
    int4_array_is_array_of_nullable_int: 1007, -1 => {"type": "array", "items": ["null", "int"]};
    numeric_array_keeps_the_element_scale: 1231, numeric_typmod(10, 2) =>
        {"type": "array", "items": ["null",
            {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}]};
    timestamptz_array_is_array_of_timestamps: 1185, -1 =>
        {"type": "array", "items": ["null", {"type": "long", "logicalType": "timestamp-micros"}]};
    interval_array_is_text: 1187, -1 => "string";
}

#[test]
fn nullable_columns_are_unions_with_null_default() {
    let t = table(1, "t", vec![pk("id"), column("note", 25, -1, "text", true)]);
    let row = row_record(&value_schema(&t, None).unwrap());
    assert_eq!(
        row["fields"][1],
        json!({"name": "note", "type": ["null", "string"], "default": null, "pg.type": "text"})
    );
    assert_eq!(
        row["fields"][0],
        json!({"name": "id", "type": "int", "pg.type": "integer"})
    );
}

#[test]
fn json_columns_say_so_in_pg_type() {
    let t = table(
        1,
        "t",
        vec![pk("id"), column("doc", 3802, -1, "jsonb", false)],
    );
    let row = row_record(&value_schema(&t, None).unwrap());
    assert_eq!(
        row["fields"][1],
        json!({"name": "doc", "type": "string", "pg.type": "jsonb"})
    );
}

#[test]
fn key_is_the_primary_key_then_the_replica_identity() {
    let orders = sales_order();
    let key = serde_json::to_value(key_schema(&orders).unwrap()).unwrap();
    assert_eq!(key["name"], "Key");
    assert_eq!(key["namespace"], "totesys_cdc.public.sales_order");
    assert_eq!(
        key["fields"],
        json!([{"name": "sales_order_id", "type": "int", "pg.type": "integer"}])
    );

    // No primary key: the replica identity index columns, in table order.
    let mut a = column("a", 25, -1, "text", false);
    let mut b = column("b", 20, -1, "bigint", false);
    a.replica_identity = true;
    b.replica_identity = true;
    let mut t = table(2, "t", vec![b, column("x", 16, -1, "boolean", true), a]);
    t.replica_identity = ReplicaIdentity::Index;
    let key = serde_json::to_value(key_schema(&t).unwrap()).unwrap();
    let names: Vec<&str> = key["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "a"]);

    // Neither: an empty key record.
    let t = table(3, "loose", vec![column("x", 16, -1, "boolean", true)]);
    let key = serde_json::to_value(key_schema(&t).unwrap()).unwrap();
    assert_eq!(key["fields"], json!([]));
}

#[test]
fn the_envelope_has_its_fields_in_order() {
    let schema = serde_json::to_value(value_schema(&sales_order(), None).unwrap()).unwrap();
    assert_eq!(schema["name"], "Envelope");
    assert_eq!(schema["namespace"], "totesys_cdc.public.sales_order");
    let fields = schema["fields"].as_array().unwrap();
    let summary: Vec<(String, Json)> = fields
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f.get("default").cloned().unwrap_or(json!("-")),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("before".to_owned(), Json::Null),
            ("after".to_owned(), Json::Null),
            ("op".to_owned(), json!("-")),
            ("source".to_owned(), json!("-")),
            ("ts_us".to_owned(), json!("-")),
            ("unchanged_toast".to_owned(), json!([])),
            ("before_identity_only".to_owned(), json!(false)),
        ]
    );
    assert_eq!(
        fields[1]["type"],
        json!(["null", "totesys_cdc.public.sales_order.Value"])
    );
    assert_eq!(fields[2]["type"], "string");
    assert_eq!(
        fields[4]["type"],
        json!({"type": "long", "logicalType": "timestamp-micros"})
    );
    assert_eq!(
        fields[5]["type"],
        json!({"type": "array", "items": "string"})
    );
    let source = &fields[3]["type"];
    assert_eq!(source["name"], "Source");
    assert_eq!(
        source["fields"],
        json!([
            {"name": "lsn", "type": "long"},
            {"name": "commit_lsn", "type": "long"},
            {"name": "xid", "type": ["null", "long"], "default": null},
            {"name": "commit_ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "ordinal", "type": "long"},
            {"name": "snapshot", "type": "boolean"},
            {"name": "schema", "type": "string"},
            {"name": "table", "type": "string"},
        ])
    );
    let row = &fields[0]["type"][1];
    assert_eq!(row["name"], "Value");
    assert_eq!(row["fields"].as_array().unwrap().len(), 12);
}

#[test]
fn invalid_names_are_sanitized_and_the_original_kept() {
    let mut t = table(
        1,
        "order lines",
        vec![
            pk("id"),
            column("unit price", 23, -1, "integer", true),
            column("9lives", 16, -1, "boolean", true),
        ],
    );
    t.name.schema = "sales-eu".into();
    let schema = value_schema(&t, None).unwrap();
    let json = serde_json::to_value(&schema).unwrap();
    let namespace = json["namespace"].as_str().unwrap();
    assert!(
        namespace.starts_with("totesys_cdc.sales_eu_"),
        "{namespace}"
    );
    assert!(namespace.contains(".order_lines_"), "{namespace}");
    let row = row_record(&schema);
    let field = &row["fields"][1];
    assert!(field["name"].as_str().unwrap().starts_with("unit_price_"));
    assert_eq!(field["pg.column"], "unit price");
    assert!(row["fields"][2]["name"]
        .as_str()
        .unwrap()
        .starts_with("_9lives_"));
    assert_eq!(field["name"], json!(cdc_avro::avro_name("unit price")));
}

#[test]
fn schema_json_is_pretty_and_stable() {
    let t = table(
        1,
        "tiny",
        vec![
            pk("id"),
            column("label", 1043, -1, "character varying", true),
        ],
    );
    let text = schema_json(&key_schema(&t).unwrap()).unwrap();
    assert_eq!(
        text,
        r#"{
  "type": "record",
  "namespace": "totesys_cdc.public.tiny",
  "name": "Key",
  "doc": "Primary key (or replica identity) of public.tiny.",
  "fields": [
    {
      "name": "id",
      "type": "int",
      "pg.type": "integer"
    }
  ]
}
"#
    );
    // Parsing the text back gives the same schema and the same text.
    let value = value_schema(&t, None).unwrap();
    let text = schema_json(&value).unwrap();
    let reparsed = apache_avro::Schema::parse_str(&text).unwrap();
    assert_eq!(schema_json(&reparsed).unwrap(), text);
    assert_eq!(reparsed.canonical_form(), value.canonical_form());
}

#[test]
fn a_previous_schema_must_be_an_envelope() {
    let t = sales_order();
    let key = key_schema(&t).unwrap();
    let err = value_schema(&t, Some(&key)).unwrap_err();
    assert!(matches!(err, AvroError::PreviousSchema { .. }));
    assert_eq!(
        err.to_string(),
        "previous value schema of public.sales_order is not a change-event envelope: it has no before or after field holding a row record"
    );
    let err = value_schema(&t, Some(&apache_avro::Schema::Long)).unwrap_err();
    assert!(err.to_string().ends_with("it is not a record"), "{err}");
}

#[test]
fn colliding_names_are_refused() {
    // Only possible when a valid name equals another's sanitized form, hash included.
    let odd = "a b";
    let t = table(
        1,
        "t",
        vec![
            pk("id"),
            column(odd, 23, -1, "integer", true),
            column(&cdc_avro::avro_name(odd), 23, -1, "integer", true),
        ],
    );
    let err = value_schema(&t, None).unwrap_err();
    assert!(matches!(err, AvroError::NameCollision { .. }), "{err}");
}
