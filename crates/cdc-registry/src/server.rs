//! The Confluent Schema Registry REST API over a [`RegistryStore`].
//!
//! Every API answer, errors included, is JSON with content type
//! `application/vnd.schemaregistry.v1+json`; errors carry Confluent's `error_code`.
//! The probes `/healthz` (the process answers) and `/readyz` (its database answers
//! within [`READY_TIMEOUT`]) reply in plain text, like every other component's.
//! Bad input of any kind (malformed JSON, unknown levels, odd path segments) is
//! answered with such an error, never a panic.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::api::{
    CompatibilityResponse, ConfigRequest, ConfigUpdate, ConfigView, ErrorBody, RegisterResponse,
    SchemaByIdResponse, SchemaId, SchemaRequest,
};
use crate::canonical::{self, ParsedSchema};
use crate::compat::CompatibilityLevel;
use crate::error::RegistryError;
use crate::store::{RegistryStore, VersionSpec};

/// The content type of every response, and the preferred one for requests.
pub const CONTENT_TYPE_V1: &str = "application/vnd.schemaregistry.v1+json";

/// Request content types accepted besides [`CONTENT_TYPE_V1`] (as Confluent does).
const ACCEPTED_CONTENT_TYPES: [&str; 4] = [
    CONTENT_TYPE_V1,
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

/// How long `/readyz` waits for the database before answering 503.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The paths of the probes (`/healthz`, `/readyz`), which are not part of the API.
pub const PROBE_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The registry's routes over `store`, probes included.
pub fn router(store: RegistryStore) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_against_level),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_against_version),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(mode))
        .route("/mode/{subject}", get(mode))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(store)
}

/// Serves the registry on `listener` until `shutdown` completes, then finishes the requests under way.
pub async fn serve(
    listener: TcpListener,
    store: RegistryStore,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, schema = store.schema_name(), "schema registry listening");
    }
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown)
        .await
}

type Reply = Result<Response, RegistryError>;

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        if let RegistryError::Store(source) = &self {
            tracing::error!(error = %ErrorChain(source), "schema registry store failed");
        }
        let body = ErrorBody {
            error_code: self.error_code(),
            message: self.to_string(),
        };
        let mut response = json(&body);
        *response.status_mut() = self.status();
        response
    }
}

/// Displays an error with its chain of sources, for the log.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// `value` as a 200 response in the registry's content type.
pub(crate) fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => with_content_type(body),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a registry response");
            let mut response = with_content_type(
                br#"{"error_code":500,"message":"HTTP 500 Internal Server Error"}"#.to_vec(),
            );
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

fn with_content_type(body: Vec<u8>) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1));
    response
}

/// Path parameters whose rejection is a registry error rather than plain text.
struct Params<T>(T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = RegistryError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Params(value)),
            Err(rejection) => Err(RegistryError::http(
                rejection.status(),
                rejection.body_text(),
            )),
        }
    }
}

/// Query parameters as flags and strings; Confluent's clients add ones we ignore (`normalize`, `format`, …).
struct Flags(HashMap<String, String>);

impl Flags {
    fn is_set(&self, name: &str) -> bool {
        self.0
            .get(name)
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Flags {
    type Rejection = RegistryError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<HashMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Query(map)) => Ok(Flags(map)),
            Err(rejection) => Err(RegistryError::http(
                rejection.status(),
                rejection.body_text(),
            )),
        }
    }
}

/// A request body of an accepted content type.
struct Body(Bytes);

impl Body {
    /// The body as JSON of type `T`; a body that is not is reported with `invalid`.
    fn json<T: DeserializeOwned>(
        &self,
        invalid: impl FnOnce(String) -> RegistryError,
    ) -> Result<T, RegistryError> {
        serde_json::from_slice(&self.0).map_err(|e| invalid(e.to_string()))
    }
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = RegistryError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(value) = req.headers().get(CONTENT_TYPE) {
            let essence = value
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if !ACCEPTED_CONTENT_TYPES.contains(&essence.as_str()) {
                return Err(RegistryError::http(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "HTTP 415 Unsupported Media Type",
                ));
            }
        }
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) => Err(RegistryError::http(
                rejection.status(),
                rejection.body_text(),
            )),
        }
    }
}

/// The Avro schema in a register, lookup or compatibility request.
fn submitted_schema(body: &Body) -> Result<(SchemaRequest, ParsedSchema), RegistryError> {
    let request: SchemaRequest = body.json(RegistryError::InvalidSchema)?;
    if let Some(kind) = &request.schema_type {
        if !kind.eq_ignore_ascii_case("AVRO") {
            return Err(RegistryError::InvalidSchema(format!(
                "schema type {kind} is not supported; this registry holds AVRO schemas only"
            )));
        }
    }
    if request
        .references
        .as_ref()
        .is_some_and(|refs| !refs.is_empty())
    {
        return Err(RegistryError::InvalidSchema(
            "schema references are not supported by this registry".to_owned(),
        ));
    }
    let text = request.schema.as_deref().unwrap_or_default();
    let parsed = canonical::parse(text).map_err(RegistryError::InvalidSchema)?;
    Ok((request, parsed))
}

/// Rejects subject names Confluent rejects: empty, or with control characters.
fn valid_subject(subject: &str) -> Result<(), RegistryError> {
    if subject.is_empty() || subject.chars().any(char::is_control) {
        return Err(RegistryError::InvalidSubject(subject.to_owned()));
    }
    Ok(())
}

/// A schema id from a path segment; anything else names no schema.
fn schema_id(text: &str) -> Result<SchemaId, RegistryError> {
    match text.trim().parse::<u32>() {
        Ok(id) if id > 0 => Ok(SchemaId(id)),
        _ => Err(RegistryError::SchemaNotFound(Some(text.to_owned()))),
    }
}

async fn root() -> Response {
    json(&serde_json::json!({}))
}

async fn health(State(store): State<RegistryStore>) -> Reply {
    store.ping().await?;
    Ok(json(&serde_json::json!({ "status": "UP" })))
}

async fn readyz(State(store): State<RegistryStore>) -> (StatusCode, String) {
    match tokio::time::timeout(READY_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".into()),
        Ok(Err(e)) => {
            tracing::warn!(error = %ErrorChain(&e), "readiness: the registry's database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the database does not answer\n".into(),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the database did not answer within {READY_TIMEOUT:?}\n"),
        ),
    }
}

async fn schema_types() -> Response {
    json(&["AVRO"])
}

async fn schema_by_id(
    State(store): State<RegistryStore>,
    Params(id): Params<String>,
    _flags: Flags,
) -> Reply {
    // `?subject=` only picks a context in Confluent; this registry has the default one only.
    let id = schema_id(&id)?;
    let schema = store
        .schema_text(id)
        .await?
        .ok_or_else(|| RegistryError::SchemaNotFound(Some(id.to_string())))?;
    Ok(json(&SchemaByIdResponse {
        schema,
        schema_type: None,
    }))
}

async fn schema_text_by_id(
    State(store): State<RegistryStore>,
    Params(id): Params<String>,
) -> Reply {
    let id = schema_id(&id)?;
    let schema = store
        .schema_text(id)
        .await?
        .ok_or_else(|| RegistryError::SchemaNotFound(Some(id.to_string())))?;
    Ok(with_content_type(schema.into_bytes()))
}

async fn versions_by_id(
    State(store): State<RegistryStore>,
    Params(id): Params<String>,
    flags: Flags,
) -> Reply {
    let id = schema_id(&id)?;
    let versions = store
        .versions_of(id, flags.is_set("deleted"))
        .await?
        .ok_or_else(|| RegistryError::SchemaNotFound(Some(id.to_string())))?;
    Ok(json(&versions))
}

async fn subjects_by_id(
    State(store): State<RegistryStore>,
    Params(id): Params<String>,
    flags: Flags,
) -> Reply {
    let id = schema_id(&id)?;
    let versions = store
        .versions_of(id, flags.is_set("deleted"))
        .await?
        .ok_or_else(|| RegistryError::SchemaNotFound(Some(id.to_string())))?;
    let mut subjects: Vec<String> = versions.into_iter().map(|v| v.subject).collect();
    subjects.dedup();
    Ok(json(&subjects))
}

async fn list_subjects(State(store): State<RegistryStore>, flags: Flags) -> Reply {
    let prefix = flags.0.get("subjectPrefix").map_or("", String::as_str);
    let subjects = store.subjects(flags.is_set("deleted"), prefix).await?;
    Ok(json(&subjects))
}

async fn list_versions(
    State(store): State<RegistryStore>,
    Params(subject): Params<String>,
    flags: Flags,
) -> Reply {
    let versions = store
        .version_numbers(&subject, flags.is_set("deleted"))
        .await?;
    Ok(json(&versions))
}

async fn register(
    State(store): State<RegistryStore>,
    Params(subject): Params<String>,
    body: Body,
) -> Reply {
    valid_subject(&subject)?;
    let (request, parsed) = submitted_schema(&body)?;
    let wanted = request.id.filter(|id| *id > 0);
    let id = store.register(&subject, &parsed, wanted).await?;
    Ok(json(&RegisterResponse { id }))
}

async fn lookup(
    State(store): State<RegistryStore>,
    Params(subject): Params<String>,
    flags: Flags,
    body: Body,
) -> Reply {
    let (_, parsed) = submitted_schema(&body)?;
    let found = store
        .lookup(&subject, &parsed, flags.is_set("deleted"))
        .await?;
    Ok(json(&found))
}

async fn delete_subject(
    State(store): State<RegistryStore>,
    Params(subject): Params<String>,
    flags: Flags,
) -> Reply {
    let versions = store
        .delete_subject(&subject, flags.is_set("permanent"))
        .await?;
    Ok(json(&versions))
}

async fn get_version(
    State(store): State<RegistryStore>,
    Params((subject, version)): Params<(String, String)>,
    flags: Flags,
) -> Reply {
    let spec = VersionSpec::parse(&version)?;
    let found = store
        .version(&subject, spec, flags.is_set("deleted"))
        .await?;
    Ok(json(&found))
}

async fn get_version_schema(
    State(store): State<RegistryStore>,
    Params((subject, version)): Params<(String, String)>,
    flags: Flags,
) -> Reply {
    let spec = VersionSpec::parse(&version)?;
    let found = store
        .version(&subject, spec, flags.is_set("deleted"))
        .await?;
    Ok(with_content_type(found.schema.into_bytes()))
}

async fn referenced_by(
    State(store): State<RegistryStore>,
    Params((subject, version)): Params<(String, String)>,
    flags: Flags,
) -> Reply {
    // References are not supported, so nothing refers to anything; the version must exist.
    let spec = VersionSpec::parse(&version)?;
    store
        .version(&subject, spec, flags.is_set("deleted"))
        .await?;
    Ok(json(&[0_u32; 0]))
}

async fn delete_version(
    State(store): State<RegistryStore>,
    Params((subject, version)): Params<(String, String)>,
    flags: Flags,
) -> Reply {
    let spec = VersionSpec::parse(&version)?;
    let deleted = store
        .delete_version(&subject, spec, flags.is_set("permanent"))
        .await?;
    Ok(json(&deleted))
}

async fn check_against_level(
    State(store): State<RegistryStore>,
    Params(subject): Params<String>,
    flags: Flags,
    body: Body,
) -> Reply {
    check(&store, &subject, None, &flags, &body).await
}

async fn check_against_version(
    State(store): State<RegistryStore>,
    Params((subject, version)): Params<(String, String)>,
    flags: Flags,
    body: Body,
) -> Reply {
    let spec = VersionSpec::parse(&version)?;
    check(&store, &subject, Some(spec), &flags, &body).await
}

async fn check(
    store: &RegistryStore,
    subject: &str,
    spec: Option<VersionSpec>,
    flags: &Flags,
    body: &Body,
) -> Reply {
    let (_, parsed) = submitted_schema(body)?;
    let problems = store.check(subject, spec, &parsed).await?;
    Ok(json(&CompatibilityResponse {
        is_compatible: problems.is_empty(),
        messages: flags.is_set("verbose").then_some(problems),
    }))
}

/// The level in a `PUT /config` body.
fn requested_level(body: &Body) -> Result<CompatibilityLevel, RegistryError> {
    let request: ConfigRequest = body.json(|_| RegistryError::InvalidCompatibilityLevel)?;
    let value = request
        .compatibility
        .or(request.compatibility_level)
        .ok_or(RegistryError::InvalidCompatibilityLevel)?;
    value
        .as_str()
        .and_then(|name| name.parse().ok())
        .ok_or(RegistryError::InvalidCompatibilityLevel)
}

async fn get_global_config(State(store): State<RegistryStore>) -> Reply {
    let level = store.level(None).await?.unwrap_or_default();
    Ok(json(&ConfigView {
        compatibility_level: level,
    }))
}

async fn put_global_config(State(store): State<RegistryStore>, body: Body) -> Reply {
    let level = requested_level(&body)?;
    store.set_level(None, level).await?;
    Ok(json(&ConfigUpdate {
        compatibility: level,
    }))
}

async fn delete_global_config(State(store): State<RegistryStore>) -> Reply {
    let previous = store.delete_level(None).await?.unwrap_or_default();
    Ok(json(&ConfigView {
        compatibility_level: previous,
    }))
}

async fn get_subject_config(
    State(store): State<RegistryStore>,
    Params(subject): Params<String>,
    flags: Flags,
) -> Reply {
    let level = match store.level(Some(&subject)).await? {
        Some(level) => level,
        None if flags.is_set("defaultToGlobal") => store.level(None).await?.unwrap_or_default(),
        None => return Err(RegistryError::SubjectCompatibilityNotConfigured(subject)),
    };
    Ok(json(&ConfigView {
        compatibility_level: level,
    }))
}

async fn put_subject_config(
    State(store): State<RegistryStore>,
    Params(subject): Params<String>,
    body: Body,
) -> Reply {
    valid_subject(&subject)?;
    let level = requested_level(&body)?;
    store.set_level(Some(&subject), level).await?;
    Ok(json(&ConfigUpdate {
        compatibility: level,
    }))
}

async fn delete_subject_config(
    State(store): State<RegistryStore>,
    Params(subject): Params<String>,
) -> Reply {
    // Confluent answers 40401 for a subject without a level of its own.
    let previous = store
        .delete_level(Some(&subject))
        .await?
        .ok_or(RegistryError::SubjectNotFound(subject))?;
    Ok(json(&ConfigView {
        compatibility_level: previous,
    }))
}

async fn mode() -> Response {
    // Always read-write: IMPORT and READONLY modes are not offered.
    json(&serde_json::json!({ "mode": "READWRITE" }))
}

async fn not_found() -> RegistryError {
    RegistryError::http(StatusCode::NOT_FOUND, "HTTP 404 Not Found")
}

async fn method_not_allowed() -> RegistryError {
    RegistryError::http(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP 405 Method Not Allowed",
    )
}
