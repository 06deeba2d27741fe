//! The live workload against a seeded database: coverage, reproducibility, pacing, stopping.

mod fixture;

use std::collections::HashMap;
use std::time::Duration;

use cdc_sim::{run_workload, SchemaVariant, SimError, Table, WorkloadConfig, WorkloadStats};
use fixture::{assert_spec_rules, TestResult};
use tokio::sync::watch;
use tokio_postgres::Client;

fn unpaced(seed: u64, max_changes: u64) -> WorkloadConfig {
    WorkloadConfig {
        rate_per_sec: f64::INFINITY,
        duration: None,
        max_changes: Some(max_changes),
        seed,
        batch_size: 200,
    }
}

/// A stop signal that never fires: its sender is already gone.
fn never() -> watch::Receiver<bool> {
    watch::channel(false).1
}

fn counts(stats: &WorkloadStats) -> Vec<(Table, u64, u64, u64)> {
    stats
        .per_table()
        .iter()
        .map(|(t, c)| (*t, c.inserts, c.updates, c.deletes))
        .collect()
}

#[tokio::test]
async fn two_thousand_changes_touch_every_table_with_inserts_updates_and_deletes() -> TestResult {
    let (_db, client) = fixture::totesys(SchemaVariant::default(), Some(1)).await?;
    let before = fixture::row_counts(&client).await?;
    let stats = run_workload(&client, &unpaced(7, 2_000), never()).await?;
    println!("{stats}");

    assert_eq!(stats.changes(), 2_000, "max_changes is exact");
    for (table, counts) in stats.per_table() {
        assert!(counts.changes() > 0, "{table} saw no change:\n{stats}");
    }
    let totals = stats.totals();
    assert!(
        totals.inserts > 1_000 && totals.updates > 300 && totals.deletes > 30,
        "{stats}"
    );
    for table in [Table::Payment, Table::Transaction, Table::PurchaseOrder] {
        assert!(stats.table(table).deletes > 0, "{table} saw no delete");
    }
    for table in [
        Table::Currency,
        Table::PaymentType,
        Table::Department,
        Table::Staff,
        Table::Address,
    ] {
        assert!(stats.table(table).updates > 0, "{table} saw no update");
    }
    assert!(stats.transactions >= 10 && stats.units > 900, "{stats}");

    // The database agrees with the counts, and every row still follows the spec.
    let after = fixture::row_counts(&client).await?;
    for (i, table) in Table::ALL.into_iter().enumerate() {
        let c = stats.table(table);
        assert_eq!(
            after[i],
            before[i] + c.inserts as i64 - c.deletes as i64,
            "{table}"
        );
    }
    assert_spec_rules(&client).await?;
    Ok(())
}

#[tokio::test]
async fn the_same_seed_repeats_the_counts_whatever_the_pacing() -> TestResult {
    let (_a, first) = fixture::totesys(SchemaVariant::default(), Some(3)).await?;
    let (_b, second) = fixture::totesys(SchemaVariant::default(), Some(3)).await?;
    let (_c, third) = fixture::totesys(SchemaVariant::default(), Some(3)).await?;

    let a = run_workload(&first, &unpaced(11, 1_500), never()).await?;
    let paced = WorkloadConfig {
        rate_per_sec: 3_000.0,
        batch_size: 7,
        ..unpaced(11, 1_500)
    };
    let b = run_workload(&second, &paced, never()).await?;
    assert_eq!(counts(&a), counts(&b), "first:\n{a}\nsecond:\n{b}");
    assert_eq!(a.units, b.units);
    assert_eq!(
        a.updates_keeping_last_updated,
        b.updates_keeping_last_updated
    );
    assert!(
        b.transactions > a.transactions,
        "smaller batches, more transactions"
    );

    let c = run_workload(&third, &unpaced(12, 1_500), never()).await?;
    assert_ne!(counts(&a), counts(&c), "another seed, another run");
    Ok(())
}

/// Each row of `table` without its timestamps, and its `last_updated`, by key.
async fn snapshot(
    client: &Client,
    table: Table,
) -> Result<HashMap<i32, (String, String)>, Box<dyn std::error::Error>> {
    let sql = format!(
        "SELECT {table}_id, (to_jsonb(t) - 'created_at' - 'last_updated')::text, last_updated::text \
         FROM {table} t"
    );
    Ok(client
        .query(&sql, &[])
        .await?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect())
}

#[tokio::test]
async fn some_updates_leave_last_updated_as_it_was() -> TestResult {
    let (_db, client) = fixture::totesys(SchemaVariant::default(), Some(2)).await?;
    let tables = [
        Table::SalesOrder,
        Table::PurchaseOrder,
        Table::Payment,
        Table::Staff,
        Table::Address,
        Table::Counterparty,
        Table::Department,
        Table::Design,
    ];
    let mut before = Vec::new();
    for table in tables {
        before.push(snapshot(&client, table).await?);
    }
    // Let now() move on from the seed's transaction.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stats = run_workload(&client, &unpaced(5, 3_000), never()).await?;

    let (mut kept, mut touched) = (0, 0);
    for (table, before) in tables.into_iter().zip(before) {
        for (id, (values, last_updated)) in snapshot(&client, table).await? {
            let Some((old_values, old_last_updated)) = before.get(&id) else {
                continue;
            };
            if *old_values != values {
                if *old_last_updated == last_updated {
                    kept += 1;
                } else {
                    touched += 1;
                }
            }
        }
    }
    println!("changed rows: {touched} with a new last_updated, {kept} without");
    assert!(kept > 0, "no update left last_updated alone");
    assert!(touched > 5 * kept, "most updates set last_updated");
    assert!(kept <= stats.updates_keeping_last_updated);
    let updates = stats.totals().updates;
    let share = stats.updates_keeping_last_updated as f64 / updates as f64;
    assert!(
        (0.04..0.18).contains(&share),
        "{share} of {updates} updates kept last_updated"
    );
    Ok(())
}

#[tokio::test]
async fn the_rate_is_kept() -> TestResult {
    let (_db, client) = fixture::totesys(SchemaVariant::default(), Some(4)).await?;
    let config = WorkloadConfig {
        rate_per_sec: 400.0,
        duration: Some(Duration::from_secs(2)),
        max_changes: None,
        seed: 1,
        batch_size: 200,
    };
    let stats = run_workload(&client, &config, never()).await?;
    println!("{stats}");
    let secs = stats.elapsed.as_secs_f64();
    assert!((1.95..3.0).contains(&secs), "ran {secs} s");
    let allowed = 400.0 * secs + 3.0;
    let changes = stats.changes() as f64;
    assert!(changes <= allowed, "{changes} changes, at most {allowed}");
    assert!(changes >= 0.8 * 400.0 * 2.0, "{changes} changes, too slow");
    assert!(
        stats.transactions > 50,
        "small transactions at a low rate: {}",
        stats.transactions
    );
    Ok(())
}

#[tokio::test]
async fn stop_ends_a_run_without_limits() -> TestResult {
    let (_db, client) = fixture::totesys(SchemaVariant::default(), Some(4)).await?;
    let config = WorkloadConfig {
        rate_per_sec: 200.0,
        ..WorkloadConfig::default()
    };
    let (stop, stopped) = watch::channel(false);
    let (stats, ()) = tokio::join!(run_workload(&client, &config, stopped), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = stop.send(true);
    });
    let stats = stats?;
    assert!(
        stats.elapsed < Duration::from_millis(1_500),
        "{:?}",
        stats.elapsed
    );
    assert!(stats.changes() > 20, "{stats}");
    // The connection is not left inside the workload's transaction, which had written.
    let outside: bool = client
        .query_one("SELECT txid_current_if_assigned() IS NULL", &[])
        .await?
        .get(0);
    assert!(outside);
    Ok(())
}

#[tokio::test]
async fn the_workload_runs_on_the_variant_schema() -> TestResult {
    let both = SchemaVariant::BOTH;
    let (_db, client) = fixture::totesys(both, Some(6)).await?;
    let stats = run_workload(&client, &unpaced(6, 1_000), never()).await?;
    assert_eq!(stats.changes(), 1_000);
    assert_spec_rules(&client).await?;
    Ok(())
}

#[tokio::test]
async fn without_seed_data_the_workload_asks_for_it() -> TestResult {
    let (_db, client) = fixture::totesys(SchemaVariant::default(), None).await?;
    let err = run_workload(&client, &unpaced(1, 10), never())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SimError::MissingReferenceData { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "table currency has no rows to reference: run seed first"
    );

    let bad = WorkloadConfig {
        rate_per_sec: -5.0,
        ..unpaced(1, 10)
    };
    let err = run_workload(&client, &bad, never()).await.unwrap_err();
    assert!(matches!(err, SimError::InvalidConfig { .. }), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn a_failing_statement_is_named_and_its_batch_rolled_back() -> TestResult {
    let (_db, client) = fixture::totesys(SchemaVariant::default(), Some(1)).await?;
    client
        .batch_execute("ALTER TABLE payment ADD CONSTRAINT no_new_payments CHECK (payment_id <= 400) NOT VALID")
        .await?;
    let before = fixture::row_counts(&client).await?;
    let err = run_workload(&client, &unpaced(1, 1_000), never())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot insert a sale into sales_order, transaction and payment"
    );
    assert_eq!(err.sqlstate(), Some("23514"), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
    // Nothing of the failed batch stayed, and the connection is usable.
    assert_eq!(fixture::row_counts(&client).await?, before);
    Ok(())
}
