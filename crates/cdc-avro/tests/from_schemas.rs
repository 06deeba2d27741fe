//! A consumer's view: the table shape rebuilt from a record's key and value writer schemas
//! (`table_from_schemas`) derives exactly those schemas again, and decodes every event
//! written with the original shape to the same values.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use apache_avro::Schema;
use cdc_avro::{
    avro_name, key_schema, schema_json, table_from_schemas, value_schema, AvroCodec, AvroError,
    DecodedEvent, TableAvro,
};
use cdc_core::{ColumnSchema, Op, ReplicaIdentity, Row, TableName, TableSchema, Value};
use cdc_stack::fixtures::*;
use proptest::prelude::*;
use serde_json::{json, Value as Json};

const TS: i64 = 1_710_000_002_500_000;

/// PostgreSQL's `atttypmod` of `numeric(p,s)` (11-bit scale, as PostgreSQL 15 stores it).
fn pg_numeric_typmod(precision: i32, scale: i32) -> i32 {
    cdc_core::NumericTypmod::encode(precision, scale).unwrap()
}

fn text(schema: &Schema) -> String {
    schema_json(schema).unwrap()
}

/// Whether the row field of column `i` is a union in value schema `v`.
fn union_in_value(v: &Schema, i: usize) -> bool {
    let json = serde_json::to_value(v).unwrap();
    json["fields"][0]["type"][1]["fields"][i]["type"].is_array()
}

/// The table `table_from_schemas(Some(key_schema(t)), value_schema(t, previous))` must give:
/// what the schemas carry of `t`, and `id` for the id they cannot carry.
fn expected_table(
    t: &TableSchema,
    v: &Schema,
    known: &[bool],
    id: cdc_core::TableId,
) -> TableSchema {
    let key: HashSet<usize> = t.key_indexes().into_iter().collect();
    TableSchema {
        id,
        name: t.name.clone(),
        columns: t
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| ColumnSchema {
                name: c.name.clone(),
                type_oid: if known[i] { c.type_oid } else { 0 },
                type_modifier: if known[i] { c.type_modifier } else { -1 },
                type_name: c.type_name.clone(),
                nullable: if key.contains(&i) {
                    c.nullable
                } else {
                    union_in_value(v, i)
                },
                primary_key: key.contains(&i),
                replica_identity: key.contains(&i),
            })
            .collect(),
        replica_identity: ReplicaIdentity::Default,
    }
}

/// Whether some key column is `NOT NULL` in the key but nullable in the value (sticky
/// evolution): then only `value_schema(&t', Some(&v))` gives `v` back.
fn sticky_key_column(t: &TableSchema, v: &Schema) -> bool {
    t.key_indexes()
        .into_iter()
        .any(|i| !t.columns[i].nullable && union_in_value(v, i))
}

fn assert_same_event(got: &DecodedEvent, want: &DecodedEvent, what: &str) {
    assert!(
        same_row(&got.before, &want.before),
        "{what}: before\n{:?}\n{:?}",
        got.before,
        want.before
    );
    assert!(
        same_row(&got.after, &want.after),
        "{what}: after\n{:?}\n{:?}",
        got.after,
        want.after
    );
    assert_eq!(got.op, want.op, "{what}");
    assert_eq!(got.source, want.source, "{what}");
    assert_eq!(got.ts_us, want.ts_us, "{what}");
    assert_eq!(
        got.before_identity_only, want.before_identity_only,
        "{what}"
    );
}

/// Every schema property of one table and previous value schema; returns the rebuilt table.
fn check_schemas(t: &TableSchema, previous: Option<&Schema>, known: &[bool]) -> TableSchema {
    let k = key_schema(t).unwrap();
    let v = value_schema(t, previous).unwrap();
    let rebuilt = table_from_schemas(Some(&k), &v).unwrap();

    assert_eq!(rebuilt, expected_table(t, &v, known, rebuilt.id));
    assert_eq!(key_schema(&rebuilt).unwrap(), k);
    assert_eq!(text(&key_schema(&rebuilt).unwrap()), text(&k));
    assert_eq!(text(&value_schema(&rebuilt, Some(&v)).unwrap()), text(&v));
    let without_previous = text(&value_schema(&rebuilt, None).unwrap());
    assert_eq!(without_previous == text(&v), !sticky_key_column(t, &v));

    // Without the key: no key column, nullability from the value alone, so even
    // `value_schema(_, None)` gives the value schema back.
    let keyless = table_from_schemas(None, &v).unwrap();
    assert_eq!(keyless.id, rebuilt.id);
    assert!(keyless
        .columns
        .iter()
        .all(|c| !c.primary_key && !c.replica_identity));
    assert_eq!(text(&value_schema(&keyless, None).unwrap()), text(&v));

    // The reader for these writer schemas has exactly them.
    let reader = TableAvro::from_schemas(Some(&k), &v).unwrap();
    assert_eq!(text(reader.key_schema()), text(&k));
    assert_eq!(text(reader.value_schema()), text(&v));
    rebuilt
}

/// Encodes `event` with a producer's codec for `t` (evolving from `previous`) and decodes it
/// with the readers a consumer can build from the writer schemas alone.
fn check_decoding(
    t: &Arc<TableSchema>,
    previous: Option<&Schema>,
    event: &cdc_core::ChangeEvent,
    key_row: &Row,
) {
    let producer = AvroCodec::new();
    if let Some(previous) = previous {
        producer.set_previous_value_schema(t.id, previous.clone());
    }
    let message = producer.encode_value_at(event, 9, TS).unwrap();
    let (_, want) = producer.decode_value(t, &message).unwrap();
    let k = producer.table(t).unwrap().key_schema().clone();
    let v = producer.table(t).unwrap().value_schema().clone();
    assert_eq!(text(&v), text(&value_schema(t, previous).unwrap()));

    // `before` of an identity-only old row is the one thing the schemas cannot tell when the
    // replica identity is not the key (a primary key plus REPLICA IDENTITY USING INDEX).
    let identity: Vec<usize> = (0..t.columns.len())
        .filter(|&i| t.columns[i].replica_identity)
        .collect();
    let comparable = !want.before_identity_only || identity == t.key_indexes();
    let compare = |got: &DecodedEvent, what: &str| {
        if comparable {
            assert_same_event(got, &want, what);
        } else {
            let mut got = got.clone();
            got.before.clone_from(&want.before);
            assert_same_event(&got, &want, what);
        }
    };

    let reader = TableAvro::from_schemas(Some(&k), &v).unwrap();
    compare(
        &reader.read_value(&message[5..]).unwrap(),
        "TableAvro::from_schemas",
    );

    let rebuilt = table_from_schemas(Some(&k), &v).unwrap();
    let consumer = AvroCodec::new();
    consumer.set_previous_value_schema(rebuilt.id, v.clone());
    compare(
        &consumer.decode_value(&rebuilt, &message).unwrap().1,
        "AvroCodec with the writer schema as previous",
    );
    if !sticky_key_column(t, &v) {
        let fresh = AvroCodec::new();
        compare(
            &fresh.decode_value(&rebuilt, &message).unwrap().1,
            "fresh AvroCodec",
        );
    }

    let key = producer.encode_key(t, key_row, 9).unwrap();
    let want_key = producer.decode_key(t, &key).unwrap().1;
    let got_key = reader.read_key(&key[5..]).unwrap();
    assert!(same_row(&Some(got_key), &Some(want_key)));
}

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/avro")
}

#[test]
fn the_checked_in_totesys_schemas_give_back_their_tables() {
    let mut tables = Vec::new();
    for entry in std::fs::read_dir(schema_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(table) = name.strip_suffix("-value.avsc") {
            tables.push(table.to_owned());
        }
    }
    tables.sort();
    assert_eq!(tables.len(), 11, "{tables:?}");
    for table in &tables {
        let read = |suffix: &str| {
            std::fs::read_to_string(schema_dir().join(format!("{table}-{suffix}.avsc"))).unwrap()
        };
        let (key_text, value_text) = (read("key"), read("value"));
        let k = Schema::parse_str(&key_text).unwrap();
        let v = Schema::parse_str(&value_text).unwrap();
        let rebuilt = table_from_schemas(Some(&k), &v).unwrap();
        assert_eq!(rebuilt.name, TableName::new("public", table.as_str()));
        assert_eq!(text(&key_schema(&rebuilt).unwrap()), key_text, "{table}");
        assert_eq!(
            text(&value_schema(&rebuilt, None).unwrap()),
            value_text,
            "{table}"
        );
        assert_eq!(
            text(&value_schema(&rebuilt, Some(&v)).unwrap()),
            value_text,
            "{table}"
        );
        assert!(rebuilt.columns.iter().all(|c| c.type_oid != 0), "{table}");
    }
    // The two the fixtures also spell out come back column for column.
    for fixture in [sales_order(), payment()] {
        let name = &fixture.name.name;
        let k = Schema::parse_str(
            &std::fs::read_to_string(schema_dir().join(format!("{name}-key.avsc"))).unwrap(),
        )
        .unwrap();
        let v = Schema::parse_str(
            &std::fs::read_to_string(schema_dir().join(format!("{name}-value.avsc"))).unwrap(),
        )
        .unwrap();
        let rebuilt = table_from_schemas(Some(&k), &v).unwrap();
        assert_eq!(rebuilt.columns, fixture.columns, "{name}");
        assert_eq!(rebuilt.replica_identity, fixture.replica_identity);
    }
}

#[test]
fn every_type_comes_back_and_decodes_the_same() {
    let known: Vec<bool> = all_types()
        .columns
        .iter()
        .map(|c| !matches!(c.type_name.as_str(), "interval" | "mood"))
        .collect();
    // FULL identity, and DEFAULT (old rows with only the key).
    let full = all_types();
    let mut default = all_types();
    default.replica_identity = ReplicaIdentity::Default;
    for c in &mut default.columns[1..] {
        c.replica_identity = false;
    }
    for t in [full, default] {
        let rebuilt = check_schemas(&t, None, &known);
        assert_eq!(rebuilt.name, t.name);
        let t = Arc::new(t);
        let row: Row = t.columns.iter().map(sample).collect();
        let mut toasted = row.clone();
        for (value, c) in toasted.iter_mut().zip(&t.columns).skip(1) {
            if toastable(c) {
                *value = Value::UnchangedToast;
            }
        }
        let mut old = row.clone();
        if t.replica_identity != ReplicaIdentity::Full {
            for value in &mut old[1..] {
                *value = Value::Null;
            }
        }
        for event in [
            event(&t, Op::Insert, None, Some(row.clone())),
            event(&t, Op::Update, Some(old.clone()), Some(toasted)),
            event(&t, Op::Delete, Some(old), None),
            event(&t, Op::Truncate, None, None),
        ] {
            check_decoding(&t, None, &event, &row);
        }
    }
}

#[test]
fn mangled_names_come_back_exactly() {
    let mut t = table(
        1,
        "order lines.2024",
        vec![
            pk("line id"),
            column(
                "unit price",
                1700,
                pg_numeric_typmod(10, 2),
                "numeric(10,2)",
                true,
            ),
            column("9lives", 16, -1, "boolean", false),
            column("prix_€", 1043, 24, "character varying(20)", true),
        ],
    );
    t.name.schema = "sales-eu.west".into();
    let rebuilt = check_schemas(&t, None, &[true; 4]);
    assert_eq!(rebuilt.name, t.name);
    assert_eq!(rebuilt.columns[1].name, "unit price");
    assert_eq!(rebuilt.columns[1].type_modifier, pg_numeric_typmod(10, 2));

    // Without the docs only the Avro names are left: they are used as they stand.
    let mut json = serde_json::to_value(value_schema(&t, None).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("doc");
    json["fields"][0]["type"][1]
        .as_object_mut()
        .unwrap()
        .remove("doc");
    let rebuilt = table_from_schemas(None, &Schema::parse(&json).unwrap()).unwrap();
    assert_eq!(
        rebuilt.name,
        TableName::new(avro_name("sales-eu.west"), avro_name("order lines.2024"))
    );
    // Column names do not depend on docs.
    assert_eq!(rebuilt.columns[0].name, "line id");
}

#[test]
fn the_id_is_a_stable_hash_of_the_name() {
    let a = sales_order();
    let v = value_schema(&a, None).unwrap();
    let id = table_from_schemas(None, &v).unwrap().id;
    // The same for every version of the table's schemas, other for another table.
    let mut wider = a.clone();
    wider.columns.push(column("note", 25, -1, "text", true));
    assert_eq!(
        table_from_schemas(None, &value_schema(&wider, Some(&v)).unwrap())
            .unwrap()
            .id,
        id
    );
    let other = table_from_schemas(None, &value_schema(&payment(), None).unwrap()).unwrap();
    assert_ne!(other.id, id);
    // FNV-1a of "public\0sales_order", pinned so that it never changes by accident.
    let expected = b"public\0sales_order"
        .iter()
        .fold(0x811c_9dc5_u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    assert_eq!(id.0, expected);
}

#[test]
fn a_key_column_made_nullable_in_the_value_needs_the_writer_schema_as_previous() {
    // The primary key column was added after the first version: NOT NULL in the key,
    // ["null", int] in the value (nullability is sticky).
    let v1_table = table(5, "t", vec![column("x", 25, -1, "text", true)]);
    let v1 = value_schema(&v1_table, None).unwrap();
    let t = table(5, "t", vec![column("x", 25, -1, "text", true), pk("id")]);
    let k = key_schema(&t).unwrap();
    let v2 = value_schema(&t, Some(&v1)).unwrap();
    assert!(sticky_key_column(&t, &v2));
    let rebuilt = table_from_schemas(Some(&k), &v2).unwrap();
    assert!(!rebuilt.columns[1].nullable);
    assert_ne!(text(&value_schema(&rebuilt, None).unwrap()), text(&v2));
    assert_eq!(text(&value_schema(&rebuilt, Some(&v2)).unwrap()), text(&v2));
    let t = Arc::new(t);
    let row = vec![Value::Text("a".into()), Value::Int32(7)];
    check_decoding(
        &t,
        Some(&v1),
        &event(&t, Op::Insert, None, Some(row.clone())),
        &row,
    );
}

#[test]
fn each_writer_version_decodes_with_its_own_reader_in_any_order() {
    // v1: id, note NOT NULL. v2: note made nullable, a NOT NULL column added (so nullable
    // in the value). A consumer replaying old records after new ones keeps one reader per
    // value schema.
    let v1_table = table(
        6,
        "t",
        vec![pk("id"), column("note", 25, -1, "text", false)],
    );
    let v1 = value_schema(&v1_table, None).unwrap();
    let v2_table = table(
        6,
        "t",
        vec![
            pk("id"),
            column("note", 25, -1, "text", true),
            column("qty", 21, -1, "smallint", false),
        ],
    );
    let v2 = value_schema(&v2_table, Some(&v1)).unwrap();
    let producer = AvroCodec::new();
    let m1 = producer
        .encode_value_at(
            &event(
                &Arc::new(v1_table.clone()),
                Op::Insert,
                None,
                Some(vec![Value::Int32(1), Value::Text("one".into())]),
            ),
            1,
            TS,
        )
        .unwrap();
    let m2 = producer
        .encode_value_at(
            &event(
                &Arc::new(v2_table.clone()),
                Op::Insert,
                None,
                Some(vec![Value::Int32(2), Value::Null, Value::Int16(3)]),
            ),
            2,
            TS,
        )
        .unwrap();
    let k = key_schema(&v1_table).unwrap();
    let r2 = TableAvro::from_schemas(Some(&k), &v2).unwrap();
    let r1 = TableAvro::from_schemas(Some(&k), &v1).unwrap();
    assert_eq!(
        r2.read_value(&m2[5..]).unwrap().after,
        Some(vec![Value::Int32(2), Value::Null, Value::Int16(3)])
    );
    assert_eq!(
        r1.read_value(&m1[5..]).unwrap().after,
        Some(vec![Value::Int32(1), Value::Text("one".into())])
    );
    assert_eq!(r1.table().id, r2.table().id);

    // One AvroCodec for both does not do: it evolves the v1 shape, met second, from v2,
    // so its plan expects `note` as a union, which v1 did not write.
    let shared = AvroCodec::new();
    let t2 = table_from_schemas(Some(&k), &v2).unwrap();
    let t1 = table_from_schemas(Some(&k), &v1).unwrap();
    shared.decode_value(&t2, &m2).unwrap();
    let misread = shared.decode_value(&t1, &m1);
    assert!(misread.is_err(), "{misread:?}");
}

#[test]
fn a_primary_key_with_another_identity_index_loses_the_old_row() {
    // PK id, REPLICA IDENTITY USING INDEX on (code): the envelope says the old row is
    // identity-only but not which columns the identity holds, and the rebuilt table takes
    // the key's.
    let mut code = column("code", 25, -1, "text", false);
    code.replica_identity = true;
    let mut id = pk("id");
    id.replica_identity = false;
    let mut t = table(7, "t", vec![id, code, column("x", 23, -1, "integer", true)]);
    t.replica_identity = ReplicaIdentity::Index;
    let k = key_schema(&t).unwrap();
    let v = value_schema(&t, None).unwrap();
    let t = Arc::new(t);
    let old = vec![Value::Null, Value::Text("A".into()), Value::Null];
    let producer = AvroCodec::new();
    let message = producer
        .encode_value_at(&event(&t, Op::Delete, Some(old.clone()), None), 1, TS)
        .unwrap();
    assert_eq!(
        producer.decode_value(&t, &message).unwrap().1.before,
        Some(old)
    );
    let reader = TableAvro::from_schemas(Some(&k), &v).unwrap();
    assert_eq!(
        reader.read_value(&message[5..]).unwrap().before,
        // id's slot held the int zero; code was not kept.
        Some(vec![Value::Int32(0), Value::Null, Value::Null])
    );
}

// ---- schemas that are not ours ----

fn value_json() -> Json {
    serde_json::to_value(value_schema(&sales_order(), None).unwrap()).unwrap()
}

fn key_json() -> Json {
    serde_json::to_value(key_schema(&sales_order()).unwrap()).unwrap()
}

fn row_fields(json: &mut Json) -> &mut Vec<Json> {
    json["fields"][0]["type"][1]["fields"]
        .as_array_mut()
        .unwrap()
}

fn refused(key: Option<Json>, value: Json) -> String {
    let key = key.map(|k| Schema::parse(&k).unwrap());
    let value = Schema::parse(&value).unwrap();
    let err = table_from_schemas(key.as_ref(), &value).unwrap_err();
    assert!(matches!(err, AvroError::ForeignSchema { .. }), "{err:?}");
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    message
}

#[test]
fn schemas_that_are_not_ours_are_refused_naming_the_field() {
    const VALUE: &str =
        "schema totesys_cdc.public.sales_order.Envelope is not a key or value schema of cdc-avro";
    const KEY: &str =
        "schema totesys_cdc.public.sales_order.Key is not a key or value schema of cdc-avro";

    let mut v = value_json();
    v["name"] = json!("Change");
    assert_eq!(
        refused(None, v),
        "schema totesys_cdc.public.sales_order.Change is not a key or value schema of cdc-avro: .: is record Change, not Envelope"
    );
    let err = table_from_schemas(None, &Schema::Long).unwrap_err();
    assert_eq!(
        err.to_string(),
        "schema long is not a key or value schema of cdc-avro: .: is long, not record Envelope"
    );

    let mut v = value_json();
    v["namespace"] = json!("elsewhere.public.sales_order");
    assert_eq!(
        refused(None, v),
        "schema elsewhere.public.sales_order.Envelope is not a key or value schema of cdc-avro: .: namespace \"elsewhere.public.sales_order\" is not totesys_cdc.<schema>.<table>"
    );

    let mut v = value_json();
    row_fields(&mut v)[5]
        .as_object_mut()
        .unwrap()
        .remove("pg.type");
    assert_eq!(
        refused(None, v),
        format!("{VALUE}: Value.unit_price: has no pg.type attribute")
    );

    let mut v = value_json();
    row_fields(&mut v)[5]["pg.type"] = json!("integer");
    assert_eq!(
        refused(None, v),
        format!(
            "{VALUE}: Value.unit_price: pg.type \"integer\" travels as int, but the field is string"
        )
    );

    let mut v = value_json();
    row_fields(&mut v)[5]["pg.type"] = json!("numeric(10)");
    assert_eq!(
        refused(None, v),
        format!(
            "{VALUE}: Value.unit_price: pg.type \"numeric(10)\": numeric modifier (10) is not (precision,scale)"
        )
    );

    let mut v = value_json();
    row_fields(&mut v)[1]["type"] = json!(["null", "int", "string"]);
    assert_eq!(
        refused(None, v),
        format!("{VALUE}: Value.design_id: is union [null, int, string], not [\"null\", T]")
    );

    let mut v = value_json();
    row_fields(&mut v)[1]["pg.column"] = json!("design id");
    assert!(refused(None, v).starts_with(&format!(
        "{VALUE}: Value.design_id: pg.column \"design id\" would be field design_id_"
    )));

    let mut v = value_json();
    v["fields"][0]["type"][1]["name"] = json!("Row");
    v["fields"][1]["type"] = json!(["null", "Row"]);
    assert_eq!(
        refused(None, v),
        format!("{VALUE}: Envelope.before: holds record Row, not Value")
    );

    let mut v = value_json();
    v["fields"][0]["type"][1]["namespace"] = json!("other");
    v["fields"][1]["type"] = json!(["null", "other.Value"]);
    assert_eq!(
        refused(None, v),
        format!(
            "{VALUE}: Envelope.before: is record other.Value, expected record totesys_cdc.public.sales_order.Value"
        )
    );

    let mut v = value_json();
    v["fields"].as_array_mut().unwrap().remove(4);
    assert_eq!(
        refused(None, v),
        format!("{VALUE}: Envelope.unchanged_toast: found where field ts_us belongs")
    );

    let mut v = value_json();
    v["fields"].as_array_mut().unwrap().pop();
    assert_eq!(
        refused(None, v),
        format!("{VALUE}: Envelope: has no field before_identity_only")
    );

    let mut v = value_json();
    v["fields"][3]["type"]["fields"][4]["type"] = json!("int");
    assert_eq!(
        refused(None, v),
        format!("{VALUE}: Source.ordinal: is int, expected long")
    );

    let mut v = value_json();
    v["fields"][2]["type"] = json!("bytes");
    assert_eq!(
        refused(None, v),
        format!("{VALUE}: Envelope.op: is bytes, expected string")
    );

    // Keys.
    let mut k = key_json();
    k["name"] = json!("Id");
    assert!(refused(Some(k), value_json()).ends_with(": .: is record Id, not Key"));

    let mut k = key_json();
    k["namespace"] = json!("totesys_cdc.public.payment");
    assert!(refused(Some(k), value_json()).ends_with(
        ": .: namespace \"totesys_cdc.public.payment\" is not the value schema's \"totesys_cdc.public.sales_order\""
    ));

    let mut k = key_json();
    k["fields"][0]["name"] = json!("order_id");
    assert_eq!(
        refused(Some(k), value_json()),
        format!("{KEY}: Key.order_id: is not a field of the value schema's row")
    );

    let mut k = key_json();
    k["fields"][0]["pg.type"] = json!("bigint");
    k["fields"][0]["type"] = json!("long");
    assert_eq!(
        refused(Some(k), value_json()),
        format!("{KEY}: Key.sales_order_id: pg.type \"bigint\" differs from the row's \"integer\"")
    );

    let mut k = key_json();
    k["fields"][0]["type"] = json!(["null", "int"]);
    assert_eq!(
        refused(Some(k), value_json()),
        format!("{KEY}: Key.sales_order_id: is nullable in the key but not in the row")
    );

    let mut k = key_json();
    k["fields"] = json!([
        {"name": "design_id", "type": "int", "pg.type": "integer"},
        {"name": "sales_order_id", "type": "int", "pg.type": "integer"},
    ]);
    assert_eq!(
        refused(Some(k), value_json()),
        format!("{KEY}: Key.sales_order_id: is out of the table's column order")
    );
}

// ---- any table ----

/// A column type as PostgreSQL describes it, and whether the rebuilt table has its OID.
#[derive(Debug, Clone)]
struct PgType {
    oid: u32,
    typmod: i32,
    text: String,
    known: bool,
}

fn known(oid: u32, typmod: i32, text: &str) -> PgType {
    PgType {
        oid,
        typmod,
        text: text.to_owned(),
        known: true,
    }
}

fn pg_type() -> BoxedStrategy<PgType> {
    let plain = [
        (16, "boolean"),
        (17, "bytea"),
        (18, "\"char\""),
        (19, "name"),
        (20, "bigint"),
        (21, "smallint"),
        (23, "integer"),
        (25, "text"),
        (26, "oid"),
        (114, "json"),
        (700, "real"),
        (701, "double precision"),
        (1042, "bpchar"),
        (1043, "character varying"),
        (1082, "date"),
        (1083, "time without time zone"),
        (1114, "timestamp without time zone"),
        (1184, "timestamp with time zone"),
        (1700, "numeric"),
        (2950, "uuid"),
        (3802, "jsonb"),
    ];
    let arrays = [
        (1007, "integer[]"),
        (1009, "text[]"),
        (1022, "double precision[]"),
        (2951, "uuid[]"),
        (1185, "timestamp with time zone[]"),
        (3807, "jsonb[]"),
        (1001, "bytea[]"),
        (1182, "date[]"),
        (1231, "numeric[]"),
        (1028, "oid[]"),
    ];
    // Sent as text under their own names: no OID comes back.
    let other = [
        (1186, "interval"),
        (1266, "time with time zone"),
        (790, "money"),
        (16_385, "mood"),
        (16_390, "sales.\"Mood\""),
        (1187, "interval[]"),
    ];
    prop_oneof![
        10 => proptest::sample::select(plain.to_vec()).prop_map(|(oid, t)| known(oid, -1, t)),
        1 => (1i32..=50).prop_map(|n| known(1043, n + 4, &format!("character varying({n})"))),
        1 => (1i32..=9).prop_map(|n| known(1042, n + 4, &format!("character({n})"))),
        3 => (1i32..=40, 0i32..=40).prop_map(|(p, s)| {
            known(1700, pg_numeric_typmod(p, s), &format!("numeric({p},{s})"))
        }),
        1 => (1i32..=5, -3i32..=-1).prop_map(|(p, s)| {
            known(1700, pg_numeric_typmod(p, s), &format!("numeric({p},{s})"))
        }),
        1 => (0i32..=6, proptest::sample::select(vec![
            (1083, "time", "without time zone"),
            (1114, "timestamp", "without time zone"),
            (1184, "timestamp", "with time zone"),
        ]))
            .prop_map(|(p, (oid, base, zone))| known(oid, p, &format!("{base}({p}) {zone}"))),
        3 => proptest::sample::select(arrays.to_vec()).prop_map(|(oid, t)| known(oid, -1, t)),
        1 => (1i32..=20, 0i32..=20).prop_map(|(p, s)| {
            known(1231, pg_numeric_typmod(p, s), &format!("numeric({p},{s})[]"))
        }),
        1 => (0i32..=6).prop_map(|p| {
            known(1185, p, &format!("timestamp({p}) with time zone[]"))
        }),
        2 => proptest::sample::select(other.to_vec()).prop_map(|(oid, t)| PgType {
            oid,
            typmod: -1,
            text: t.to_owned(),
            known: false,
        }),
    ]
    .boxed()
}

/// PostgreSQL identifiers, some of which are not Avro names.
fn identifier() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[a-z_][a-z0-9_]{0,8}",
        1 => "[a-z]{1,4}[ .\\-][a-z0-9]{1,4}",
        1 => "[0-9][a-z0-9]{0,3}",
        1 => "[a-zA-Zé€ .]{1,6}",
    ]
    .boxed()
}

/// A table, its OID knowledge per column, and the previous value schema's view of it.
#[derive(Debug, Clone)]
struct Case {
    table: TableSchema,
    known: Vec<bool>,
    previous: Option<TableSchema>,
}

fn any_case() -> impl Strategy<Value = Case> {
    let columns = proptest::collection::vec(
        (
            identifier(),
            pg_type(),
            any::<bool>(),
            prop::bool::weighted(0.3),
        ),
        1..8,
    );
    (
        identifier(),
        identifier(),
        columns,
        0u8..4,
        any::<u8>(),
        proptest::option::of((proptest::collection::vec(0u8..3, 8), any::<bool>())),
    )
        .prop_filter_map(
            "columns with distinct Avro names",
            |(schema, name, specs, mode, index_pick, previous)| {
                let mut seen = HashSet::new();
                let mut columns = Vec::new();
                let mut known = Vec::new();
                for (name, ty, nullable, pk) in specs {
                    if !seen.insert(avro_name(&name)) {
                        continue;
                    }
                    known.push(ty.known);
                    columns.push(ColumnSchema {
                        name,
                        type_oid: ty.oid,
                        type_modifier: ty.typmod,
                        type_name: ty.text,
                        nullable: nullable && !pk,
                        primary_key: pk,
                        replica_identity: false,
                    });
                }
                let replica_identity = match mode {
                    0 => ReplicaIdentity::Default,
                    1 => ReplicaIdentity::Full,
                    2 => ReplicaIdentity::Index,
                    _ => ReplicaIdentity::Nothing,
                };
                for (i, c) in columns.iter_mut().enumerate() {
                    c.replica_identity = match replica_identity {
                        ReplicaIdentity::Default => c.primary_key,
                        ReplicaIdentity::Full => true,
                        ReplicaIdentity::Index => !c.nullable && index_pick & (1 << i) != 0,
                        ReplicaIdentity::Nothing => false,
                    };
                }
                let table = TableSchema {
                    id: cdc_core::TableId(16_384 + u32::from(index_pick)),
                    name: TableName::new(schema, name),
                    columns,
                    replica_identity,
                };
                let previous = previous.map(|(states, dropped)| {
                    let mut prev = table.clone();
                    prev.columns = table
                        .columns
                        .iter()
                        .zip(states)
                        .filter(|(_, state)| *state != 0)
                        .map(|(c, state)| ColumnSchema {
                            nullable: state == 1,
                            primary_key: false,
                            replica_identity: false,
                            ..c.clone()
                        })
                        .collect();
                    if dropped {
                        prev.columns
                            .push(column("dropped since", 23, -1, "integer", false));
                    }
                    prev
                });
                // A previous shape whose names collide is not a schema anyone registered.
                let ok = key_schema(&table).is_ok()
                    && previous.as_ref().is_none_or(|p| key_schema(p).is_ok());
                ok.then_some(Case {
                    table,
                    known,
                    previous,
                })
            },
        )
}

/// A case and an event on it, with a full row for the key.
fn any_case_and_event() -> impl Strategy<Value = (Case, cdc_core::ChangeEvent, Row)> {
    any_case().prop_flat_map(|case| {
        let t = Arc::new(case.table.clone());
        let n = t.columns.len();
        (
            Just(case),
            row_of(&t),
            row_of(&t),
            proptest::collection::vec(any::<bool>(), n),
            0u8..5,
        )
            .prop_map(move |(case, new, old, toast, op)| {
                let op = [Op::Read, Op::Insert, Op::Update, Op::Delete, Op::Truncate][op as usize];
                let key = t.key_indexes();
                let mut after = new.clone();
                if op == Op::Update {
                    for (i, (value, c)) in after.iter_mut().zip(&t.columns).enumerate() {
                        if toast[i] && toastable(c) && !key.contains(&i) {
                            *value = Value::UnchangedToast;
                        }
                    }
                }
                // The old row PostgreSQL logs under the table's replica identity.
                let identity = t.columns.iter().any(|c| c.replica_identity);
                let before = match t.replica_identity {
                    ReplicaIdentity::Full => Some(old),
                    ReplicaIdentity::Nothing => None,
                    _ if !identity => None,
                    _ => Some(
                        old.into_iter()
                            .zip(&t.columns)
                            .map(|(v, c)| if c.replica_identity { v } else { Value::Null })
                            .collect(),
                    ),
                };
                let (before, after) = match op {
                    Op::Read | Op::Insert => (None, Some(after)),
                    Op::Update => (before, Some(after)),
                    Op::Delete => (before, None),
                    Op::Truncate => (None, None),
                };
                (case, event(&t, op, before, after), new)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `table_from_schemas(key_schema(t), value_schema(t, previous))` derives both schemas
    /// again, and is `t` up to what the schemas cannot carry.
    #[test]
    fn any_table_comes_back_from_its_schemas(case in any_case()) {
        let previous = case.previous.as_ref().map(|p| value_schema(p, None).unwrap());
        let rebuilt = check_schemas(&case.table, previous.as_ref(), &case.known);
        prop_assert_eq!(&rebuilt.name, &case.table.name);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Events written with `t` decode to the same values with the rebuilt table, unchanged
    /// TOAST and identity-only old rows included.
    #[test]
    fn any_event_decodes_the_same_with_the_rebuilt_table(
        (case, event, key_row) in any_case_and_event()
    ) {
        let previous = case.previous.as_ref().map(|p| value_schema(p, None).unwrap());
        check_decoding(&Arc::new(case.table), previous.as_ref(), &event, &key_row);
    }
}

// ---- edited schemas ----

/// One edit to a schema's JSON, somewhere a careless or hostile producer might make it.
#[derive(Debug, Clone)]
enum Edit {
    PgType(usize, String),
    NoPgType(usize),
    AvroType(usize, Json),
    PgColumn(usize, String),
    DropEnvelopeField(usize),
    RecordName(String),
    Namespace(String),
    KeyField(usize),
}

fn any_edit() -> impl Strategy<Value = Edit> {
    let texts = prop_oneof![
        proptest::sample::select(vec![
            "integer",
            "bigint",
            "smallint",
            "text",
            "numeric",
            "numeric(10,2)",
            "numeric(2,5)",
            "jsonb",
            "uuid",
            "date",
            "boolean",
            "integer[]",
            "numeric(10,2)[]",
            "oid:23",
            "oid:1700",
            "oid:",
            "character varying(0)",
            "timestamp(9) with time zone",
            "mood",
            "time(3) without time zone",
            "",
            "[]",
            "numeric(",
            "numeric)(",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
    ];
    let types = proptest::sample::select(vec![
        json!("int"),
        json!("long"),
        json!("string"),
        json!("bytes"),
        json!(["null", "string"]),
        json!(["null", "int", "long"]),
        json!(["string", "null"]),
        json!({"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}),
        json!({"type": "array", "items": "int"}),
        json!({"type": "array", "items": ["null", "int"]}),
        json!({"type": "long", "logicalType": "timestamp-micros"}),
        json!({"type": "string", "logicalType": "uuid"}),
        json!({"type": "map", "values": "int"}),
    ]);
    prop_oneof![
        3 => (0usize..40, texts).prop_map(|(i, t)| Edit::PgType(i, t)),
        1 => (0usize..40).prop_map(Edit::NoPgType),
        3 => (0usize..40, types).prop_map(|(i, t)| Edit::AvroType(i, t)),
        1 => (0usize..40, "\\PC{0,8}").prop_map(|(i, n)| Edit::PgColumn(i, n)),
        1 => (0usize..7).prop_map(Edit::DropEnvelopeField),
        1 => proptest::sample::select(vec!["Envelope", "Value", "Key", "Row"])
            .prop_map(|n| Edit::RecordName(n.to_owned())),
        1 => proptest::sample::select(vec![
            "totesys_cdc.public.all_types", "totesys_cdc.public", "x.public.all_types",
            "totesys_cdc.public.other",
        ])
        .prop_map(|n| Edit::Namespace(n.to_owned())),
        1 => (0usize..40).prop_map(Edit::KeyField),
    ]
}

fn apply(edit: &Edit, key: &mut Json, value: &mut Json) {
    let row = |value: &mut Json| {
        value["fields"][0]["type"][1]["fields"]
            .as_array_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    };
    let mut fields = row(value);
    let n = fields.len().max(1);
    match edit {
        Edit::PgType(i, t) => fields[i % n]["pg.type"] = json!(t),
        Edit::NoPgType(i) => {
            if let Some(f) = fields[i % n].as_object_mut() {
                f.remove("pg.type");
            }
        }
        Edit::AvroType(i, t) => fields[i % n]["type"] = t.clone(),
        Edit::PgColumn(i, c) => fields[i % n]["pg.column"] = json!(c),
        Edit::DropEnvelopeField(i) => {
            let envelope = value["fields"].as_array_mut().unwrap();
            if *i > 1 && *i < envelope.len() {
                envelope.remove(*i);
            }
        }
        Edit::RecordName(name) => value["name"] = json!(name),
        Edit::Namespace(ns) => key["namespace"] = json!(ns),
        Edit::KeyField(i) => {
            let field = fields[i % n].clone();
            key["fields"].as_array_mut().unwrap().push(field);
        }
    }
    value["fields"][0]["type"][1]["fields"] = Json::Array(fields);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// An edited schema is refused with an error, or gives a table that derives it again:
    /// never a panic, never a table whose plan would misread the writer's bytes.
    #[test]
    fn edited_schemas_are_refused_or_read_exactly(edits in proptest::collection::vec(any_edit(), 1..3)) {
        let mut t = all_types();
        t.replica_identity = ReplicaIdentity::Default;
        let mut key = serde_json::to_value(key_schema(&t).unwrap()).unwrap();
        let mut value = serde_json::to_value(value_schema(&t, None).unwrap()).unwrap();
        for edit in &edits {
            apply(edit, &mut key, &mut value);
        }
        let (Ok(key), Ok(value)) = (Schema::parse(&key), Schema::parse(&value)) else {
            return Ok(());
        };
        match table_from_schemas(Some(&key), &value) {
            Ok(rebuilt) => {
                prop_assert_eq!(key_schema(&rebuilt).unwrap(), key);
                prop_assert_eq!(value_schema(&rebuilt, Some(&value)).unwrap(), value);
            }
            Err(err) => {
                prop_assert!(matches!(err, AvroError::ForeignSchema { .. }), "{:?}", err);
                prop_assert!(!err.to_string().contains('\n'));
            }
        }
    }
}

// ---- against a real catalog ----

/// The catalog's table as the rebuilt one must be: types sent as text lose their OID, the
/// key is the primary key, the id is the hash.
fn from_catalog(t: &TableSchema, text_types: &[&str], id: cdc_core::TableId) -> TableSchema {
    let mut expected = t.clone();
    expected.id = id;
    expected.replica_identity = ReplicaIdentity::Default;
    let key = t.key_indexes();
    for (i, c) in expected.columns.iter_mut().enumerate() {
        if text_types.contains(&c.name.as_str()) {
            c.type_oid = 0;
            c.type_modifier = -1;
        }
        c.primary_key = key.contains(&i);
        c.replica_identity = key.contains(&i);
    }
    expected
}

async fn catalog_table(
    client: &tokio_postgres::Client,
    schema: &str,
    table: &str,
) -> Result<TableSchema, Box<dyn std::error::Error>> {
    let name = TableName::new(schema, table);
    let id = cdc_postgres::catalog::table_id(client, &name).await?;
    Ok(cdc_postgres::catalog::table_schema(client, id).await?)
}

/// PostgreSQL's own `format_type` texts, modifiers and OIDs, for every type this crate maps
/// and some it sends as text, under names that need `avro_name`.
#[tokio::test]
async fn postgres_type_names_give_back_the_catalog_types() -> Result<(), Box<dyn std::error::Error>>
{
    let db = cdc_testkit::TestDb::create().await?;
    let client = db.client().await?;
    client
        .batch_execute(
            r#"
            CREATE SCHEMA "Sales-EU.west";
            CREATE TYPE "Sales-EU.west".mood AS ENUM ('sad', 'happy');
            CREATE TABLE "Sales-EU.west"."order lines.2024" (
                "line id" integer PRIMARY KEY,
                "prix €" text,
                c_bool boolean NOT NULL, c_bytea bytea, c_char "char", c_name name,
                c_int8 bigint, c_int2 smallint, c_oid oid, c_json json,
                c_float4 real, c_float8 double precision,
                c_bpchar bpchar, c_char3 char(3), c_varchar varchar, c_varchar20 varchar(20),
                c_date date, c_time time, c_time3 time(3), c_timestamp timestamp,
                c_timestamp0 timestamp(0), c_timestamptz timestamptz, c_timestamptz6 timestamptz(6),
                c_numeric numeric, c_numeric_10_2 numeric(10,2) NOT NULL, c_numeric_2_5 numeric(2,5),
                c_numeric_3_m2 numeric(3,-2), c_uuid uuid, c_jsonb jsonb,
                c_interval interval, c_timetz timetz, c_money money, c_mood "Sales-EU.west".mood,
                c_inet inet,
                a_bool boolean[], a_bytea bytea[], a_char "char"[], a_name name[], a_int2 smallint[],
                a_int4 integer[][], a_text text[], a_bpchar char(2)[], a_varchar varchar(5)[],
                a_int8 bigint[], a_float4 real[], a_float8 float8[], a_date date[], a_time time[],
                a_timestamp timestamp(3)[], a_timestamptz timestamptz[], a_numeric numeric(10,2)[],
                a_uuid uuid[], a_json json[], a_jsonb jsonb[],
                a_oid oid[], a_interval interval[], a_mood "Sales-EU.west".mood[]
            );
            "#,
        )
        .await?;
    let t = catalog_table(&client, "Sales-EU.west", "order lines.2024").await?;
    let text_types = [
        "c_interval",
        "c_timetz",
        "c_money",
        "c_mood",
        "c_inet",
        "a_interval",
        "a_mood",
    ];
    let k = key_schema(&t)?;
    let v = value_schema(&t, None)?;
    let rebuilt = table_from_schemas(Some(&k), &v)?;
    assert_eq!(rebuilt, from_catalog(&t, &text_types, rebuilt.id));
    assert_eq!(text(&key_schema(&rebuilt)?), text(&k));
    assert_eq!(text(&value_schema(&rebuilt, None)?), text(&v));
    // The texts seen, for the record of what PostgreSQL prints.
    let names: Vec<&str> = t.columns.iter().map(|c| c.type_name.as_str()).collect();
    for expected in [
        "bpchar",
        "character(3)",
        "\"char\"",
        "time(3) without time zone",
        "timestamp(0) without time zone",
        "numeric(3,-2)",
        "character varying(5)[]",
        "timestamp(3) without time zone[]",
        "integer[]",
        "\"Sales-EU.west\".mood",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }

    // The totesys tables, in both variants of the simulator's DDL.
    for (schema, variant) in [
        ("plain", cdc_sim::SchemaVariant::default()),
        ("deployment", cdc_sim::SchemaVariant::BOTH),
    ] {
        let db = cdc_testkit::TestDb::create().await?;
        let client = db.client().await?;
        cdc_sim::create_schema(&client, variant).await?;
        for table in cdc_sim::TABLES {
            let t = catalog_table(&client, "public", table).await?;
            let k = key_schema(&t)?;
            let v = value_schema(&t, None)?;
            let rebuilt = table_from_schemas(Some(&k), &v)?;
            let text_types: &[&str] = if variant.transaction_type_enum {
                &["transaction_type"]
            } else {
                &[]
            };
            assert_eq!(
                rebuilt,
                from_catalog(&t, text_types, rebuilt.id),
                "{schema} {table}"
            );
            assert_eq!(text(&value_schema(&rebuilt, None)?), text(&v));
        }
    }
    Ok(())
}
