//! Shared test helpers: a registry server on an ephemeral port over a throwaway database, and raw HTTP.

#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;

use axum::Router;
use cdc_core::Secret;
use cdc_registry::{RegistryStore, StoreConfig, CONTENT_TYPE_V1};
use cdc_testkit::TestDb;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A store on `db` in the default schema.
pub async fn store(db: &TestDb) -> RegistryStore {
    RegistryStore::connect(StoreConfig::new(Secret::new(db.conn_string())))
        .await
        .expect("connect the registry store")
}

/// A registry server running in the background.
pub struct Server {
    pub addr: SocketAddr,
    pub http: Http,
    /// Whether it serves HTTPS (for `localhost`, the name the test certificate holds).
    pub tls: bool,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves `store` with the crate's own `serve`.
    pub async fn start(store: RegistryStore) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(cdc_registry::serve(listener, store, async move {
            let _ = rx.await;
        }));
        Server {
            addr,
            http: Http::new(addr),
            tls: false,
            shutdown: Some(tx),
            task,
        }
    }

    /// Serves `app` over HTTPS with the test certificate (`certs.server_cert`).
    pub async fn start_tls(app: Router, certs: &cdc_testkit::TestCerts) -> Server {
        let tls = cdc_registry::ServerTls::from_pem_files(&certs.server_cert, &certs.server_key)
            .expect("the test certificate makes a TLS server");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self::spawn(tls.listener(listener), addr, app, true)
    }

    /// Serves any router (e.g. the registry's with a counting layer).
    pub async fn start_router(app: Router) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self::spawn(listener, addr, app, false)
    }

    /// Serves `app` on `listener` in the background until [`Server::stop`].
    fn spawn<L>(listener: L, addr: SocketAddr, app: Router, tls: bool) -> Server
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        Server {
            addr,
            http: Http::new(addr),
            tls,
            shutdown: Some(tx),
            task,
        }
    }

    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// Stops accepting, finishes requests under way, and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}

/// A raw HTTP client for one server.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    base: String,
}

/// An answer, with the body as JSON (or `Value::Null` when it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// Asserts a 200 in the registry's content type and returns the JSON body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.content_type, CONTENT_TYPE_V1, "{self:?}");
        &self.json
    }

    /// Asserts a Confluent error body with this status and code.
    #[track_caller]
    pub fn error(&self, status: u16, code: u64) -> &str {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, CONTENT_TYPE_V1, "{self:?}");
        assert_eq!(self.json["error_code"].as_u64(), Some(code), "{self:?}");
        let message = self.json["message"].as_str();
        assert!(message.is_some_and(|m| !m.is_empty()), "{self:?}");
        message.unwrap_or_default()
    }
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            client: reqwest::Client::new(),
            base: format!("http://{addr}"),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    /// Registers `schema` under `subject` and returns the HTTP answer.
    pub async fn register(&self, subject: &str, schema: &str) -> Reply {
        self.post(
            &format!("/subjects/{subject}/versions"),
            serde_json::json!({ "schema": schema }),
        )
        .await
    }

    /// Registers and returns the id, asserting success.
    pub async fn register_ok(&self, subject: &str, schema: &str) -> u64 {
        let reply = self.register(subject, schema).await;
        reply.ok()["id"].as_u64().expect("an id")
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", CONTENT_TYPE_V1)
                .body(body.to_string());
        }
        Self::reply(request.send().await.expect("send")).await
    }

    /// Sends raw bytes with a given content type (or none).
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        Self::reply(request.send().await.expect("send")).await
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            text,
            json,
        }
    }
}

/// A record schema named `name` with the given fields (JSON fragments).
pub fn record(name: &str, fields: &[&str]) -> String {
    format!(
        r#"{{"type":"record","name":"{name}","namespace":"totesys","fields":[{}]}}"#,
        fields.join(",")
    )
}

/// Runs Confluent's stock Python client through `tests/interop/confluent_client.py`
/// against the registry at `url` with `env` added (its CA and credentials over HTTPS);
/// fails unless it exits 0 with its closing line. A missing venv fails, never skips.
pub async fn run_confluent_client(url: &str, env: &[(&str, &std::ffi::OsStr)]) {
    /// The longest the script may take; it needs about a second.
    const SCRIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
    let python = cdc_testkit::python::venv_python().unwrap_or_else(|e| panic!("{e}"));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/confluent_client.py");
    let run = tokio::process::Command::new(&python)
        .arg(script)
        .arg(url)
        .envs(env.iter().copied())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("confluent_client.py did not finish in {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "confluent_client.py against {url} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status,
    );
    assert!(
        stdout.contains("interop ok"),
        "confluent_client.py exited 0 without its closing line:\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
    );
}
