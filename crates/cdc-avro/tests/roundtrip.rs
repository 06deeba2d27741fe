//! Events and keys encoded, then decoded, give back the same values; and the bytes are
//! exactly what the reference implementation (`apache_avro`) writes and reads.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use apache_avro::{from_avro_datum, to_avro_datum};
use cdc_avro::{
    decode_confluent, decode_event, decode_key, decode_value, AvroCodec, AvroError, DecodedEvent,
    SourceInfo,
};
use cdc_core::{ChangeEvent, Lsn, Op, ReplicaIdentity, Row, TableSchema, Value, Xid};
use cdc_stack::fixtures::*;
use proptest::prelude::*;

const TS: i64 = 1_710_000_002_500_000;

/// What decoding `event` (stamped [`TS`]) must give.
fn expected(event: &ChangeEvent) -> DecodedEvent {
    let identity_only =
        event.before.is_some() && event.table.replica_identity != ReplicaIdentity::Full;
    DecodedEvent {
        op: event.op,
        before: event.before.clone(),
        after: event.after.clone(),
        source: SourceInfo {
            lsn: event.lsn,
            commit_lsn: event.position.commit_lsn,
            xid: event.transaction.xid,
            commit_ts_us: event.transaction.commit_time_micros,
            ordinal: event.position.ordinal,
            snapshot: event.snapshot,
            schema: event.table.name.schema.clone(),
            table: event.table.name.name.clone(),
        },
        ts_us: TS,
        before_identity_only: identity_only,
    }
}

fn assert_same_event(decoded: &DecodedEvent, expected: &DecodedEvent) {
    assert!(
        same_row(&decoded.before, &expected.before),
        "before\n{:?}\n{:?}",
        decoded.before,
        expected.before
    );
    assert!(
        same_row(&decoded.after, &expected.after),
        "after\n{:?}\n{:?}",
        decoded.after,
        expected.after
    );
    assert_eq!(decoded.op, expected.op);
    assert_eq!(decoded.source, expected.source);
    assert_eq!(decoded.ts_us, expected.ts_us);
    assert_eq!(decoded.before_identity_only, expected.before_identity_only);
}

/// Encodes, decodes through the codec and through the free functions, and checks the body
/// against `apache_avro`'s reader and writer.
fn round_trip(codec: &AvroCodec, event: &ChangeEvent) -> DecodedEvent {
    let message = codec.encode_value_at(event, 42, TS).unwrap();
    let (id, decoded) = codec.decode_value(&event.table, &message).unwrap();
    assert_eq!(id, 42);
    assert_same_event(&decoded, &expected(event));

    let avro = codec.table(&event.table).unwrap();
    let (_, body) = decode_confluent(&message).unwrap();
    let ours = decode_value(avro.value_schema(), body).unwrap();
    assert_same_event(
        &decode_event(&event.table, &ours).unwrap(),
        &expected(event),
    );
    // The reference reader reads our bytes, and its writer writes the same bytes from
    // either reading (byte equality also holds for NaN, where value equality does not).
    let reference = from_avro_datum(avro.value_schema(), &mut &body[..], None).unwrap();
    assert_eq!(to_avro_datum(avro.value_schema(), reference).unwrap(), body);
    assert_eq!(to_avro_datum(avro.value_schema(), ours).unwrap(), body);
    decoded
}

fn key_round_trip(codec: &AvroCodec, table: &TableSchema, row: &Row) {
    let message = codec.encode_key(table, row, 7).unwrap();
    let (id, key) = codec.decode_key(table, &message).unwrap();
    assert_eq!(id, 7);
    let expected: Row = table
        .key_indexes()
        .iter()
        .map(|&i| row[i].clone())
        .collect();
    assert!(same_row(&Some(key.clone()), &Some(expected)), "{key:?}");
    let avro = codec.table(&Arc::new(table.clone())).unwrap();
    let body = &message[5..];
    let ours = decode_value(avro.key_schema(), body).unwrap();
    assert_eq!(decode_key(table, &ours).unwrap(), key);
    let reference = from_avro_datum(avro.key_schema(), &mut &body[..], None).unwrap();
    assert_eq!(to_avro_datum(avro.key_schema(), reference).unwrap(), body);
}

#[test]
fn sales_order_and_payment_events() {
    let codec = AvroCodec::new();
    let orders = Arc::new(sales_order());
    let payments = Arc::new(payment());
    round_trip(
        &codec,
        &event(&orders, Op::Insert, None, Some(sales_order_row(1))),
    );
    let mut paid = payment_row(9);
    paid[6] = Value::Bool(true);
    round_trip(
        &codec,
        &event(&payments, Op::Update, None, Some(paid.clone())),
    );
    key_round_trip(&codec, &payments, &paid);
    // A delete under REPLICA IDENTITY DEFAULT: the old row has only the key.
    let mut key_only = vec![Value::Null; payments.columns.len()];
    key_only[0] = Value::Int32(9);
    let decoded = round_trip(
        &codec,
        &event(&payments, Op::Delete, Some(key_only.clone()), None),
    );
    assert!(decoded.before_identity_only);
    key_round_trip(&codec, &payments, &key_only);
    // Snapshot reads have no xid; truncates no rows.
    let mut read = event(&orders, Op::Read, None, Some(sales_order_row(2)));
    read.snapshot = true;
    read.transaction.xid = None;
    round_trip(&codec, &read);
    round_trip(&codec, &event(&orders, Op::Truncate, None, None));
}

#[test]
fn the_encoded_sales_order_is_what_avro_readers_see() {
    let codec = AvroCodec::new();
    let orders = Arc::new(sales_order());
    let message = codec
        .encode_value_at(
            &event(&orders, Op::Insert, None, Some(sales_order_row(1))),
            3,
            TS,
        )
        .unwrap();
    assert_eq!(&message[..5], &[0, 0, 0, 0, 3]);
    let avro = codec.table(&orders).unwrap();
    let value = from_avro_datum(avro.value_schema(), &mut &message[5..], None).unwrap();
    let apache_avro::types::Value::Record(fields) = value else {
        panic!("not a record")
    };
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "before",
            "after",
            "op",
            "source",
            "ts_us",
            "unchanged_toast",
            "before_identity_only"
        ]
    );
    assert_eq!(fields[2].1, apache_avro::types::Value::String("c".into()));
    assert_eq!(fields[4].1, apache_avro::types::Value::TimestampMicros(TS));
    let apache_avro::types::Value::Union(1, after) = &fields[1].1 else {
        panic!("no after image")
    };
    let apache_avro::types::Value::Record(row) = after.as_ref() else {
        panic!("after is not a record")
    };
    assert_eq!(
        row[5],
        (
            "unit_price".into(),
            apache_avro::types::Value::String("3.14".into())
        )
    );
    assert_eq!(
        row[10],
        (
            "created_at".into(),
            apache_avro::types::Value::LocalTimestampMicros(1_710_000_000_123_456)
        )
    );
}

#[test]
fn decimals_are_exact_and_never_rounded() {
    let mut t = sales_order();
    t.columns[5].type_modifier = numeric_typmod(10, 2);
    t.columns[5].type_name = "numeric(10,2)".into();
    let t = Arc::new(t);
    let codec = AvroCodec::new();
    for price in [
        "3.14",
        "-0.01",
        "0.00",
        "99999999.99",
        "-99999999.99",
        "2.50",
    ] {
        let mut row = sales_order_row(1);
        row[5] = Value::Numeric(price.into());
        round_trip(&codec, &event(&t, Op::Insert, None, Some(row)));
    }
    // 3.14 at scale 2 is the unscaled 314: bytes 0x01 0x3A.
    let avro = codec.table(&t).unwrap();
    let message = codec
        .encode_value_at(
            &event(&t, Op::Insert, None, Some(sales_order_row(1))),
            1,
            TS,
        )
        .unwrap();
    let value = from_avro_datum(avro.value_schema(), &mut &message[5..], None).unwrap();
    let text = format!("{value:?}");
    assert!(text.contains("Decimal"), "{text}");

    for (price, reason) in [
        (
            "3.141",
            "has 3 decimal places, more than the column's scale 2 (not rounded)",
        ),
        (
            "123456789.00",
            "has 11 significant digits, more than the column's precision 10",
        ),
        (
            "NaN",
            "is not finite: an Avro decimal cannot carry NaN or infinity",
        ),
    ] {
        let mut row = sales_order_row(1);
        row[5] = Value::Numeric(price.into());
        let err = codec
            .encode_value_at(&event(&t, Op::Insert, None, Some(row)), 1, TS)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "column public.sales_order.unit_price (numeric(10,2)): numeric {price:?} {reason}"
            )
        );
    }
}

#[test]
fn unconstrained_numerics_travel_as_exact_text() {
    let t = Arc::new(sales_order());
    let codec = AvroCodec::new();
    for price in [
        "3.1400",
        "-0.000000000000000000000000000001",
        "123456789012345678901234567890.123456789",
        "NaN",
        "Infinity",
        "-Infinity",
    ] {
        let mut row = sales_order_row(1);
        row[5] = Value::Numeric(price.into());
        let decoded = round_trip(&codec, &event(&t, Op::Insert, None, Some(row)));
        assert_eq!(decoded.after.unwrap()[5], Value::Numeric(price.into()));
    }
}

#[test]
fn unchanged_toast_is_never_a_null() {
    let mut t = all_types();
    t.replica_identity = ReplicaIdentity::Default;
    for c in &mut t.columns[1..] {
        c.replica_identity = false;
    }
    let t = Arc::new(t);
    let codec = AvroCodec::new();
    let text = t.column_index("c_text").unwrap(); // NOT NULL
    let varchar = t.column_index("c_varchar").unwrap(); // nullable
    let mut after: Row = t.columns.iter().map(sample).collect();
    // Every toastable column unchanged, nullable or not.
    for (i, c) in t.columns.iter().enumerate() {
        if toastable(c) {
            after[i] = Value::UnchangedToast;
        }
    }
    assert_eq!(after[text], Value::UnchangedToast);
    assert_eq!(after[varchar], Value::UnchangedToast);
    let update = event(&t, Op::Update, None, Some(after.clone()));
    let decoded = round_trip(&codec, &update);
    assert_eq!(decoded.after.as_ref().unwrap()[text], Value::UnchangedToast);
    assert_eq!(
        decoded.after.as_ref().unwrap()[varchar],
        Value::UnchangedToast
    );

    // The envelope names them; the slots hold null or the type's zero.
    let avro = codec.table(&t).unwrap();
    let message = codec.encode_value_at(&update, 1, TS).unwrap();
    let value = from_avro_datum(avro.value_schema(), &mut &message[5..], None).unwrap();
    let apache_avro::types::Value::Record(fields) = value else {
        panic!()
    };
    let apache_avro::types::Value::Array(names) = &fields[5].1 else {
        panic!()
    };
    let names: Vec<String> = names
        .iter()
        .map(|n| match n {
            apache_avro::types::Value::String(s) => s.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(names.contains(&"c_text".to_owned()) && names.contains(&"c_varchar".to_owned()));
    assert_eq!(
        names.len(),
        t.columns.iter().filter(|c| toastable(c)).count()
    );

    // Not in a key, nor in an old row.
    let err = codec.encode_key(&t, &after, 1);
    assert!(err.is_ok(), "the key column is not toasted");
    let mut toasted_key = after.clone();
    toasted_key[0] = Value::UnchangedToast;
    assert_eq!(
        codec
            .encode_key(&t, &toasted_key, 1)
            .unwrap_err()
            .to_string(),
        "column public.all_types.id: unchanged TOAST value in the key, which must be complete"
    );
    let err = codec
        .encode_value_at(&event(&t, Op::Delete, Some(after), None), 1, TS)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AvroError::UnchangedToast {
                place: "before image",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn identity_only_old_rows_keep_not_null_fields_valid() {
    // payment: every column NOT NULL, REPLICA IDENTITY DEFAULT.
    let t = Arc::new(payment());
    let codec = AvroCodec::new();
    let mut before = vec![Value::Null; t.columns.len()];
    before[0] = Value::Int32(77);
    let mut new_row = payment_row(78);
    new_row[0] = Value::Int32(78);
    let decoded = round_trip(
        &codec,
        &event(&t, Op::Update, Some(before.clone()), Some(new_row)),
    );
    assert!(decoded.before_identity_only);
    assert_eq!(decoded.before.unwrap(), before);
    // The key column itself must be there.
    let err = codec
        .encode_value_at(
            &event(&t, Op::Delete, Some(vec![Value::Null; 12]), None),
            1,
            TS,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "column public.payment.payment_id is NULL but its Avro field is not nullable"
    );
}

#[test]
fn refusals_name_the_table_and_column() {
    let t = Arc::new(sales_order());
    let codec = AvroCodec::new();
    let mut row = sales_order_row(1);
    row[4] = Value::Text("many".into());
    let err = codec
        .encode_value_at(&event(&t, Op::Insert, None, Some(row)), 1, TS)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "column public.sales_order.units_sold (integer) cannot hold a Text value"
    );
    let mut row = sales_order_row(1);
    row[4] = Value::Null;
    let err = codec
        .encode_value_at(&event(&t, Op::Insert, None, Some(row)), 1, TS)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "column public.sales_order.units_sold is NULL but its Avro field is not nullable"
    );
    let err = codec
        .encode_value_at(
            &event(&t, Op::Insert, None, Some(vec![Value::Int32(1)])),
            1,
            TS,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "row of public.sales_order has 1 values, the table has 12 columns"
    );
    let mut far = event(&t, Op::Insert, None, Some(sales_order_row(1)));
    far.lsn = Lsn(u64::MAX);
    let err = codec.encode_value_at(&far, 1, TS).unwrap_err();
    assert_eq!(
        err.to_string(),
        "public.sales_order: LSN 18446744073709551615 does not fit an Avro long"
    );
    // A two-dimensional array, which capture keeps as text.
    let arrays = Arc::new(table(
        2,
        "grid",
        vec![pk("id"), column("cells", 1007, -1, "integer[]", true)],
    ));
    let row = vec![Value::Int32(1), Value::Other("{{1,2},{3,4}}".into())];
    let err = codec
        .encode_value_at(&event(&arrays, Op::Insert, None, Some(row)), 1, TS)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "column public.grid.cells (integer[]): array value \"{{1,2},{3,4}}\" is not one-dimensional"
    );
}

#[test]
fn shapes_are_cached_and_new_shapes_evolve() {
    let codec = AvroCodec::new();
    let v1 = Arc::new(sales_order());
    let first = codec.table(&v1).unwrap();
    // The same content behind another Arc is the same shape.
    let again = codec.table(&Arc::new(sales_order())).unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert!(Arc::ptr_eq(&first, &codec.table(&v1).unwrap()));
    // A NOT NULL column added: nullable in the new value schema, evolved from the first.
    let mut v2 = sales_order();
    v2.columns
        .push(column("region", 1043, -1, "character varying", false));
    let v2 = Arc::new(v2);
    let second = codec.table(&v2).unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    cdc_avro::check_compatible(first.value_schema(), second.value_schema()).unwrap();
    let mut row = sales_order_row(1);
    row.push(Value::Text("north".into()));
    round_trip(&codec, &event(&v2, Op::Insert, None, Some(row)));
    let mut row = sales_order_row(1);
    row.push(Value::Null);
    round_trip(&codec, &event(&v2, Op::Insert, None, Some(row)));
}

#[test]
fn xid_and_positions_round_trip_at_their_limits() {
    let t = Arc::new(sales_order());
    let codec = AvroCodec::new();
    let mut e = event(&t, Op::Insert, None, Some(sales_order_row(1)));
    e.transaction.xid = Some(Xid(u32::MAX));
    e.lsn = Lsn(i64::MAX as u64);
    e.position.commit_lsn = Lsn(i64::MAX as u64);
    e.position.ordinal = i64::MAX as u64;
    e.transaction.commit_time_micros = i64::MIN;
    let decoded = round_trip(&codec, &e);
    assert_eq!(decoded.source.position(), e.position);
}

/// A random event on `table`: op, images and metadata consistent with capture's rules.
fn any_event(table: Arc<TableSchema>) -> impl Strategy<Value = ChangeEvent> {
    let row = row_of(&table);
    (
        0u8..5,
        row.clone(),
        row,
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(any::<u32>()),
        any::<i64>(),
        any::<bool>(),
        proptest::collection::vec(any::<bool>(), table.columns.len()),
    )
        .prop_map(
            move |(op, old, new, lsn, ordinal, xid, commit_ts, snapshot, toast)| {
                let op =
                    [Op::Read, Op::Insert, Op::Update, Op::Delete, Op::Truncate][usize::from(op)];
                let mut old = old;
                if table.replica_identity != ReplicaIdentity::Full {
                    // PostgreSQL logs only the identity columns of the old row.
                    for (value, column) in old.iter_mut().zip(&table.columns) {
                        if !column.replica_identity {
                            *value = Value::Null;
                        }
                    }
                }
                let mut new = new;
                if op == Op::Update {
                    for ((value, toasted), column) in new.iter_mut().zip(toast).zip(&table.columns)
                    {
                        if toasted && toastable(column) && !column.primary_key {
                            *value = Value::UnchangedToast;
                        }
                    }
                }
                let (before, after) = match op {
                    Op::Read | Op::Insert => (None, Some(new)),
                    Op::Update => (Some(old), Some(new)),
                    Op::Delete => (Some(old), None),
                    Op::Truncate => (None, None),
                };
                let mut e = event(&table, op, before, after);
                e.lsn = Lsn(lsn >> 1);
                e.position.commit_lsn = Lsn(lsn >> 1);
                e.position.ordinal = ordinal >> 1;
                e.transaction.xid = xid.map(Xid);
                e.transaction.commit_time_micros = commit_ts;
                e.snapshot = snapshot;
                e
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_all_types_events_round_trip(e in any_event(Arc::new(all_types()))) {
        let codec = AvroCodec::new();
        round_trip(&codec, &e);
    }

    #[test]
    fn random_all_types_keys_round_trip(row in row_of(&all_types())) {
        let codec = AvroCodec::new();
        key_round_trip(&codec, &all_types(), &row);
    }

    #[test]
    fn random_totesys_events_round_trip(
        e in prop_oneof![any_event(Arc::new(sales_order())), any_event(Arc::new(payment()))]
    ) {
        let codec = AvroCodec::new();
        round_trip(&codec, &e);
    }
}

/// One test per type: a single-column table, random values, encoded and decoded alone.
macro_rules! type_round_trip {
    ($($name:ident: $oid:expr, $typmod:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]
            $(
                #[test]
                fn $name(value in value_of($oid, $typmod), nullable in any::<bool>()) {
                    let mut c = column("v", $oid, $typmod, stringify!($name), nullable);
                    c.replica_identity = true;
                    let mut t = table(1, "one", vec![pk("id"), c]);
                    t.replica_identity = ReplicaIdentity::Full;
                    let t = Arc::new(t);
                    let codec = AvroCodec::new();
                    let row = vec![Value::Int32(1), value];
                    round_trip(&codec, &event(&t, Op::Update, Some(row.clone()), Some(row.clone())));
                    if nullable {
                        let nulls = vec![Value::Int32(1), Value::Null];
                        round_trip(&codec, &event(&t, Op::Insert, None, Some(nulls)));
                    }
                }
            )*
        }
    };
}

type_round_trip! {
    bool_values: 16, -1;
    int2_values: 21, -1;
    int4_values: 23, -1;
    int8_values: 20, -1;
    oid_values: 26, -1;
    float4_values: 700, -1;
    float8_values: 701, -1;
    numeric_values: 1700, -1;
    numeric_10_2_values: 1700, numeric_typmod(10, 2);
    numeric_38_10_values: 1700, numeric_typmod(38, 10);
    numeric_5_0_values: 1700, numeric_typmod(5, 0);
    text_values: 25, -1;
    varchar_values: 1043, -1;
    bpchar_values: 1042, 7;
    name_values: 19, -1;
    char_values: 18, -1;
    json_values: 114, -1;
    jsonb_values: 3802, -1;
    bytea_values: 17, -1;
    date_values: 1082, -1;
    time_values: 1083, -1;
    timestamp_values: 1114, -1;
    timestamptz_values: 1184, -1;
    uuid_values: 2950, -1;
    interval_values: 1186, -1;
    enum_values: 16_385, -1;
    int4_array_values: 1007, -1;
    text_array_values: 1009, -1;
    numeric_array_values: 1231, numeric_typmod(10, 2);
    float8_array_values: 1022, -1;
    uuid_array_values: 2951, -1;
    timestamptz_array_values: 1185, -1;
    jsonb_array_values: 3807, -1;
    bytea_array_values: 1001, -1;
    date_array_values: 1182, -1;
}
