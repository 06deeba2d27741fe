//! Seed data: reference sizes, the spec's value rules, and reproducibility.

mod fixture;

use cdc_sim::{SchemaVariant, Table};
use fixture::{assert_spec_rules, TestResult};

/// The reference sizes, in `Table::ALL` order.
const SEED_ROWS: [i64; 11] = [3, 8, 30, 20, 20, 50, 300, 100, 4, 400, 400];

#[tokio::test]
async fn seed_writes_the_reference_sizes_and_obeys_the_spec() -> TestResult {
    let (_db, client) = fixture::totesys(SchemaVariant::default(), None).await?;
    let summary = cdc_sim::seed(&client, 1).await?;
    for (table, expected) in Table::ALL.into_iter().zip(SEED_ROWS) {
        assert_eq!(summary.rows(table) as i64, expected, "summary of {table}");
    }
    assert_eq!(fixture::row_counts(&client).await?, SEED_ROWS);
    assert_eq!(summary.total(), SEED_ROWS.iter().sum::<i64>() as u64);
    assert!(
        summary.to_string().contains("sales_order           300"),
        "{summary}"
    );
    assert_spec_rules(&client).await?;
    assert_eq!(fixture::sales_paid_otherwise(&client).await?, 0);

    let departments: Vec<String> = client
        .query(
            "SELECT department_name::text FROM department ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        departments,
        [
            "Communications",
            "Dispatch",
            "Facilities",
            "Finance",
            "HR",
            "Production",
            "Purchasing",
            "Sales"
        ]
    );
    // Every counterparty has its own legal address, and a few hundred orders are a mix of
    // paid (due in the past) and unpaid payments.
    let distinct_addresses = fixture::number(
        &client,
        "SELECT count(DISTINCT legal_address_id) FROM counterparty",
    )
    .await?;
    assert_eq!(distinct_addresses, 20);
    let (paid, unpaid): (i64, i64) = {
        let row = client
            .query_one("SELECT count(*) FILTER (WHERE paid), count(*) FILTER (WHERE NOT paid) FROM payment", &[])
            .await?;
        (row.get(0), row.get(1))
    };
    assert!(paid > 100 && unpaid > 50, "paid {paid}, unpaid {unpaid}");
    let paid_in_future = fixture::number(
        &client,
        "SELECT count(*) FROM payment WHERE paid AND payment_date::date >= current_date",
    )
    .await?;
    assert_eq!(
        paid_in_future, 0,
        "only payments due in the past are paid at seed time"
    );
    Ok(())
}

#[tokio::test]
async fn the_same_seed_writes_the_same_rows() -> TestResult {
    let (_a, first) = fixture::totesys(SchemaVariant::default(), Some(42)).await?;
    let (_b, second) = fixture::totesys(SchemaVariant::default(), Some(42)).await?;
    let (_c, other) = fixture::totesys(SchemaVariant::default(), Some(43)).await?;
    let dump = fixture::dump(&first).await?;
    assert_eq!(dump.len(), SEED_ROWS.iter().sum::<i64>() as usize);
    assert_eq!(dump, fixture::dump(&second).await?);
    assert_ne!(dump, fixture::dump(&other).await?);
    Ok(())
}

#[tokio::test]
async fn seed_fills_the_variant_schema_with_exact_amounts() -> TestResult {
    let both = SchemaVariant::BOTH;
    let (_v, variant) = fixture::totesys(both, Some(5)).await?;
    let (_s, spec) = fixture::totesys(SchemaVariant::default(), Some(5)).await?;
    assert_eq!(fixture::row_counts(&variant).await?, SEED_ROWS);
    assert_spec_rules(&variant).await?;
    // The same values in both, to the cent: numeric(10,2) shows two decimals, as the
    // simulator writes them into unconstrained numerics too.
    let amounts = "SELECT string_agg(payment_amount::text || ':' || paid, ',' ORDER BY payment_id) FROM payment";
    let a: String = variant.query_one(amounts, &[]).await?.get(0);
    let b: String = spec.query_one(amounts, &[]).await?.get(0);
    assert_eq!(a, b);
    assert!(a.split(',').all(|v| v
        .split(':')
        .next()
        .is_some_and(|n| n.len() > 3 && n.as_bytes()[n.len() - 3] == b'.')));
    let sales = fixture::number(
        &variant,
        "SELECT count(*) FROM transaction WHERE transaction_type = 'SALE'",
    )
    .await?;
    assert_eq!(sales, 300);
    Ok(())
}
