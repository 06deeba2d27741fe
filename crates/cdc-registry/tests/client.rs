//! `RegistryClient` against the registry server, and against stub servers for retries and auth.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use cdc_core::Secret;
use cdc_registry::{ClientError, CompatibilityLevel, RegistryClient, SchemaId};
use support::{record, Server};

/// The registry's router with a layer counting the requests that reach it.
fn counted(app: Router) -> (Router, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let app = app.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                next.run(req).await
            }
        },
    ));
    (app, count)
}

fn fast(url: &str) -> RegistryClient {
    RegistryClient::builder(url)
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
        .build()
        .unwrap()
}

#[tokio::test]
async fn client_against_the_server_uses_its_caches() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let (app, requests) = counted(cdc_registry::router(support::store(&db).await));
    let server = Server::start_router(app).await;
    let client = fast(&server.url());
    let seen = || requests.load(Ordering::SeqCst);
    let v1 = record("C", &[r#"{"name":"id","type":"int"}"#]);
    let v2 = record(
        "C",
        &[
            r#"{"name":"id","type":"int"}"#,
            r#"{"name":"n","type":"string","default":""}"#,
        ],
    );
    let breaking = record("C", &[r#"{"name":"id","type":"string"}"#]);

    let id = client.register("c-value", &v1).await.unwrap();
    assert_eq!(id, SchemaId(1));
    assert_eq!(seen(), 1);
    // Cache hits: no request at all.
    assert_eq!(client.register("c-value", &v1).await.unwrap(), id);
    assert_eq!(&*client.schema_by_id(id).await.unwrap(), v1.as_str());
    assert_eq!(seen(), 1);
    // Another subject is another question for the registry, with the same answer.
    assert_eq!(client.register("d-value", &v1).await.unwrap(), id);
    assert_eq!(seen(), 2);

    // A schema registered by someone else: fetched once, then cached.
    let other = server.http.register_ok("c-value", &v2).await;
    assert_eq!(seen(), 3);
    let fresh = fast(&server.url());
    assert_eq!(
        &*fresh.schema_by_id(SchemaId(2)).await.unwrap(),
        v2.as_str()
    );
    assert_eq!(
        &*fresh.schema_by_id(SchemaId(2)).await.unwrap(),
        v2.as_str()
    );
    assert_eq!(other, 2);
    assert_eq!(seen(), 4);

    // Latest and compatibility always ask.
    let latest = client.latest("c-value").await.unwrap();
    assert_eq!((latest.version, latest.id), (2, SchemaId(2)));
    assert_eq!(latest.schema, v2);
    assert_eq!(latest.subject, "c-value");
    client.latest("c-value").await.unwrap();
    assert_eq!(seen(), 6);
    assert!(client.check_compatibility("c-value", &v2).await.unwrap());
    assert!(!client
        .check_compatibility("c-value", &breaking)
        .await
        .unwrap());
    assert_eq!(seen(), 8);

    // Levels.
    assert_eq!(
        client.compatibility(Some("c-value")).await.unwrap(),
        CompatibilityLevel::Backward
    );
    assert_eq!(
        client
            .set_compatibility(Some("c-value"), CompatibilityLevel::None)
            .await
            .unwrap(),
        CompatibilityLevel::None
    );
    assert_eq!(
        client.compatibility(Some("c-value")).await.unwrap(),
        CompatibilityLevel::None
    );
    assert!(client
        .check_compatibility("c-value", &breaking)
        .await
        .unwrap());
    assert_eq!(
        client
            .set_compatibility(None, CompatibilityLevel::FullTransitive)
            .await
            .unwrap(),
        CompatibilityLevel::FullTransitive
    );
    assert_eq!(
        client.compatibility(None).await.unwrap(),
        CompatibilityLevel::FullTransitive
    );
    assert_eq!(
        client.compatibility(Some("d-value")).await.unwrap(),
        CompatibilityLevel::FullTransitive
    );

    // Refusals carry Confluent's code and are not retried.
    let before = seen();
    let missing = client.schema_by_id(SchemaId(99)).await.unwrap_err();
    assert_eq!(
        (missing.status(), missing.error_code()),
        (Some(404), Some(40403))
    );
    assert!(!missing.is_retryable());
    let invalid = client.register("c-value", "{").await.unwrap_err();
    assert_eq!(invalid.error_code(), Some(42201));
    let no_subject = client.latest("nope").await.unwrap_err();
    assert_eq!(no_subject.error_code(), Some(40401));
    client
        .set_compatibility(Some("d-value"), CompatibilityLevel::Backward)
        .await
        .unwrap();
    let incompatible = client.register("d-value", &breaking).await.unwrap_err();
    assert_eq!(
        (incompatible.status(), incompatible.error_code()),
        (Some(409), Some(409))
    );
    assert_eq!(seen(), before + 5);
    // A refused registration is not cached.
    client
        .set_compatibility(Some("d-value"), CompatibilityLevel::None)
        .await
        .unwrap();
    assert_eq!(
        client.register("d-value", &breaking).await.unwrap(),
        SchemaId(3)
    );
    server.stop().await;
}

/// A stub registry that fails `failures` times with a 500 before answering `{"id": 7}`.
fn flaky(failures: usize) -> (Router, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let app = Router::new().route(
        "/subjects/{subject}/versions",
        post(move || {
            let seen = Arc::clone(&seen);
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) < failures {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        r#"{"error_code":50001,"message":"Error in the backend data store"}"#,
                    )
                        .into_response()
                } else {
                    (StatusCode::OK, r#"{"id":7}"#).into_response()
                }
            }
        }),
    );
    (app, calls)
}

#[tokio::test]
async fn transient_failures_are_retried_within_bounds() {
    let (app, calls) = flaky(2);
    let server = Server::start_router(app).await;
    let client = fast(&server.url());
    assert_eq!(client.register("s", "\"int\"").await.unwrap(), SchemaId(7));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    server.stop().await;

    let (app, calls) = flaky(usize::MAX);
    let server = Server::start_router(app).await;
    let client = RegistryClient::builder(&server.url())
        .max_retries(2)
        .backoff(Duration::from_millis(5), Duration::from_millis(5))
        .build()
        .unwrap();
    let error = client.register("s", "\"int\"").await.unwrap_err();
    assert_eq!(
        (error.status(), error.error_code()),
        (Some(500), Some(50001))
    );
    assert!(error.is_retryable());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    server.stop().await;

    // Nobody listening: connection errors are retried, then reported as such.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = RegistryClient::builder(&format!("http://127.0.0.1:{port}"))
        .max_retries(3)
        .backoff(Duration::from_millis(20), Duration::from_millis(40))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let error = client.schema_by_id(SchemaId(1)).await.unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(error.error_code(), None);
    // Waited 20 + 40 + 40 ms between the four attempts.
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn basic_auth_is_sent_and_never_shown() {
    let app = Router::new().route(
        "/schemas/ids/{id}",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if auth == "Basic dXNlcjpodW50ZXIy" {
                (StatusCode::OK, r#"{"schema":"\"int\""}"#).into_response()
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    r#"{"error_code":40101,"message":"Unauthorized"}"#,
                )
                    .into_response()
            }
        }),
    );
    let server = Server::start_router(app).await;
    let client = RegistryClient::builder(&server.url())
        .basic_auth("user", Secret::new("hunter2"))
        .build()
        .unwrap();
    assert_eq!(&*client.schema_by_id(SchemaId(1)).await.unwrap(), "\"int\"");
    assert!(!format!("{client:?}").contains("hunter2"));

    let with_url_credentials =
        RegistryClient::new(&server.url().replace("http://", "http://user:hunter2@")).unwrap();
    assert_eq!(
        &*with_url_credentials
            .schema_by_id(SchemaId(1))
            .await
            .unwrap(),
        "\"int\""
    );

    let anonymous = fast(&server.url());
    let error = anonymous.schema_by_id(SchemaId(1)).await.unwrap_err();
    assert_eq!(
        (error.status(), error.error_code()),
        (Some(401), Some(40101))
    );
    assert!(!error.is_retryable());
    server.stop().await;
}
