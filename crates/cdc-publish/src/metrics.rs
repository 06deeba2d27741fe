//! Prometheus metrics of capture's Kafka sink (`totesys_cdc_capture_*`).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

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
}

impl PublishMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered()?;
        registry.register(Box::new(metrics.events.clone()))?;
        registry.register(Box::new(metrics.records_acked.clone()))?;
        registry.register(Box::new(metrics.records_in_flight.clone()))?;
        registry.register(Box::new(metrics.bytes.clone()))?;
        registry.register(Box::new(metrics.delivery_errors.clone()))?;
        registry.register(Box::new(metrics.schema_registrations.clone()))?;
        registry.register(Box::new(metrics.schema_incompatible.clone()))?;
        registry.register(Box::new(metrics.encode_errors.clone()))?;
        Ok(metrics)
    }

    /// Creates the metrics without registering them anywhere (tests, embedding).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        let table = &["table"];
        Ok(PublishMetrics {
            events: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_capture_events_total",
                    "Change events handed to Kafka, by table and op.",
                ),
                &["table", "op"],
            )?,
            records_acked: IntCounter::new(
                "totesys_cdc_capture_records_acked_total",
                "Kafka records the broker acknowledged (events, tombstones, transaction markers).",
            )?,
            records_in_flight: IntGauge::new(
                "totesys_cdc_capture_records_in_flight",
                "Kafka records queued but not yet acknowledged.",
            )?,
            bytes: IntCounter::new(
                "totesys_cdc_capture_produced_bytes_total",
                "Encoded key and value bytes handed to Kafka.",
            )?,
            delivery_errors: IntCounter::new(
                "totesys_cdc_capture_delivery_errors_total",
                "Kafka records not acknowledged; capture restarts from the slot.",
            )?,
            schema_registrations: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_capture_schema_registrations_total",
                    "Key and value schema versions registered (or found registered), by table.",
                ),
                table,
            )?,
            schema_incompatible: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_capture_schema_incompatible_total",
                    "Source schema changes the registry refused as incompatible, by table.",
                ),
                table,
            )?,
            encode_errors: IntCounterVec::new(
                Opts::new(
                    "totesys_cdc_capture_encode_errors_total",
                    "Change events that could not be encoded as Avro, by table.",
                ),
                table,
            )?,
        })
    }
}
