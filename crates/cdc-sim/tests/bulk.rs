//! The COPY bulk loader: counts, keys, and what the rows must obey.

mod fixture;

use cdc_sim::{
    bulk_load, bulk_load_with_progress, run_workload, SchemaVariant, SimError, Table,
    WorkloadConfig,
};
use fixture::{assert_spec_rules, TestResult};

#[tokio::test]
async fn bulk_load_of_100_000_orders_writes_what_it_reports() -> TestResult {
    let (_db, client) = fixture::totesys(SchemaVariant::default(), Some(1)).await?;
    let before = fixture::row_counts(&client).await?;
    let summary = bulk_load(&client, 100_000, 9).await?;
    println!("{summary}");
    assert_eq!(
        (summary.sales_orders, summary.transactions, summary.payments),
        (100_000, 100_000, 100_000)
    );
    assert_eq!(summary.batches, 10);
    assert!(
        summary.per_batch_fk_checks,
        "the test cluster's user is a superuser"
    );
    let after = fixture::row_counts(&client).await?;
    for table in Table::ALL {
        let added = after[table.index()] - before[table.index()];
        let expected = match table {
            Table::SalesOrder | Table::Transaction | Table::Payment => 100_000,
            _ => 0,
        };
        assert_eq!(added, expected, "{table}");
    }
    assert_spec_rules(&client).await?;
    assert_eq!(fixture::sales_paid_otherwise(&client).await?, 0);

    // The sequences moved past the copied keys: the workload inserts and deletes as usual.
    let config = WorkloadConfig {
        rate_per_sec: f64::INFINITY,
        max_changes: Some(500),
        ..WorkloadConfig::default()
    };
    let stats = run_workload(&client, &config, tokio::sync::watch::channel(false).1).await?;
    assert_eq!(stats.changes(), 500);
    let max_key: i32 = client
        .query_one("SELECT max(sales_order_id) FROM sales_order", &[])
        .await?
        .get(0);
    assert!(max_key > 100_300);
    Ok(())
}

#[tokio::test]
async fn bulk_load_fills_the_variant_schema_in_batches() -> TestResult {
    let both = SchemaVariant::BOTH;
    let (_db, client) = fixture::totesys(both, Some(2)).await?;
    let mut seen = Vec::new();
    let summary =
        bulk_load_with_progress(&client, 25_000, 4, |s| seen.push(s.sales_orders)).await?;
    assert_eq!(seen, [10_000, 20_000, 25_000]);
    assert_eq!(summary.rows(), 75_000);
    assert_eq!(fixture::count(&client, Table::Payment).await?, 25_400);
    assert_spec_rules(&client).await?;
    Ok(())
}

#[tokio::test]
async fn the_same_seed_loads_the_same_values() -> TestResult {
    let (_a, first) = fixture::totesys(SchemaVariant::default(), Some(8)).await?;
    let (_b, second) = fixture::totesys(SchemaVariant::default(), Some(8)).await?;
    bulk_load(&first, 3_000, 8).await?;
    bulk_load(&second, 3_000, 8).await?;
    assert_eq!(fixture::dump(&first).await?, fixture::dump(&second).await?);
    Ok(())
}

#[tokio::test]
async fn bulk_load_needs_reference_data() -> TestResult {
    let (_db, client) = fixture::totesys(SchemaVariant::default(), None).await?;
    let err = bulk_load(&client, 10, 1).await.unwrap_err();
    assert!(
        matches!(err, SimError::MissingReferenceData { .. }),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn without_superuser_postgres_checks_every_row() -> TestResult {
    let (db, admin) = fixture::totesys(SchemaVariant::default(), Some(3)).await?;
    let role = format!("loader_{}", db.name);
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'loader-pw'; \
             GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; \
             GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"
        ))
        .await?;
    let result = async {
        let (loader, connection) = tokio_postgres::connect(
            &db.cluster.conn_string(&role, "loader-pw", &db.name),
            tokio_postgres::NoTls,
        )
        .await?;
        tokio::spawn(connection);
        let summary = bulk_load(&loader, 12_000, 3).await?;
        assert!(!summary.per_batch_fk_checks);
        assert_eq!((summary.sales_orders, summary.batches), (12_000, 2));
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await?;
    result?;
    assert_eq!(fixture::count(&admin, Table::Transaction).await?, 12_400);
    assert_spec_rules(&admin).await?;
    assert_eq!(fixture::sales_paid_otherwise(&admin).await?, 0);
    Ok(())
}
