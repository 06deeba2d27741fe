//! What can go wrong while reading from the source database.

use std::io;

use cdc_core::{Lsn, TableId};

use crate::pgoutput::DecodeError;
use crate::sink::SinkError;
use crate::text_value::ValueError;

/// An error from the source side of capture; each message is one line naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to PostgreSQL at {addr}")]
    Connect {
        /// `host:port` tried.
        addr: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// TLS to the server could not be set up or failed: a setting, a certificate file,
    /// the handshake, or a server that refuses TLS where the mode requires it.
    #[error(transparent)]
    Tls(#[from] cdc_pgtls::TlsError),
    /// A regular (non-replication) connection could not be opened.
    #[error("{what}")]
    Connection {
        /// What the connection was for.
        what: String,
        /// Why it failed, with the TLS settings in force.
        #[source]
        source: cdc_pgtls::ConnectError,
    },
    /// The connection broke while in use.
    #[error("connection to PostgreSQL lost")]
    Io(#[from] io::Error),
    /// The server answered with an error.
    #[error("{context}: {message} (SQLSTATE {code}){}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Server {
        /// What we were doing.
        context: String,
        /// SQLSTATE code.
        code: String,
        /// The server's message.
        message: String,
        /// The server's detail, when given.
        detail: Option<String>,
    },
    /// The server asked for an authentication method this client does not speak.
    #[error("PostgreSQL asked for unsupported authentication method {0} (supported: trust, password, md5, SCRAM-SHA-256)")]
    UnsupportedAuth(String),
    /// The server wants a password and none was configured.
    #[error("PostgreSQL asked for a password for user {user:?} and none is configured (set source.password or PGPASSWORD)")]
    PasswordRequired {
        /// The user name.
        user: String,
    },
    /// The server sent something the protocol does not allow here.
    #[error("protocol violation from PostgreSQL: {0}")]
    Protocol(String),
    /// The source is not configured for logical decoding.
    #[error("wal_level is {actual:?} but logical replication needs 'logical': set wal_level = logical in postgresql.conf and restart PostgreSQL")]
    WalLevel {
        /// The server's current `wal_level`.
        actual: String,
    },
    /// The role cannot replicate.
    #[error("role {user:?} lacks the REPLICATION attribute: ALTER ROLE {user} REPLICATION (or use a role that has it)")]
    NoReplicationPrivilege {
        /// The role.
        user: String,
    },
    /// Another process is reading the slot.
    #[error("replication slot {slot:?} is in use by process {pid}: stop the other reader, or configure another slot name")]
    SlotInUse {
        /// The slot.
        slot: String,
        /// The walsender process holding it.
        pid: i32,
    },
    /// A configured table does not exist or is not published.
    #[error("table {0} does not exist in the source database")]
    MissingTable(String),
    /// A pgoutput message could not be decoded.
    #[error("cannot decode pgoutput message at {lsn}")]
    Decode {
        /// WAL position of the message.
        lsn: Lsn,
        /// The cause.
        #[source]
        source: DecodeError,
    },
    /// A change refers to a relation that was never described.
    #[error("change for relation {0} arrived before its Relation message")]
    UnknownRelation(TableId),
    /// A column value could not be typed.
    #[error("bad value in {table}.{column}")]
    Value {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The cause.
        #[source]
        source: ValueError,
    },
    /// A query over a regular connection failed.
    #[error("{what}")]
    Sql {
        /// What the query was for.
        what: String,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The sink refused or lost a write.
    #[error("sink failed")]
    Sink(#[from] SinkError),
    /// Spilling a streamed transaction to disk failed.
    #[error("cannot spill streamed transaction to {path}")]
    Spill {
        /// The spill file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The sink holds transactions past the source's WAL end (another database's topics).
    #[error("the sink holds source transactions through {held} but the source's WAL ends at {wal_end}: the topics belong to another database or the source was restored to an earlier point; publish to a new topic prefix (or clear the topics) before capturing")]
    SinkAhead {
        /// The commit LSN the sink holds transactions through.
        held: cdc_core::Lsn,
        /// The source's current WAL position.
        wal_end: cdc_core::Lsn,
    },
    /// The checkpoint store failed.
    #[error("checkpoint store at {path}")]
    Checkpoint {
        /// Where the checkpoint lives.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl SourceError {
    /// A closure turning a `tokio_postgres::Error` into [`SourceError::Sql`], mapping
    /// well-known causes (missing table, insufficient privilege) to their own kinds.
    pub fn sql(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SourceError {
        let what = what.into();
        move |source| match source.as_db_error() {
            Some(db) => SourceError::server(what, db),
            None => SourceError::Sql { what, source },
        }
    }

    /// The server's own error (its SQLSTATE, message and detail) while doing `context`.
    pub fn server(context: impl Into<String>, db: &tokio_postgres::error::DbError) -> SourceError {
        SourceError::Server {
            context: context.into(),
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
        }
    }

    /// The category of the failure, for metrics: `source` (connecting to, querying or
    /// streaming from PostgreSQL), `decode` (a message or value capture cannot read), `sink` (where the
    /// events go) or `state` (spill files, the checkpoint).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Connect { .. }
            | SourceError::Tls(_)
            | SourceError::Connection { .. }
            | SourceError::Io(_)
            | SourceError::Server { .. }
            | SourceError::UnsupportedAuth(_)
            | SourceError::PasswordRequired { .. }
            | SourceError::WalLevel { .. }
            | SourceError::NoReplicationPrivilege { .. }
            | SourceError::SlotInUse { .. }
            | SourceError::MissingTable(_)
            | SourceError::SinkAhead { .. }
            | SourceError::Sql { .. }
            | SourceError::Protocol(_) => "source",
            SourceError::Decode { .. }
            | SourceError::UnknownRelation(_)
            | SourceError::Value { .. } => "decode",
            SourceError::Sink(_) => "sink",
            SourceError::Spill { .. } | SourceError::Checkpoint { .. } => "state",
        }
    }

    /// Whether retrying (reconnecting) may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Connect { .. } | SourceError::Io(_) | SourceError::SlotInUse { .. } => {
                true
            }
            SourceError::Server { code, .. } => {
                // 08: connection exception, 57P: operator intervention, 53: insufficient resources.
                code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
            }
            SourceError::Sql { source, .. } => source.is_closed(),
            SourceError::Connection { source, .. } => source.is_retryable(),
            SourceError::Sink(error) => !matches!(error, SinkError::Rejected(..)),
            _ => false,
        }
    }
}
