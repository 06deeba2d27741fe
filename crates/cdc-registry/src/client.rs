//! A client for any Confluent-compatible schema registry, with caches and retries.
//!
//! Ids and schemas never change once assigned, so `register` and `schema_by_id`
//! answer from memory after the first call; `latest` and compatibility checks always
//! ask. Transient failures (no connection, timeouts, 5xx, 429) are retried with
//! exponential backoff up to a bound; the registry's own refusals (404, 409, 422…)
//! are returned at once as [`ClientError::Registry`] with Confluent's `error_code`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cdc_core::Secret;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use crate::api::{
    CompatibilityResponse, ConfigUpdate, ConfigView, ErrorBody, RegisterResponse, RegisteredSchema,
    SchemaByIdResponse, SchemaId, SchemaRequest,
};
use crate::compat::CompatibilityLevel;
use crate::server::CONTENT_TYPE_V1;

/// What the client asks for, most specific first.
const ACCEPT_TYPES: &str = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; q=0.9, application/json; q=0.5";

/// A failure talking to a schema registry.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an `http(s)://` URL.
    #[error("invalid schema registry URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (without any password).
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client for the schema registry")]
    Build(#[source] reqwest::Error),
    /// The extra CA file could not be read or holds no certificate.
    #[error("registry CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The registry could not be reached, or the exchange broke off.
    #[error("cannot reach the schema registry ({method} {url})")]
    Transport {
        /// The request's method.
        method: Method,
        /// The request's URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The registry refused the request.
    #[error("schema registry answered HTTP {status} to {method} {url}: {message} (error code {error_code})")]
    Registry {
        /// The request's method.
        method: Method,
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Confluent's error code (e.g. 40401), or the HTTP status when the body had none.
        error_code: u32,
        /// The registry's message.
        message: String,
    },
    /// The registry answered 2xx with a body this client does not understand.
    #[error("unexpected answer from the schema registry to {method} {url}")]
    Decode {
        /// The request's method.
        method: Method,
        /// The request's URL.
        url: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// Confluent's error code, when the registry refused the request.
    pub fn error_code(&self) -> Option<u32> {
        match self {
            ClientError::Registry { error_code, .. } => Some(*error_code),
            _ => None,
        }
    }

    /// The HTTP status, when the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Registry { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (connection trouble, 5xx, 429).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { source, .. } => {
                !source.is_builder() && !is_tls_refusal(source)
            }
            ClientError::Registry { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// How requests prove who sends them.
#[derive(Debug, Clone)]
enum Auth {
    /// HTTP basic auth.
    Basic(String, Secret),
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
}

/// Builds a [`RegistryClient`]: base URL, optional basic auth or bearer token, an extra
/// CA for HTTPS, retry and timeout settings.
#[derive(Debug, Clone)]
pub struct RegistryClientBuilder {
    base_url: String,
    auth: Option<Auth>,
    ca_file: Option<std::path::PathBuf>,
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    timeout: Duration,
    connect_timeout: Duration,
}

impl RegistryClientBuilder {
    /// Authenticates every request with HTTP basic auth.
    pub fn basic_auth(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.auth = Some(Auth::Basic(user.into(), password));
        self
    }

    /// Authenticates every request with `Authorization: Bearer <token>` (instead of basic auth).
    pub fn bearer_token(mut self, token: Secret) -> Self {
        self.auth = Some(Auth::Bearer(token));
        self
    }

    /// Trusts the CA certificates in the PEM file `path` besides the system's roots.
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Retries a transient failure at most `retries` times (default 5; 0 disables retries).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Waits `initial` before the first retry, doubling up to `max` (defaults 100 ms and 5 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Gives up on one attempt after `timeout` (default 30 s), and on connecting after `connect` (default 10 s).
    pub fn timeouts(mut self, timeout: Duration, connect: Duration) -> Self {
        self.timeout = timeout;
        self.connect_timeout = connect;
        self
    }

    /// The client; fails on a URL that is not `http(s)://` or a CA file it cannot use.
    pub fn build(self) -> Result<RegistryClient, ClientError> {
        let mut base = Url::parse(self.base_url.trim()).map_err(|e| ClientError::InvalidUrl {
            url: redact(&self.base_url),
            reason: e.to_string(),
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::InvalidUrl {
                url: redact(&self.base_url),
                reason: "expected an http:// or https:// URL".to_owned(),
            });
        }
        // Credentials in the URL become basic auth, so the URL itself can be logged.
        let mut auth = self.auth;
        if !base.username().is_empty() || base.password().is_some() {
            if auth.is_none() {
                let password = Secret::new(base.password().unwrap_or_default());
                auth = Some(Auth::Basic(base.username().to_owned(), password));
            }
            let _ = base.set_username("");
            let _ = base.set_password(None);
        }
        let mut http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout);
        if let Some(path) = &self.ca_file {
            http = http.tls_certs_merge(read_ca_file(path)?);
        }
        let http = http.build().map_err(ClientError::Build)?;
        Ok(RegistryClient {
            http,
            base,
            auth,
            max_retries: self.max_retries,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            cache: Mutex::new(Cache::default()),
        })
    }
}

/// A client of a Confluent-compatible schema registry; share one per process (it is `Sync`).
#[derive(Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    auth: Option<Auth>,
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    cache: Mutex<Cache>,
}

/// What never changes once the registry said it: id → schema, (subject, schema text) → id.
#[derive(Debug, Default)]
struct Cache {
    schemas: HashMap<SchemaId, Arc<str>>,
    ids: HashMap<(String, String), SchemaId>,
}

impl RegistryClient {
    /// A client of the registry at `base_url` (e.g. `http://localhost:8081`) with default settings.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::builder(base_url).build()
    }

    /// A builder for a client of the registry at `base_url`.
    pub fn builder(base_url: &str) -> RegistryClientBuilder {
        RegistryClientBuilder {
            base_url: base_url.to_owned(),
            auth: None,
            ca_file: None,
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The registry's base URL (without credentials).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Registers `schema` (Avro JSON) under `subject`; its id (from the cache when already registered here).
    pub async fn register(&self, subject: &str, schema: &str) -> Result<SchemaId, ClientError> {
        let key = (subject.to_owned(), schema.to_owned());
        if let Some(id) = self.cached(|cache| cache.ids.get(&key).copied()) {
            return Ok(id);
        }
        let body = SchemaRequest {
            schema: Some(schema.to_owned()),
            ..SchemaRequest::default()
        };
        let url = self.url(&["subjects", subject, "versions"], &[]);
        let response: RegisterResponse = self.call(Method::POST, url, Some(&body)).await?;
        self.cached(|cache| {
            cache.ids.insert(key, response.id);
            cache
                .schemas
                .entry(response.id)
                .or_insert_with(|| Arc::from(schema));
        });
        Ok(response.id)
    }

    /// The schema with id `id` (from the cache when seen before).
    pub async fn schema_by_id(&self, id: SchemaId) -> Result<Arc<str>, ClientError> {
        if let Some(schema) = self.cached(|cache| cache.schemas.get(&id).cloned()) {
            return Ok(schema);
        }
        let url = self.url(&["schemas", "ids", &id.to_string()], &[]);
        let response: SchemaByIdResponse = self.call(Method::GET, url, None::<&()>).await?;
        let schema: Arc<str> = Arc::from(response.schema);
        self.cached(|cache| cache.schemas.insert(id, Arc::clone(&schema)));
        Ok(schema)
    }

    /// The latest version of `subject` (always asked: it changes).
    pub async fn latest(&self, subject: &str) -> Result<RegisteredSchema, ClientError> {
        let url = self.url(&["subjects", subject, "versions", "latest"], &[]);
        let found: RegisteredSchema = self.call(Method::GET, url, None::<&()>).await?;
        self.cached(|cache| {
            cache
                .schemas
                .entry(found.id)
                .or_insert_with(|| Arc::from(found.schema.as_str()));
        });
        Ok(found)
    }

    /// Whether `schema` may be registered under `subject` given its compatibility level.
    pub async fn check_compatibility(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<bool, ClientError> {
        let body = SchemaRequest {
            schema: Some(schema.to_owned()),
            ..SchemaRequest::default()
        };
        let url = self.url(
            &["compatibility", "subjects", subject, "versions", "latest"],
            &[],
        );
        let response: CompatibilityResponse = self.call(Method::POST, url, Some(&body)).await?;
        Ok(response.is_compatible)
    }

    /// Sets the compatibility level of `subject`, or the global one for `None`; the level now in force.
    pub async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<CompatibilityLevel, ClientError> {
        let url = match subject {
            Some(subject) => self.url(&["config", subject], &[]),
            None => self.url(&["config"], &[]),
        };
        let body = ConfigUpdate {
            compatibility: level,
        };
        let response: ConfigUpdate = self.call(Method::PUT, url, Some(&body)).await?;
        Ok(response.compatibility)
    }

    /// The compatibility level that applies to `subject` (its own, else the global one), or the global one for `None`.
    pub async fn compatibility(
        &self,
        subject: Option<&str>,
    ) -> Result<CompatibilityLevel, ClientError> {
        let url = match subject {
            Some(subject) => self.url(&["config", subject], &[("defaultToGlobal", "true")]),
            None => self.url(&["config"], &[]),
        };
        let response: ConfigView = self.call(Method::GET, url, None::<&()>).await?;
        Ok(response.compatibility_level)
    }

    fn cached<T>(&self, f: impl FnOnce(&mut Cache) -> T) -> T {
        f(&mut self.cache.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The base URL with `segments` appended (each percent-encoded) and `query` added.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends a request, retrying transient failures, and decodes the answer as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(body) => Some(
                serde_json::to_vec(body).map_err(|source| ClientError::Decode {
                    method: method.clone(),
                    url: url.to_string(),
                    source,
                })?,
            ),
            None => None,
        };
        let mut attempt = 0;
        loop {
            match self.attempt(&method, &url, body.as_deref()).await {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
                        method,
                        url: url.to_string(),
                        source,
                    })
                }
                Err(error) if error.is_retryable() && attempt < self.max_retries => {
                    let wait = backoff(attempt, self.initial_backoff, self.max_backoff);
                    tracing::warn!(%error, attempt = attempt + 1, ?wait, "schema registry request failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, ClientError> {
        let transport = |source| ClientError::Transport {
            method: method.clone(),
            url: url.to_string(),
            source,
        };
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(ACCEPT, HeaderValue::from_static(ACCEPT_TYPES));
        match &self.auth {
            Some(Auth::Basic(user, password)) => {
                request = request.basic_auth(user, Some(password.expose()));
            }
            Some(Auth::Bearer(token)) => request = request.bearer_auth(token.expose()),
            None => {}
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1))
                .body(body.to_vec());
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            Err(refusal(method, url, status.as_u16(), &bytes))
        }
    }
}

/// The error for a non-2xx answer: Confluent's body when there is one, else the status alone.
fn refusal(method: &Method, url: &Url, status: u16, body: &[u8]) -> ClientError {
    let (error_code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => (error.error_code, error.message),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(200).collect();
            let message = if text.is_empty() {
                format!("HTTP {status} with no error body")
            } else {
                text
            };
            (u32::from(status), message)
        }
    };
    ClientError::Registry {
        method: method.clone(),
        url: url.to_string(),
        status,
        error_code,
        message,
    }
}

/// The certificates of the PEM file `path`.
fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let refuse = |reason: String| ClientError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| refuse(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| refuse(e.to_string()))?;
    if certs.is_empty() {
        return Err(refuse("no CERTIFICATE block in the file".to_owned()));
    }
    Ok(certs)
}

/// Whether `error` is the TLS layer refusing the server (an untrusted or misnamed
/// certificate): trying again will not help.
fn is_tls_refusal(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<rustls::Error>() {
            return true;
        }
        // An io::Error shows its inner error's source, not the inner error itself.
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => current.source(),
        };
    }
    false
}

/// The wait before retry number `attempt + 1`: `initial · 2^attempt`, at most `max`.
fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    initial
        .checked_mul(1_u32.checked_shl(attempt).unwrap_or(u32::MAX))
        .map_or(max, |wait| wait.min(max))
}

/// `url` without any password, for error messages.
fn redact(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) if url.contains('@') => "<unparseable URL with credentials>".to_owned(),
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("http://registry:8081/subjects/x/versions").unwrap()
    }

    #[test]
    fn confluent_error_bodies_keep_their_code() {
        let body = br#"{"error_code":40401,"message":"Subject 'x' not found."}"#;
        let error = refusal(&Method::GET, &url(), 404, body);
        assert_eq!(error.error_code(), Some(40401));
        assert_eq!(error.status(), Some(404));
        assert!(!error.is_retryable());
        assert_eq!(
            error.to_string(),
            "schema registry answered HTTP 404 to GET http://registry:8081/subjects/x/versions: \
             Subject 'x' not found. (error code 40401)"
        );
    }

    #[test]
    fn other_bodies_fall_back_to_the_status() {
        let error = refusal(&Method::POST, &url(), 502, b"<html>Bad gateway</html>");
        assert_eq!(error.error_code(), Some(502));
        assert!(error.is_retryable());
        assert!(error.to_string().contains("<html>Bad gateway</html>"));

        let error = refusal(&Method::POST, &url(), 503, b"");
        assert!(error.to_string().contains("HTTP 503 with no error body"));
        assert!(refusal(&Method::GET, &url(), 429, b"").is_retryable());
        assert!(!refusal(&Method::GET, &url(), 409, b"").is_retryable());
        let long = vec![b'x'; 5000];
        match refusal(&Method::GET, &url(), 500, &long) {
            ClientError::Registry { message, .. } => assert_eq!(message.len(), 200),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_bound() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let waits: Vec<u128> = (0..6)
            .map(|n| backoff(n, initial, max).as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(40, initial, max), max);
    }

    #[test]
    fn urls_encode_subjects_and_lose_credentials() {
        let client = RegistryClient::new("http://user:hunter2@registry:8081/prefix/").unwrap();
        assert_eq!(client.base_url(), "http://registry:8081/prefix/");
        let Some(Auth::Basic(user, password)) = client.auth.as_ref() else {
            panic!("{:?}", client.auth)
        };
        assert_eq!((user.as_str(), password.expose()), ("user", "hunter2"));
        let url = client.url(&["subjects", "a/b c", "versions"], &[("deleted", "true")]);
        assert_eq!(
            url.as_str(),
            "http://registry:8081/prefix/subjects/a%2Fb%20c/versions?deleted=true"
        );
        let error = RegistryClient::new("ftp://user:secret@host/").unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
        assert!(RegistryClient::new("not a url").is_err());
        assert!(!format!("{client:?}").contains("hunter2"));
        let bearer = RegistryClient::builder("https://registry/")
            .bearer_token(Secret::new("tok3n"))
            .build()
            .unwrap();
        assert!(!format!("{bearer:?}").contains("tok3n"));
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = RegistryClient::builder("https://r/")
            .ca_file(&missing)
            .build()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("registry CA file {}: ", missing.display())),
            "{error}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = RegistryClient::builder("https://r/")
            .ca_file(&empty)
            .build()
            .unwrap_err();
        assert!(
            error.to_string().contains("no CERTIFICATE block"),
            "{error}"
        );
    }
}
