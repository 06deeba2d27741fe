//! The schema registry's HTTP metrics (`totesys_cdc_registry_*`) and the middleware that
//! keeps them.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use cdc_core::{Metric, MetricSet};
use prometheus::core::Collector;
use prometheus::{Histogram, IntCounterVec};

use crate::server::PROBE_PATHS;

/// API requests answered.
pub const REQUESTS: Metric = Metric::new(
    "totesys_cdc_registry_requests_total",
    "Schema registry API requests answered, by method and HTTP status.",
);
/// Time to answer an API request.
pub const REQUEST_DURATION: Metric = Metric::new(
    "totesys_cdc_registry_request_duration_seconds",
    "Time the schema registry took to answer an API request.",
);

/// The schema registry's HTTP metrics (`totesys_cdc_registry_*`); the probes and
/// `/metrics` are not counted.
#[derive(Debug, Clone)]
pub struct RegistryMetrics {
    /// API requests answered, by method and status code.
    pub requests: IntCounterVec,
    /// Time to answer an API request.
    pub duration: Histogram,
}

impl MetricSet for RegistryMetrics {
    fn unregistered() -> Result<Self, prometheus::Error> {
        Ok(RegistryMetrics {
            requests: IntCounterVec::new(REQUESTS.opts(), &["method", "status"])?,
            duration: Histogram::with_opts(REQUEST_DURATION.histogram())?,
        })
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        cdc_core::collectors![self.requests, self.duration]
    }
}

impl RegistryMetrics {
    /// `router` with every API request counted and timed (the probes are not).
    pub fn instrument(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), record))
    }
}

/// Counts and times one API request.
async fn record(State(metrics): State<RegistryMetrics>, request: Request, next: Next) -> Response {
    if PROBE_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.duration.observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[method, response.status().as_str()])
        .inc();
    response
}

/// The method as a label value; unusual methods share one value so the label stays bounded.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
