//! The warehouse against an independent recomputation from the source: each current
//! dimension and each current fact version, row for row, computed with plain SQL joins
//! over the source tables (spec/warehouse.md), compared as text.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use crate::TestkitError;

/// One modelled table compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    /// The warehouse table or view.
    pub table: &'static str,
    /// Rows the source recomputation gives.
    pub source_rows: usize,
    /// Rows the warehouse holds.
    pub warehouse_rows: usize,
    /// Rows the source gives that the warehouse lacks (first few).
    pub missing: Vec<String>,
    /// Rows the warehouse holds that the source does not give (first few).
    pub extra: Vec<String>,
}

impl TableCheck {
    /// Whether the two sides hold the same rows.
    pub fn matches(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// (warehouse table, warehouse query, source query); both give one text per row.
const CHECKS: [(&str, &str, &str); 10] = [
    (
        "dim_staff",
        "SELECT concat_ws('|', staff_id, first_name, last_name, department_name, location, email_address) FROM dim_staff",
        "SELECT concat_ws('|', s.staff_id, s.first_name, s.last_name, d.department_name, d.location, s.email_address)
         FROM staff s JOIN department d USING (department_id)",
    ),
    (
        "dim_location",
        "SELECT concat_ws('|', location_id, address_line_1, address_line_2, district, city, postal_code, country, phone) FROM dim_location",
        "SELECT concat_ws('|', address_id, address_line_1, address_line_2, district, city, postal_code, country, phone) FROM address",
    ),
    (
        "dim_currency",
        "SELECT concat_ws('|', currency_id, currency_code, currency_name) FROM dim_currency",
        "SELECT concat_ws('|', currency_id, currency_code, CASE currency_code WHEN 'GBP' THEN 'British Pound'
             WHEN 'USD' THEN 'US Dollar' WHEN 'EUR' THEN 'Euro' ELSE currency_code END) FROM currency",
    ),
    (
        "dim_design",
        "SELECT concat_ws('|', design_id, design_name, file_location, file_name) FROM dim_design",
        "SELECT concat_ws('|', design_id, design_name, file_location, file_name) FROM design",
    ),
    (
        "dim_counterparty",
        "SELECT concat_ws('|', counterparty_id, counterparty_legal_name, counterparty_legal_address_line_1,
             counterparty_legal_address_line_2, counterparty_legal_district, counterparty_legal_city,
             counterparty_legal_postal_code, counterparty_legal_country, counterparty_legal_phone_number)
         FROM dim_counterparty",
        "SELECT concat_ws('|', c.counterparty_id, c.counterparty_legal_name, a.address_line_1, a.address_line_2,
             a.district, a.city, a.postal_code, a.country, a.phone)
         FROM counterparty c JOIN address a ON a.address_id = c.legal_address_id",
    ),
    (
        "dim_payment_type",
        "SELECT concat_ws('|', payment_type_id, payment_type_name) FROM dim_payment_type",
        "SELECT concat_ws('|', payment_type_id, payment_type_name) FROM payment_type",
    ),
    (
        "dim_transaction",
        "SELECT concat_ws('|', transaction_id, transaction_type, sales_order_id, purchase_order_id) FROM dim_transaction",
        "SELECT concat_ws('|', transaction_id, transaction_type, sales_order_id, purchase_order_id) FROM transaction",
    ),
    (
        "fact_sales_order_current",
        "SELECT concat_ws('|', sales_order_id, created_date, created_time, last_updated_date, last_updated_time,
             sales_staff_id, counterparty_id, units_sold, trim_scale(unit_price), currency_id, design_id,
             agreed_payment_date, agreed_delivery_date, agreed_delivery_location_id)
         FROM fact_sales_order_current",
        "SELECT concat_ws('|', sales_order_id, created_at::date, created_at::time, last_updated::date,
             last_updated::time, staff_id, counterparty_id, units_sold, trim_scale(unit_price), currency_id,
             design_id, agreed_payment_date::date, agreed_delivery_date::date, agreed_delivery_location_id)
         FROM sales_order",
    ),
    (
        "fact_purchase_order_current",
        "SELECT concat_ws('|', purchase_order_id, created_date, created_time, last_updated_date, last_updated_time,
             staff_id, counterparty_id, item_code, item_quantity, trim_scale(item_unit_price), currency_id,
             agreed_delivery_date, agreed_payment_date, agreed_delivery_location_id)
         FROM fact_purchase_order_current",
        "SELECT concat_ws('|', purchase_order_id, created_at::date, created_at::time, last_updated::date,
             last_updated::time, staff_id, counterparty_id, item_code, item_quantity, trim_scale(item_unit_price),
             currency_id, agreed_delivery_date::date, agreed_payment_date::date, agreed_delivery_location_id)
         FROM purchase_order",
    ),
    (
        "fact_payment_current",
        "SELECT concat_ws('|', payment_id, created_date, created_time, last_updated_date, last_updated_time,
             transaction_id, counterparty_id, trim_scale(payment_amount), currency_id, payment_type_id, paid,
             payment_date)
         FROM fact_payment_current",
        "SELECT concat_ws('|', payment_id, created_at::date, created_at::time, last_updated::date,
             last_updated::time, transaction_id, counterparty_id, trim_scale(payment_amount), currency_id,
             payment_type_id, paid, payment_date::date)
         FROM payment",
    ),
];

async fn rows(client: &Client, sql: &str, what: &str) -> Result<Vec<String>, TestkitError> {
    Ok(client
        .query(sql, &[])
        .await
        .map_err(TestkitError::sql(format!("read {what}")))?
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect())
}

/// Compares every current dimension and current fact table with the source.
pub async fn check_warehouse(
    source: &Client,
    warehouse: &Client,
) -> Result<Vec<TableCheck>, TestkitError> {
    let mut out = Vec::new();
    for (table, in_warehouse, in_source) in CHECKS {
        let w = rows(warehouse, in_warehouse, table).await?;
        let s = rows(source, in_source, &format!("the source of {table}")).await?;
        let (w_set, s_set): (BTreeSet<&String>, BTreeSet<&String>) =
            (w.iter().collect(), s.iter().collect());
        out.push(TableCheck {
            table,
            source_rows: s.len(),
            warehouse_rows: w.len(),
            missing: s_set
                .difference(&w_set)
                .take(5)
                .map(|r| (*r).clone())
                .collect(),
            extra: w_set
                .difference(&s_set)
                .take(5)
                .map(|r| (*r).clone())
                .collect(),
        });
        if w.len() != w_set.len() {
            if let Some(last) = out.last_mut() {
                last.extra
                    .push(format!("{} duplicate rows", w.len() - w_set.len()));
            }
        }
    }
    Ok(out)
}
