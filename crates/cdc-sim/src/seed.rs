//! Seed data: the reference tables at their typical sizes and a few hundred orders.

use std::fmt;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

use crate::statements::Statements;
use crate::values::{self, Day, OrderRefs, CURRENCY_CODES, DEPARTMENTS, PAYMENT_TYPES};
use crate::{SimError, Table};

/// Addresses written by [`seed`]; the first [`COUNTERPARTIES`] are counterparties' legal addresses.
pub(crate) const ADDRESSES: usize = 30;
/// Counterparties written by [`seed`].
pub(crate) const COUNTERPARTIES: usize = 20;
/// Staff written by [`seed`].
pub(crate) const STAFF: usize = 20;
/// Designs written by [`seed`].
pub(crate) const DESIGNS: usize = 50;
/// Sales orders written by [`seed`], each with its transaction and payment.
pub(crate) const SALES_ORDERS: usize = 300;
/// Purchase orders written by [`seed`], each with its transaction and payment.
pub(crate) const PURCHASE_ORDERS: usize = 100;
/// Orders are placed up to this many days before today.
const ORDER_HISTORY_DAYS: i64 = 60;

/// Rows written per table by [`seed`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedSummary {
    rows: [u64; 11],
}

impl SeedSummary {
    /// Rows written to `table`.
    pub fn rows(&self, table: Table) -> u64 {
        self.rows[table.index()]
    }

    /// Rows written to all tables.
    pub fn total(&self) -> u64 {
        self.rows.iter().sum()
    }

    fn add(&mut self, table: Table, rows: u64) {
        self.rows[table.index()] += rows;
    }
}

impl fmt::Display for SeedSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<16} {:>8}", "table", "rows")?;
        for table in Table::ALL {
            writeln!(f, "{:<16} {:>8}", table.name(), self.rows(table))?;
        }
        write!(f, "{:<16} {:>8}", "total", self.total())
    }
}

/// Fills an empty totesys schema with reference data (3 currencies, 8 departments,
/// 30 addresses, 20 counterparties, 20 staff, 50 designs, 4 payment types) and
/// 300 sales and 100 purchase orders placed over the last 60 days, each with its
/// transaction and payment; all in one transaction.
///
/// The same `seed` writes the same values (dates are relative to today).
pub async fn seed(client: &Client, seed: u64) -> Result<SeedSummary, SimError> {
    let statements = Statements::prepare(client).await?;
    client
        .batch_execute("BEGIN")
        .await
        .map_err(SimError::sql("begin the seed transaction"))?;
    let result = write_seed(client, &statements, seed).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = client
        .batch_execute(end)
        .await
        .map_err(SimError::sql("commit the seed data"));
    let summary = result?;
    ended?;
    tracing::info!(rows = summary.total(), seed, "seeded totesys");
    Ok(summary)
}

async fn write_seed(client: &Client, st: &Statements, seed: u64) -> Result<SeedSummary, SimError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let today = Day::today();
    let mut summary = SeedSummary::default();

    let mut currencies = Vec::new();
    for code in CURRENCY_CODES {
        currencies.push(st.insert_currency(client, code).await?);
    }
    summary.add(Table::Currency, currencies.len() as u64);

    let mut departments = Vec::new();
    for name in DEPARTMENTS {
        let location = values::location(&mut rng);
        let manager = values::full_name(&mut rng);
        departments.push(
            st.insert_department(client, name, Some(location), Some(&manager))
                .await?,
        );
    }
    summary.add(Table::Department, departments.len() as u64);

    let mut addresses = Vec::new();
    for _ in 0..ADDRESSES {
        addresses.push(
            st.insert_address(client, &values::address(&mut rng))
                .await?,
        );
    }
    summary.add(Table::Address, addresses.len() as u64);

    let mut counterparties = Vec::new();
    for &legal_address_id in addresses.iter().take(COUNTERPARTIES) {
        let counterparty = values::counterparty(&mut rng);
        counterparties.push(
            st.insert_counterparty(client, &counterparty, legal_address_id)
                .await?,
        );
    }
    summary.add(Table::Counterparty, counterparties.len() as u64);

    let mut staff = Vec::new();
    for _ in 0..STAFF {
        let department_id = choose(&mut rng, &departments);
        staff.push(
            st.insert_staff(client, &values::staff(&mut rng, department_id))
                .await?,
        );
    }
    summary.add(Table::Staff, staff.len() as u64);

    let mut designs = Vec::new();
    for _ in 0..DESIGNS {
        designs.push(
            st.insert_design(client, &values::design(&mut rng, today))
                .await?,
        );
    }
    summary.add(Table::Design, designs.len() as u64);

    let mut payment_types = Vec::new();
    for name in PAYMENT_TYPES {
        payment_types.push(st.insert_payment_type(client, name).await?);
    }
    summary.add(Table::PaymentType, payment_types.len() as u64);
    // In the order of PAYMENT_TYPES: SALES_RECEIPT, SALES_REFUND, PURCHASE_PAYMENT, …
    let (sales_receipt, purchase_payment) = (payment_types[0], payment_types[2]);

    let refs = |rng: &mut StdRng| OrderRefs {
        staff_id: choose(rng, &staff),
        counterparty_id: choose(rng, &counterparties),
        currency_id: choose(rng, &currencies),
        delivery_location_id: choose(rng, &addresses),
    };
    for _ in 0..SALES_ORDERS {
        let placed = today.plus(-rng.random_range(0..=ORDER_HISTORY_DAYS));
        let design_id = choose(&mut rng, &designs);
        let order_refs = refs(&mut rng);
        let sale = values::sale(
            &mut rng,
            design_id,
            order_refs,
            sales_receipt,
            placed,
            today,
        );
        st.insert_sale(client, &sale).await?;
    }
    summary.add(Table::SalesOrder, SALES_ORDERS as u64);
    for _ in 0..PURCHASE_ORDERS {
        let placed = today.plus(-rng.random_range(0..=ORDER_HISTORY_DAYS));
        let order_refs = refs(&mut rng);
        let purchase = values::purchase(&mut rng, order_refs, purchase_payment, placed, today);
        st.insert_purchase(client, &purchase).await?;
    }
    summary.add(Table::PurchaseOrder, PURCHASE_ORDERS as u64);
    summary.add(Table::Transaction, (SALES_ORDERS + PURCHASE_ORDERS) as u64);
    summary.add(Table::Payment, (SALES_ORDERS + PURCHASE_ORDERS) as u64);
    Ok(summary)
}

/// A random element of a list that is never empty here (it was just filled).
fn choose(rng: &mut StdRng, ids: &[i32]) -> i32 {
    ids.choose(rng).copied().unwrap_or(1)
}
