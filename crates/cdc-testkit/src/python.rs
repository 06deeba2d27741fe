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

/// Python that defines `delta_duckdb()`: a DuckDB connection with the delta extension
/// loaded from PyPI's `duckdb-extension-delta` (nothing downloaded), for scripts that
/// read the lake's Delta tables with `delta_scan`. Put it before a script's own code.
pub const DELTA_DUCKDB: &str = r#"
def delta_duckdb():
    import glob as _glob, os as _os, duckdb as _duckdb, duckdb_extension_delta as _delta
    found = _glob.glob(_os.path.join(_os.path.dirname(_delta.__file__), "extensions", "*", "delta.duckdb_extension"))
    if not found:
        raise SystemExit("duckdb-extension-delta holds no delta.duckdb_extension")
    con = _duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    con.execute("LOAD '" + found[0].replace("'", "''") + "'")
    return con
"#;

/// Spark's Python and Delta Lake's jars (`scripts/spark-env` sets them up, under
/// `$TOTESYS_CDC_CACHE`, else `~/.cache/totesys-cdc`), and `scripts/spark_read.py`: what
/// runs Spark on the lake's tables; an error naming the fix when something is missing.
pub fn spark_reader() -> Result<(PathBuf, PathBuf, PathBuf), TestkitError> {
    let cache = match std::env::var_os("TOTESYS_CDC_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME").ok_or_else(|| TestkitError::Command {
                what: "HOME is not set, so Spark's venv cannot be found".into(),
            })?;
            PathBuf::from(home).join(".cache/totesys-cdc")
        }
    };
    let python = match std::env::var_os("TOTESYS_CDC_SPARK_VENV") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => cache.join("spark-venv"),
    }
    .join("bin/python");
    let jars = cache.join("spark-jars");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/spark_read.py");
    for (what, path) in [("Spark's Python", &python), ("Delta's jars", &jars)] {
        if !path.exists() {
            return Err(TestkitError::Command {
                what: format!(
                    "{what} not found at {}: run scripts/spark-env, which scripts/setup runs",
                    path.display()
                ),
            });
        }
    }
    Ok((python, jars, script))
}
