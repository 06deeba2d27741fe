//! The Python venv with Confluent's stock client and the lake's readers, set up by
//! `scripts/python-env` (which `scripts/setup`, and so `scripts/test`, runs).

use std::path::PathBuf;

use crate::TestkitError;

/// The venv's interpreter: under `$TOTESYS_CDC_VENV`, else `~/.cache/totesys-cdc/venv`
/// (the same rule as `scripts/python-env`); an error naming the fix when it is missing.
pub fn venv_python() -> Result<PathBuf, TestkitError> {
    let venv = match std::env::var_os("TOTESYS_CDC_VENV") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME").ok_or_else(|| TestkitError::Command {
                what: "HOME is not set, so the Python venv cannot be found".into(),
            })?;
            PathBuf::from(home).join(".cache/totesys-cdc/venv")
        }
    };
    let python = venv.join("bin/python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(TestkitError::Command {
            what: format!(
                "no Python venv at {} (looked for {}): run scripts/python-env, which scripts/test runs through scripts/setup",
                venv.display(),
                python.display()
            ),
        })
    }
}
