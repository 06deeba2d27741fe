//! One unit of work with every row and value chosen: what it writes, and how.

use tokio_postgres::Client;

use super::stats::WorkloadStats;
use crate::params::Cents;
use crate::statements::{Changes, OrderIds, PairUpdate, Statements};
use crate::values::{NewAddress, NewCounterparty, NewDesign, NewPurchase, NewSale, NewStaff};
use crate::{SimError, Table};

/// A unit of work, ready to run.
#[derive(Debug, Clone)]
pub(crate) enum Unit {
    Sale(NewSale),
    Purchase(NewPurchase),
    UpdateSalesOrder(i32, Changes<i32, Cents>),
    UpdatePurchaseOrder(i32, Changes<i32, Cents>),
    MarkPaid {
        payment_id: i32,
        touch: bool,
    },
    MoveStaff {
        staff_id: i32,
        department_id: i32,
        touch: bool,
    },
    UpdateDepartment(i32, Changes<String, String>),
    UpdateAddress(i32, Changes<String, String>),
    UpdateCounterparty(i32, Changes<String, String>),
    NewDesign(NewDesign),
    MoveDesign {
        design_id: i32,
        file_location: &'static str,
        touch: bool,
    },
    NewStaff(NewStaff),
    NewAddress(NewAddress),
    NewCounterparty(NewAddress, NewCounterparty),
    CancelPurchase {
        purchase_order_id: i32,
        transaction_id: i32,
        payment_id: i32,
    },
    TouchCurrency(i32),
    TouchPaymentType(i32),
}

/// What a unit did, as the database reported it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Done {
    /// An order with its transaction and payment.
    Order(OrderIds),
    /// One row, with this key.
    Created(i32),
    /// A new counterparty and its legal address.
    CounterpartyWithAddress {
        address_id: i32,
        counterparty_id: i32,
    },
    /// Rows updated.
    Updated(u64),
    /// Rows deleted from payment, transaction and purchase_order.
    Cancelled([u64; 3]),
}

impl Unit {
    /// Rows the unit changes.
    pub(crate) fn cost(&self) -> u64 {
        match self {
            Unit::Sale(_) | Unit::Purchase(_) | Unit::CancelPurchase { .. } => 3,
            Unit::NewCounterparty(..) => 2,
            _ => 1,
        }
    }

    /// Existing rows the unit updates or deletes; no two units of one batch share one.
    pub(crate) fn touched(&self) -> [Option<(Table, i32)>; 3] {
        let one = |table, id| [Some((table, id)), None, None];
        match *self {
            Unit::UpdateSalesOrder(id, _) => one(Table::SalesOrder, id),
            Unit::UpdatePurchaseOrder(id, _) => one(Table::PurchaseOrder, id),
            Unit::MarkPaid { payment_id, .. } => one(Table::Payment, payment_id),
            Unit::MoveStaff { staff_id, .. } => one(Table::Staff, staff_id),
            Unit::UpdateDepartment(id, _) => one(Table::Department, id),
            Unit::UpdateAddress(id, _) => one(Table::Address, id),
            Unit::UpdateCounterparty(id, _) => one(Table::Counterparty, id),
            Unit::MoveDesign { design_id, .. } => one(Table::Design, design_id),
            Unit::TouchCurrency(id) => one(Table::Currency, id),
            Unit::TouchPaymentType(id) => one(Table::PaymentType, id),
            Unit::CancelPurchase {
                purchase_order_id,
                transaction_id,
                payment_id,
            } => [
                Some((Table::Payment, payment_id)),
                Some((Table::Transaction, transaction_id)),
                Some((Table::PurchaseOrder, purchase_order_id)),
            ],
            Unit::Sale(_)
            | Unit::Purchase(_)
            | Unit::NewDesign(_)
            | Unit::NewStaff(_)
            | Unit::NewAddress(_)
            | Unit::NewCounterparty(..) => [None, None, None],
        }
    }

    /// An in-place update that leaves `last_updated` as it was.
    fn keeps_last_updated(&self) -> bool {
        match self {
            Unit::UpdateSalesOrder(_, c) | Unit::UpdatePurchaseOrder(_, c) => !c.touch,
            Unit::UpdateDepartment(_, c)
            | Unit::UpdateAddress(_, c)
            | Unit::UpdateCounterparty(_, c) => !c.touch,
            Unit::MarkPaid { touch, .. }
            | Unit::MoveStaff { touch, .. }
            | Unit::MoveDesign { touch, .. } => !touch,
            _ => false,
        }
    }

    /// The table an update writes to.
    fn updated_table(&self) -> Option<Table> {
        Some(match self {
            Unit::UpdateSalesOrder(..) => Table::SalesOrder,
            Unit::UpdatePurchaseOrder(..) => Table::PurchaseOrder,
            Unit::MarkPaid { .. } => Table::Payment,
            Unit::MoveStaff { .. } => Table::Staff,
            Unit::UpdateDepartment(..) => Table::Department,
            Unit::UpdateAddress(..) => Table::Address,
            Unit::UpdateCounterparty(..) => Table::Counterparty,
            Unit::MoveDesign { .. } => Table::Design,
            Unit::TouchCurrency(_) => Table::Currency,
            Unit::TouchPaymentType(_) => Table::PaymentType,
            _ => return None,
        })
    }

    /// Runs the unit's statements, in order, inside the caller's transaction.
    pub(crate) async fn execute(&self, st: &Statements, client: &Client) -> Result<Done, SimError> {
        Ok(match self {
            Unit::Sale(sale) => Done::Order(st.insert_sale(client, sale).await?),
            Unit::Purchase(purchase) => Done::Order(st.insert_purchase(client, purchase).await?),
            Unit::UpdateSalesOrder(id, c) => Done::Updated(
                st.update_pair(client, PairUpdate::SalesOrder, *id, c)
                    .await?,
            ),
            Unit::UpdatePurchaseOrder(id, c) => Done::Updated(
                st.update_pair(client, PairUpdate::PurchaseOrder, *id, c)
                    .await?,
            ),
            Unit::MarkPaid { payment_id, touch } => {
                Done::Updated(st.mark_paid(client, *payment_id, *touch).await?)
            }
            Unit::MoveStaff {
                staff_id,
                department_id,
                touch,
            } => Done::Updated(
                st.move_staff(client, *staff_id, *department_id, *touch)
                    .await?,
            ),
            Unit::UpdateDepartment(id, c) => Done::Updated(
                st.update_pair(client, PairUpdate::Department, *id, c)
                    .await?,
            ),
            Unit::UpdateAddress(id, c) => {
                Done::Updated(st.update_pair(client, PairUpdate::Address, *id, c).await?)
            }
            Unit::UpdateCounterparty(id, c) => Done::Updated(
                st.update_pair(client, PairUpdate::Counterparty, *id, c)
                    .await?,
            ),
            Unit::NewDesign(design) => Done::Created(st.insert_design(client, design).await?),
            Unit::MoveDesign {
                design_id,
                file_location,
                touch,
            } => Done::Updated(
                st.update_design(client, *design_id, file_location, *touch)
                    .await?,
            ),
            Unit::NewStaff(staff) => Done::Created(st.insert_staff(client, staff).await?),
            Unit::NewAddress(address) => Done::Created(st.insert_address(client, address).await?),
            Unit::NewCounterparty(address, counterparty) => {
                let (address_id, counterparty_id) = st
                    .insert_counterparty_with_address(client, address, counterparty)
                    .await?;
                Done::CounterpartyWithAddress {
                    address_id,
                    counterparty_id,
                }
            }
            Unit::CancelPurchase {
                purchase_order_id,
                transaction_id,
                ..
            } => Done::Cancelled(
                st.cancel_purchase(client, *purchase_order_id, *transaction_id)
                    .await?,
            ),
            Unit::TouchCurrency(id) => Done::Updated(st.touch_currency(client, *id).await?),
            Unit::TouchPaymentType(id) => Done::Updated(st.touch_payment_type(client, *id).await?),
        })
    }

    /// Adds what the committed unit changed to `stats`.
    pub(crate) fn record(&self, done: &Done, stats: &mut WorkloadStats) {
        stats.units += 1;
        match (self, done) {
            (Unit::Sale(_), Done::Order(_)) => {
                for table in [Table::SalesOrder, Table::Transaction, Table::Payment] {
                    stats.inserted(table, 1);
                }
            }
            (Unit::Purchase(_), Done::Order(_)) => {
                for table in [Table::PurchaseOrder, Table::Transaction, Table::Payment] {
                    stats.inserted(table, 1);
                }
            }
            (Unit::NewDesign(_), _) => stats.inserted(Table::Design, 1),
            (Unit::NewStaff(_), _) => stats.inserted(Table::Staff, 1),
            (Unit::NewAddress(_), _) => stats.inserted(Table::Address, 1),
            (Unit::NewCounterparty(..), _) => {
                stats.inserted(Table::Address, 1);
                stats.inserted(Table::Counterparty, 1);
            }
            (Unit::CancelPurchase { .. }, Done::Cancelled([payments, transactions, orders])) => {
                stats.deleted(Table::Payment, *payments);
                stats.deleted(Table::Transaction, *transactions);
                stats.deleted(Table::PurchaseOrder, *orders);
            }
            (unit, Done::Updated(rows)) => {
                if let Some(table) = unit.updated_table() {
                    stats.updated(table, *rows);
                    if unit.keeps_last_updated() {
                        stats.updates_keeping_last_updated += rows;
                    }
                }
            }
            _ => {}
        }
    }
}
