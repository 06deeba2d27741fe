//! The TLS settings of a PostgreSQL connection string, read as libpq reads them.
//!
//! The `ssl*` keys are taken out of the string (tokio-postgres knows only three values of
//! `sslmode` and none of the certificate keys) and the rest is handed on unchanged. A key
//! the string lacks comes from its `PGSSL*` variable, as in libpq.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::TlsError;

/// How hard the client insists on TLS and how much of the server's certificate it checks
/// (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// Plain TCP first; TLS when the server refuses a plain connection.
    Allow,
    /// TLS when the server offers it, plain TCP otherwise (libpq's default).
    #[default]
    Prefer,
    /// TLS or nothing; the certificate chain is checked when a root certificate is there.
    Require,
    /// TLS, with the server's certificate chain checked against the root certificate.
    VerifyCa,
    /// TLS, with the chain checked and the certificate's name matching the host.
    VerifyFull,
}

impl SslMode {
    /// libpq's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate chain must be checked whatever files exist.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = TlsError;

    fn from_str(text: &str) -> Result<Self, TlsError> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(TlsError::Setting {
                    setting: "sslmode",
                    problem: format!(
                        "{other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    ),
                })
            }
        })
    }
}

/// Where the root certificates that vouch for the server come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`).
    System,
}

/// The TLS settings of one connection string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`; `None` is libpq's default, `~/.postgresql/root.crt` when it exists.
    pub root_cert: Option<RootCert>,
    /// `sslcert`: the client certificate (PEM); `None` is `~/.postgresql/postgresql.crt`
    /// when it exists.
    pub cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's private key (PEM); `None` is
    /// `~/.postgresql/postgresql.key` when it exists.
    pub key: Option<PathBuf>,
}

/// The keys this crate takes out of a connection string.
const KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// The variable libpq reads for each of [`KEYS`].
const ENV: [&str; 4] = ["PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"];

impl TlsOptions {
    /// The settings from key/value pairs (string first, then `env` for a key it lacks).
    fn from_pairs(
        pairs: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<TlsOptions, TlsError> {
        let value = |i: usize| -> Option<String> {
            pairs
                .iter()
                .rev()
                .find(|(key, _)| key == KEYS[i])
                .map(|(_, value)| value.clone())
                .or_else(|| env(ENV[i]).filter(|v| !v.is_empty()))
        };
        let root_cert = value(1).map(|text| match text.as_str() {
            "system" => RootCert::System,
            _ => RootCert::File(PathBuf::from(text)),
        });
        let mode = match value(0) {
            Some(text) => text.parse()?,
            // libpq: the system store implies checking the name too.
            None if root_cert == Some(RootCert::System) => SslMode::VerifyFull,
            None => SslMode::default(),
        };
        if root_cert == Some(RootCert::System) && mode != SslMode::VerifyFull {
            return Err(TlsError::Setting {
                setting: "sslmode",
                problem: format!(
                    "sslrootcert=system needs sslmode=verify-full, not sslmode={mode}"
                ),
            });
        }
        Ok(TlsOptions {
            mode,
            root_cert,
            cert: value(2).map(PathBuf::from),
            key: value(3).map(PathBuf::from),
        })
    }

    /// The settings as `key=value` words, for messages (no secrets: only paths and modes).
    pub fn describe(&self) -> String {
        let mut words = vec![format!("sslmode={}", self.mode)];
        match &self.root_cert {
            Some(RootCert::File(path)) => words.push(format!("sslrootcert={}", path.display())),
            Some(RootCert::System) => words.push("sslrootcert=system".to_owned()),
            None => {}
        }
        if let Some(path) = &self.cert {
            words.push(format!("sslcert={}", path.display()));
        }
        words.join(", ")
    }
}

/// A connection string split into what tokio-postgres reads and the TLS settings.
#[derive(Debug, Clone)]
pub struct SplitConnString {
    /// The string without its `ssl*` keys (`sslnegotiation` stays: tokio-postgres knows it).
    pub rest: String,
    /// The TLS settings, from the string and the `PGSSL*` environment.
    pub tls: TlsOptions,
}

/// Splits `conn` (a libpq key/value string or a `postgres://` URL), reading a missing
/// key's variable from the process environment.
pub fn split_conn_string(conn: &str) -> Result<SplitConnString, TlsError> {
    split_with_env(conn, |name| std::env::var(name).ok())
}

/// [`split_conn_string`] with the environment given.
pub fn split_with_env(
    conn: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<SplitConnString, TlsError> {
    let trimmed = conn.trim_start();
    let (rest, pairs) =
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            split_url(trimmed)
        } else {
            split_key_values(conn)?
        };
    Ok(SplitConnString {
        rest,
        tls: TlsOptions::from_pairs(&pairs, env)?,
    })
}

/// The `ssl*` query parameters of a URL taken out (percent-decoded).
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        if KEYS.contains(&key) {
            taken.push((key.to_owned(), percent_decode(value)));
        } else {
            kept.push(param);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, taken)
}

/// `%XX` escapes decoded; a malformed escape stays as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `ssl*` pairs of a key/value string taken out; the other pairs are written back in
/// the same quoting.
fn split_key_values(conn: &str) -> Result<(String, Vec<(String, String)>), TlsError> {
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    let mut chars = conn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(TlsError::Setting {
                setting: "connection string",
                problem: format!("{key:?} has no \"=\" after it"),
            });
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => {
                        return Err(TlsError::Setting {
                            setting: "connection string",
                            problem: format!("the quoted value of {key:?} is not closed"),
                        })
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if KEYS.contains(&key.as_str()) {
            taken.push((key, value));
        } else {
            kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
    }
    Ok((kept.join(" "), taken))
}

/// `~/.postgresql/<name>` when it exists: libpq's default certificate files.
pub(crate) fn default_file(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = Path::new(&home).join(".postgresql").join(name);
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn key_values_lose_their_ssl_keys_and_keep_the_rest() {
        let split = split_with_env(
            "host=db.example port=5432 user='o\\'brien' sslmode=verify-full sslrootcert='/etc/ca dir/ca.pem' dbname=totesys",
            no_env,
        )
        .unwrap();
        assert_eq!(
            split.rest,
            "host='db.example' port='5432' user='o\\'brien' dbname='totesys'"
        );
        assert_eq!(split.tls.mode, SslMode::VerifyFull);
        assert_eq!(
            split.tls.root_cert,
            Some(RootCert::File("/etc/ca dir/ca.pem".into()))
        );
        let config: tokio_postgres::Config = split.rest.parse().unwrap();
        assert_eq!(config.get_user(), Some("o'brien"));
    }

    #[test]
    fn urls_lose_their_ssl_parameters() {
        let split = split_with_env(
            "postgres://u:p%40ss@db:5433/totesys?sslmode=require&application_name=x&sslcert=%2Fc%2Fclient.crt",
            no_env,
        )
        .unwrap();
        assert_eq!(
            split.rest,
            "postgres://u:p%40ss@db:5433/totesys?application_name=x"
        );
        assert_eq!(split.tls.mode, SslMode::Require);
        assert_eq!(split.tls.cert, Some("/c/client.crt".into()));
        let only = split_with_env("postgresql://db/x?sslmode=disable", no_env).unwrap();
        assert_eq!(only.rest, "postgresql://db/x");
        assert_eq!(only.tls.mode, SslMode::Disable);
    }

    #[test]
    fn the_environment_fills_what_the_string_lacks() {
        let env = |name: &str| match name {
            "PGSSLMODE" => Some("verify-ca".to_owned()),
            "PGSSLKEY" => Some("/k.pem".to_owned()),
            _ => None,
        };
        let from_env = split_with_env("host=db", env).unwrap();
        assert_eq!(from_env.tls.mode, SslMode::VerifyCa);
        assert_eq!(from_env.tls.key, Some("/k.pem".into()));
        let string_wins = split_with_env("host=db sslmode=disable", env).unwrap();
        assert_eq!(string_wins.tls.mode, SslMode::Disable);
        assert_eq!(
            split_with_env("host=db", no_env).unwrap().tls.mode,
            SslMode::Prefer
        );
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let error = split_with_env("host=db sslmode=verify", no_env).unwrap_err();
        assert!(error.to_string().starts_with("sslmode: "), "{error}");
        let error =
            split_with_env("host=db sslrootcert=system sslmode=require", no_env).unwrap_err();
        assert!(error.to_string().contains("verify-full"), "{error}");
        let system = split_with_env("host=db sslrootcert=system", no_env).unwrap();
        assert_eq!(system.tls.mode, SslMode::VerifyFull);
        assert!(split_with_env("host=db user='x", no_env).is_err());
        assert!(split_with_env("host", no_env).is_err());
    }

    #[test]
    fn every_mode_reads_back_its_name() {
        for mode in [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(mode.as_str().parse::<SslMode>().unwrap(), mode);
        }
    }

    proptest::proptest! {
        /// Whatever the values, the pairs that are not TLS keys survive the split.
        #[test]
        fn other_pairs_survive(user in "[ -~]{0,12}", db in "[a-z]{1,8}") {
            let quoted = user.replace('\\', "\\\\").replace('\'', "\\'");
            let conn = format!("user='{quoted}' sslmode=require dbname={db}");
            let split = split_with_env(&conn, no_env).unwrap();
            let config: tokio_postgres::Config = split.rest.parse().unwrap();
            proptest::prop_assert_eq!(config.get_user(), Some(user.as_str()));
            proptest::prop_assert_eq!(config.get_dbname(), Some(db.as_str()));
        }
    }
}
