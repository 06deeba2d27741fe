//! The bulk loader: millions of sales orders, each with its transaction and payment,
//! written with `COPY … FROM STDIN` in batches of bounded size.
//!
//! ```text
//!   per batch of 10 000 orders, one transaction:
//!     LOCK sales_order, transaction, payment      (other writers wait for the batch)
//!     reserve 10 000 keys from each table's sequence
//!     COPY sales_order ──► COPY transaction ──► COPY payment     (text format, 256 KiB chunks)
//!   COMMIT
//! ```
//!
//! Keys are reserved up front so each transaction and payment row can name its parent
//! without a round trip.
//!
//! # Foreign keys
//!
//! Checked row by row, PostgreSQL's foreign-key triggers cost seven in eight of a COPY's
//! time here. When the role may (a superuser), each batch instead runs with
//! `session_replication_role = replica`, which skips those triggers, and checks its
//! foreign keys itself, once per batch and set-wise: it locks the referenced rows
//! `FOR KEY SHARE` before copying (as the triggers would), and after copying counts
//! the batch's rows whose references are missing; any such row fails the batch. Without
//! the privilege, the triggers check row by row as usual.

use std::fmt::{self, Write as _};
use std::pin::pin;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

use crate::values::{self, Day, NewSale, OrderRefs};
use crate::workload::References;
use crate::SimError;

/// Orders per transaction.
const BATCH_ORDERS: u64 = 10_000;
/// COPY data is sent in chunks of about this size.
const CHUNK_BYTES: usize = 256 * 1024;
/// Orders are placed up to this many days before today.
const HISTORY_DAYS: i64 = 365;

/// What [`bulk_load`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkSummary {
    /// Rows written to `sales_order`.
    pub sales_orders: u64,
    /// Rows written to `transaction`.
    pub transactions: u64,
    /// Rows written to `payment`.
    pub payments: u64,
    /// Database transactions committed.
    pub batches: u64,
    /// Foreign keys were checked once per batch, set-wise, instead of row by row.
    pub per_batch_fk_checks: bool,
    /// Wall-clock time so far.
    pub elapsed: Duration,
}

impl BulkSummary {
    /// Rows written to all three tables.
    pub fn rows(&self) -> u64 {
        self.sales_orders + self.transactions + self.payments
    }

    /// Orders per second of wall-clock time.
    pub fn orders_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.sales_orders as f64 / secs
        } else {
            0.0
        }
    }
}

impl fmt::Display for BulkSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sales orders, {} transactions, {} payments in {} transactions over {:.1} s \
             ({:.0} orders/s, {:.0} rows/s; foreign keys checked {})",
            self.sales_orders,
            self.transactions,
            self.payments,
            self.batches,
            self.elapsed.as_secs_f64(),
            self.orders_per_sec(),
            self.rows() as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
            if self.per_batch_fk_checks {
                "per batch"
            } else {
                "row by row"
            }
        )
    }
}

/// Writes `orders` sales orders, each with a SALE transaction and a SALES_RECEIPT payment,
/// referencing random existing rows (run [`seed`](crate::seed) first); the same `seed`
/// draws the same values.
pub async fn bulk_load(client: &Client, orders: u64, seed: u64) -> Result<BulkSummary, SimError> {
    bulk_load_with_progress(client, orders, seed, |_| {}).await
}

/// [`bulk_load`], calling `progress` with the running totals after each committed batch.
pub async fn bulk_load_with_progress(
    client: &Client,
    orders: u64,
    seed: u64,
    mut progress: impl FnMut(&BulkSummary),
) -> Result<BulkSummary, SimError> {
    let started = Instant::now();
    let refs = References::load(client).await?;
    let reserve = client
        .prepare(
            "SELECT setval(s, nextval(s) + $3 - 1) \
             FROM (SELECT pg_get_serial_sequence($1, $2)::regclass AS s) AS q",
        )
        .await
        .map_err(SimError::sql("prepare the statement to reserve keys"))?;
    let per_batch_fk_checks = client
        .query_one("SELECT current_setting('is_superuser') = 'on'", &[])
        .await
        .and_then(|row| row.try_get::<_, bool>(0))
        .map_err(SimError::sql(
            "check whether the role may skip foreign-key triggers",
        ))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let today = Day::today();
    let mut summary = BulkSummary {
        per_batch_fk_checks,
        ..BulkSummary::default()
    };
    let mut batch: Vec<NewSale> = Vec::with_capacity(BATCH_ORDERS.min(orders) as usize);
    while summary.sales_orders < orders {
        let n = BATCH_ORDERS.min(orders - summary.sales_orders);
        batch.clear();
        for _ in 0..n {
            batch.push(random_sale(&mut rng, &refs, today));
        }
        client
            .batch_execute("BEGIN")
            .await
            .map_err(SimError::sql("begin a bulk-load batch"))?;
        let checks = per_batch_fk_checks.then_some(&refs);
        match write_batch(client, &reserve, &batch, checks).await {
            Ok([orders, transactions, payments]) => {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(SimError::sql("commit a bulk-load batch"))?;
                summary.sales_orders += orders;
                summary.transactions += transactions;
                summary.payments += payments;
                summary.batches += 1;
            }
            Err(e) => {
                // The error says what failed; a failed rollback adds nothing to it.
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        }
        summary.elapsed = started.elapsed();
        progress(&summary);
    }
    summary.elapsed = started.elapsed();
    tracing::info!(%summary, "bulk load done");
    Ok(summary)
}

fn random_sale(rng: &mut StdRng, refs: &References, today: Day) -> NewSale {
    let pick = |rng: &mut StdRng, ids: &[i32]| ids.choose(rng).copied().unwrap_or(1);
    let design_id = pick(rng, &refs.designs);
    let order_refs = OrderRefs {
        staff_id: pick(rng, &refs.staff),
        counterparty_id: pick(rng, &refs.counterparties),
        currency_id: pick(rng, &refs.currencies),
        delivery_location_id: pick(rng, &refs.addresses),
    };
    let placed = today.plus(-rng.random_range(0..=HISTORY_DAYS));
    values::sale(
        rng,
        design_id,
        order_refs,
        refs.sales_receipt,
        placed,
        today,
    )
}

/// Locks the reference rows a batch may point at, as foreign-key triggers would; each
/// count must come back as the number of keys.
const LOCK_REFERENCES: &str = "SELECT \
     (SELECT count(*) FROM (SELECT 1 FROM design WHERE design_id = ANY ($1) FOR KEY SHARE) r), \
     (SELECT count(*) FROM (SELECT 1 FROM staff WHERE staff_id = ANY ($2) FOR KEY SHARE) r), \
     (SELECT count(*) FROM (SELECT 1 FROM counterparty WHERE counterparty_id = ANY ($3) \
        FOR KEY SHARE) r), \
     (SELECT count(*) FROM (SELECT 1 FROM currency WHERE currency_id = ANY ($4) FOR KEY SHARE) r), \
     (SELECT count(*) FROM (SELECT 1 FROM address WHERE address_id = ANY ($5) FOR KEY SHARE) r), \
     (SELECT count(*) FROM (SELECT 1 FROM payment_type WHERE payment_type_id = ANY ($6) \
        FOR KEY SHARE) r)";

/// Counts, per table, the rows of a batch (keys $1–$2, $3–$4, $5–$6) whose foreign keys
/// point at nothing.
const CHECK_BATCH: &str = "\
     SELECT 'sales_order', count(*) FROM sales_order c \
     WHERE c.sales_order_id BETWEEN $1::int8 AND $2::int8 AND ( \
        c.design_id NOT IN (SELECT design_id FROM design) \
        OR c.staff_id NOT IN (SELECT staff_id FROM staff) \
        OR c.counterparty_id NOT IN (SELECT counterparty_id FROM counterparty) \
        OR c.currency_id NOT IN (SELECT currency_id FROM currency) \
        OR c.agreed_delivery_location_id NOT IN (SELECT address_id FROM address)) \
     UNION ALL \
     SELECT 'transaction', count(*) FROM transaction c \
     WHERE c.transaction_id BETWEEN $3::int8 AND $4::int8 AND ( \
        c.sales_order_id NOT IN \
          (SELECT sales_order_id FROM sales_order WHERE sales_order_id BETWEEN $1::int8 AND $2::int8) \
        OR c.sales_order_id IS NULL OR c.purchase_order_id IS NOT NULL) \
     UNION ALL \
     SELECT 'payment', count(*) FROM payment c \
     WHERE c.payment_id BETWEEN $5::int8 AND $6::int8 AND ( \
        c.transaction_id NOT IN \
          (SELECT transaction_id FROM transaction WHERE transaction_id BETWEEN $3::int8 AND $4::int8) \
        OR c.counterparty_id NOT IN (SELECT counterparty_id FROM counterparty) \
        OR c.currency_id NOT IN (SELECT currency_id FROM currency) \
        OR c.payment_type_id NOT IN (SELECT payment_type_id FROM payment_type))";

/// Reserves keys and copies one batch; returns the rows copied per table. With `checks`,
/// foreign-key triggers are off and the batch is checked against those references.
async fn write_batch(
    client: &Client,
    reserve: &tokio_postgres::Statement,
    batch: &[NewSale],
    checks: Option<&References>,
) -> Result<[u64; 3], SimError> {
    client
        .batch_execute(
            "SET LOCAL synchronous_commit = off; \
             LOCK TABLE sales_order, transaction, payment IN SHARE ROW EXCLUSIVE MODE",
        )
        .await
        .map_err(SimError::sql(
            "lock sales_order, transaction and payment for a bulk load",
        ))?;
    if let Some(refs) = checks {
        lock_references(client, refs).await?;
    }
    let n = batch.len() as i64;
    let mut first = [0i64; 3];
    for (slot, (table, key)) in first.iter_mut().zip([
        ("sales_order", "sales_order_id"),
        ("transaction", "transaction_id"),
        ("payment", "payment_id"),
    ]) {
        let row = client
            .query_one(reserve, &[&table, &key, &n])
            .await
            .map_err(SimError::sql(format!("reserve keys of {table}")))?;
        let last: i64 = row
            .try_get(0)
            .map_err(SimError::sql(format!("reserve keys of {table}")))?;
        *slot = last - n + 1;
    }
    let [order0, transaction0, payment0] = first;

    let orders = copy_rows(
        client,
        "sales_order",
        "COPY sales_order (sales_order_id, design_id, staff_id, counterparty_id, units_sold, \
         unit_price, currency_id, agreed_delivery_date, agreed_payment_date, \
         agreed_delivery_location_id) FROM STDIN",
        batch,
        |buf, i, s| {
            write!(
                buf,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t",
                order0 + i,
                s.design_id,
                s.refs.staff_id,
                s.refs.counterparty_id,
                s.units_sold,
                s.unit_price,
                s.refs.currency_id
            )?;
            push_text(buf, &s.agreed_delivery_date);
            buf.extend_from_slice(b"\t");
            push_text(buf, &s.agreed_payment_date);
            writeln!(buf, "\t{}", s.refs.delivery_location_id)
        },
    )
    .await?;
    let transactions = copy_rows(
        client,
        "transaction",
        "COPY transaction (transaction_id, transaction_type, sales_order_id) FROM STDIN",
        batch,
        |buf, i, _| writeln!(buf, "{}\tSALE\t{}", transaction0 + i, order0 + i),
    )
    .await?;
    let payments = copy_rows(
        client,
        "payment",
        "COPY payment (payment_id, transaction_id, counterparty_id, payment_amount, currency_id, \
         payment_type_id, paid, payment_date, company_ac_number, counterparty_ac_number) \
         FROM STDIN",
        batch,
        |buf, i, s| {
            let p = &s.payment;
            write!(
                buf,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t",
                payment0 + i,
                transaction0 + i,
                s.refs.counterparty_id,
                p.amount,
                s.refs.currency_id,
                p.payment_type_id,
                if p.paid { "t" } else { "f" }
            )?;
            push_text(buf, &p.payment_date);
            writeln!(
                buf,
                "\t{}\t{}",
                p.company_ac_number, p.counterparty_ac_number
            )
        },
    )
    .await?;
    if checks.is_some() {
        let last = |first: i64| first + n - 1;
        let ranges = [
            order0,
            last(order0),
            transaction0,
            last(transaction0),
            payment0,
            last(payment0),
        ];
        let action = "check the foreign keys of a bulk-load batch";
        let rows = client
            .query(
                CHECK_BATCH,
                &[
                    &ranges[0], &ranges[1], &ranges[2], &ranges[3], &ranges[4], &ranges[5],
                ],
            )
            .await
            .map_err(SimError::sql(action))?;
        for row in rows {
            let table: String = row.try_get(0).map_err(SimError::sql(action))?;
            let broken: i64 = row.try_get(1).map_err(SimError::sql(action))?;
            if broken > 0 {
                return Err(SimError::BrokenReferences {
                    table,
                    rows: broken as u64,
                });
            }
        }
    }
    Ok([orders, transactions, payments])
}

/// Skips foreign-key triggers for the rest of the transaction and locks the reference
/// rows instead, failing if any has gone.
async fn lock_references(client: &Client, refs: &References) -> Result<(), SimError> {
    let action = "lock the reference rows of a bulk-load batch";
    client
        .batch_execute("SET LOCAL session_replication_role = replica")
        .await
        .map_err(SimError::sql(
            "skip foreign-key triggers for a bulk-load batch",
        ))?;
    let payment_types = [refs.sales_receipt];
    let lists: [(&str, &[i32]); 6] = [
        ("design", &refs.designs),
        ("staff", &refs.staff),
        ("counterparty", &refs.counterparties),
        ("currency", &refs.currencies),
        ("address", &refs.addresses),
        ("payment_type", &payment_types),
    ];
    let row = client
        .query_one(
            LOCK_REFERENCES,
            &[
                &lists[0].1,
                &lists[1].1,
                &lists[2].1,
                &lists[3].1,
                &lists[4].1,
                &lists[5].1,
            ],
        )
        .await
        .map_err(SimError::sql(action))?;
    for (at, (table, ids)) in lists.iter().enumerate() {
        let locked: i64 = row.try_get(at).map_err(SimError::sql(action))?;
        if locked != ids.len() as i64 {
            return Err(SimError::ReferencesGone {
                table: (*table).to_owned(),
            });
        }
    }
    Ok(())
}

/// Streams one text-format COPY of `batch`, one row per element, in bounded chunks.
async fn copy_rows(
    client: &Client,
    table: &str,
    statement: &str,
    batch: &[NewSale],
    mut write_row: impl FnMut(&mut BytesMut, i64, &NewSale) -> fmt::Result,
) -> Result<u64, SimError> {
    let action = || format!("copy rows into {table}");
    let sink = client
        .copy_in::<_, Bytes>(statement)
        .await
        .map_err(SimError::sql(action()))?;
    let mut sink = pin!(sink);
    let mut buf = BytesMut::with_capacity(CHUNK_BYTES + 1024);
    for (i, sale) in batch.iter().enumerate() {
        // Writing to memory cannot fail; the row is cut short only if formatting does.
        let _ = write_row(&mut buf, i as i64, sale);
        if buf.len() >= CHUNK_BYTES {
            sink.send(buf.split().freeze())
                .await
                .map_err(SimError::sql(action()))?;
        }
    }
    if !buf.is_empty() {
        sink.send(buf.split().freeze())
            .await
            .map_err(SimError::sql(action()))?;
    }
    sink.as_mut()
        .finish()
        .await
        .map_err(SimError::sql(action()))
}

/// Appends `text` as a COPY text-format field, escaping what the format reserves.
fn push_text(buf: &mut BytesMut, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.extend_from_slice(&[byte]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The set-wise check finds what the triggers would have refused.
    #[tokio::test]
    async fn the_batch_check_finds_broken_references() -> Result<(), Box<dyn std::error::Error>> {
        let db = cdc_testkit::TestDb::create().await?;
        let client = db.client().await?;
        crate::create_schema(&client, crate::SchemaVariant::default()).await?;
        crate::seed(&client, 1).await?;
        let check = |ranges: [i64; 6]| {
            let client = &client;
            async move {
                let rows = client
                    .query(
                        CHECK_BATCH,
                        &[
                            &ranges[0], &ranges[1], &ranges[2], &ranges[3], &ranges[4], &ranges[5],
                        ],
                    )
                    .await?;
                Ok::<_, tokio_postgres::Error>(
                    rows.iter()
                        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
                        .collect::<Vec<_>>(),
                )
            }
        };
        let clean = |n| {
            vec![
                ("sales_order".to_owned(), 0),
                ("transaction".to_owned(), n),
                ("payment".to_owned(), 0),
            ]
        };
        // The seed's sales (keys 1–300) are sound; its purchases' transactions (301–400)
        // are not sales, which a batch of sales must not contain.
        assert_eq!(check([1, 300, 1, 300, 1, 300]).await?, clean(0));
        assert_eq!(check([1, 300, 1, 400, 1, 300]).await?, clean(100));

        client
            .batch_execute(
                "BEGIN; SET LOCAL session_replication_role = replica; \
                 INSERT INTO sales_order (sales_order_id, design_id, staff_id, counterparty_id, \
                   units_sold, unit_price, currency_id, agreed_delivery_date, agreed_payment_date, \
                   agreed_delivery_location_id) \
                 VALUES (1000, 9999, 1, 1, 1000, 2, 1, '2024-01-01', '2024-01-01', 1); \
                 INSERT INTO transaction (transaction_id, transaction_type, sales_order_id) \
                 VALUES (1000, 'SALE', 5); \
                 INSERT INTO payment (payment_id, transaction_id, counterparty_id, payment_amount, \
                   currency_id, payment_type_id, paid, payment_date, company_ac_number, \
                   counterparty_ac_number) \
                 VALUES (1000, 1000, 1, 1, 1, 77, false, '2024-01-01', 12345678, 12345678); \
                 COMMIT",
            )
            .await?;
        let found = check([1000, 1000, 1000, 1000, 1000, 1000]).await?;
        assert_eq!(
            found,
            [
                ("sales_order".to_owned(), 1),
                ("transaction".to_owned(), 1),
                ("payment".to_owned(), 1)
            ]
        );
        Ok(())
    }

    #[test]
    fn copy_text_escapes_reserved_bytes() {
        let mut buf = BytesMut::new();
        push_text(&mut buf, "a\tb\\c\nd\re");
        assert_eq!(&buf[..], b"a\\tb\\\\c\\nd\\re");
        buf.clear();
        push_text(&mut buf, "2024-01-31");
        assert_eq!(&buf[..], b"2024-01-31");
    }

    #[test]
    fn summary_display() {
        let summary = BulkSummary {
            sales_orders: 1_000,
            transactions: 1_000,
            payments: 1_000,
            batches: 1,
            per_batch_fk_checks: true,
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(summary.rows(), 3_000);
        assert_eq!(
            summary.to_string(),
            "1000 sales orders, 1000 transactions, 1000 payments in 1 transactions over 2.0 s \
             (500 orders/s, 1500 rows/s; foreign keys checked per batch)"
        );
    }
}
