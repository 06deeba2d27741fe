//! Encoding and decoding realistic totesys change events, in events per second.
//!
//! Run with `cargo bench -p cdc-avro --bench codec`; criterion prints `thrpt` in elem/s,
//! one element being one framed event.

#![allow(missing_docs, clippy::unwrap_used)] // criterion's macros generate undocumented items

use std::hint::black_box;
use std::sync::Arc;

use cdc_avro::AvroCodec;
use cdc_core::{Op, Value};
use cdc_stack::fixtures::{event, payment, payment_row, sales_order, sales_order_row};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn codec(c: &mut Criterion) {
    let codec = AvroCodec::new();
    let orders = Arc::new(sales_order());
    let payments = Arc::new(payment());
    // An insert of a sales order, and a payment becoming paid (REPLICA IDENTITY DEFAULT:
    // no old row) — the two most common events of the simulator's workload.
    let order = event(&orders, Op::Insert, None, Some(sales_order_row(1_000_001)));
    let mut paid = payment_row(2_000_001);
    paid[6] = Value::Bool(true);
    let payment = event(&payments, Op::Update, None, Some(paid));

    let mut group = c.benchmark_group("cdc-avro");
    group.throughput(Throughput::Elements(1));
    for (name, e) in [("sales_order", &order), ("payment", &payment)] {
        let message = codec.encode_value(e, 1).unwrap();
        println!("{name}: {} bytes framed", message.len());
        group.bench_function(format!("encode {name}"), |b| {
            b.iter(|| codec.encode_value(black_box(e), 1).unwrap())
        });
        group.bench_function(format!("decode {name}"), |b| {
            b.iter(|| codec.decode_value(&e.table, black_box(&message)).unwrap())
        });
        let key = codec
            .encode_key(&e.table, e.after.as_deref().unwrap(), 2)
            .unwrap();
        group.bench_function(format!("encode {name} key"), |b| {
            b.iter(|| {
                codec
                    .encode_key(&e.table, black_box(e.after.as_deref().unwrap()), 2)
                    .unwrap()
            })
        });
        group.bench_function(format!("decode {name} key"), |b| {
            b.iter(|| codec.decode_key(&e.table, black_box(&key)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
