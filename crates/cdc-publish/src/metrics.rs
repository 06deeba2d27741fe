//! Prometheus metrics of capture's Kafka sink (`totesys_cdc_capture_*`).

use cdc_core::{Metric, MetricSet};
use prometheus::core::Collector;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

/// Time to commit one Kafka transaction.
pub const KAFKA_COMMIT_SECONDS: Metric = Metric::new(
    "totesys_cdc_capture_kafka_commit_seconds",
    "Time to commit one Kafka transaction (delivering its records, then the commit markers).",
);
/// Source transactions grouped into one Kafka transaction.
pub const KAFKA_TRANSACTION_SOURCE_TRANSACTIONS: Metric = Metric::new(
    "totesys_cdc_capture_kafka_transaction_source_transactions",
    "Source transactions grouped into one Kafka transaction.",
);
/// Change events handed to Kafka.
pub const EVENTS_TOTAL: Metric = Metric::new(
    "totesys_cdc_capture_events_total",
    "Change events handed to Kafka, by table and op.",
);
/// Key and value schema versions registered.
pub const SCHEMA_REGISTRATIONS_TOTAL: Metric = Metric::new(
    "totesys_cdc_capture_schema_registrations_total",
    "Key and value schema versions registered (or found registered), by table.",
);
/// Source schema changes the registry refused as incompatible.
pub const SCHEMA_INCOMPATIBLE_TOTAL: Metric = Metric::new(
    "totesys_cdc_capture_schema_incompatible_total",
    "Source schema changes the registry refused as incompatible, by table.",
);
/// Change events that could not be encoded as Avro.
pub const ENCODE_ERRORS_TOTAL: Metric = Metric::new(
    "totesys_cdc_capture_encode_errors_total",
    "Change events that could not be encoded as Avro, by table.",
);
/// Kafka records the broker acknowledged.
pub const RECORDS_ACKED_TOTAL: Metric = Metric::new(
    "totesys_cdc_capture_records_acked_total",
    "Kafka records the broker acknowledged (events, tombstones, transaction markers).",
);
/// Kafka records queued but not yet acknowledged.
pub const RECORDS_IN_FLIGHT: Metric = Metric::new(
    "totesys_cdc_capture_records_in_flight",
    "Kafka records queued but not yet acknowledged.",
);
/// Encoded key and value bytes handed to Kafka.
pub const PRODUCED_BYTES_TOTAL: Metric = Metric::new(
    "totesys_cdc_capture_produced_bytes_total",
    "Encoded key and value bytes handed to Kafka.",
);
/// Kafka records not acknowledged; capture restarts from the slot.
pub const DELIVERY_ERRORS_TOTAL: Metric = Metric::new(
    "totesys_cdc_capture_delivery_errors_total",
    "Kafka records not acknowledged; capture restarts from the slot.",
);
/// Kafka transactions committed.
pub const KAFKA_TRANSACTIONS_TOTAL: Metric = Metric::new(
    "totesys_cdc_capture_kafka_transactions_total",
    "Kafka transactions committed (exactly-once delivery); each holds whole source transactions.",
);
/// Kafka transactions that could not be committed; their records are never visible to read_committed readers and capture restarts from the slot.
pub const KAFKA_TRANSACTION_FAILURES_TOTAL: Metric = Metric::new(
    "totesys_cdc_capture_kafka_transaction_failures_total",
    "Kafka transactions that could not be committed; their records are never visible to read_committed readers and capture restarts from the slot.",
);
/// Events read again from the slot after a restart and dropped because a committed Kafka transaction already holds them.
pub const EVENTS_ALREADY_PUBLISHED_TOTAL: Metric = Metric::new(
    "totesys_cdc_capture_events_already_published_total",
    "Events read again from the slot after a restart and dropped because a committed Kafka transaction already holds them.",
);

/// The sink's metrics; cheap to clone (every clone updates the same series).
#[derive(Debug, Clone)]
pub struct PublishMetrics {
    /// Change events handed to the producer, by table and op.
    pub events: IntCounterVec,
    /// Records the broker acknowledged (events, tombstones, transaction markers).
    pub records_acked: IntCounter,
    /// Records queued but not yet acknowledged.
    pub records_in_flight: IntGauge,
    /// Encoded key and value bytes handed to the producer.
    pub bytes: IntCounter,
    /// Records the broker did not acknowledge (capture restarts from the slot).
    pub delivery_errors: IntCounter,
    /// Schema versions registered (or found registered) per table.
    pub schema_registrations: IntCounterVec,
    /// Schema changes the registry refused as incompatible, per table; capture stops.
    pub schema_incompatible: IntCounterVec,
    /// Events that could not be encoded, per table; capture stops.
    pub encode_errors: IntCounterVec,
    /// Kafka transactions committed (exactly-once mode).
    pub kafka_transactions: IntCounter,
    /// Kafka transactions that failed to commit and were abandoned (the next producer
    /// aborts them); capture restarts from the slot.
    pub kafka_transaction_failures: IntCounter,
    /// How long committing one Kafka transaction took.
    pub kafka_commit_seconds: Histogram,
    /// Source transactions per Kafka transaction.
    pub kafka_transaction_sources: Histogram,
    /// Events read again from the slot after a restart and dropped because a committed
    /// Kafka transaction already holds them.
    pub already_published: IntCounter,
}

impl MetricSet for PublishMetrics {
    fn unregistered() -> Result<Self, prometheus::Error> {
        let table = &["table"];
        Ok(PublishMetrics {
            events: IntCounterVec::new(EVENTS_TOTAL.opts(), &["table", "op"])?,
            records_acked: IntCounter::with_opts(RECORDS_ACKED_TOTAL.opts())?,
            records_in_flight: IntGauge::with_opts(RECORDS_IN_FLIGHT.opts())?,
            bytes: IntCounter::with_opts(PRODUCED_BYTES_TOTAL.opts())?,
            delivery_errors: IntCounter::with_opts(DELIVERY_ERRORS_TOTAL.opts())?,
            schema_registrations: IntCounterVec::new(SCHEMA_REGISTRATIONS_TOTAL.opts(), table)?,
            schema_incompatible: IntCounterVec::new(SCHEMA_INCOMPATIBLE_TOTAL.opts(), table)?,
            encode_errors: IntCounterVec::new(ENCODE_ERRORS_TOTAL.opts(), table)?,
            kafka_transactions: IntCounter::with_opts(KAFKA_TRANSACTIONS_TOTAL.opts())?,
            kafka_transaction_failures: IntCounter::with_opts(
                KAFKA_TRANSACTION_FAILURES_TOTAL.opts(),
            )?,
            kafka_commit_seconds: Histogram::with_opts(KAFKA_COMMIT_SECONDS.histogram().buckets(
                vec![
                    0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ],
            ))?,
            kafka_transaction_sources: Histogram::with_opts(
                KAFKA_TRANSACTION_SOURCE_TRANSACTIONS
                    .histogram()
                    .buckets(vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]),
            )?,
            already_published: IntCounter::with_opts(EVENTS_ALREADY_PUBLISHED_TOTAL.opts())?,
        })
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        cdc_core::collectors![
            self.events,
            self.records_acked,
            self.records_in_flight,
            self.bytes,
            self.delivery_errors,
            self.schema_registrations,
            self.schema_incompatible,
            self.encode_errors,
            self.kafka_transactions,
            self.kafka_transaction_failures,
            self.kafka_commit_seconds,
            self.kafka_transaction_sources,
            self.already_published
        ]
    }
}
