//! The registry over HTTPS with basic auth, as a production deployment runs it: our
//! client and Confluent's stock Python client reach it with a test CA and a user from
//! the users file; a wrong password, a missing CA and plain HTTP each fail in one line.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use cdc_core::Secret;
use cdc_registry::{ClientError, RegistryClient, Users};
use cdc_testkit::{TestCerts, TestDb};
use support::Server;

const USER: &str = "pipeline";
const PASSWORD: &str = "registry-Pa55-for-the-test";
const SCHEMA: &str = r#"{"type":"record","name":"Staff","fields":[{"name":"id","type":"int"}]}"#;

/// A TLS registry over a fresh database that requires [`USER`].
async fn secure_registry(db: &TestDb, certs: &TestCerts) -> Server {
    let line = cdc_registry::user_line_with(USER, PASSWORD, 10_000).unwrap();
    let users = Users::parse(&line, "test users").unwrap();
    let app = users.protect(cdc_registry::router(support::store(db).await));
    Server::start_tls(app, certs).await
}

fn certs(dir: &tempfile::TempDir) -> TestCerts {
    TestCerts::generate(&dir.path().join("certs")).unwrap()
}

#[tokio::test]
async fn our_client_reaches_a_tls_registry_with_basic_auth_and_each_mistake_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(&dir);
    let db = TestDb::create().await.unwrap();
    let server = secure_registry(&db, &certs).await;
    let url = server.url();

    let client = RegistryClient::builder(&url)
        .ca_file(&certs.ca)
        .basic_auth(USER, Secret::new(PASSWORD))
        .build()
        .unwrap();
    let id = client.register("staff-value", SCHEMA).await.unwrap();
    let fresh = RegistryClient::builder(&url)
        .ca_file(&certs.ca)
        .basic_auth(USER, Secret::new(PASSWORD))
        .build()
        .unwrap();
    assert_eq!(&*fresh.schema_by_id(id).await.unwrap(), SCHEMA);
    assert_eq!(fresh.latest("staff-value").await.unwrap().id, id);

    // A wrong password: Confluent's 401, one line, not retried, no password in it.
    let wrong = RegistryClient::builder(&url)
        .ca_file(&certs.ca)
        .basic_auth(USER, Secret::new("not-the-password"))
        .backoff(Duration::from_secs(30), Duration::from_secs(30))
        .build()
        .unwrap();
    let error = wrong.latest("staff-value").await.unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert!(!error.is_retryable());
    let text = cdc_core::error_chain(&error);
    assert_eq!(
        text,
        format!(
            "schema registry answered HTTP 401 to GET {url}/subjects/staff-value/versions/latest: \
             Unauthorized: wrong user name or password (error code 401)"
        )
    );
    assert!(!text.contains("not-the-password"));

    // No credentials at all.
    let anonymous = RegistryClient::builder(&url)
        .ca_file(&certs.ca)
        .build()
        .unwrap();
    let error = anonymous.latest("staff-value").await.unwrap_err();
    assert!(
        cdc_core::error_chain(&error)
            .contains("Unauthorized: the request has no basic-auth credentials"),
        "{error}"
    );

    // Without the test CA the server's certificate is not trusted; no retry mends that.
    let untrusting = RegistryClient::builder(&url)
        .basic_auth(USER, Secret::new(PASSWORD))
        .backoff(Duration::from_secs(30), Duration::from_secs(30))
        .build()
        .unwrap();
    let error = untrusting.latest("staff-value").await.unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
    assert!(!error.is_retryable(), "{error:?}");
    let text = cdc_core::error_chain(&error);
    assert!(
        text.starts_with(&format!("cannot reach the schema registry (GET {url}/"))
            && text.contains("UnknownIssuer"),
        "{text}"
    );

    // A CA that signed something else.
    let other = RegistryClient::builder(&url)
        .ca_file(&certs.other_ca)
        .backoff(Duration::from_secs(30), Duration::from_secs(30))
        .build()
        .unwrap();
    let error = other.latest("staff-value").await.unwrap_err();
    assert!(
        !error.is_retryable() && cdc_core::error_chain(&error).contains("UnknownIssuer"),
        "{error}"
    );

    // The right CA but the wrong name: 127.0.0.1 is not in the certificate.
    let misnamed = RegistryClient::builder(&format!("https://{}", server.addr))
        .ca_file(&certs.ca)
        .backoff(Duration::from_secs(30), Duration::from_secs(30))
        .build()
        .unwrap();
    let error = misnamed.latest("staff-value").await.unwrap_err();
    assert!(
        !error.is_retryable()
            && cdc_core::error_chain(&error)
                .contains("certificate not valid for name \"127.0.0.1\""),
        "{}",
        cdc_core::error_chain(&error)
    );

    // Plain HTTP to the TLS port gets no answer it can read.
    let plain = RegistryClient::builder(&format!("http://{}", server.addr))
        .max_retries(0)
        .build()
        .unwrap();
    assert!(plain.latest("staff-value").await.is_err());

    // The probes stay open for orchestrators.
    let https = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).unwrap()).unwrap(),
        ])
        .build()
        .unwrap();
    for probe in ["/healthz", "/readyz"] {
        let reply = https.get(format!("{url}{probe}")).send().await.unwrap();
        assert_eq!(reply.status(), 200, "{probe}");
    }
    let refused = https.get(format!("{url}/subjects")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused
        .headers()
        .get("www-authenticate")
        .is_some_and(|v| v.to_str().unwrap().starts_with("Basic realm=")));
    server.stop().await;
}

#[tokio::test]
async fn a_bearer_token_is_sent_as_authorization_bearer() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(&dir);
    // A stand-in for a managed registry that takes tokens: it answers only `Bearer tok3n`.
    let app = Router::new().route(
        "/subjects/{subject}/versions/latest",
        get(|headers: HeaderMap| async move {
            let authorized = headers
                .get("authorization")
                .is_some_and(|v| v == "Bearer tok3n");
            if authorized {
                (
                    axum::http::StatusCode::OK,
                    r#"{"subject":"s","version":1,"id":7,"schema":"\"string\""}"#,
                )
            } else {
                (
                    axum::http::StatusCode::UNAUTHORIZED,
                    r#"{"error_code":401,"message":"bad token"}"#,
                )
            }
        }),
    );
    let server = Server::start_tls(app, &certs).await;
    let client = RegistryClient::builder(&server.url())
        .ca_file(&certs.ca)
        .bearer_token(Secret::new("tok3n"))
        .build()
        .unwrap();
    assert_eq!(
        client.latest("s").await.unwrap().id,
        cdc_registry::SchemaId(7)
    );
    let wrong = RegistryClient::builder(&server.url())
        .ca_file(&certs.ca)
        .bearer_token(Secret::new("other"))
        .build()
        .unwrap();
    assert_eq!(wrong.latest("s").await.unwrap_err().status(), Some(401));
    server.stop().await;
}

#[tokio::test]
async fn confluent_python_client_works_over_https_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(&dir);
    // A fresh database: the script expects schema ids to start at 1.
    let db = TestDb::create().await.unwrap();
    let server = secure_registry(&db, &certs).await;
    let user_info = format!("{USER}:{PASSWORD}");
    support::run_confluent_client(
        &server.url(),
        &[
            ("CDC_REGISTRY_CA", certs.ca.as_os_str()),
            ("CDC_REGISTRY_USER_INFO", user_info.as_ref()),
        ],
    )
    .await;
    server.stop().await;
}
