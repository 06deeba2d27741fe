//! The modeler's loop: read new lake files, gather each source transaction until the
//! lake holds all of it (its `END` record's counts), and apply complete transactions in
//! commit order, several per warehouse transaction when catching up.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use cdc_core::Lsn;
use cdc_lake::{table_dir, LakeStore, LakeTables, TRANSACTIONS_TABLE};
use tokio::sync::watch;
use tokio_postgres::Client;

use crate::lake::{max_commit_lsn, read_changes, read_ends, TxnEnd};
use crate::metrics::ModelerMetrics;
use crate::plan::Model;
use crate::source::{Change, SourceTxn};
use crate::{processed, warehouse, ModelerError};

/// How the modeler runs.
#[derive(Debug, Clone)]
pub struct ModelerConfig {
    /// How often the lake is listed for new files.
    pub poll: Duration,
    /// Most changes in one warehouse transaction when catching up (a source transaction
    /// is never split, so one larger than this is applied alone).
    pub max_batch_changes: usize,
    /// Write the processed zone at most this often (`None`: never).
    pub processed_every: Option<Duration>,
}

impl Default for ModelerConfig {
    /// Poll every 200 ms, up to 20,000 changes per apply, processed zone every 5 s.
    fn default() -> Self {
        ModelerConfig {
            poll: Duration::from_millis(200),
            max_batch_changes: 20_000,
            processed_every: Some(Duration::from_secs(5)),
        }
    }
}

/// A source transaction being gathered from the lake.
#[derive(Debug, Default)]
struct Pending {
    end: Option<TxnEnd>,
    commit_ts_us: i64,
    changes: BTreeMap<u64, Change>,
}

impl Pending {
    /// Whether the lake holds every change the `END` record counts.
    fn complete(&self) -> bool {
        let Some(end) = &self.end else {
            return false;
        };
        end.counts.iter().all(|(table, expected)| {
            self.changes.values().filter(|c| &c.table == table).count() as u64 >= *expected
        })
    }
}

/// What one pass over the lake did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    /// Lake files read.
    pub files: usize,
    /// Lake files not read: their footer says every change is at or below the watermark.
    pub skipped: usize,
    /// Source transactions applied.
    pub transactions: usize,
    /// Changes applied.
    pub changes: u64,
}

/// The modeler: one per warehouse (a second one is fenced off by the watermark check).
pub struct Modeler {
    lake: LakeStore,
    tables: LakeTables,
    /// The table version read to, per lake table: a pass reads only what commits after
    /// it added.
    versions: HashMap<String, u64>,
    client: Client,
    config: ModelerConfig,
    metrics: ModelerMetrics,
    model: Model,
    watermark: Lsn,
    pending: BTreeMap<Lsn, Pending>,
    exported: Lsn,
    last_export: Option<Instant>,
}

impl Modeler {
    /// A modeler over `lake` writing to the warehouse `client` is connected to (whose DDL
    /// `init` has applied); loads its state from the warehouse.
    pub async fn new(
        lake: LakeStore,
        client: Client,
        config: ModelerConfig,
        metrics: ModelerMetrics,
    ) -> Result<Modeler, ModelerError> {
        let watermark = warehouse::watermark(&client).await?;
        let model = warehouse::load_model(&client).await?;
        let exported = processed::exported(&client).await?;
        metrics.watermark_lsn.set(watermark.0 as i64);
        let tables =
            LakeTables::new(&lake).map_err(ModelerError::lake(format!("open {}", lake.url)))?;
        Ok(Modeler {
            lake,
            tables,
            versions: HashMap::new(),
            client,
            config,
            metrics,
            model,
            watermark,
            pending: BTreeMap::new(),
            exported,
            last_export: None,
        })
    }

    /// A modeler given its transactions through [`Modeler::apply`] rather than from a
    /// lake (tests, benchmarks, other feeds); it writes no processed zone.
    pub async fn without_lake(
        client: Client,
        metrics: ModelerMetrics,
    ) -> Result<Modeler, ModelerError> {
        let lake = LakeStore::new(
            std::sync::Arc::new(object_store::memory::InMemory::new()),
            object_store::path::Path::from("unused"),
        );
        let config = ModelerConfig {
            processed_every: None,
            ..ModelerConfig::default()
        };
        Modeler::new(lake, client, config, metrics).await
    }

    /// The applied watermark.
    pub fn watermark(&self) -> Lsn {
        self.watermark
    }

    /// Source transactions read but not yet applied.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Reads what the lake's tables gained since the last pass and applies every complete
    /// transaction.
    pub async fn pass(&mut self) -> Result<PassReport, ModelerError> {
        let mut report = PassReport::default();
        let listing = |e| ModelerError::lake(format!("list {}", self.lake.url))(e);
        let dirs = self.tables.tables().await.map_err(listing)?;
        let transactions_dir = table_dir(&TRANSACTIONS_TABLE.name);
        for dir in dirs {
            // From the version read to; after a start, every file the table holds.
            let read = match self.versions.get(&dir) {
                Some(&version) => self.tables.added_since(&dir, version).await,
                None => self.tables.live_files(&dir).await,
            }
            .map_err(ModelerError::lake(format!(
                "read the log of lake table {dir}"
            )))?;
            let Some((version, files)) = read else {
                continue;
            };
            for file in files {
                let path = file.path.clone();
                let key = path.to_string();
                // A change file wholly at or below the watermark (a restart) is not read.
                let max = match file.max_commit_lsn {
                    Some(max) => Some(Lsn(max as u64)),
                    None if dir != transactions_dir => max_commit_lsn(&self.lake, &path).await?,
                    None => None,
                };
                if dir != transactions_dir && max.is_some_and(|max| max <= self.watermark) {
                    report.skipped += 1;
                    continue;
                }
                let bytes = self
                    .lake
                    .read(&path)
                    .await
                    .map_err(ModelerError::lake(format!("read {path}")))?;
                if dir == transactions_dir {
                    for end in read_ends(bytes, self.watermark, &key)? {
                        let pending = self.pending.entry(end.commit_lsn).or_default();
                        pending.commit_ts_us = end.commit_ts_us;
                        pending.end = Some(end);
                    }
                } else {
                    for change in read_changes(&dir, bytes, self.watermark, &key)? {
                        let commit_lsn = change.commit_lsn;
                        let pending = self.pending.entry(commit_lsn).or_default();
                        pending.commit_ts_us = change.commit_ts_us;
                        let ordinal = change.change.ordinal;
                        if let Some(held) = pending.changes.insert(ordinal, change.change) {
                            self.metrics
                                .duplicate_changes
                                .with_label_values(&[&held.table])
                                .inc();
                            if pending.changes.get(&ordinal) != Some(&held) {
                                tracing::warn!(%commit_lsn, ordinal, table = %held.table, file = %key, "two different changes at one source position; the later one read is applied");
                            }
                        }
                    }
                }
                self.metrics.files_read.inc();
                report.files += 1;
            }
            self.versions.insert(dir, version);
        }
        loop {
            let batch = self.take_complete();
            if batch.is_empty() {
                break;
            }
            report.transactions += batch.len();
            report.changes += batch.iter().map(|t| t.changes.len() as u64).sum::<u64>();
            self.apply(batch).await?;
        }
        self.metrics
            .pending_transactions
            .set(self.pending.len() as i64);
        self.maybe_export().await?;
        Ok(report)
    }

    /// Complete transactions from the front of the queue, up to the batch size.
    fn take_complete(&mut self) -> Vec<SourceTxn> {
        let mut batch = Vec::new();
        let mut size = 0;
        while let Some((_, first)) = self.pending.first_key_value() {
            if first.end.is_none() {
                // Changes without an END while a later END is in the lake: theirs is gone
                // (a lake written before capture sent snapshot ENDs); they cannot be
                // applied whole, so they are counted and skipped.
                if !self.pending.values().skip(1).any(|p| p.end.is_some()) {
                    break;
                }
                if let Some((lsn, orphan)) = self.pending.pop_first() {
                    tracing::warn!(commit_lsn = %lsn, changes = orphan.changes.len(),
                        "changes without an END record in the lake; skipped");
                    self.metrics
                        .rejected
                        .with_label_values(&["no_end_record"])
                        .inc_by(orphan.changes.len() as u64);
                }
                continue;
            }
            if !first.complete() {
                break;
            }
            let n = first.changes.len();
            if !batch.is_empty() && size + n > self.config.max_batch_changes {
                break;
            }
            size += n;
            let Some((commit_lsn, pending)) = self.pending.pop_first() else {
                break;
            };
            batch.push(SourceTxn {
                commit_lsn,
                commit_ts_us: pending.commit_ts_us,
                changes: pending.changes.into_values().collect(),
            });
        }
        batch
    }

    /// Plans and writes `txns` (whole, in commit order) in one warehouse transaction.
    pub async fn apply(&mut self, txns: Vec<SourceTxn>) -> Result<(), ModelerError> {
        let txns: Vec<SourceTxn> = txns
            .into_iter()
            .filter(|t| t.commit_lsn > self.watermark)
            .collect();
        if txns.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let plan = self.model.plan(&txns);
        let result = warehouse::apply(&mut self.client, &plan, self.watermark).await;
        if let Err(e) = result {
            // The model ran ahead of the warehouse: read it back.
            self.model = warehouse::load_model(&self.client).await?;
            self.watermark = warehouse::watermark(&self.client).await?;
            return Err(e);
        }
        let now_us = chrono::Utc::now().timestamp_micros();
        // Snapshot reads are not changes the source just made: they do not count.
        for (commit_ts_us, changes) in &plan.commits {
            let seconds = (now_us - commit_ts_us).max(0) as f64 / 1e6;
            for _ in 0..*changes {
                self.metrics.freshness_seconds.observe(seconds);
            }
        }
        for (table, n) in &plan.changes {
            self.metrics.changes.with_label_values(&[table]).inc_by(*n);
        }
        for (reason, n) in &plan.rejected {
            self.metrics
                .rejected
                .with_label_values(&[reason])
                .inc_by(*n);
        }
        for (table, n) in &plan.truncates {
            self.metrics
                .truncates
                .with_label_values(&[table])
                .inc_by(*n);
        }
        self.metrics.transactions.inc_by(plan.transactions as u64);
        self.metrics.applies.inc();
        self.metrics
            .apply_transactions
            .observe(plan.transactions as f64);
        self.metrics
            .apply_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Some(w) = plan.watermark {
            self.watermark = w.commit_lsn;
            self.metrics.watermark_lsn.set(w.commit_lsn.0 as i64);
            self.metrics
                .watermark_commit_seconds
                .set(w.ts_us / 1_000_000);
        }
        tracing::debug!(
            transactions = plan.transactions,
            watermark = %self.watermark,
            "applied"
        );
        Ok(())
    }

    /// Writes the processed zone when it is due.
    async fn maybe_export(&mut self) -> Result<(), ModelerError> {
        let Some(every) = self.config.processed_every else {
            return Ok(());
        };
        if self.exported >= self.watermark || self.last_export.is_some_and(|t| t.elapsed() < every)
        {
            return Ok(());
        }
        self.export_processed().await
    }

    /// Runs passes until one finds nothing new (a bounded lake, as replay writes it): every
    /// complete source transaction applied; what it applied, summed over the passes.
    pub async fn drain(&mut self) -> Result<PassReport, ModelerError> {
        let mut total = PassReport::default();
        loop {
            let report = self.pass().await?;
            total.files += report.files;
            total.skipped += report.skipped;
            total.transactions += report.transactions;
            total.changes += report.changes;
            if report.files == 0 && report.transactions == 0 {
                return Ok(total);
            }
        }
    }

    /// Writes the processed zone up to the watermark now.
    pub async fn export_processed(&mut self) -> Result<(), ModelerError> {
        let commits = processed::export(&self.client, &self.tables, self.watermark).await?;
        self.metrics.processed_commits.inc_by(commits as u64);
        self.exported = self.watermark;
        self.last_export = Some(Instant::now());
        Ok(())
    }

    /// Runs passes every poll interval until `stop` turns true; then writes the processed
    /// zone up to the last apply and returns.
    pub async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), ModelerError> {
        while !*stop.borrow() {
            if let Err(e) = self.pass().await {
                self.metrics.errors.with_label_values(&[e.kind()]).inc();
                if !e.is_retryable() || self.client.is_closed() {
                    return Err(e);
                }
                tracing::warn!(error = %cdc_core::error_chain(&e), "modeler pass failed; retrying");
                // Read everything again: the pending transactions may be half-read.
                self.versions.clear();
                self.pending.clear();
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll) => {}
                _ = stop.changed() => {}
            }
        }
        if self.config.processed_every.is_some() && self.exported < self.watermark {
            self.export_processed().await?;
        }
        Ok(())
    }
}
