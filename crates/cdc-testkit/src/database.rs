//! A fresh database per test on the shared cluster, dropped when the test ends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use tokio_postgres::Client;

use crate::{PgCluster, TestkitError, AUTH_ROLES, AUTH_ROLE_PASSWORD};

static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The cluster shared by this test run, started on first use.
pub fn shared_cluster() -> Result<PgCluster, TestkitError> {
    CLUSTER
        .get_or_init(|| {
            let root = std::env::var_os("TOTESYS_CDC_TEST_PG_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-pg")
                });
            PgCluster::ensure_running(&root)
                .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))
        })
        .clone()
        .map_err(|what| TestkitError::Command { what })
}

/// A database created for one test; dropped (with its replication slots) on drop.
#[derive(Debug)]
pub struct TestDb {
    /// The cluster it lives in.
    pub cluster: PgCluster,
    /// The database's name.
    pub name: String,
}

impl TestDb {
    /// Creates a new, empty database and makes sure the auth-test roles exist.
    pub async fn create() -> Result<Self, TestkitError> {
        Self::create_in(shared_cluster()?).await
    }

    /// Like [`TestDb::create`], in `cluster` (one a test owns, to restart it).
    pub async fn create_in(cluster: PgCluster) -> Result<Self, TestkitError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("t_{}_{}_{}", std::process::id(), n, rand::random::<u16>());
        let admin = connect(&cluster.superuser_conn_string("postgres")).await?;
        ensure_roles(&admin).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(TestkitError::sql(format!("create database {name}")))?;
        Ok(TestDb { cluster, name })
    }

    /// A superuser connection string to this database.
    pub fn conn_string(&self) -> String {
        self.cluster.superuser_conn_string(&self.name)
    }

    /// A new superuser client connected to this database.
    pub async fn client(&self) -> Result<Client, TestkitError> {
        connect(&self.conn_string()).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.cluster.superuser_conn_string("postgres");
        let name = self.name.clone();
        // Drop may run inside a runtime: do the blocking work on a thread of its own.
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let admin = connect(&admin_url).await.ok()?;
                drop_database(&admin, &name).await.ok()
            })
        });
        if handle.join().ok().flatten().is_none() {
            tracing::warn!(database = %self.name, "could not drop test database");
        }
    }
}

/// Connects with `tokio_postgres` (over TLS when the cluster requires it), driving the
/// connection on the current runtime.
pub async fn connect(conn_string: &str) -> Result<Client, TestkitError> {
    let failed = |error: cdc_pgtls::ConnectError| {
        let mut what = String::from("connect to the test cluster");
        let mut cause: Option<&dyn std::error::Error> = Some(&error);
        while let Some(error) = cause {
            what.push_str(&format!(": {error}"));
            cause = error.source();
        }
        TestkitError::Command { what }
    };
    let connect = cdc_pgtls::PgConnect::parse(conn_string).map_err(failed)?;
    connect.connect().await.map_err(failed)
}

async fn drop_database(admin: &Client, name: &str) -> Result<(), tokio_postgres::Error> {
    // Slots pin the database; their walsenders must go first.
    admin
        .execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE database = $1 AND active_pid IS NOT NULL",
            &[&name],
        )
        .await?;
    for _ in 0..50 {
        let rows = admin
            .query(
                "SELECT slot_name::text, active FROM pg_replication_slots WHERE database = $1",
                &[&name],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let slot: String = row.get(0);
            if !row.get::<_, bool>(1) {
                let _ = admin
                    .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                    .await;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
}

async fn ensure_roles(admin: &Client) -> Result<(), TestkitError> {
    for (role, method) in AUTH_ROLES {
        let exists = admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(TestkitError::sql("look up roles"))?
            .is_some();
        if exists {
            continue;
        }
        let encryption = if method == "md5" {
            "md5"
        } else {
            "scram-sha-256"
        };
        // Concurrent test processes may race to create the same role: ignore that error.
        let _ = admin
            .batch_execute(&format!(
                "SET password_encryption = '{encryption}'; \
                 CREATE ROLE {role} LOGIN REPLICATION SUPERUSER PASSWORD '{AUTH_ROLE_PASSWORD}'"
            ))
            .await;
    }
    Ok(())
}
