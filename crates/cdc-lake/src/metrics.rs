//! Prometheus metrics of the lake writer (`totesys_cdc_lake_*`).

use cdc_core::{Metric, MetricSet};
use prometheus::core::Collector;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

/// Rows per lake file written.
pub const FILE_ROWS: Metric =
    Metric::new("totesys_cdc_lake_file_rows", "Rows per lake file written.");
/// Time to encode and store one lake file.
pub const FLUSH_DURATION_SECONDS: Metric = Metric::new(
    "totesys_cdc_lake_flush_duration_seconds",
    "Time to encode and store one lake file.",
);
/// Source commit to lake file durable, per streamed row.
pub const FRESHNESS_SECONDS: Metric = Metric::new(
    "totesys_cdc_lake_freshness_seconds",
    "Source commit to lake file durable, per streamed row, by table.",
);
/// Kafka records read.
pub const RECORDS_TOTAL: Metric = Metric::new(
    "totesys_cdc_lake_records_total",
    "Kafka records read, by topic.",
);
/// Change rows written to lake files.
pub const ROWS_TOTAL: Metric = Metric::new(
    "totesys_cdc_lake_rows_total",
    "Change rows written to lake files, by table.",
);
/// Lake files written.
pub const FILES_TOTAL: Metric = Metric::new(
    "totesys_cdc_lake_files_total",
    "Lake files written, by table.",
);
/// Parquet bytes written.
pub const BYTES_TOTAL: Metric = Metric::new(
    "totesys_cdc_lake_bytes_total",
    "Parquet bytes written, by table.",
);
/// Streamed changes read again at a later offset.
pub const DUPLICATE_CHANGES_TOTAL: Metric = Metric::new(
    "totesys_cdc_lake_duplicate_changes_total",
    "Streamed changes read again at a later offset (a position already taken) and left out of the lake, by table.",
);
/// Records sent to the dead-letter topic.
pub const DEAD_LETTERS_TOTAL: Metric = Metric::new(
    "totesys_cdc_lake_dead_letters_total",
    "Records sent to the dead-letter topic, by source topic and reason.",
);
/// Records in an owned partition beyond the lake writer's position.
pub const CONSUMER_LAG_RECORDS: Metric = Metric::new(
    "totesys_cdc_lake_consumer_lag_records",
    "Records in an owned partition beyond the lake writer's position (high watermark minus position).",
);
/// Files another writer had written first and this one adopted.
pub const FILES_ADOPTED_TOTAL: Metric = Metric::new(
    "totesys_cdc_lake_files_adopted_total",
    "Files another writer had written first and this one adopted.",
);
/// Kafka offset commits that failed.
pub const OFFSET_COMMIT_ERRORS_TOTAL: Metric = Metric::new(
    "totesys_cdc_lake_offset_commit_errors_total",
    "Kafka offset commits that failed (the records are read again and their files adopted).",
);
/// Kafka consumers given up after a fatal error.
pub const CONSUMER_FATAL_ERRORS_TOTAL: Metric = Metric::new(
    "totesys_cdc_lake_consumer_fatal_errors_total",
    "Kafka consumers given up after a fatal error (a static member fenced by its instance id, …); each is replaced by a new one.",
);
/// Rows read but not yet in a lake file.
pub const ROWS_BUFFERED: Metric = Metric::new(
    "totesys_cdc_lake_rows_buffered",
    "Rows read but not yet in a lake file.",
);
/// Kafka partitions this lake writer owns.
pub const PARTITIONS_ASSIGNED: Metric = Metric::new(
    "totesys_cdc_lake_partitions_assigned",
    "Kafka partitions this lake writer owns.",
);

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

impl MetricSet for LakeMetrics {
    fn unregistered() -> Result<Self, prometheus::Error> {
        let by_table = &["table"];
        Ok(LakeMetrics {
            records: IntCounterVec::new(RECORDS_TOTAL.opts(), &["topic"])?,
            rows: IntCounterVec::new(ROWS_TOTAL.opts(), by_table)?,
            files: IntCounterVec::new(FILES_TOTAL.opts(), by_table)?,
            bytes: IntCounterVec::new(BYTES_TOTAL.opts(), by_table)?,
            files_adopted: IntCounter::with_opts(FILES_ADOPTED_TOTAL.opts())?,
            duplicate_changes: IntCounterVec::new(DUPLICATE_CHANGES_TOTAL.opts(), &["table"])?,
            dead_letters: IntCounterVec::new(DEAD_LETTERS_TOTAL.opts(), &["topic", "reason"])?,
            file_rows: Histogram::with_opts(
                FILE_ROWS
                    .histogram()
                    .buckets(prometheus::exponential_buckets(1.0, 4.0, 10)?),
            )?,
            flush_seconds: Histogram::with_opts(
                FLUSH_DURATION_SECONDS
                    .histogram()
                    .buckets(prometheus::exponential_buckets(0.001, 2.0, 14)?),
            )?,
            commit_to_lake_seconds: HistogramVec::new(
                FRESHNESS_SECONDS.histogram().buckets(vec![
                    0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                ]),
                by_table,
            )?,
            commit_errors: IntCounter::with_opts(OFFSET_COMMIT_ERRORS_TOTAL.opts())?,
            consumer_fatal_errors: IntCounter::with_opts(CONSUMER_FATAL_ERRORS_TOTAL.opts())?,
            rows_buffered: IntGauge::with_opts(ROWS_BUFFERED.opts())?,
            partitions_assigned: IntGauge::with_opts(PARTITIONS_ASSIGNED.opts())?,
            consumer_lag: IntGaugeVec::new(CONSUMER_LAG_RECORDS.opts(), &["topic", "partition"])?,
        })
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        cdc_core::collectors![
            self.records,
            self.rows,
            self.files,
            self.bytes,
            self.files_adopted,
            self.duplicate_changes,
            self.dead_letters,
            self.file_rows,
            self.flush_seconds,
            self.commit_to_lake_seconds,
            self.commit_errors,
            self.consumer_fatal_errors,
            self.rows_buffered,
            self.partitions_assigned,
            self.consumer_lag
        ]
    }
}
