//! The pipeline's real parts started together for integration tests and benchmarks.
//!
//! - [`Stack`]: a source database, an Apache Kafka broker, our schema registry over its own
//!   database, and capture into Kafka, with a plain rdkafka consumer to read topics back.
//! - [`Writer`]: a lake writer over the stack's topics, running in the background.
//! - [`fixtures`]: tables, events, sample values and proptest strategies for codec tests.
//! - [`process`]: every component as a real `totesys-cdc` process (and [`process::chaos`],
//!   the kill-anything harness built on it).
//!
//! Nothing here is a mock: every part is the one the pipeline runs. Failures panic with
//! what went wrong, as test support should.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fixtures;
pub mod process;
mod stack;
mod writer;

pub use stack::*;
pub use writer::Writer;

/// Sends the pipeline's `tracing` logs to the test's captured output, at the level
/// `$TOTESYS_CDC_LOG` sets (default `warn`); a second call is a no-op.
pub fn log_to_test_output() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOTESYS_CDC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
