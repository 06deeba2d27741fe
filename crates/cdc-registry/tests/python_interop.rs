//! Confluent's stock Python client (`confluent-kafka`) against our registry server.
//!
//! Runs `tests/interop/confluent_client.py` with the venv's python that
//! `scripts/python-env` sets up (`scripts/test` runs it through `scripts/setup`),
//! against a server started here on a fresh database. A missing venv fails the
//! test: it is never skipped.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::Server;

/// The longest the script may take; it needs about a second.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn interop_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

#[tokio::test]
async fn confluent_python_client_works_against_our_registry() {
    let python = cdc_testkit::python::venv_python().unwrap_or_else(|e| panic!("{e}"));
    // A fresh database: the script expects schema ids to start at 1.
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;

    let run = tokio::process::Command::new(&python)
        .arg(interop_script("confluent_client.py"))
        .arg(server.url())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("confluent_client.py did not finish in {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    server.stop().await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "confluent_client.py failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status,
    );
    assert!(
        stdout.contains("interop ok"),
        "confluent_client.py exited 0 without its closing line:\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
    );
}
