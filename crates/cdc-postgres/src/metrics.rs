//! Capture's own Prometheus metrics (`totesys_cdc_capture_*`; the Kafka sink's are in
//! `cdc-publish`): its failures by kind and the slot positions the reader keeps.

use std::sync::Arc;

use cdc_core::{Metric, MetricSet};
use prometheus::core::Collector;
use prometheus::{Gauge, IntCounterVec, IntGauge};

use crate::reader::SlotPositions;

/// Capture sessions that failed, by kind.
pub const ERRORS: Metric = Metric::new(
    "totesys_cdc_capture_errors_total",
    "Capture sessions that failed, by kind (source, decode, kafka, registry, rejected, sink, state); transient ones are retried.",
);
/// WAL the server has beyond capture's confirmed position.
pub const SLOT_LAG: Metric = Metric::new(
    "totesys_cdc_capture_slot_lag_bytes",
    "WAL bytes the server has beyond the position capture confirmed to the slot (server WAL end minus confirmed flush LSN).",
);
/// The flush LSN last confirmed to the slot.
pub const CONFIRMED_LSN: Metric = Metric::new(
    "totesys_cdc_capture_confirmed_lsn",
    "The flush LSN capture last confirmed to the replication slot, as a number.",
);
/// Commit time of the newest transaction read.
pub const SOURCE_COMMIT: Metric = Metric::new(
    "totesys_cdc_capture_source_commit_seconds",
    "Source commit time (Unix seconds) of the newest transaction capture read.",
);

/// Capture's own metrics (the Kafka sink's are [`cdc_publish::PublishMetrics`]); the
/// position gauges read [`SlotPositions`] when scraped.
#[derive(Debug, Clone)]
pub struct CaptureMetrics {
    /// Capture sessions that failed, by kind (retried when transient).
    pub errors: IntCounterVec,
    positions: PositionGauges,
}

impl CaptureMetrics {
    /// Creates the metrics over `positions` and registers them in `registry`.
    pub fn register_over(
        registry: &prometheus::Registry,
        positions: &Arc<SlotPositions>,
    ) -> Result<Self, prometheus::Error> {
        Self::over(positions.clone())?.registered_in(registry)
    }

    fn over(positions: Arc<SlotPositions>) -> Result<Self, prometheus::Error> {
        Ok(CaptureMetrics {
            errors: IntCounterVec::new(ERRORS.opts(), &["kind"])?,
            positions: PositionGauges {
                slot_lag: IntGauge::with_opts(SLOT_LAG.opts())?,
                confirmed: IntGauge::with_opts(CONFIRMED_LSN.opts())?,
                source_commit: Gauge::with_opts(SOURCE_COMMIT.opts())?,
                positions,
            },
        })
    }
}

impl MetricSet for CaptureMetrics {
    /// Over positions nothing updates (for listing the metrics).
    fn unregistered() -> Result<Self, prometheus::Error> {
        Self::over(Arc::default())
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        cdc_core::collectors![self.errors, self.positions]
    }
}

/// Gauges set from [`SlotPositions`] at collection time (one source of truth: the reader's atomics).
#[derive(Debug, Clone)]
struct PositionGauges {
    positions: Arc<SlotPositions>,
    slot_lag: IntGauge,
    confirmed: IntGauge,
    source_commit: Gauge,
}

impl Collector for PositionGauges {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        let mut all = self.slot_lag.desc();
        all.extend(self.confirmed.desc());
        all.extend(self.source_commit.desc());
        all
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let positions = &self.positions;
        self.slot_lag
            .set(i64::try_from(positions.lag_bytes()).unwrap_or(i64::MAX));
        self.confirmed
            .set(i64::try_from(positions.confirmed().0).unwrap_or(i64::MAX));
        if let Some(micros) = positions.last_commit_micros() {
            self.source_commit.set(micros as f64 / 1e6);
        }
        let mut all = self.slot_lag.collect();
        all.extend(self.confirmed.collect());
        all.extend(self.source_commit.collect());
        all
    }
}
