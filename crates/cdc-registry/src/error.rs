//! What can go wrong in the registry: the REST API's errors, with Confluent's codes, and the store's.

use axum::http::StatusCode;

/// An error of the registry's REST API: its message is the one sent to clients.
///
/// Each kind maps to Confluent's numeric `error_code` and an HTTP status (see
/// [`RegistryError::error_code`] and [`RegistryError::status`]), so stock clients
/// recognise them.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// 40401: the subject has no versions (or only soft-deleted ones, unless asked for).
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 40402: the subject has no such version.
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    /// 40403: no schema with this id, or the schema is not registered under the subject.
    #[error("{}", match .0 { Some(id) => format!("Schema {id} not found"), None => "Schema not found".to_owned() })]
    SchemaNotFound(Option<String>),
    /// 40404: the subject was soft-deleted already.
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// 40405: a permanent delete of a subject that was not soft-deleted first.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// 40406: the version was soft-deleted already.
    #[error("Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// 40407: a permanent delete of a version that was not soft-deleted first.
    #[error("Subject '{subject}' Version {version} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// 40408: the subject has no compatibility level of its own.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    /// 409: the schema breaks the subject's compatibility level.
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .problems.join("; "))]
    IncompatibleSchema {
        /// The subject.
        subject: String,
        /// Why, one entry per failed check.
        problems: Vec<String>,
    },
    /// 42201: the schema (or the request carrying it) is not a valid Avro schema request.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// 42202: the version is neither a number in 1..=2^31-1 nor `latest`.
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    /// 42203: not one of the seven compatibility levels.
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    /// 42205: the request needs a registry mode this one does not offer (e.g. IMPORT).
    #[error("{0}")]
    OperationNotPermitted(String),
    /// 42208: the subject name is not usable.
    #[error("The specified subject '{0}' is not a valid subject name")]
    InvalidSubject(String),
    /// 50001: the PostgreSQL store failed; details go to the log, not to the client.
    #[error("Error in the backend data store")]
    Store(#[from] StoreError),
    /// A plain HTTP error outside the registry's own codes (unknown path, wrong method, …).
    #[error("{message}")]
    Http {
        /// The HTTP status, also used as the error code, as Confluent does.
        status: StatusCode,
        /// What to tell the client.
        message: String,
    },
}

impl RegistryError {
    /// Confluent's numeric `error_code` for this error.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted { .. } => 40406,
            RegistryError::VersionNotSoftDeleted { .. } => 40407,
            RegistryError::SubjectCompatibilityNotConfigured(_) => 40408,
            RegistryError::IncompatibleSchema { .. } => 409,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibilityLevel => 42203,
            RegistryError::OperationNotPermitted(_) => 42205,
            RegistryError::InvalidSubject(_) => 42208,
            RegistryError::Store(_) => 50001,
            RegistryError::Http { status, .. } => u32::from(status.as_u16()),
        }
    }

    /// The HTTP status the error is sent with.
    pub fn status(&self) -> StatusCode {
        match self {
            RegistryError::Http { status, .. } => *status,
            RegistryError::IncompatibleSchema { .. } => StatusCode::CONFLICT,
            RegistryError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            other => {
                // Confluent's codes start with the HTTP status: 40401 → 404, 42201 → 422.
                u16::try_from(other.error_code() / 100)
                    .ok()
                    .and_then(|status| StatusCode::from_u16(status).ok())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// A plain HTTP error whose code is its status.
    pub fn http(status: StatusCode, message: impl Into<String>) -> Self {
        RegistryError::Http {
            status,
            message: message.into(),
        }
    }
}

/// A failure of the PostgreSQL store behind the registry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The connection string does not parse (its text is not repeated: it may hold a password).
    #[error("invalid PostgreSQL connection string for the schema registry")]
    ConnectionString(#[source] tokio_postgres::Error),
    /// The configured PostgreSQL schema name cannot be used.
    #[error("invalid schema name {0:?} for the registry's tables: it must be non-empty, at most 63 bytes, without NUL")]
    SchemaName(String),
    /// Opening a connection failed.
    #[error("cannot connect to PostgreSQL for the schema registry")]
    Connect(#[source] cdc_pgtls::ConnectError),
    /// The store's TLS settings cannot be used (`sslmode`, a certificate file).
    #[error("the schema registry store's TLS settings")]
    Tls(#[source] cdc_pgtls::TlsError),
    /// A statement failed.
    #[error("schema registry store: cannot {what}")]
    Sql {
        /// What the statement was for.
        what: &'static str,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The connection pool was shut down (never happens while the store is alive).
    #[error("the schema registry store's connection pool is closed")]
    PoolClosed,
    /// A stored schema no longer parses (edited by hand, or written by a newer version).
    #[error("stored schema {id} does not parse: {reason}")]
    Corrupt {
        /// The schema's id.
        id: i32,
        /// The parser's complaint.
        reason: String,
    },
}

impl StoreError {
    /// A closure wrapping a `tokio_postgres::Error` into [`StoreError::Sql`] for `what`.
    pub(crate) fn sql(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Self {
        move |source| StoreError::Sql { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_statuses_and_messages_match_confluent() {
        let cases: Vec<(RegistryError, u32, u16, &str)> = vec![
            (
                RegistryError::SubjectNotFound("x".into()),
                40401,
                404,
                "Subject 'x' not found.",
            ),
            (
                RegistryError::VersionNotFound("3".into()),
                40402,
                404,
                "Version 3 not found.",
            ),
            (
                RegistryError::SchemaNotFound(Some("7".into())),
                40403,
                404,
                "Schema 7 not found",
            ),
            (
                RegistryError::SchemaNotFound(None),
                40403,
                404,
                "Schema not found",
            ),
            (
                RegistryError::SubjectSoftDeleted("x".into()),
                40404,
                404,
                "Subject 'x' was soft deleted.Set permanent=true to delete permanently",
            ),
            (
                RegistryError::SubjectNotSoftDeleted("x".into()),
                40405,
                404,
                "Subject 'x' was not deleted first before being permanently deleted",
            ),
            (
                RegistryError::VersionSoftDeleted {
                    subject: "x".into(),
                    version: 2,
                },
                40406,
                404,
                "Subject 'x' Version 2 was soft deleted.Set permanent=true to delete permanently",
            ),
            (
                RegistryError::VersionNotSoftDeleted {
                    subject: "x".into(),
                    version: 2,
                },
                40407,
                404,
                "Subject 'x' Version 2 was not deleted first before being permanently deleted",
            ),
            (
                RegistryError::SubjectCompatibilityNotConfigured("x".into()),
                40408,
                404,
                "Subject 'x' does not have subject-level compatibility configured",
            ),
            (
                RegistryError::IncompatibleSchema {
                    subject: "x".into(),
                    problems: vec!["a".into(), "b".into()],
                },
                409,
                409,
                "Schema being registered is incompatible with an earlier schema for subject \"x\", details: [a; b]",
            ),
            (
                RegistryError::InvalidSchema("bad".into()),
                42201,
                422,
                "Invalid schema: bad",
            ),
            (
                RegistryError::InvalidVersion("0".into()),
                42202,
                422,
                "The specified version '0' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"",
            ),
            (
                RegistryError::InvalidCompatibilityLevel,
                42203,
                422,
                "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive",
            ),
            (
                RegistryError::OperationNotPermitted("no".into()),
                42205,
                422,
                "no",
            ),
            (
                RegistryError::InvalidSubject("".into()),
                42208,
                422,
                "The specified subject '' is not a valid subject name",
            ),
            (
                RegistryError::Store(StoreError::SchemaName(String::new())),
                50001,
                500,
                "Error in the backend data store",
            ),
            (
                RegistryError::http(StatusCode::NOT_FOUND, "HTTP 404 Not Found"),
                404,
                404,
                "HTTP 404 Not Found",
            ),
        ];
        for (error, code, status, message) in cases {
            assert_eq!(error.error_code(), code, "{error:?}");
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.to_string(), message);
        }
    }
}
