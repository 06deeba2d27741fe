//! The DDL against the spec, read back from the catalog of a real PostgreSQL.

mod fixture;

use cdc_sim::{SchemaVariant, Table, TABLES};
use cdc_testkit::TestDb;
use fixture::TestResult;
use tokio_postgres::Client;

/// A column as the spec gives it: name, type, nullable.
type SpecColumn = (&'static str, String, bool);

/// The spec's columns per table. Every table also ends with the two timestamps.
fn spec_columns(variant: SchemaVariant) -> Vec<(&'static str, Vec<SpecColumn>)> {
    let numeric = if variant.numeric_10_2 {
        "numeric(10,2)"
    } else {
        "numeric"
    };
    let kind = if variant.transaction_type_enum {
        "transaction_type_enum"
    } else {
        "varchar"
    };
    let c = |name: &'static str, ty: &str, nullable: bool| (name, ty.to_owned(), nullable);
    let int = "integer";
    let varchar = "varchar";
    vec![
        (
            "currency",
            vec![
                c("currency_id", int, false),
                c("currency_code", "varchar(3)", false),
            ],
        ),
        (
            "department",
            vec![
                c("department_id", int, false),
                c("department_name", varchar, false),
                c("location", varchar, true),
                c("manager", varchar, true),
            ],
        ),
        (
            "address",
            vec![
                c("address_id", int, false),
                c("address_line_1", varchar, false),
                c("address_line_2", varchar, true),
                c("district", varchar, true),
                c("city", varchar, false),
                c("postal_code", varchar, false),
                c("country", varchar, false),
                c("phone", varchar, false),
            ],
        ),
        (
            "counterparty",
            vec![
                c("counterparty_id", int, false),
                c("counterparty_legal_name", varchar, false),
                c("legal_address_id", int, false),
                c("commercial_contact", varchar, true),
                c("delivery_contact", varchar, true),
            ],
        ),
        (
            "staff",
            vec![
                c("staff_id", int, false),
                c("first_name", varchar, false),
                c("last_name", varchar, false),
                c("department_id", int, false),
                c("email_address", varchar, false),
            ],
        ),
        (
            "design",
            vec![
                c("design_id", int, false),
                c("design_name", varchar, false),
                c("file_location", varchar, false),
                c("file_name", varchar, false),
            ],
        ),
        (
            "sales_order",
            vec![
                c("sales_order_id", int, false),
                c("design_id", int, false),
                c("staff_id", int, false),
                c("counterparty_id", int, false),
                c("units_sold", int, false),
                c("unit_price", numeric, false),
                c("currency_id", int, false),
                c("agreed_delivery_date", varchar, false),
                c("agreed_payment_date", varchar, false),
                c("agreed_delivery_location_id", int, false),
            ],
        ),
        (
            "purchase_order",
            vec![
                c("purchase_order_id", int, false),
                c("staff_id", int, false),
                c("counterparty_id", int, false),
                c("item_code", varchar, false),
                c("item_quantity", int, false),
                c("item_unit_price", numeric, false),
                c("currency_id", int, false),
                c("agreed_delivery_date", varchar, false),
                c("agreed_payment_date", varchar, false),
                c("agreed_delivery_location_id", int, false),
            ],
        ),
        (
            "payment_type",
            vec![
                c("payment_type_id", int, false),
                c("payment_type_name", varchar, false),
            ],
        ),
        (
            "transaction",
            vec![
                c("transaction_id", int, false),
                c("transaction_type", kind, false),
                c("sales_order_id", int, true),
                c("purchase_order_id", int, true),
            ],
        ),
        (
            "payment",
            vec![
                c("payment_id", int, false),
                c("transaction_id", int, false),
                c("counterparty_id", int, false),
                c("payment_amount", numeric, false),
                c("currency_id", int, false),
                c("payment_type_id", int, false),
                c("paid", "boolean", false),
                c("payment_date", varchar, false),
                c("company_ac_number", int, false),
                c("counterparty_ac_number", int, false),
            ],
        ),
    ]
}

/// The spec's foreign keys: table, column, referenced table (always by its `<table>_id`).
const SPEC_FOREIGN_KEYS: [(&str, &str, &str); 17] = [
    ("counterparty", "legal_address_id", "address"),
    ("payment", "counterparty_id", "counterparty"),
    ("payment", "currency_id", "currency"),
    ("payment", "payment_type_id", "payment_type"),
    ("payment", "transaction_id", "transaction"),
    ("purchase_order", "agreed_delivery_location_id", "address"),
    ("purchase_order", "counterparty_id", "counterparty"),
    ("purchase_order", "currency_id", "currency"),
    ("purchase_order", "staff_id", "staff"),
    ("sales_order", "agreed_delivery_location_id", "address"),
    ("sales_order", "counterparty_id", "counterparty"),
    ("sales_order", "currency_id", "currency"),
    ("sales_order", "design_id", "design"),
    ("sales_order", "staff_id", "staff"),
    ("staff", "department_id", "department"),
    ("transaction", "purchase_order_id", "purchase_order"),
    ("transaction", "sales_order_id", "sales_order"),
];

/// A column as information_schema describes it: name, type, nullable, default.
type CatalogColumn = (String, String, bool, Option<String>);

/// Columns of `table` in the catalog, in order.
async fn columns(
    client: &Client,
    table: &str,
) -> Result<Vec<CatalogColumn>, Box<dyn std::error::Error>> {
    let rows = client
        .query(
            "SELECT column_name::text, data_type::text, character_maximum_length::int, \
                    numeric_precision::int, numeric_scale::int, udt_name::text, \
                    is_nullable = 'YES', column_default::text \
             FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let data_type: String = r.get(1);
            let ty = match data_type.as_str() {
                "character varying" => match r.get::<_, Option<i32>>(2) {
                    Some(n) => format!("varchar({n})"),
                    None => "varchar".to_owned(),
                },
                "numeric" => match (r.get::<_, Option<i32>>(3), r.get::<_, Option<i32>>(4)) {
                    (Some(p), Some(s)) => format!("numeric({p},{s})"),
                    _ => "numeric".to_owned(),
                },
                "USER-DEFINED" => r.get(5),
                other => other.to_owned(),
            };
            (r.get(0), ty, r.get(6), r.get(7))
        })
        .collect())
}

async fn assert_schema_is_spec(variant: SchemaVariant) -> TestResult {
    let db = TestDb::create().await?;
    let client = db.client().await?;
    cdc_sim::create_schema(&client, variant).await?;

    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected_tables: Vec<&str> = TABLES.to_vec();
    expected_tables.sort_unstable();
    assert_eq!(tables, expected_tables);

    for (table, spec) in spec_columns(variant) {
        let actual = columns(&client, table).await?;
        assert_eq!(actual.len(), spec.len() + 2, "{table}: {actual:?}");
        for ((name, ty, nullable), (a_name, a_ty, a_nullable, a_default)) in
            spec.iter().zip(&actual)
        {
            assert_eq!(
                (*name, ty.as_str(), *nullable),
                (a_name.as_str(), a_ty.as_str(), *a_nullable),
                "{table}"
            );
            let is_key = *name == format!("{table}_id");
            if is_key {
                let default = a_default.as_deref().unwrap_or_default();
                assert_eq!(
                    default,
                    format!("nextval('{table}_{table}_id_seq'::regclass)"),
                    "{table}"
                );
            } else {
                assert_eq!(a_default, &None, "{table}.{name} has no default");
            }
        }
        for (name, (a_name, a_ty, a_nullable, a_default)) in ["created_at", "last_updated"]
            .iter()
            .zip(&actual[spec.len()..])
        {
            assert_eq!(a_name, name, "{table}");
            assert_eq!(a_ty, "timestamp without time zone", "{table}.{name}");
            assert!(!a_nullable, "{table}.{name} is NOT NULL");
            assert_eq!(a_default.as_deref(), Some("now()"), "{table}.{name}");
        }
        let key: Vec<String> = client
            .query(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
                 WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
                &[&table],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(key, [format!("{table}_id")], "primary key of {table}");
    }

    let foreign_keys: Vec<(String, String, String, String)> = client
        .query(
            "SELECT c.conrelid::regclass::text, a.attname::text, c.confrelid::regclass::text, \
                    af.attname::text \
             FROM pg_constraint c \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
             JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1] \
             WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 ORDER BY 1, 2",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let expected: Vec<(String, String, String, String)> = SPEC_FOREIGN_KEYS
        .iter()
        .map(|(t, c, r)| {
            (
                t.to_string(),
                c.to_string(),
                r.to_string(),
                format!("{r}_id"),
            )
        })
        .collect();
    assert_eq!(foreign_keys, expected);
    let constraints = fixture::number(
        &client,
        "SELECT count(*) FROM pg_constraint \
             WHERE connamespace = 'public'::regnamespace AND contype IN ('p', 'f', 'u', 'c', 'x')",
    )
    .await?;
    assert_eq!(
        constraints,
        11 + 17,
        "11 primary keys and 17 foreign keys; no unique, check or exclusion constraints"
    );
    Ok(())
}

#[tokio::test]
async fn the_default_schema_is_the_spec() -> TestResult {
    assert_schema_is_spec(SchemaVariant::default()).await
}

#[tokio::test]
async fn the_numeric_10_2_variant_is_the_spec_with_declared_numerics() -> TestResult {
    assert_schema_is_spec(SchemaVariant {
        numeric_10_2: true,
        transaction_type_enum: false,
    })
    .await
}

#[tokio::test]
async fn the_enum_variant_is_the_spec_with_an_enum_transaction_type() -> TestResult {
    let variant = SchemaVariant {
        numeric_10_2: false,
        transaction_type_enum: true,
    };
    assert_schema_is_spec(variant).await?;
    assert_schema_is_spec(SchemaVariant::BOTH).await?;
    let db = TestDb::create().await?;
    let client = db.client().await?;
    cdc_sim::create_schema(&client, variant).await?;
    let labels: String = client
        .query_one("SELECT enum_range(NULL::transaction_type_enum)::text", &[])
        .await?
        .get(0);
    assert_eq!(labels, "{SALE,PURCHASE}");
    Ok(())
}

#[tokio::test]
async fn create_fails_on_an_existing_schema_and_drop_removes_it() -> TestResult {
    let db = TestDb::create().await?;
    let client = db.client().await?;
    let variant = SchemaVariant {
        numeric_10_2: false,
        transaction_type_enum: true,
    };
    cdc_sim::create_schema(&client, variant).await?;
    let err = cdc_sim::create_schema(&client, variant).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot create enum type transaction_type_enum"
    );
    assert_eq!(err.sqlstate(), Some("42710"));
    // The failed attempt was rolled back as a whole: the connection is usable.
    assert_eq!(fixture::count(&client, Table::Payment).await?, 0);

    cdc_sim::drop_schema(&client).await?;
    let left = fixture::number(
        &client,
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
    )
    .await?;
    assert_eq!(left, 0);
    cdc_sim::create_schema(&client, SchemaVariant::default()).await?;
    let err = cdc_sim::create_schema(&client, SchemaVariant::default())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "cannot create table currency");
    Ok(())
}
