//! Prometheus metrics of the modeler (`totesys_cdc_modeler_*`).

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

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
    pub processed_files: IntCounter,
    /// Errors that made the modeler retry (lake or warehouse unavailable, fenced).
    pub errors: IntCounterVec,
}

impl ModelerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered()?;
        cdc_core::register_all(registry, metrics.collectors())?;
        Ok(metrics)
    }

    /// Every metric, as collectors (for registering, and for listing what is exported).
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.freshness_seconds.clone()),
            Box::new(self.transactions.clone()),
            Box::new(self.changes.clone()),
            Box::new(self.applies.clone()),
            Box::new(self.apply_seconds.clone()),
            Box::new(self.apply_transactions.clone()),
            Box::new(self.rejected.clone()),
            Box::new(self.truncates.clone()),
            Box::new(self.files_read.clone()),
            Box::new(self.duplicate_changes.clone()),
            Box::new(self.pending_transactions.clone()),
            Box::new(self.watermark_lsn.clone()),
            Box::new(self.watermark_commit_seconds.clone()),
            Box::new(self.processed_files.clone()),
            Box::new(self.errors.clone()),
        ]
    }

    /// Creates the metrics without registering them anywhere (tests, embedding).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        let seconds = vec![
            0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0,
            120.0, 300.0,
        ];
        Ok(ModelerMetrics {
            freshness_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "totesys_cdc_modeler_freshness_seconds",
                    "Source commit to warehouse commit, per applied change.",
                )
                .buckets(seconds.clone()),
            )?,
            transactions: IntCounter::new(
                "totesys_cdc_modeler_transactions_total",
                "Source transactions applied to the warehouse.",
            )?,
            changes: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_modeler_changes_total",
                    "Source changes applied to the warehouse, by source table.",
                ),
                &["table"],
            )?,
            applies: IntCounter::new(
                "totesys_cdc_modeler_applies_total",
                "Warehouse transactions committed by the modeler.",
            )?,
            apply_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "totesys_cdc_modeler_apply_duration_seconds",
                    "Time to plan and write one apply.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
            )?,
            apply_transactions: Histogram::with_opts(
                HistogramOpts::new(
                    "totesys_cdc_modeler_apply_transactions",
                    "Source transactions per apply.",
                )
                .buckets(vec![
                    1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0,
                ]),
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_modeler_rejected_total",
                    "Bad source input kept for repair or made up (inferred members), by reason.",
                ),
                &["reason"],
            )?,
            truncates: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_modeler_truncates_total",
                    "Source truncates applied, by source table.",
                ),
                &["table"],
            )?,
            duplicate_changes: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_modeler_duplicate_changes_total",
                    "Changes read again at a (commit LSN, ordinal) already pending (re-sent into the lake, or re-read from a compacted file), applied once, by table.",
                ),
                &["table"],
            )?,
            files_read: IntCounter::new(
                "totesys_cdc_modeler_lake_files_read_total",
                "Lake files read by the modeler.",
            )?,
            pending_transactions: IntGauge::new(
                "totesys_cdc_modeler_pending_transactions",
                "Source transactions read from the lake but not yet complete there.",
            )?,
            watermark_lsn: IntGauge::new(
                "totesys_cdc_modeler_watermark_lsn",
                "The last applied source commit LSN, as a number.",
            )?,
            watermark_commit_seconds: IntGauge::new(
                "totesys_cdc_modeler_watermark_commit_seconds",
                "Source commit time of the last applied transaction, seconds since the epoch.",
            )?,
            processed_files: IntCounter::new(
                "totesys_cdc_modeler_processed_files_total",
                "Parquet files written to the lake's processed/ zone.",
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_modeler_errors_total",
                    "Errors the modeler retried after, by kind.",
                ),
                &["kind"],
            )?,
        })
    }
}
