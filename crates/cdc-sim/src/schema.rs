//! The totesys DDL: 11 tables in schema `public`, exactly as the source spec has them.

use tokio_postgres::Client;

use crate::{SimError, Table, TABLES};

/// The two ways totesys is deployed; [`Default`] is the spec's schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchemaVariant {
    /// `numeric(10,2)` instead of unconstrained `numeric` for every numeric column.
    pub numeric_10_2: bool,
    /// `transaction.transaction_type` as enum `transaction_type_enum ('SALE','PURCHASE')`
    /// instead of `varchar`.
    pub transaction_type_enum: bool,
}

/// The name of the enum type used by [`SchemaVariant::transaction_type_enum`].
pub const TRANSACTION_TYPE_ENUM: &str = "transaction_type_enum";

/// Columns every table ends with.
const TIMESTAMPS: &str = "created_at timestamp NOT NULL DEFAULT now(),\n    \
     last_updated timestamp NOT NULL DEFAULT now()";

impl SchemaVariant {
    /// Both deviations from the spec: `numeric(10,2)` and the transaction-type enum.
    pub const BOTH: SchemaVariant = SchemaVariant {
        numeric_10_2: true,
        transaction_type_enum: true,
    };

    fn numeric(self) -> &'static str {
        if self.numeric_10_2 {
            "numeric(10,2)"
        } else {
            "numeric"
        }
    }

    fn transaction_type(self) -> &'static str {
        if self.transaction_type_enum {
            TRANSACTION_TYPE_ENUM
        } else {
            "varchar"
        }
    }

    /// The columns of `table`, before the two timestamps.
    fn columns(self, table: Table) -> String {
        let numeric = self.numeric();
        match table {
            Table::Currency => "currency_id serial PRIMARY KEY,\n    \
                 currency_code varchar(3) NOT NULL"
                .to_owned(),
            Table::Department => "department_id serial PRIMARY KEY,\n    \
                 department_name varchar NOT NULL,\n    \
                 location varchar,\n    \
                 manager varchar"
                .to_owned(),
            Table::Address => "address_id serial PRIMARY KEY,\n    \
                 address_line_1 varchar NOT NULL,\n    \
                 address_line_2 varchar,\n    \
                 district varchar,\n    \
                 city varchar NOT NULL,\n    \
                 postal_code varchar NOT NULL,\n    \
                 country varchar NOT NULL,\n    \
                 phone varchar NOT NULL"
                .to_owned(),
            Table::Counterparty => "counterparty_id serial PRIMARY KEY,\n    \
                 counterparty_legal_name varchar NOT NULL,\n    \
                 legal_address_id int NOT NULL REFERENCES address (address_id),\n    \
                 commercial_contact varchar,\n    \
                 delivery_contact varchar"
                .to_owned(),
            Table::Staff => "staff_id serial PRIMARY KEY,\n    \
                 first_name varchar NOT NULL,\n    \
                 last_name varchar NOT NULL,\n    \
                 department_id int NOT NULL REFERENCES department (department_id),\n    \
                 email_address varchar NOT NULL"
                .to_owned(),
            Table::Design => "design_id serial PRIMARY KEY,\n    \
                 design_name varchar NOT NULL,\n    \
                 file_location varchar NOT NULL,\n    \
                 file_name varchar NOT NULL"
                .to_owned(),
            Table::SalesOrder => format!(
                "sales_order_id serial PRIMARY KEY,\n    \
                 design_id int NOT NULL REFERENCES design (design_id),\n    \
                 staff_id int NOT NULL REFERENCES staff (staff_id),\n    \
                 counterparty_id int NOT NULL REFERENCES counterparty (counterparty_id),\n    \
                 units_sold int NOT NULL,\n    \
                 unit_price {numeric} NOT NULL,\n    \
                 currency_id int NOT NULL REFERENCES currency (currency_id),\n    \
                 agreed_delivery_date varchar NOT NULL,\n    \
                 agreed_payment_date varchar NOT NULL,\n    \
                 agreed_delivery_location_id int NOT NULL REFERENCES address (address_id)"
            ),
            Table::PurchaseOrder => format!(
                "purchase_order_id serial PRIMARY KEY,\n    \
                 staff_id int NOT NULL REFERENCES staff (staff_id),\n    \
                 counterparty_id int NOT NULL REFERENCES counterparty (counterparty_id),\n    \
                 item_code varchar NOT NULL,\n    \
                 item_quantity int NOT NULL,\n    \
                 item_unit_price {numeric} NOT NULL,\n    \
                 currency_id int NOT NULL REFERENCES currency (currency_id),\n    \
                 agreed_delivery_date varchar NOT NULL,\n    \
                 agreed_payment_date varchar NOT NULL,\n    \
                 agreed_delivery_location_id int NOT NULL REFERENCES address (address_id)"
            ),
            Table::PaymentType => "payment_type_id serial PRIMARY KEY,\n    \
                 payment_type_name varchar NOT NULL"
                .to_owned(),
            Table::Transaction => format!(
                "transaction_id serial PRIMARY KEY,\n    \
                 transaction_type {} NOT NULL,\n    \
                 sales_order_id int REFERENCES sales_order (sales_order_id),\n    \
                 purchase_order_id int REFERENCES purchase_order (purchase_order_id)",
                self.transaction_type()
            ),
            Table::Payment => format!(
                "payment_id serial PRIMARY KEY,\n    \
                 transaction_id int NOT NULL REFERENCES transaction (transaction_id),\n    \
                 counterparty_id int NOT NULL REFERENCES counterparty (counterparty_id),\n    \
                 payment_amount {numeric} NOT NULL,\n    \
                 currency_id int NOT NULL REFERENCES currency (currency_id),\n    \
                 payment_type_id int NOT NULL REFERENCES payment_type (payment_type_id),\n    \
                 paid boolean NOT NULL,\n    \
                 payment_date varchar NOT NULL,\n    \
                 company_ac_number int NOT NULL,\n    \
                 counterparty_ac_number int NOT NULL"
            ),
        }
    }

    /// `CREATE TABLE` for `table`.
    pub fn create_table_sql(self, table: Table) -> String {
        format!(
            "CREATE TABLE {} (\n    {},\n    {TIMESTAMPS}\n)",
            table.name(),
            self.columns(table)
        )
    }
}

/// Indexes on the two referencing columns that deleting a cancelled purchase looks up.
///
/// They are not in the spec's column list and change no column or constraint. Without
/// them each deleted transaction or purchase order scans all of `payment` or `transaction`
/// to check foreign keys, which after a bulk load of millions of orders stalls the
/// workload. The second is partial: sales, most transactions, skip it.
const LOOKUP_INDEXES: [&str; 2] = [
    "CREATE INDEX payment_transaction_id_idx ON payment (transaction_id)",
    "CREATE INDEX transaction_purchase_order_id_idx ON transaction (purchase_order_id) \
     WHERE purchase_order_id IS NOT NULL",
];

/// Creates the 11 totesys tables (and the enum type of the variant) in schema `public`,
/// in one transaction; fails if any of them already exists.
pub async fn create_schema(client: &Client, variant: SchemaVariant) -> Result<(), SimError> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(SimError::sql("begin creating the schema"))?;
    let result = create_in_transaction(client, variant).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = client
        .batch_execute(end)
        .await
        .map_err(SimError::sql("commit the schema"));
    result.and(ended)
}

async fn create_in_transaction(client: &Client, variant: SchemaVariant) -> Result<(), SimError> {
    if variant.transaction_type_enum {
        client
            .batch_execute(&format!(
                "CREATE TYPE {TRANSACTION_TYPE_ENUM} AS ENUM ('SALE', 'PURCHASE')"
            ))
            .await
            .map_err(SimError::sql(format!(
                "create enum type {TRANSACTION_TYPE_ENUM}"
            )))?;
    }
    for table in Table::ALL {
        client
            .batch_execute(&variant.create_table_sql(table))
            .await
            .map_err(SimError::sql(format!("create table {table}")))?;
    }
    for sql in LOOKUP_INDEXES {
        let name = sql.split_whitespace().nth(2).unwrap_or("index");
        client
            .batch_execute(sql)
            .await
            .map_err(SimError::sql(format!("create index {name}")))?;
    }
    Ok(())
}

/// Drops the 11 totesys tables and the enum type, where they exist (test databases only).
pub async fn drop_schema(client: &Client) -> Result<(), SimError> {
    let tables: Vec<&str> = TABLES.iter().rev().copied().collect();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {}; DROP TYPE IF EXISTS {TRANSACTION_TYPE_ENUM}",
            tables.join(", ")
        ))
        .await
        .map_err(SimError::sql("drop the totesys tables"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_its_key_first_and_the_timestamps_last() {
        for table in Table::ALL {
            let sql = SchemaVariant::default().create_table_sql(table);
            let lines: Vec<&str> = sql.lines().map(str::trim).collect();
            assert_eq!(lines[0], format!("CREATE TABLE {table} ("));
            assert!(
                lines[1].starts_with(&format!("{table}_id serial PRIMARY KEY")),
                "{sql}"
            );
            assert_eq!(
                lines[lines.len() - 3],
                "created_at timestamp NOT NULL DEFAULT now(),"
            );
            assert_eq!(
                lines[lines.len() - 2],
                "last_updated timestamp NOT NULL DEFAULT now()"
            );
        }
    }

    #[test]
    fn variants_change_only_numeric_and_transaction_type() {
        let spec = SchemaVariant::default();
        let both = SchemaVariant::BOTH;
        for table in Table::ALL {
            let a = spec.create_table_sql(table);
            let b = both.create_table_sql(table);
            let changed = a.replace(" numeric ", " numeric(10,2) ").replace(
                "transaction_type varchar",
                "transaction_type transaction_type_enum",
            );
            assert_eq!(changed, b);
        }
        assert!(spec
            .create_table_sql(Table::Payment)
            .contains("payment_amount numeric NOT NULL"));
    }
}
