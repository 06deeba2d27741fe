//! The live workload: what the Terrific Totes application does all day, paced to a rate
//! of changed rows per second and reproducible from a seed.
//!
//! # The mix
//!
//! Each unit of work is drawn from this mix (shares of units; a change is one row
//! inserted, updated or deleted):
//!
//! | share | unit | rows changed |
//! |---:|---|---|
//! | 34.0 % | sale: sales_order + transaction (SALE) + payment (SALES_RECEIPT, unpaid) | 3 inserts |
//! | 10.0 % | purchase: purchase_order + transaction (PURCHASE) + payment (PURCHASE_PAYMENT) | 3 inserts |
//! | 15.0 % | a payment becomes `paid = true` | 1 update |
//! | 12.0 % | a sales order's `units_sold` and/or `unit_price` change | 1 update |
//! | 5.0 % | a purchase order's `item_quantity` and/or `item_unit_price` change | 1 update |
//! | 3.0 % each | a staff member moves department; an address's phone and/or postal code change; a counterparty's contacts change | 1 update |
//! | 2.0 % each | a department's location and/or manager change; a design's `file_location` changes; a new design | 1 |
//! | 1.5 % each | a new staff member; a new address; a new counterparty with its legal address | 1, 1, 2 inserts |
//! | 2.5 % | a purchase is cancelled: its payment, transaction and purchase order are deleted, in that order | 3 deletes |
//! | 1.0 % each | a currency or a payment type is touched (`last_updated = now()`) | 1 update |
//!
//! That is about 1.95 changes per unit: 72 % inserts, 24 % updates, 4 % deletes. Nine in
//! ten updates set `last_updated = now()`; the rest leave it as it was, as the real
//! application sometimes does. Dates are today's, orders refer to random existing rows.
//!
//! # Pacing and batching
//!
//! A token bucket refills at `rate_per_sec` changes per second and holds at most two
//! batches' worth, so a slow transaction is caught up on by the next ones rather than lost.
//! At low rates each unit is a database transaction of its own; when the rate is high, all
//! units the bucket affords (up to `batch_size` changes) share one transaction, their
//! statements pipelined on the connection. A batch also ends early rather than update or
//! delete a row another of its units already touches.
//!
//! # Reproducibility
//!
//! The kinds of units come from one random stream seeded by `seed`, and never depend on
//! timing or on what the database holds, so the per-table counts repeat for the same seed
//! and starting data. Rows and values come from a second stream; when a unit has nothing
//! to act on (no unpaid payment left, say), a sale is made instead.

mod mix;
mod model;
mod stats;
mod unit;

pub use stats::{TableCounts, WorkloadStats};

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_postgres::Client;

pub(crate) use model::References;

use crate::statements::Statements;
use crate::values::Day;
use crate::{SimError, Table};
use mix::Action;
use model::Model;
use unit::{Done, Unit};

/// How long, how fast and how much the workload runs.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    /// Changed rows per second; `f64::INFINITY` runs as fast as the database allows.
    pub rate_per_sec: f64,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after exactly this many changed rows.
    pub max_changes: Option<u64>,
    /// Seed of the random streams; the same seed repeats the same per-table counts.
    pub seed: u64,
    /// Most changes in one database transaction (a unit is never split).
    pub batch_size: u64,
}

impl Default for WorkloadConfig {
    /// 100 changes/s until stopped, seed 0, batches of up to 200 changes.
    fn default() -> Self {
        WorkloadConfig {
            rate_per_sec: 100.0,
            duration: None,
            max_changes: None,
            seed: 0,
            batch_size: 200,
        }
    }
}

impl WorkloadConfig {
    fn validate(&self) -> Result<(), SimError> {
        let invalid = |reason: String| Err(SimError::InvalidConfig { reason });
        let rate = self.rate_per_sec;
        if rate.is_nan() || rate <= 0.0 {
            return invalid(format!(
                "rate_per_sec must be above 0 (or infinite), not {rate}"
            ));
        }
        if self.batch_size == 0 {
            return invalid("batch_size must be at least 1".into());
        }
        Ok(())
    }
}

/// A token bucket of changes.
#[derive(Debug)]
struct Pacer {
    rate: Option<f64>,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn new(rate: Option<f64>, batch_size: u64, now: Instant) -> Pacer {
        // Two batches, and room for the largest unit even when batches are smaller than it.
        let capacity = (2 * batch_size).max(Action::Sale.cost()) as f64;
        Pacer {
            rate,
            capacity,
            tokens: 0.0,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(self.capacity);
        }
        self.last = now;
    }

    /// Takes `cost` tokens if there are that many (all of them, when the bucket is smaller).
    fn try_take(&mut self, cost: u64, now: Instant) -> bool {
        if self.rate.is_none() {
            return true;
        }
        self.refill(now);
        let cost = (cost as f64).min(self.capacity);
        if self.tokens + 1e-9 >= cost {
            self.tokens = (self.tokens - cost).max(0.0);
            true
        } else {
            false
        }
    }

    /// When `cost` tokens will be there.
    fn ready_at(&self, cost: u64) -> Instant {
        match self.rate {
            Some(rate) => {
                let missing = ((cost as f64).min(self.capacity) - self.tokens).max(0.0);
                self.last + Duration::from_secs_f64(missing / rate)
            }
            None => self.last,
        }
    }
}

/// Units sharing one database transaction.
#[derive(Default)]
struct Batch {
    units: Vec<Unit>,
    changes: u64,
    touched: HashSet<(Table, i32)>,
}

impl Batch {
    fn conflicts(&self, unit: &Unit) -> bool {
        unit.touched()
            .iter()
            .flatten()
            .any(|key| self.touched.contains(key))
    }

    fn push(&mut self, unit: Unit) {
        self.touched.extend(unit.touched().iter().flatten());
        self.changes += unit.cost();
        self.units.push(unit);
    }
}

/// Resolves when `stop` holds `true`; never when its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs the workload on `client` until `stop` holds `true`, `duration` has passed or
/// `max_changes` rows have changed, whichever comes first; returns what was committed.
///
/// The schema must exist with reference data in it (see [`seed`](crate::seed)). End a run
/// through `stop` rather than by dropping the future, which can leave the connection
/// inside an open transaction.
pub async fn run_workload(
    client: &Client,
    config: &WorkloadConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<WorkloadStats, SimError> {
    config.validate()?;
    let statements = Statements::prepare(client).await?;
    let mut model = Model::load(client).await?;
    // Kinds of units from one stream, rows and values from another.
    let mut kinds = StdRng::seed_from_u64(config.seed);
    let mut picks = StdRng::seed_from_u64(config.seed ^ 0x5EED_0F71_7E5E_ED05);

    let started = Instant::now();
    let deadline = config.duration.map(|d| started + d);
    let limit = config.max_changes.unwrap_or(u64::MAX);
    let rate = Some(config.rate_per_sec).filter(|r| r.is_finite());
    let mut pacer = Pacer::new(rate, config.batch_size, started);
    let mut stats = WorkloadStats::default();
    let mut committed = 0u64;
    let mut pending: Option<Unit> = None;
    tracing::debug!(?config, "workload starting");

    'run: loop {
        if *stop.borrow() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        // Runs may cross midnight: new orders are dated the day they are made.
        let today = Day::today();
        let mut batch = Batch::default();
        loop {
            let unit = match pending.take() {
                Some(unit) => unit,
                None => {
                    let budget = limit - committed - batch.changes;
                    if budget == 0 {
                        break;
                    }
                    let action = Action::draw(&mut kinds, budget);
                    model.plan(action, budget, &mut picks, today)
                }
            };
            let cost = unit.cost();
            if !batch.units.is_empty()
                && (batch.changes + cost > config.batch_size || batch.conflicts(&unit))
            {
                pending = Some(unit);
                break;
            }
            if !pacer.try_take(cost, Instant::now()) {
                if !batch.units.is_empty() {
                    pending = Some(unit);
                    break;
                }
                let mut wake = pacer.ready_at(cost);
                if let Some(deadline) = deadline {
                    wake = wake.min(deadline);
                }
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    () = stopped(&mut stop) => break 'run,
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break 'run;
                }
                pending = Some(unit);
                continue;
            }
            batch.push(unit);
        }
        if batch.units.is_empty() {
            break;
        }
        let mut attempt = 1;
        let done = loop {
            match run_batch(client, &statements, &batch.units).await {
                // Another writer (an operator's statement, a second simulator) took the
                // same rows in the other order: the server rolled back, so run it again.
                Err(e) if is_conflict(&e) && attempt < MAX_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "workload transaction rolled back by a conflict; running it again");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                other => break other?,
            }
        };
        for (unit, done) in batch.units.iter().zip(&done) {
            unit.record(done, &mut stats);
            model.learn(unit, done, &mut picks);
        }
        stats.transactions += 1;
        committed += batch.changes;
    }
    stats.elapsed = started.elapsed();
    tracing::debug!(
        changes = stats.changes(),
        transactions = stats.transactions,
        "workload done"
    );
    Ok(stats)
}

/// How often a transaction rolled back by a deadlock or serialization failure is tried.
const MAX_ATTEMPTS: u64 = 5;

/// Whether the server rolled the transaction back for a conflict with another one
/// (deadlock detected, serialization failure), so that running it again may succeed.
fn is_conflict(error: &SimError) -> bool {
    matches!(error.sqlstate(), Some("40P01" | "40001"))
}

/// Runs `units` in one transaction, their statements pipelined on the connection.
async fn run_batch(
    client: &Client,
    st: &Statements,
    units: &[Unit],
) -> Result<Vec<Done>, SimError> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(SimError::sql("begin a workload transaction"))?;
    let results = join_all(units.iter().map(|unit| unit.execute(st, client))).await;
    match first_cause(results) {
        Ok(done) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(SimError::sql("commit a workload transaction"))?;
            Ok(done)
        }
        Err(e) => {
            // The error says what failed; a failed rollback adds nothing to it.
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// The units' results, or the error that aborted the transaction. Once one statement
/// fails, every statement pipelined after it fails with `in_failed_sql_transaction`
/// (25P02), and such a follower may finish first; it is never the one reported.
fn first_cause(results: Vec<Result<Done, SimError>>) -> Result<Vec<Done>, SimError> {
    let mut done = Vec::with_capacity(results.len());
    let mut failure: Option<SimError> = None;
    for result in results {
        match result {
            Ok(unit) => done.push(unit),
            Err(error) => {
                let follows = |e: &SimError| e.sqlstate() == Some(IN_FAILED_TRANSACTION);
                if failure
                    .as_ref()
                    .is_none_or(|first| follows(first) && !follows(&error))
                {
                    failure = Some(error);
                }
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(done),
    }
}

/// SQLSTATE of a statement sent after its transaction failed.
const IN_FAILED_TRANSACTION: &str = "25P02";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(WorkloadConfig::default().validate().is_ok());
        let unlimited = WorkloadConfig {
            rate_per_sec: f64::INFINITY,
            ..WorkloadConfig::default()
        };
        assert!(unlimited.validate().is_ok());
        for rate in [0.0, -1.0, f64::NAN, f64::NEG_INFINITY] {
            let config = WorkloadConfig {
                rate_per_sec: rate,
                ..WorkloadConfig::default()
            };
            let err = config.validate().unwrap_err().to_string();
            assert!(
                err.starts_with("invalid workload configuration: rate_per_sec"),
                "{err}"
            );
        }
        let config = WorkloadConfig {
            batch_size: 0,
            ..WorkloadConfig::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn pacer_allows_rate_times_time() {
        let start = Instant::now();
        let mut pacer = Pacer::new(Some(100.0), 50, start);
        assert!(!pacer.try_take(1, start));
        // 10 ms at 100/s is one change.
        let later = start + Duration::from_millis(10);
        assert!(pacer.try_take(1, later));
        assert!(!pacer.try_take(1, later));
        let wait = pacer.ready_at(3) - later;
        assert!(wait > Duration::from_micros(29_990) && wait < Duration::from_micros(30_010));
        // The bucket holds at most two batches.
        let much_later = later + Duration::from_secs(60);
        let mut taken = 0;
        while pacer.try_take(1, much_later) {
            taken += 1;
        }
        assert_eq!(taken, 100);
    }

    #[test]
    fn an_unpaced_pacer_always_allows() {
        let start = Instant::now();
        let mut pacer = Pacer::new(None, 10, start);
        for _ in 0..1_000 {
            assert!(pacer.try_take(3, start));
        }
    }

    #[test]
    fn batch_conflicts_on_shared_rows_only() {
        let mut batch = Batch::default();
        batch.push(Unit::TouchCurrency(1));
        batch.push(Unit::CancelPurchase {
            purchase_order_id: 7,
            transaction_id: 8,
            payment_id: 9,
        });
        assert!(batch.conflicts(&Unit::TouchCurrency(1)));
        assert!(!batch.conflicts(&Unit::TouchCurrency(2)));
        assert!(batch.conflicts(&Unit::MarkPaid {
            payment_id: 9,
            touch: true
        }));
        assert!(!batch.conflicts(&Unit::MarkPaid {
            payment_id: 7,
            touch: true
        }));
        assert_eq!(batch.changes, 4);
    }
}
