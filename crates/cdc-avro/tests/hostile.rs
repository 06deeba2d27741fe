//! Bytes from outside never make the decoders panic: arbitrary input, valid messages cut
//! short at every length, and valid messages with bytes changed.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use cdc_avro::{decode_confluent, decode_value, AvroCodec, AvroError};
use cdc_core::{Op, ReplicaIdentity, Value};
use cdc_stack::fixtures::*;
use proptest::prelude::*;

/// Valid framed messages of several shapes: (table, message, is a key).
fn samples() -> Vec<(Arc<cdc_core::TableSchema>, Vec<u8>, bool)> {
    let codec = AvroCodec::new();
    let orders = Arc::new(sales_order());
    let payments = Arc::new(payment());
    let all = Arc::new(all_types());
    let all_row: Vec<Value> = all.columns.iter().map(sample).collect();
    let mut toasted = all_row.clone();
    toasted[12] = Value::UnchangedToast;
    let mut out = Vec::new();
    for e in [
        event(&orders, Op::Insert, None, Some(sales_order_row(1))),
        event(
            &orders,
            Op::Update,
            Some(sales_order_row(1)),
            Some(sales_order_row(1)),
        ),
        event(&payments, Op::Delete, Some(payment_row(4)), None),
        event(&payments, Op::Truncate, None, None),
        event(&all, Op::Update, Some(all_row.clone()), Some(toasted)),
    ] {
        out.push((
            e.table.clone(),
            codec.encode_value_at(&e, 99, 1).unwrap(),
            false,
        ));
    }
    out.push((
        orders.clone(),
        codec.encode_key(&orders, &sales_order_row(3), 98).unwrap(),
        true,
    ));
    out.push((
        all.clone(),
        codec.encode_key(&all, &all_row, 97).unwrap(),
        true,
    ));
    out
}

fn decode(
    codec: &AvroCodec,
    table: &cdc_core::TableSchema,
    message: &[u8],
    key: bool,
) -> Result<(), AvroError> {
    if key {
        codec.decode_key(table, message).map(|_| ())
    } else {
        codec.decode_value(table, message).map(|_| ())
    }
}

#[test]
fn every_truncation_of_a_valid_message_is_an_error() {
    let codec = AvroCodec::new();
    let mut checked = 0;
    for (table, message, key) in samples() {
        assert!(decode(&codec, &table, &message, key).is_ok());
        let avro = codec.table(&table).unwrap();
        let schema = if key {
            avro.key_schema()
        } else {
            avro.value_schema()
        };
        for len in 0..message.len() {
            let cut = &message[..len];
            let err = decode(&codec, &table, cut, key).unwrap_err();
            let message = err.to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(
                matches!(err, AvroError::Frame { .. } | AvroError::Malformed { .. }),
                "{len}: {err}"
            );
            if len >= 5 {
                assert!(
                    decode_value(schema, &cut[5..]).is_err(),
                    "body cut at {len}"
                );
            }
            checked += 1;
        }
        // And a byte too many.
        let mut longer = message.clone();
        longer.push(0);
        assert!(decode(&codec, &table, &longer, key).is_err());
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn errors_say_where_decoding_stopped() {
    let codec = AvroCodec::new();
    let orders = Arc::new(sales_order());
    let message = codec
        .encode_value_at(
            &event(&orders, Op::Insert, None, Some(sales_order_row(1))),
            1,
            1,
        )
        .unwrap();
    let err = codec.decode_value(&orders, &message[..20]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed Avro body at byte 15 (field after.agreed_delivery_date): the body ends inside a varint"
    );
    let err = codec.decode_value(&orders, &message[..21]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed Avro body at byte 16 (field after.agreed_delivery_date): string length 10 runs past the end (0 bytes left)"
    );
    let err = codec
        .decode_value(&orders, b"\x00\x00\x00\x00\x01\x04")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed Avro body at byte 1 (field before): union branch 2 outside the 2 branches"
    );
}

/// The all-types table with REPLICA IDENTITY DEFAULT, so every envelope flag is exercised.
fn tables() -> Vec<Arc<cdc_core::TableSchema>> {
    let mut all = all_types();
    all.replica_identity = ReplicaIdentity::Default;
    vec![
        Arc::new(sales_order()),
        Arc::new(payment()),
        Arc::new(all_types()),
        Arc::new(all),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let codec = AvroCodec::new();
        let _ = decode_confluent(&bytes);
        for table in tables() {
            let _ = codec.decode_value(&table, &bytes);
            let _ = codec.decode_key(&table, &bytes);
            let avro = codec.table(&table).unwrap();
            let _ = decode_value(avro.value_schema(), &bytes);
            let _ = decode_value(avro.key_schema(), &bytes);
        }
    }

    #[test]
    fn framed_arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let codec = AvroCodec::new();
        let mut message = vec![0, 0, 0, 0, 1];
        message.extend_from_slice(&body);
        for table in tables() {
            let _ = codec.decode_value(&table, &message);
            let _ = codec.decode_key(&table, &message);
        }
    }

    #[test]
    fn changed_bytes_never_panic_and_both_decoders_agree(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let codec = AvroCodec::new();
        let samples = samples();
        let (table, message, key) = which.get(&samples);
        let mut message = message.clone();
        for (at, byte, how) in edits {
            if message.is_empty() {
                break;
            }
            let i = at.index(message.len());
            match how {
                0 => message[i] = byte,
                1 => message.insert(i, byte),
                _ => {
                    message.remove(i);
                }
            }
        }
        let direct = decode(&codec, table, &message, *key);
        // The one-pass decoder and the generic one followed by the mapping agree.
        if !*key {
            let generic = decode_confluent(&message).and_then(|(_, body)| {
                let avro = codec.table(table)?;
                cdc_avro::decode_event(table, &decode_value(avro.value_schema(), body)?)
            });
            let one_pass = codec.decode_value(table, &message).map(|(_, e)| e);
            prop_assert_eq!(one_pass.is_ok(), generic.is_ok(), "{:?} / {:?}", one_pass, generic);
            if let (Ok(a), Ok(b)) = (one_pass, generic) {
                prop_assert!(same_row(&a.before, &b.before) && same_row(&a.after, &b.after));
                prop_assert_eq!(a.source, b.source);
                prop_assert_eq!((a.op, a.ts_us, a.before_identity_only), (b.op, b.ts_us, b.before_identity_only));
            }
        }
        let _ = direct;
    }
}
