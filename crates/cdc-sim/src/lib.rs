//! The totesys source database, made on demand: its DDL, seed data, a live workload
//! and a bulk loader, all following the totesys source spec
//! (`totesys-source.md`: 11 tables, their columns, value ranges and formats).
//!
//! ```text
//!   create_schema ──► seed ──► run_workload (paced, reproducible) ──► WAL ──► the capture reader
//!                       └────► bulk_load    (COPY, millions of orders)
//! ```
//!
//! # Schema
//!
//! [`create_schema`] writes the spec's 11 tables, keys and 17 foreign keys; a
//! [`SchemaVariant`] declares the numerics `numeric(10,2)` and/or makes
//! `transaction_type` an enum, as some deployments do. Two indexes not in the spec
//! (`payment.transaction_id`, `transaction.purchase_order_id`) keep deletes fast on big
//! tables; they add no column or constraint.
//!
//! # What one unit of work writes
//!
//! Each unit is what the Terrific Totes application does in one go; the workload packs
//! one unit per database transaction at low rates and several when the rate is high.
//! A sale, the most common unit, writes three rows in foreign-key order:
//!
//! ```text
//!   design, staff, counterparty, currency, address        (existing rows, picked at random)
//!       │
//!       ▼
//!   INSERT sales_order  units_sold 1000–100000 × unit_price 2.00–4.00, dates 'YYYY-MM-DD'
//!       │ sales_order_id
//!       ▼
//!   INSERT transaction  transaction_type = 'SALE', purchase_order_id NULL
//!       │ transaction_id
//!       ▼
//!   INSERT payment      SALES_RECEIPT, paid = false, payment_amount = units_sold × unit_price
//!
//!   … later, in other units:  UPDATE payment SET paid = true      (last_updated = now(), mostly)
//!                             UPDATE sales_order SET units_sold …
//! ```
//!
//! A purchase is the same shape (`purchase_order`, `PURCHASE`, `PURCHASE_PAYMENT`); a
//! cancelled purchase is deleted child first: payment, transaction, purchase order.
//! The full mix is in [`workload`]'s documentation.
//!
//! # Reproducibility
//!
//! A seed fixes everything drawn at random. [`seed`] and [`bulk_load`] write the same rows
//! for the same seed into the same starting data (dates count from today); [`run_workload`] performs the same sequence of kinds of work, so the
//! per-table counts of inserts, updates and deletes in [`WorkloadStats`] repeat exactly
//! for the same seed and the same starting data, whatever the pacing.
//!
//! Values are always bound as statement parameters; `numeric` values travel in PostgreSQL's
//! binary form, exact to the cent.

mod bulk;
mod error;
mod params;
mod schema;
mod seed;
mod statements;
mod values;
pub mod workload;

pub use bulk::{bulk_load, bulk_load_with_progress, BulkSummary};
pub use error::SimError;
pub use schema::{create_schema, drop_schema, SchemaVariant, TRANSACTION_TYPE_ENUM};
pub use seed::{seed, SeedSummary};
pub use workload::{run_workload, TableCounts, WorkloadConfig, WorkloadStats};

use std::fmt;

/// The 11 totesys tables, in an order where every table comes after the tables it references.
pub const TABLES: [&str; 11] = [
    "currency",
    "department",
    "address",
    "counterparty",
    "staff",
    "design",
    "sales_order",
    "purchase_order",
    "payment_type",
    "transaction",
    "payment",
];

/// One of the 11 totesys tables; [`Table::ALL`] is in the same order as [`TABLES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `currency`: GBP, USD, EUR.
    Currency,
    /// `department`: where staff work.
    Department,
    /// `address`: legal addresses of counterparties and delivery locations.
    Address,
    /// `counterparty`: customers and suppliers.
    Counterparty,
    /// `staff`: who makes the sales and purchases.
    Staff,
    /// `design`: the tote-bag designs that are sold.
    Design,
    /// `sales_order`: an order from a counterparty.
    SalesOrder,
    /// `purchase_order`: an order to a supplier.
    PurchaseOrder,
    /// `payment_type`: SALES_RECEIPT, SALES_REFUND, PURCHASE_PAYMENT, PURCHASE_REFUND.
    PaymentType,
    /// `transaction`: one per order, SALE or PURCHASE.
    Transaction,
    /// `payment`: money for a transaction.
    Payment,
}

impl Table {
    /// All tables, in foreign-key-safe creation order.
    pub const ALL: [Table; 11] = [
        Table::Currency,
        Table::Department,
        Table::Address,
        Table::Counterparty,
        Table::Staff,
        Table::Design,
        Table::SalesOrder,
        Table::PurchaseOrder,
        Table::PaymentType,
        Table::Transaction,
        Table::Payment,
    ];

    /// The table's name in schema `public`.
    pub fn name(self) -> &'static str {
        TABLES[self.index()]
    }

    /// The table's position in [`Table::ALL`] and [`TABLES`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The table called `name`, if it is one of the 11.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_enum_and_names_agree() {
        for (i, table) in Table::ALL.into_iter().enumerate() {
            assert_eq!(table.index(), i);
            assert_eq!(table.name(), TABLES[i]);
            assert_eq!(Table::from_name(TABLES[i]), Some(table));
        }
        assert_eq!(Table::from_name("orders"), None);
    }
}
