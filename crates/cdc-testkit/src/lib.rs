//! Real services for tests and local runs: a throwaway PostgreSQL cluster with a fresh
//! database per test, and Apache Kafka brokers (one, or a cluster) as processes.
//!
//! ```text
//!   scripts/test ──► TOTESYS_CDC_TEST_PG_DIR=/tmp/xyz ──► PgCluster (one per test run, free port)
//!                                                           └─ TestDb "t_<pid>_<n>" per test, dropped on scope exit
//! ```
//!
//! Tests call [`TestDb::create`]; the first call in a process starts (or joins) the
//! cluster under `$TOTESYS_CDC_TEST_PG_DIR` (default `target/test-pg`), guarded by a
//! file lock so the test processes of one run share it.

pub mod audit;
mod broker;
mod cluster;
pub mod database;
pub mod python;
pub mod rows;
mod tls;
mod warehouse_check;

pub use broker::{KafkaBroker, KafkaCluster, KafkaInstall, KafkaOptions, SaslSslListener};
pub use cluster::{
    find_bin_dir, free_port, open_to_postgres, PgCluster, AUTH_ROLES, AUTH_ROLE_PASSWORD,
    SUPERUSER_PASSWORD,
};
pub use database::{shared_cluster, TestDb};
pub use tls::{TestCerts, TlsCluster, CERT_ROLE};
pub use warehouse_check::{check_warehouse, TableCheck};

use std::path::Path;

/// What can go wrong while setting up test infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// No PostgreSQL server binaries were found.
    #[error("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (install the `postgresql` package, or set PG_BIN_DIR)")]
    NoServer,
    /// A filesystem operation failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{what} failed")]
    Command {
        /// The program and what it said.
        what: String,
    },
    /// A SQL statement failed.
    #[error("{what}")]
    Sql {
        /// The statement's purpose.
        what: String,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl TestkitError {
    fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        TestkitError::Io {
            op,
            path: path.display().to_string(),
            source,
        }
    }

    fn spawn(program: &'static str, source: std::io::Error) -> Self {
        TestkitError::Spawn { program, source }
    }

    fn sql(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let what = what.into();
        move |source| TestkitError::Sql { what, source }
    }
}
