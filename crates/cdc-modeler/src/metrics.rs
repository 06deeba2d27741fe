//! Prometheus metrics of the modeler (`totesys_cdc_modeler_*`).

use cdc_core::{Metric, MetricSet};
use prometheus::core::Collector;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

/// Source commit to warehouse commit, per applied change.
pub const FRESHNESS_SECONDS: Metric = Metric::new(
    "totesys_cdc_modeler_freshness_seconds",
    "Source commit to warehouse commit, per applied change.",
);
/// Time to plan and write one apply.
pub const APPLY_DURATION_SECONDS: Metric = Metric::new(
    "totesys_cdc_modeler_apply_duration_seconds",
    "Time to plan and write one apply.",
);
/// Source transactions per apply.
pub const APPLY_TRANSACTIONS: Metric = Metric::new(
    "totesys_cdc_modeler_apply_transactions",
    "Source transactions per apply.",
);
/// Source changes applied to the warehouse.
pub const CHANGES_TOTAL: Metric = Metric::new(
    "totesys_cdc_modeler_changes_total",
    "Source changes applied to the warehouse, by source table.",
);
/// Bad source input kept for repair or made up.
pub const REJECTED_TOTAL: Metric = Metric::new(
    "totesys_cdc_modeler_rejected_total",
    "Bad source input kept for repair or made up (inferred members), by reason.",
);
/// Source truncates applied.
pub const TRUNCATES_TOTAL: Metric = Metric::new(
    "totesys_cdc_modeler_truncates_total",
    "Source truncates applied, by source table.",
);
/// Changes read again at a.
pub const DUPLICATE_CHANGES_TOTAL: Metric = Metric::new(
    "totesys_cdc_modeler_duplicate_changes_total",
    "Changes read again at a (commit LSN, ordinal) already pending (re-sent into the lake, or re-read from a compacted file), applied once, by table.",
);
/// Errors the modeler retried after.
pub const ERRORS_TOTAL: Metric = Metric::new(
    "totesys_cdc_modeler_errors_total",
    "Errors the modeler retried after, by kind.",
);
/// Source transactions applied to the warehouse.
pub const TRANSACTIONS_TOTAL: Metric = Metric::new(
    "totesys_cdc_modeler_transactions_total",
    "Source transactions applied to the warehouse.",
);
/// Warehouse transactions committed by the modeler.
pub const APPLIES_TOTAL: Metric = Metric::new(
    "totesys_cdc_modeler_applies_total",
    "Warehouse transactions committed by the modeler.",
);
/// Lake files read by the modeler.
pub const LAKE_FILES_READ_TOTAL: Metric = Metric::new(
    "totesys_cdc_modeler_lake_files_read_total",
    "Lake files read by the modeler.",
);
/// Source transactions read from the lake but not yet complete there.
pub const PENDING_TRANSACTIONS: Metric = Metric::new(
    "totesys_cdc_modeler_pending_transactions",
    "Source transactions read from the lake but not yet complete there.",
);
/// The last applied source commit LSN, as a number.
pub const WATERMARK_LSN: Metric = Metric::new(
    "totesys_cdc_modeler_watermark_lsn",
    "The last applied source commit LSN, as a number.",
);
/// Source commit time of the last applied transaction, seconds since the epoch.
pub const WATERMARK_COMMIT_SECONDS: Metric = Metric::new(
    "totesys_cdc_modeler_watermark_commit_seconds",
    "Source commit time of the last applied transaction, seconds since the epoch.",
);
/// Commits to the processed zone's Delta tables.
pub const PROCESSED_COMMITS_TOTAL: Metric = Metric::new(
    "totesys_cdc_modeler_processed_commits_total",
    "Commits to the processed zone's Delta tables.",
);

/// The modeler's metrics; cheap to clone (every clone updates the same series).
#[derive(Debug, Clone)]
pub struct ModelerMetrics {
    /// Source commit to warehouse commit, per applied change.
    pub freshness_seconds: Histogram,
    /// Source transactions applied.
    pub transactions: IntCounter,
    /// Changes applied, by source table.
    pub changes: IntCounterVec,
    /// Warehouse transactions (applies) committed.
    pub applies: IntCounter,
    /// Time to plan and write one apply.
    pub apply_seconds: Histogram,
    /// Source transactions per apply.
    pub apply_transactions: Histogram,
    /// Bad input kept for repair or made up (inferred members), by reason.
    pub rejected: IntCounterVec,
    /// Truncates applied, by source table.
    pub truncates: IntCounterVec,
    /// Lake files read.
    pub files_read: IntCounter,
    /// Changes read again at a position already pending, kept once, by table.
    pub duplicate_changes: IntCounterVec,
    /// Source transactions read but not yet complete in the lake.
    pub pending_transactions: IntGauge,
    /// The applied watermark: the last applied commit LSN.
    pub watermark_lsn: IntGauge,
    /// Commit time of the last applied source transaction (seconds since the epoch).
    pub watermark_commit_seconds: IntGauge,
    /// Processed-zone files written.
    pub processed_commits: IntCounter,
    /// Errors that made the modeler retry (lake or warehouse unavailable, fenced).
    pub errors: IntCounterVec,
}

impl MetricSet for ModelerMetrics {
    fn unregistered() -> Result<Self, prometheus::Error> {
        let seconds = vec![
            0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0,
            120.0, 300.0,
        ];
        Ok(ModelerMetrics {
            freshness_seconds: Histogram::with_opts(
                FRESHNESS_SECONDS.histogram().buckets(seconds.clone()),
            )?,
            transactions: IntCounter::with_opts(TRANSACTIONS_TOTAL.opts())?,
            changes: IntCounterVec::new(CHANGES_TOTAL.opts(), &["table"])?,
            applies: IntCounter::with_opts(APPLIES_TOTAL.opts())?,
            apply_seconds: Histogram::with_opts(APPLY_DURATION_SECONDS.histogram().buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]))?,
            apply_transactions: Histogram::with_opts(APPLY_TRANSACTIONS.histogram().buckets(
                vec![1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0],
            ))?,
            rejected: IntCounterVec::new(REJECTED_TOTAL.opts(), &["reason"])?,
            truncates: IntCounterVec::new(TRUNCATES_TOTAL.opts(), &["table"])?,
            duplicate_changes: IntCounterVec::new(DUPLICATE_CHANGES_TOTAL.opts(), &["table"])?,
            files_read: IntCounter::with_opts(LAKE_FILES_READ_TOTAL.opts())?,
            pending_transactions: IntGauge::with_opts(PENDING_TRANSACTIONS.opts())?,
            watermark_lsn: IntGauge::with_opts(WATERMARK_LSN.opts())?,
            watermark_commit_seconds: IntGauge::with_opts(WATERMARK_COMMIT_SECONDS.opts())?,
            processed_commits: IntCounter::with_opts(PROCESSED_COMMITS_TOTAL.opts())?,
            errors: IntCounterVec::new(ERRORS_TOTAL.opts(), &["kind"])?,
        })
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        cdc_core::collectors![
            self.freshness_seconds,
            self.transactions,
            self.changes,
            self.applies,
            self.apply_seconds,
            self.apply_transactions,
            self.rejected,
            self.truncates,
            self.files_read,
            self.duplicate_changes,
            self.pending_transactions,
            self.watermark_lsn,
            self.watermark_commit_seconds,
            self.processed_commits,
            self.errors
        ]
    }
}
