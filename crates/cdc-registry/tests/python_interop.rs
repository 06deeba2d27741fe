//! Confluent's stock Python client (`confluent-kafka`) against our registry server.
//!
//! Runs `tests/interop/confluent_client.py` with the venv's python that
//! `scripts/python-env` sets up (`scripts/test` runs it through `scripts/setup`),
//! against a server started here on a fresh database. A missing venv fails the
//! test: it is never skipped.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use support::Server;

#[tokio::test]
async fn confluent_python_client_works_against_our_registry() {
    // A fresh database: the script expects schema ids to start at 1.
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;
    support::run_confluent_client(&server.url(), &[]).await;
    server.stop().await;
}
