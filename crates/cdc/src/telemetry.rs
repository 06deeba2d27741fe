//! `/metrics` (Prometheus text format) and health endpoints of a long-running subcommand.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, TextEncoder};

/// A readiness condition evaluated on each `/readyz` request.
type ReadyCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// Whether the component is doing its job (`/readyz`); `/healthz` only says it runs.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    check: Option<ReadyCheck>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("ready", &self.ready())
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Marks the component ready or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Ready only while `check` also holds (checked on each request; keep it cheap).
    pub fn with_check(mut self, check: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.check = Some(Arc::new(check));
        self
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.check.as_ref().is_none_or(|check| check())
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until the task is aborted.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on --metrics-listen {addr}"))?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let health = health.clone();
                async move {
                    if health.ready() {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        );
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    }))
}

/// `/metrics`: every metric of the default registry in the Prometheus text format.
pub async fn metrics() -> impl IntoResponse {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&prometheus::gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
