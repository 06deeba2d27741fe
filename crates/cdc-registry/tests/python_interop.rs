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

/// The venv's interpreter: under `$TOTESYS_CDC_VENV`, else `~/.cache/totesys-cdc/venv`
/// (the same rule as `scripts/python-env`). Panics, naming the fix, when it is missing.
fn venv_python() -> PathBuf {
    let venv = match std::env::var_os("TOTESYS_CDC_VENV") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME").expect("HOME is set (to find the Python venv)");
            PathBuf::from(home).join(".cache/totesys-cdc/venv")
        }
    };
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "no Python venv at {} (looked for {}): run scripts/python-env, which scripts/test \
         and CI run through scripts/setup{}",
        venv.display(),
        python.display(),
        if std::env::var_os("CI").is_some() {
            " — CI must set it up before the tests"
        } else {
            ""
        },
    );
    python
}

fn interop_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

#[tokio::test]
async fn confluent_python_client_works_against_our_registry() {
    let python = venv_python();
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
