//! What the workload knows of the database: the keys of rows it may reference, update
//! or delete. Loaded once at the start, then kept up to date from what each batch wrote.

use std::collections::HashMap;

use rand::seq::IndexedRandom;
use rand::Rng;
use tokio_postgres::{Client, Row};

use super::mix::Action;
use super::unit::{Done, Unit};
use crate::statements::Changes;
use crate::values::{self, Day, OrderRefs, PURCHASE_PAYMENT, SALES_RECEIPT};
use crate::{SimError, Table};

/// Most keys remembered per table: the newest rows when the workload starts, then new ones.
const POOL_CAP: usize = 100_000;

/// A bounded set of keys to pick from uniformly.
#[derive(Debug, Default)]
pub(crate) struct IdPool {
    ids: Vec<i32>,
    position: HashMap<i32, usize>,
}

impl IdPool {
    fn from_ids(ids: impl IntoIterator<Item = i32>) -> IdPool {
        let mut pool = IdPool::default();
        for id in ids {
            pool.push(id);
        }
        pool
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    fn push(&mut self, id: i32) {
        if !self.position.contains_key(&id) {
            self.position.insert(id, self.ids.len());
            self.ids.push(id);
        }
    }

    /// Adds `id`; when full, first forgets a key chosen at random and returns it.
    pub(crate) fn insert<R: Rng + ?Sized>(&mut self, id: i32, rng: &mut R) -> Option<i32> {
        let evicted = if self.ids.len() >= POOL_CAP {
            let victim = self.ids[rng.random_range(0..self.ids.len())];
            self.remove(victim);
            Some(victim)
        } else {
            None
        };
        self.push(id);
        evicted
    }

    /// Forgets `id`; false when it was not there.
    pub(crate) fn remove(&mut self, id: i32) -> bool {
        let Some(at) = self.position.remove(&id) else {
            return false;
        };
        self.ids.swap_remove(at);
        if let Some(&moved) = self.ids.get(at) {
            self.position.insert(moved, at);
        }
        true
    }

    pub(crate) fn choose<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<i32> {
        self.ids.choose(rng).copied()
    }
}

/// A purchase that can still be cancelled: its payment is unpaid.
#[derive(Debug, Clone, Copy)]
struct OpenPurchase {
    transaction_id: i32,
    payment_id: i32,
}

/// The keys the workload works with.
#[derive(Debug)]
pub(crate) struct Model {
    currencies: IdPool,
    payment_types: IdPool,
    sales_receipt: i32,
    purchase_payment: i32,
    departments: IdPool,
    staff: IdPool,
    addresses: IdPool,
    counterparties: IdPool,
    designs: IdPool,
    sales_orders: IdPool,
    purchase_orders: IdPool,
    unpaid_payments: IdPool,
    open_purchases: IdPool,
    open_purchase: HashMap<i32, OpenPurchase>,
    purchase_of_payment: HashMap<i32, i32>,
}

async fn newest_ids(client: &Client, table: Table) -> Result<IdPool, SimError> {
    let sql = format!("SELECT {table}_id FROM {table} ORDER BY {table}_id DESC LIMIT $1");
    let action = format!("read the keys of {table}");
    let rows = client
        .query(&sql, &[&(POOL_CAP as i64)])
        .await
        .map_err(SimError::sql(action.clone()))?;
    Ok(IdPool::from_ids(
        column(&rows, 0, action)?.into_iter().rev(),
    ))
}

/// Column `at` of every row, as `int`s.
fn column(rows: &[Row], at: usize, action: String) -> Result<Vec<i32>, SimError> {
    rows.iter()
        .map(|r| r.try_get(at))
        .collect::<Result<_, _>>()
        .map_err(SimError::sql(action))
}

async fn required(client: &Client, table: Table) -> Result<IdPool, SimError> {
    let pool = newest_ids(client, table).await?;
    if pool.len() == 0 {
        return Err(SimError::MissingReferenceData {
            table: table.name().to_owned(),
        });
    }
    Ok(pool)
}

/// Keys of the reference rows orders point at; shared with the bulk loader.
#[derive(Debug)]
pub(crate) struct References {
    pub currencies: Vec<i32>,
    pub staff: Vec<i32>,
    pub addresses: Vec<i32>,
    pub counterparties: Vec<i32>,
    pub designs: Vec<i32>,
    pub sales_receipt: i32,
}

impl References {
    /// Reads them; fails with [`SimError::MissingReferenceData`] when a table is empty.
    pub(crate) async fn load(client: &Client) -> Result<References, SimError> {
        Ok(References {
            currencies: required(client, Table::Currency).await?.ids,
            staff: required(client, Table::Staff).await?.ids,
            addresses: required(client, Table::Address).await?.ids,
            counterparties: required(client, Table::Counterparty).await?.ids,
            designs: required(client, Table::Design).await?.ids,
            sales_receipt: payment_type(client, SALES_RECEIPT).await?,
        })
    }
}

async fn payment_type(client: &Client, name: &str) -> Result<i32, SimError> {
    let row = client
        .query_opt(
            "SELECT min(payment_type_id) FROM payment_type WHERE payment_type_name = $1 HAVING count(*) > 0",
            &[&name],
        )
        .await
        .map_err(SimError::sql("read payment_type"))?;
    match row {
        Some(row) => row.try_get(0).map_err(SimError::sql("read payment_type")),
        None => Err(SimError::MissingReferenceData {
            table: format!("payment_type {name}"),
        }),
    }
}

impl Model {
    /// Reads the keys from the database; reference tables must not be empty.
    pub(crate) async fn load(client: &Client) -> Result<Model, SimError> {
        let unpaid = client
            .query(
                "SELECT payment_id FROM payment WHERE NOT paid ORDER BY payment_id DESC LIMIT $1",
                &[&(POOL_CAP as i64)],
            )
            .await
            .map_err(SimError::sql("read the unpaid payments"))?;
        let open = client
            .query(
                "SELECT t.purchase_order_id, t.transaction_id, p.payment_id \
                 FROM transaction t JOIN payment p ON p.transaction_id = t.transaction_id \
                 WHERE t.purchase_order_id IS NOT NULL AND NOT p.paid \
                 ORDER BY t.purchase_order_id DESC LIMIT $1",
                &[&(POOL_CAP as i64)],
            )
            .await
            .map_err(SimError::sql("read the open purchases"))?;
        let mut model = Model {
            currencies: required(client, Table::Currency).await?,
            payment_types: required(client, Table::PaymentType).await?,
            sales_receipt: payment_type(client, SALES_RECEIPT).await?,
            purchase_payment: payment_type(client, PURCHASE_PAYMENT).await?,
            departments: required(client, Table::Department).await?,
            staff: required(client, Table::Staff).await?,
            addresses: required(client, Table::Address).await?,
            counterparties: required(client, Table::Counterparty).await?,
            designs: required(client, Table::Design).await?,
            sales_orders: newest_ids(client, Table::SalesOrder).await?,
            purchase_orders: newest_ids(client, Table::PurchaseOrder).await?,
            unpaid_payments: IdPool::from_ids(
                column(&unpaid, 0, "read the unpaid payments".into())?
                    .into_iter()
                    .rev(),
            ),
            open_purchases: IdPool::default(),
            open_purchase: HashMap::new(),
            purchase_of_payment: HashMap::new(),
        };
        let action = || "read the open purchases".to_owned();
        let orders = column(&open, 0, action())?;
        let transactions = column(&open, 1, action())?;
        let payments = column(&open, 2, action())?;
        for at in (0..open.len()).rev() {
            let (order, transaction_id, payment_id) = (orders[at], transactions[at], payments[at]);
            if !model.open_purchase.contains_key(&order) {
                model.open_purchases.push(order);
                model.open_purchase.insert(
                    order,
                    OpenPurchase {
                        transaction_id,
                        payment_id,
                    },
                );
                model.purchase_of_payment.insert(payment_id, order);
            }
        }
        Ok(model)
    }

    fn pick<R: Rng + ?Sized>(pool: &IdPool, rng: &mut R) -> i32 {
        // Reference pools are never empty (checked on load) and never shrink.
        pool.choose(rng).unwrap_or(1)
    }

    fn order_refs<R: Rng + ?Sized>(&self, rng: &mut R) -> OrderRefs {
        OrderRefs {
            staff_id: Self::pick(&self.staff, rng),
            counterparty_id: Self::pick(&self.counterparties, rng),
            currency_id: Self::pick(&self.currencies, rng),
            delivery_location_id: Self::pick(&self.addresses, rng),
        }
    }

    fn close_purchase(&mut self, order: i32) -> Option<OpenPurchase> {
        self.open_purchases.remove(order);
        let open = self.open_purchase.remove(&order)?;
        self.purchase_of_payment.remove(&open.payment_id);
        Some(open)
    }

    /// Chooses the rows and values of one unit of `action`. Keys a unit updates or deletes
    /// are taken out of the pools they must not be picked from again. When the database
    /// has nothing to apply the action to, a sale is made instead (or, when a sale would
    /// change more than `budget` rows, a currency update).
    pub(crate) fn plan<R: Rng + ?Sized>(
        &mut self,
        action: Action,
        budget: u64,
        rng: &mut R,
        today: Day,
    ) -> Unit {
        let touch = rng.random_bool(0.9);
        let unit = match action {
            Action::Sale => Some(self.sale(rng, today)),
            Action::Purchase => {
                let refs = self.order_refs(rng);
                Some(Unit::Purchase(values::purchase(
                    rng,
                    refs,
                    self.purchase_payment,
                    today,
                    today,
                )))
            }
            Action::UpdateSalesOrder => self.sales_orders.choose(rng).map(|id| {
                let (units, price) = either_or_both(rng, values::units_sold, values::unit_price);
                Unit::UpdateSalesOrder(
                    id,
                    Changes {
                        first: units,
                        second: price,
                        touch,
                    },
                )
            }),
            Action::UpdatePurchaseOrder => self.purchase_orders.choose(rng).map(|id| {
                let (quantity, price) =
                    either_or_both(rng, values::item_quantity, values::item_unit_price);
                Unit::UpdatePurchaseOrder(
                    id,
                    Changes {
                        first: quantity,
                        second: price,
                        touch,
                    },
                )
            }),
            Action::MarkPaid => self.unpaid_payments.choose(rng).map(|payment_id| {
                self.unpaid_payments.remove(payment_id);
                if let Some(order) = self.purchase_of_payment.get(&payment_id).copied() {
                    self.close_purchase(order);
                }
                Unit::MarkPaid { payment_id, touch }
            }),
            Action::MoveStaff => self.staff.choose(rng).map(|staff_id| Unit::MoveStaff {
                staff_id,
                department_id: Self::pick(&self.departments, rng),
                touch,
            }),
            Action::UpdateDepartment => self.departments.choose(rng).map(|id| {
                let (location, manager) =
                    either_or_both(rng, |r| values::location(r).to_owned(), values::full_name);
                Unit::UpdateDepartment(
                    id,
                    Changes {
                        first: location,
                        second: manager,
                        touch,
                    },
                )
            }),
            Action::UpdateAddress => self.addresses.choose(rng).map(|id| {
                let (phone, postal_code) = either_or_both(rng, values::phone, values::postal_code);
                Unit::UpdateAddress(
                    id,
                    Changes {
                        first: phone,
                        second: postal_code,
                        touch,
                    },
                )
            }),
            Action::UpdateCounterparty => self.counterparties.choose(rng).map(|id| {
                let (commercial, delivery) =
                    either_or_both(rng, values::full_name, values::full_name);
                Unit::UpdateCounterparty(
                    id,
                    Changes {
                        first: commercial,
                        second: delivery,
                        touch,
                    },
                )
            }),
            Action::NewDesign => Some(Unit::NewDesign(values::design(rng, today))),
            Action::MoveDesign => self.designs.choose(rng).map(|design_id| Unit::MoveDesign {
                design_id,
                file_location: values::file_location(rng),
                touch,
            }),
            Action::NewStaff => {
                let department_id = Self::pick(&self.departments, rng);
                Some(Unit::NewStaff(values::staff(rng, department_id)))
            }
            Action::NewAddress => Some(Unit::NewAddress(values::address(rng))),
            Action::NewCounterparty => Some(Unit::NewCounterparty(
                values::address(rng),
                values::counterparty(rng),
            )),
            Action::CancelPurchase => self.open_purchases.choose(rng).and_then(|order| {
                let open = self.close_purchase(order)?;
                self.purchase_orders.remove(order);
                self.unpaid_payments.remove(open.payment_id);
                Some(Unit::CancelPurchase {
                    purchase_order_id: order,
                    transaction_id: open.transaction_id,
                    payment_id: open.payment_id,
                })
            }),
            Action::TouchCurrency => Some(Unit::TouchCurrency(Self::pick(&self.currencies, rng))),
            Action::TouchPaymentType => {
                Some(Unit::TouchPaymentType(Self::pick(&self.payment_types, rng)))
            }
        };
        match unit {
            Some(unit) => unit,
            None if Action::Sale.cost() <= budget => self.sale(rng, today),
            None => Unit::TouchCurrency(Self::pick(&self.currencies, rng)),
        }
    }

    fn sale<R: Rng + ?Sized>(&self, rng: &mut R, today: Day) -> Unit {
        let design_id = Self::pick(&self.designs, rng);
        let refs = self.order_refs(rng);
        Unit::Sale(values::sale(
            rng,
            design_id,
            refs,
            self.sales_receipt,
            today,
            today,
        ))
    }

    /// Remembers the rows a committed unit created.
    pub(crate) fn learn<R: Rng + ?Sized>(&mut self, unit: &Unit, done: &Done, rng: &mut R) {
        match (unit, done) {
            (Unit::Sale(_), Done::Order(ids)) => {
                self.sales_orders.insert(ids.order_id, rng);
                self.unpaid_payments.insert(ids.payment_id, rng);
            }
            (Unit::Purchase(_), Done::Order(ids)) => {
                self.purchase_orders.insert(ids.order_id, rng);
                self.unpaid_payments.insert(ids.payment_id, rng);
                if let Some(evicted) = self.open_purchases.insert(ids.order_id, rng) {
                    self.close_purchase(evicted);
                }
                let open = OpenPurchase {
                    transaction_id: ids.transaction_id,
                    payment_id: ids.payment_id,
                };
                self.open_purchase.insert(ids.order_id, open);
                self.purchase_of_payment
                    .insert(ids.payment_id, ids.order_id);
            }
            (Unit::NewDesign(_), Done::Created(id)) => {
                self.designs.insert(*id, rng);
            }
            (Unit::NewStaff(_), Done::Created(id)) => {
                self.staff.insert(*id, rng);
            }
            (Unit::NewAddress(_), Done::Created(id)) => {
                self.addresses.insert(*id, rng);
            }
            (
                Unit::NewCounterparty(..),
                Done::CounterpartyWithAddress {
                    address_id,
                    counterparty_id,
                },
            ) => {
                self.addresses.insert(*address_id, rng);
                self.counterparties.insert(*counterparty_id, rng);
            }
            _ => {}
        }
    }
}

/// New values for one or both of two columns: the first alone half the time, the second
/// alone four times in ten, both once in ten.
fn either_or_both<R: Rng + ?Sized, A, B>(
    rng: &mut R,
    first: impl FnOnce(&mut R) -> A,
    second: impl FnOnce(&mut R) -> B,
) -> (Option<A>, Option<B>) {
    match rng.random_range(0..10) {
        0..=4 => (Some(first(rng)), None),
        5..=8 => (None, Some(second(rng))),
        _ => (Some(first(rng)), Some(second(rng))),
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn pool_removes_and_picks_only_present_keys() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut pool = IdPool::from_ids(1..=10);
        assert!(pool.remove(3));
        assert!(!pool.remove(3));
        assert!(pool.remove(10));
        assert_eq!(pool.len(), 8);
        for _ in 0..1_000 {
            let id = pool.choose(&mut rng).unwrap();
            assert!((1..=9).contains(&id) && id != 3);
        }
        assert_eq!(pool.insert(11, &mut rng), None);
        assert!(pool.remove(11));
        let mut empty = IdPool::default();
        assert_eq!(empty.choose(&mut rng), None);
        assert!(!empty.remove(1));
    }

    #[test]
    fn a_full_pool_evicts_one_key_per_insert() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut pool = IdPool::from_ids(0..POOL_CAP as i32);
        let evicted = pool.insert(-1, &mut rng).unwrap();
        assert_eq!(pool.len(), POOL_CAP);
        assert!(!pool.remove(evicted));
        assert!(pool.remove(-1));
    }

    #[test]
    fn either_or_both_sets_at_least_one() {
        let mut rng = StdRng::seed_from_u64(5);
        let (mut firsts, mut seconds, mut both) = (0, 0, 0);
        for _ in 0..10_000 {
            match either_or_both(&mut rng, |_| 1, |_| 2) {
                (Some(_), None) => firsts += 1,
                (None, Some(_)) => seconds += 1,
                (Some(_), Some(_)) => both += 1,
                (None, None) => panic!("nothing to update"),
            }
        }
        assert!(
            firsts > 4_500 && seconds > 3_500 && both > 800,
            "{firsts} {seconds} {both}"
        );
    }
}
