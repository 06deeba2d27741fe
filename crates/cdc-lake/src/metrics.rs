//! Prometheus metrics of the lake writer (`totesys_cdc_lake_*`).

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// The lake writer's metrics; cheap to clone (every clone updates the same series).
#[derive(Debug, Clone)]
pub struct LakeMetrics {
    /// Kafka records read, by topic.
    pub records: IntCounterVec,
    /// Change rows written to files, by table.
    pub rows: IntCounterVec,
    /// Files written, by table.
    pub files: IntCounterVec,
    /// Parquet bytes written, by table.
    pub bytes: IntCounterVec,
    /// Files another writer had written first and this one adopted.
    pub files_adopted: IntCounter,
    /// Streamed changes read again at a later offset and left out of the lake, by table.
    pub duplicate_changes: IntCounterVec,
    /// Records sent to the dead-letter topic, by source topic and reason code.
    pub dead_letters: IntCounterVec,
    /// Rows per file written.
    pub file_rows: Histogram,
    /// Time to encode and store one file.
    pub flush_seconds: Histogram,
    /// Source commit to file durable, per streamed (not snapshot) row, by table.
    pub commit_to_lake_seconds: HistogramVec,
    /// Offset commits the group coordinator refused or that failed.
    pub commit_errors: IntCounter,
    /// Consumers that hit a fatal error (a static member fenced, …) and were given up.
    pub consumer_fatal_errors: IntCounter,
    /// Rows buffered, not yet in a file.
    pub rows_buffered: IntGauge,
    /// Partitions this member owns.
    pub partitions_assigned: IntGauge,
    /// Records in each owned partition beyond the writer's position (high watermark minus
    /// position), by topic and partition; from librdkafka's statistics.
    pub consumer_lag: IntGaugeVec,
}

impl LakeMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered()?;
        cdc_core::register_all(registry, metrics.collectors())?;
        Ok(metrics)
    }

    /// Every metric, as collectors (for registering, and for listing what is exported).
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.records.clone()),
            Box::new(self.rows.clone()),
            Box::new(self.files.clone()),
            Box::new(self.bytes.clone()),
            Box::new(self.files_adopted.clone()),
            Box::new(self.duplicate_changes.clone()),
            Box::new(self.dead_letters.clone()),
            Box::new(self.file_rows.clone()),
            Box::new(self.flush_seconds.clone()),
            Box::new(self.commit_to_lake_seconds.clone()),
            Box::new(self.commit_errors.clone()),
            Box::new(self.consumer_fatal_errors.clone()),
            Box::new(self.rows_buffered.clone()),
            Box::new(self.partitions_assigned.clone()),
            Box::new(self.consumer_lag.clone()),
        ]
    }

    /// Creates the metrics without registering them anywhere (tests, embedding).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        let by_table = &["table"];
        Ok(LakeMetrics {
            records: IntCounterVec::new(
                Opts::new("totesys_cdc_lake_records_total", "Kafka records read, by topic."),
                &["topic"],
            )?,
            rows: IntCounterVec::new(
                Opts::new("totesys_cdc_lake_rows_total", "Change rows written to lake files, by table."),
                by_table,
            )?,
            files: IntCounterVec::new(
                Opts::new("totesys_cdc_lake_files_total", "Lake files written, by table."),
                by_table,
            )?,
            bytes: IntCounterVec::new(
                Opts::new("totesys_cdc_lake_bytes_total", "Parquet bytes written, by table."),
                by_table,
            )?,
            files_adopted: IntCounter::new(
                "totesys_cdc_lake_files_adopted_total",
                "Files another writer had written first and this one adopted.",
            )?,
            duplicate_changes: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_lake_duplicate_changes_total",
                    "Streamed changes read again at a later offset (a position already taken) and left out of the lake, by table.",
                ),
                &["table"],
            )?,
            dead_letters: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_lake_dead_letters_total",
                    "Records sent to the dead-letter topic, by source topic and reason.",
                ),
                &["topic", "reason"],
            )?,
            file_rows: Histogram::with_opts(
                HistogramOpts::new("totesys_cdc_lake_file_rows", "Rows per lake file written.")
                    .buckets(prometheus::exponential_buckets(1.0, 4.0, 10)?),
            )?,
            flush_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "totesys_cdc_lake_flush_duration_seconds",
                    "Time to encode and store one lake file.",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 14)?),
            )?,
            commit_to_lake_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "totesys_cdc_lake_freshness_seconds",
                    "Source commit to lake file durable, per streamed row, by table.",
                )
                .buckets(vec![0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0]),
                by_table,
            )?,
            commit_errors: IntCounter::new(
                "totesys_cdc_lake_offset_commit_errors_total",
                "Kafka offset commits that failed (the records are read again and their files adopted).",
            )?,
            consumer_fatal_errors: IntCounter::new(
                "totesys_cdc_lake_consumer_fatal_errors_total",
                "Kafka consumers given up after a fatal error (a static member fenced by its instance id, …); each is replaced by a new one.",
            )?,
            rows_buffered: IntGauge::new(
                "totesys_cdc_lake_rows_buffered",
                "Rows read but not yet in a lake file.",
            )?,
            partitions_assigned: IntGauge::new(
                "totesys_cdc_lake_partitions_assigned",
                "Kafka partitions this lake writer owns.",
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "totesys_cdc_lake_consumer_lag_records",
                    "Records in an owned partition beyond the lake writer's position (high watermark minus position).",
                ),
                &["topic", "partition"],
            )?,
        })
    }
}
