//! SCD2 merge planning, in source changes per second: a batch of the simulator's kind of
//! transactions (sales with their transaction and payment, order updates, staff moves,
//! department and address changes that propagate) planned against totesys-sized
//! dimensions.
//!
//! Run with `cargo bench -p cdc-modeler --bench plan`; criterion prints `thrpt` in
//! elem/s, one element being one source change.

#![allow(missing_docs, clippy::unwrap_used)] // criterion's macros generate undocumented items

use std::hint::black_box;

use cdc_core::{Lsn, Op};
use cdc_modeler::{Change, Model, SourceTxn, TextRow};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn row(pairs: &[(&str, String)]) -> TextRow {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Some(v.clone())))
        .collect()
}

fn change(table: &str, op: Op, ordinal: u64, after: TextRow) -> Change {
    Change {
        table: table.to_owned(),
        op,
        ordinal,
        after: Some(after),
        before: None,
    }
}

const TS: &str = "2026-11-28 10:15:00.123456";

fn department(id: i64, location: &str) -> TextRow {
    row(&[
        ("department_id", id.to_string()),
        ("department_name", format!("Department {id}")),
        ("location", location.to_owned()),
        ("manager", "Someone".into()),
    ])
}

fn staff(id: i64, department: i64) -> TextRow {
    row(&[
        ("staff_id", id.to_string()),
        ("first_name", format!("First{id}")),
        ("last_name", format!("Last{id}")),
        ("department_id", department.to_string()),
        (
            "email_address",
            format!("first{id}.last{id}@terrifictotes.com"),
        ),
    ])
}

fn address(id: i64, phone: &str) -> TextRow {
    row(&[
        ("address_id", id.to_string()),
        ("address_line_1", format!("{id} High Street")),
        ("city", "Leeds".into()),
        ("postal_code", "LS1 1AA".into()),
        ("country", "United Kingdom".into()),
        ("phone", phone.to_owned()),
    ])
}

fn sales_order(id: i64, units: i64) -> TextRow {
    row(&[
        ("sales_order_id", id.to_string()),
        ("created_at", TS.into()),
        ("last_updated", TS.into()),
        ("design_id", (id % 50 + 1).to_string()),
        ("staff_id", (id % 20 + 1).to_string()),
        ("counterparty_id", (id % 20 + 1).to_string()),
        ("units_sold", units.to_string()),
        ("unit_price", "3.25".into()),
        ("currency_id", (id % 3 + 1).to_string()),
        ("agreed_delivery_date", "2026-12-01".into()),
        ("agreed_payment_date", "2026-12-05".into()),
        ("agreed_delivery_location_id", (id % 30 + 1).to_string()),
    ])
}

/// The reference data, as one snapshot transaction.
fn reference() -> SourceTxn {
    let mut changes = Vec::new();
    let mut push = |table: &str, after: TextRow| {
        let ordinal = changes.len() as u64;
        changes.push(change(table, Op::Read, ordinal, after));
    };
    for id in 1..=3 {
        push(
            "currency",
            row(&[
                ("currency_id", id.to_string()),
                (
                    "currency_code",
                    ["GBP", "USD", "EUR"][id as usize - 1].into(),
                ),
            ]),
        );
    }
    for id in 1..=8 {
        push("department", department(id, "Manchester"));
    }
    for id in 1..=20 {
        push("staff", staff(id, id % 8 + 1));
    }
    for id in 1..=30 {
        push("address", address(id, "0113 496 0000"));
    }
    for id in 1..=20 {
        push(
            "counterparty",
            row(&[
                ("counterparty_id", id.to_string()),
                ("counterparty_legal_name", format!("Company {id}")),
                ("legal_address_id", (id % 30 + 1).to_string()),
            ]),
        );
    }
    for id in 1..=50 {
        push(
            "design",
            row(&[
                ("design_id", id.to_string()),
                ("design_name", format!("Design {id}")),
                ("file_location", "/designs".into()),
                ("file_name", format!("d{id}.json")),
            ]),
        );
    }
    SourceTxn {
        commit_lsn: Lsn(1),
        commit_ts_us: 1_700_000_000_000_000,
        changes,
    }
}

/// `n` changes in transactions of the simulator's mix.
fn workload(n: usize) -> Vec<SourceTxn> {
    let mut txns = Vec::new();
    let mut made = 0;
    let mut i = 0i64;
    while made < n {
        i += 1;
        let changes = match i % 10 {
            0 => vec![change(
                "department",
                Op::Update,
                0,
                department(i % 8 + 1, &format!("City {i}")),
            )],
            1 => vec![change(
                "address",
                Op::Update,
                0,
                address(i % 30 + 1, &format!("0113 {i}")),
            )],
            2 => vec![change("staff", Op::Update, 0, staff(i % 20 + 1, i % 8 + 1))],
            3 | 4 => vec![change(
                "sales_order",
                Op::Update,
                0,
                sales_order(i - 1, 2000 + i),
            )],
            _ => vec![
                change("sales_order", Op::Insert, 0, sales_order(i, 1000 + i)),
                change(
                    "transaction",
                    Op::Insert,
                    1,
                    row(&[
                        ("transaction_id", i.to_string()),
                        ("transaction_type", "SALE".into()),
                        ("sales_order_id", i.to_string()),
                    ]),
                ),
            ],
        };
        made += changes.len();
        txns.push(SourceTxn {
            commit_lsn: Lsn(1000 + i as u64),
            commit_ts_us: 1_700_000_000_000_000 + i * 1000,
            changes,
        });
    }
    txns
}

fn plan(c: &mut Criterion) {
    let mut base = Model::default();
    base.plan(&[reference()]);
    let txns = workload(10_000);
    let changes: usize = txns.iter().map(|t| t.changes.len()).sum();
    let mut group = c.benchmark_group("cdc-modeler");
    group.throughput(Throughput::Elements(changes as u64));
    group.bench_function(
        format!("plan {changes} changes in {} transactions", txns.len()),
        |b| {
            b.iter_batched(
                || base.clone(),
                |mut model| black_box(model.plan(black_box(&txns))),
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();
}

criterion_group!(benches, plan);
criterion_main!(benches);
