//! The prepared statements that seed and the workload run, one per kind of write.
//!
//! An order and its transaction and payment are inserted by one statement whose
//! data-modifying `WITH` parts feed each other's keys, so the rows reach the WAL in
//! foreign-key order (order, transaction, payment) in a single round trip.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use crate::params::TransactionType;
use crate::values::{NewAddress, NewCounterparty, NewDesign, NewPurchase, NewSale, NewStaff};
use crate::SimError;

/// A prepared statement and what it does, for error messages.
struct Stmt {
    statement: Statement,
    action: &'static str,
}

impl Stmt {
    async fn prepare(client: &Client, action: &'static str, sql: &str) -> Result<Stmt, SimError> {
        let statement = client
            .prepare(sql)
            .await
            .map_err(SimError::sql(format!("prepare the statement to {action}")))?;
        Ok(Stmt { statement, action })
    }

    async fn execute(
        &self,
        client: &Client,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, SimError> {
        client
            .execute(&self.statement, params)
            .await
            .map_err(SimError::sql(self.action))
    }

    async fn ids<const N: usize>(
        &self,
        client: &Client,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<[i32; N], SimError> {
        let row = client
            .query_one(&self.statement, params)
            .await
            .map_err(SimError::sql(self.action))?;
        let mut ids = [0; N];
        for (i, id) in ids.iter_mut().enumerate() {
            *id = row.try_get(i).map_err(SimError::sql(self.action))?;
        }
        Ok(ids)
    }
}

/// The keys of a new order's three rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OrderIds {
    /// `sales_order_id` or `purchase_order_id`.
    pub order_id: i32,
    pub transaction_id: i32,
    pub payment_id: i32,
}

/// Optional new values for an in-place update; `None` leaves the column as it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Changes<A, B> {
    pub first: Option<A>,
    pub second: Option<B>,
    /// Set `last_updated = now()`, as the application mostly does.
    pub touch: bool,
}

/// The in-place updates that set two optional columns (see [`Changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PairUpdate {
    /// `units_sold` and/or `unit_price`.
    SalesOrder,
    /// `item_quantity` and/or `item_unit_price`.
    PurchaseOrder,
    /// `location` and/or `manager`.
    Department,
    /// `phone` and/or `postal_code`.
    Address,
    /// `commercial_contact` and/or `delivery_contact`.
    Counterparty,
}

/// The statement that inserts an order (`order`, whose key column is `key`), its
/// transaction and its payment in one round trip, returning the three keys. The order takes
/// `$1`..`$9`; the transaction's type is `$10`; the payment takes its counterparty from
/// `$<counterparty>`, its currency from `$6` and the rest from `$11`..`$16`.
fn order_insert(order: &str, key: &str, counterparty: u8) -> String {
    format!(
        "WITH o AS ({order} RETURNING {key}), \
         t AS (\
           INSERT INTO transaction (transaction_type, {key}) \
           VALUES ($10, (SELECT {key} FROM o)) RETURNING transaction_id), \
         p AS (\
           INSERT INTO payment (transaction_id, counterparty_id, payment_amount, \
             currency_id, payment_type_id, paid, payment_date, company_ac_number, \
             counterparty_ac_number) \
           VALUES ((SELECT transaction_id FROM t), ${counterparty}, $11, $6, $12, $13, $14, $15, \
             $16) \
           RETURNING payment_id) \
         SELECT o.{key}, t.transaction_id, p.payment_id FROM o, t, p"
    )
}

/// Every statement the simulator runs, prepared once per connection.
pub(crate) struct Statements {
    insert_currency: Stmt,
    insert_department: Stmt,
    insert_address: Stmt,
    insert_counterparty: Stmt,
    insert_counterparty_with_address: Stmt,
    insert_staff: Stmt,
    insert_design: Stmt,
    insert_payment_type: Stmt,
    insert_sale: Stmt,
    insert_purchase: Stmt,
    update_sales_order: Stmt,
    update_purchase_order: Stmt,
    mark_paid: Stmt,
    move_staff: Stmt,
    update_department: Stmt,
    update_address: Stmt,
    update_counterparty: Stmt,
    update_design: Stmt,
    touch_currency: Stmt,
    touch_payment_type: Stmt,
    delete_payments: Stmt,
    delete_transaction: Stmt,
    delete_purchase_order: Stmt,
}

const INSERT_ADDRESS_COLUMNS: &str = "address_line_1, address_line_2, district, city, \
     postal_code, country, phone";

/// `CASE` that sets `last_updated` only when parameter `$n` is true.
macro_rules! touch {
    ($n:literal) => {
        concat!(
            "last_updated = CASE WHEN $",
            $n,
            " THEN now() ELSE last_updated END"
        )
    };
}

impl Statements {
    /// Prepares every statement on `client`; the schema must exist.
    pub(crate) async fn prepare(client: &Client) -> Result<Statements, SimError> {
        Ok(Statements {
            insert_currency: Stmt::prepare(
                client,
                "insert into currency",
                "INSERT INTO currency (currency_code) VALUES ($1) RETURNING currency_id",
            )
            .await?,
            insert_department: Stmt::prepare(
                client,
                "insert into department",
                "INSERT INTO department (department_name, location, manager) \
                 VALUES ($1, $2, $3) RETURNING department_id",
            )
            .await?,
            insert_address: Stmt::prepare(
                client,
                "insert into address",
                &format!(
                    "INSERT INTO address ({INSERT_ADDRESS_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING address_id"
                ),
            )
            .await?,
            insert_counterparty: Stmt::prepare(
                client,
                "insert into counterparty",
                "INSERT INTO counterparty (counterparty_legal_name, legal_address_id, \
                 commercial_contact, delivery_contact) \
                 VALUES ($1, $2, $3, $4) RETURNING counterparty_id",
            )
            .await?,
            insert_counterparty_with_address: Stmt::prepare(
                client,
                "insert a counterparty with its address into address and counterparty",
                &format!(
                    "WITH a AS (INSERT INTO address ({INSERT_ADDRESS_COLUMNS}) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING address_id) \
                     INSERT INTO counterparty (counterparty_legal_name, legal_address_id, \
                       commercial_contact, delivery_contact) \
                     VALUES ($8, (SELECT address_id FROM a), $9, $10) \
                     RETURNING legal_address_id, counterparty_id"
                ),
            )
            .await?,
            insert_staff: Stmt::prepare(
                client,
                "insert into staff",
                "INSERT INTO staff (first_name, last_name, department_id, email_address) \
                 VALUES ($1, $2, $3, $4) RETURNING staff_id",
            )
            .await?,
            insert_design: Stmt::prepare(
                client,
                "insert into design",
                "INSERT INTO design (design_name, file_location, file_name) \
                 VALUES ($1, $2, $3) RETURNING design_id",
            )
            .await?,
            insert_payment_type: Stmt::prepare(
                client,
                "insert into payment_type",
                "INSERT INTO payment_type (payment_type_name) VALUES ($1) RETURNING payment_type_id",
            )
            .await?,
            insert_sale: Stmt::prepare(
                client,
                "insert a sale into sales_order, transaction and payment",
                &order_insert(
                    "INSERT INTO sales_order (design_id, staff_id, counterparty_id, units_sold, \
                       unit_price, currency_id, agreed_delivery_date, agreed_payment_date, \
                       agreed_delivery_location_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    "sales_order_id",
                    3,
                ),
            )
            .await?,
            insert_purchase: Stmt::prepare(
                client,
                "insert a purchase into purchase_order, transaction and payment",
                &order_insert(
                    "INSERT INTO purchase_order (staff_id, counterparty_id, item_code, \
                       item_quantity, item_unit_price, currency_id, agreed_delivery_date, \
                       agreed_payment_date, agreed_delivery_location_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    "purchase_order_id",
                    2,
                ),
            )
            .await?,
            update_sales_order: Stmt::prepare(
                client,
                "update sales_order",
                concat!(
                    "UPDATE sales_order SET units_sold = coalesce($2, units_sold), ",
                    "unit_price = coalesce($3, unit_price), ",
                    touch!(4),
                    " WHERE sales_order_id = $1"
                ),
            )
            .await?,
            update_purchase_order: Stmt::prepare(
                client,
                "update purchase_order",
                concat!(
                    "UPDATE purchase_order SET item_quantity = coalesce($2, item_quantity), ",
                    "item_unit_price = coalesce($3, item_unit_price), ",
                    touch!(4),
                    " WHERE purchase_order_id = $1"
                ),
            )
            .await?,
            mark_paid: Stmt::prepare(
                client,
                "mark a payment paid",
                concat!("UPDATE payment SET paid = true, ", touch!(2), " WHERE payment_id = $1"),
            )
            .await?,
            move_staff: Stmt::prepare(
                client,
                "move a staff member to another department",
                concat!(
                    "UPDATE staff SET department_id = $2, ",
                    touch!(3),
                    " WHERE staff_id = $1"
                ),
            )
            .await?,
            update_department: Stmt::prepare(
                client,
                "update department",
                concat!(
                    "UPDATE department SET location = coalesce($2, location), ",
                    "manager = coalesce($3, manager), ",
                    touch!(4),
                    " WHERE department_id = $1"
                ),
            )
            .await?,
            update_address: Stmt::prepare(
                client,
                "update address",
                concat!(
                    "UPDATE address SET phone = coalesce($2, phone), ",
                    "postal_code = coalesce($3, postal_code), ",
                    touch!(4),
                    " WHERE address_id = $1"
                ),
            )
            .await?,
            update_counterparty: Stmt::prepare(
                client,
                "update counterparty contacts",
                concat!(
                    "UPDATE counterparty SET ",
                    "commercial_contact = coalesce($2, commercial_contact), ",
                    "delivery_contact = coalesce($3, delivery_contact), ",
                    touch!(4),
                    " WHERE counterparty_id = $1"
                ),
            )
            .await?,
            update_design: Stmt::prepare(
                client,
                "move a design's file",
                concat!(
                    "UPDATE design SET file_location = $2, ",
                    touch!(3),
                    " WHERE design_id = $1"
                ),
            )
            .await?,
            touch_currency: Stmt::prepare(
                client,
                "update currency",
                "UPDATE currency SET last_updated = now() WHERE currency_id = $1",
            )
            .await?,
            touch_payment_type: Stmt::prepare(
                client,
                "update payment_type",
                "UPDATE payment_type SET last_updated = now() WHERE payment_type_id = $1",
            )
            .await?,
            delete_payments: Stmt::prepare(
                client,
                "delete the payments of a cancelled purchase",
                "DELETE FROM payment WHERE transaction_id = $1",
            )
            .await?,
            delete_transaction: Stmt::prepare(
                client,
                "delete the transaction of a cancelled purchase",
                "DELETE FROM transaction WHERE transaction_id = $1",
            )
            .await?,
            delete_purchase_order: Stmt::prepare(
                client,
                "delete a cancelled purchase_order",
                "DELETE FROM purchase_order WHERE purchase_order_id = $1",
            )
            .await?,
        })
    }

    pub(crate) async fn insert_currency(
        &self,
        client: &Client,
        code: &str,
    ) -> Result<i32, SimError> {
        let [id] = self.insert_currency.ids(client, &[&code]).await?;
        Ok(id)
    }

    pub(crate) async fn insert_department(
        &self,
        client: &Client,
        name: &str,
        location: Option<&str>,
        manager: Option<&str>,
    ) -> Result<i32, SimError> {
        let [id] = self
            .insert_department
            .ids(client, &[&name, &location, &manager])
            .await?;
        Ok(id)
    }

    pub(crate) async fn insert_address(
        &self,
        client: &Client,
        a: &NewAddress,
    ) -> Result<i32, SimError> {
        let [id] = self
            .insert_address
            .ids(
                client,
                &[
                    &a.address_line_1,
                    &a.address_line_2,
                    &a.district,
                    &a.city,
                    &a.postal_code,
                    &a.country,
                    &a.phone,
                ],
            )
            .await?;
        Ok(id)
    }

    pub(crate) async fn insert_counterparty(
        &self,
        client: &Client,
        c: &NewCounterparty,
        legal_address_id: i32,
    ) -> Result<i32, SimError> {
        let [id] = self
            .insert_counterparty
            .ids(
                client,
                &[
                    &c.legal_name,
                    &legal_address_id,
                    &c.commercial_contact,
                    &c.delivery_contact,
                ],
            )
            .await?;
        Ok(id)
    }

    /// Inserts an address and a counterparty whose legal address it is; returns both ids.
    pub(crate) async fn insert_counterparty_with_address(
        &self,
        client: &Client,
        a: &NewAddress,
        c: &NewCounterparty,
    ) -> Result<(i32, i32), SimError> {
        let [address_id, counterparty_id] = self
            .insert_counterparty_with_address
            .ids(
                client,
                &[
                    &a.address_line_1,
                    &a.address_line_2,
                    &a.district,
                    &a.city,
                    &a.postal_code,
                    &a.country,
                    &a.phone,
                    &c.legal_name,
                    &c.commercial_contact,
                    &c.delivery_contact,
                ],
            )
            .await?;
        Ok((address_id, counterparty_id))
    }

    pub(crate) async fn insert_staff(
        &self,
        client: &Client,
        s: &NewStaff,
    ) -> Result<i32, SimError> {
        let [id] = self
            .insert_staff
            .ids(
                client,
                &[
                    &s.first_name,
                    &s.last_name,
                    &s.department_id,
                    &s.email_address,
                ],
            )
            .await?;
        Ok(id)
    }

    pub(crate) async fn insert_design(
        &self,
        client: &Client,
        d: &NewDesign,
    ) -> Result<i32, SimError> {
        let [id] = self
            .insert_design
            .ids(client, &[&d.design_name, &d.file_location, &d.file_name])
            .await?;
        Ok(id)
    }

    pub(crate) async fn insert_payment_type(
        &self,
        client: &Client,
        name: &str,
    ) -> Result<i32, SimError> {
        let [id] = self.insert_payment_type.ids(client, &[&name]).await?;
        Ok(id)
    }

    pub(crate) async fn insert_sale(
        &self,
        client: &Client,
        s: &NewSale,
    ) -> Result<OrderIds, SimError> {
        let p = &s.payment;
        let [order_id, transaction_id, payment_id] = self
            .insert_sale
            .ids(
                client,
                &[
                    &s.design_id,
                    &s.refs.staff_id,
                    &s.refs.counterparty_id,
                    &s.units_sold,
                    &s.unit_price,
                    &s.refs.currency_id,
                    &s.agreed_delivery_date,
                    &s.agreed_payment_date,
                    &s.refs.delivery_location_id,
                    &TransactionType::Sale,
                    &p.amount,
                    &p.payment_type_id,
                    &p.paid,
                    &p.payment_date,
                    &p.company_ac_number,
                    &p.counterparty_ac_number,
                ],
            )
            .await?;
        Ok(OrderIds {
            order_id,
            transaction_id,
            payment_id,
        })
    }

    pub(crate) async fn insert_purchase(
        &self,
        client: &Client,
        o: &NewPurchase,
    ) -> Result<OrderIds, SimError> {
        let p = &o.payment;
        let [order_id, transaction_id, payment_id] = self
            .insert_purchase
            .ids(
                client,
                &[
                    &o.refs.staff_id,
                    &o.refs.counterparty_id,
                    &o.item_code,
                    &o.item_quantity,
                    &o.item_unit_price,
                    &o.refs.currency_id,
                    &o.agreed_delivery_date,
                    &o.agreed_payment_date,
                    &o.refs.delivery_location_id,
                    &TransactionType::Purchase,
                    &p.amount,
                    &p.payment_type_id,
                    &p.paid,
                    &p.payment_date,
                    &p.company_ac_number,
                    &p.counterparty_ac_number,
                ],
            )
            .await?;
        Ok(OrderIds {
            order_id,
            transaction_id,
            payment_id,
        })
    }

    pub(crate) async fn mark_paid(
        &self,
        client: &Client,
        id: i32,
        touch: bool,
    ) -> Result<u64, SimError> {
        self.mark_paid.execute(client, &[&id, &touch]).await
    }

    pub(crate) async fn move_staff(
        &self,
        client: &Client,
        id: i32,
        department_id: i32,
        touch: bool,
    ) -> Result<u64, SimError> {
        self.move_staff
            .execute(client, &[&id, &department_id, &touch])
            .await
    }

    /// One of the in-place updates of two optional columns; returns the rows updated.
    pub(crate) async fn update_pair<A, B>(
        &self,
        client: &Client,
        update: PairUpdate,
        id: i32,
        c: &Changes<A, B>,
    ) -> Result<u64, SimError>
    where
        A: ToSql + Sync,
        B: ToSql + Sync,
    {
        let statement = match update {
            PairUpdate::SalesOrder => &self.update_sales_order,
            PairUpdate::PurchaseOrder => &self.update_purchase_order,
            PairUpdate::Department => &self.update_department,
            PairUpdate::Address => &self.update_address,
            PairUpdate::Counterparty => &self.update_counterparty,
        };
        statement
            .execute(client, &[&id, &c.first, &c.second, &c.touch])
            .await
    }

    pub(crate) async fn update_design(
        &self,
        client: &Client,
        id: i32,
        file_location: &str,
        touch: bool,
    ) -> Result<u64, SimError> {
        self.update_design
            .execute(client, &[&id, &file_location, &touch])
            .await
    }

    pub(crate) async fn touch_currency(&self, client: &Client, id: i32) -> Result<u64, SimError> {
        self.touch_currency.execute(client, &[&id]).await
    }

    pub(crate) async fn touch_payment_type(
        &self,
        client: &Client,
        id: i32,
    ) -> Result<u64, SimError> {
        self.touch_payment_type.execute(client, &[&id]).await
    }

    /// Deletes a purchase child first; returns the rows deleted from payment, transaction
    /// and purchase_order.
    pub(crate) async fn cancel_purchase(
        &self,
        client: &Client,
        purchase_order_id: i32,
        transaction_id: i32,
    ) -> Result<[u64; 3], SimError> {
        let payments = self
            .delete_payments
            .execute(client, &[&transaction_id])
            .await?;
        let transactions = self
            .delete_transaction
            .execute(client, &[&transaction_id])
            .await?;
        let orders = self
            .delete_purchase_order
            .execute(client, &[&purchase_order_id])
            .await?;
        Ok([payments, transactions, orders])
    }
}
