//! HTTP basic auth for the registry server: users from a file of salted PBKDF2 hashes.
//!
//! A users file has one `name:hash` line per user (blank lines and `#` comments are
//! skipped); [`user_line`] makes a line, `totesys-cdc registry-user` prints one. A hash
//! is `$pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`, so the file gives away no
//! password if it leaks. A password that verified once is remembered (as a SHA-256 of
//! the user, password and salt) so later requests cost one digest, not a key
//! derivation; wrong ones always pay for the derivation.
//!
//! Every API path needs a known user; the probes (`/healthz`, `/readyz`) stay open so
//! an orchestrator can watch the process. A refusal is Confluent's 401 with
//! `WWW-Authenticate`, and is counted as a request with status 401.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::{digest, pbkdf2, rand};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;

use crate::api::ErrorBody;
use crate::server::{json, PROBE_PATHS};

/// The key derivation of new hashes.
const SCHEME: &str = "pbkdf2-sha256";
/// Iterations of new hashes (OWASP's figure for PBKDF2-HMAC-SHA256 is 600,000; a
/// registry verifies each credential once, so the cost is paid once per process).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Bytes of salt in new hashes.
const SALT_LEN: usize = 16;
/// Bytes of derived key in new hashes.
const HASH_LEN: usize = 32;
/// The realm named in `WWW-Authenticate`.
const REALM: &str = "totesys-cdc schema registry";

/// A users file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read.
    #[error("cannot read the users file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `name:$pbkdf2-sha256$…`.
    #[error("users file {origin}, line {line}: {reason}")]
    Line {
        /// The file (or other origin) of the text.
        origin: String,
        /// The line number, from 1.
        line: usize,
        /// Why it is refused (never the line itself: it may hold a password by mistake).
        reason: String,
    },
    /// The file names no user, which would lock every client out.
    #[error("users file {0} names no user")]
    Empty(String),
    /// A name or password cannot go into a line.
    #[error("{0}")]
    Invalid(&'static str),
}

/// One user's stored hash.
#[derive(Clone)]
struct StoredHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// The registry's users and their password hashes.
pub struct Users {
    hashes: HashMap<String, StoredHash>,
    /// Digests of credentials that verified, so each costs one derivation per process.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.hashes.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Users").field("names", &names).finish()
    }
}

impl Users {
    /// The users in the file at `path`.
    pub fn from_file(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_owned(),
            source,
        })?;
        Users::parse(&text, &path.display().to_string())
    }

    /// The users in `text`, a users file's content from `origin` (for errors).
    pub fn parse(text: &str, origin: &str) -> Result<Users, UsersError> {
        let mut hashes = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let refuse = |reason: &str| UsersError::Line {
                origin: origin.to_owned(),
                line: index + 1,
                reason: reason.to_owned(),
            };
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| refuse("expected name:$pbkdf2-sha256$…"))?;
            if name.is_empty() {
                return Err(refuse("the user name is empty"));
            }
            let stored = parse_hash(hash).map_err(refuse)?;
            if hashes.insert(name.to_owned(), stored).is_some() {
                return Err(refuse("the user is named twice"));
            }
        }
        if hashes.is_empty() {
            return Err(UsersError::Empty(origin.to_owned()));
        }
        Ok(Users {
            hashes,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are none (never true of a parsed file).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `password` is `user`'s.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let Some(stored) = self.hashes.get(user) else {
            // Pay for a derivation anyway, so an unknown name answers as slowly as a known one.
            let iterations = self
                .hashes
                .values()
                .next()
                .map_or(NonZeroU32::MIN, |h| h.iterations);
            let _ = pbkdf2::verify(
                pbkdf2::PBKDF2_HMAC_SHA256,
                iterations,
                &[0; SALT_LEN],
                password.as_bytes(),
                &[0; HASH_LEN],
            );
            return false;
        };
        let remembered = credential_digest(user, password, &stored.salt);
        let verified = || self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified().contains(&remembered) {
            return true;
        }
        let ok = pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            stored.iterations,
            &stored.salt,
            password.as_bytes(),
            &stored.hash,
        )
        .is_ok();
        if ok {
            verified().insert(remembered);
        }
        ok
    }

    /// `router` with every API request refused (401) unless it carries a known user's
    /// basic-auth credentials; the probes stay open.
    pub fn protect(self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            Arc::new(self),
            require_user,
        ))
    }
}

/// A users-file line for `user` with `password`, hashed with a fresh salt.
pub fn user_line(user: &str, password: &str) -> Result<String, UsersError> {
    user_line_with(user, password, DEFAULT_ITERATIONS)
}

/// [`user_line`] with `iterations` rounds (tests use few; files should use the default).
pub fn user_line_with(user: &str, password: &str, iterations: u32) -> Result<String, UsersError> {
    if user.is_empty() || user.contains([':', '\n', '\r']) || user.trim() != user {
        return Err(UsersError::Invalid(
            "a user name must be non-empty, without ':', line breaks or surrounding spaces",
        ));
    }
    if password.is_empty() {
        return Err(UsersError::Invalid("a password must not be empty"));
    }
    let iterations =
        NonZeroU32::new(iterations).ok_or(UsersError::Invalid("iterations must be at least 1"))?;
    let mut salt = [0; SALT_LEN];
    rand::fill(&mut salt).map_err(|_| UsersError::Invalid("the system has no random source"))?;
    let mut hash = [0; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &mut hash,
    );
    Ok(format!(
        "{user}:${SCHEME}${iterations}${}${}",
        hex(&salt),
        hex(&hash)
    ))
}

/// Reads `$pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`.
fn parse_hash(text: &str) -> Result<StoredHash, &'static str> {
    let mut parts = text.split('$');
    let (Some(""), Some(scheme), Some(iterations), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err("expected a hash $pbkdf2-sha256$<iterations>$<salt hex>$<hash hex> after the name (make lines with `totesys-cdc registry-user`)");
    };
    if scheme != SCHEME {
        return Err("the hash scheme is not pbkdf2-sha256");
    }
    let iterations = iterations
        .parse::<NonZeroU32>()
        .map_err(|_| "the iteration count is not a positive number")?;
    let salt = unhex(salt).ok_or("the salt is not hexadecimal")?;
    let hash = unhex(hash).ok_or("the hash is not hexadecimal")?;
    if salt.len() < 8 || hash.len() < 16 {
        return Err("the salt or hash is too short");
    }
    Ok(StoredHash {
        iterations,
        salt,
        hash,
    })
}

/// The digest a verified credential is remembered by.
fn credential_digest(user: &str, password: &str, salt: &[u8]) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    for part in [user.as_bytes(), b"\0", password.as_bytes(), b"\0", salt] {
        context.update(part);
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// Lets a request through when it is a probe or carries a known user's credentials.
async fn require_user(State(users): State<Arc<Users>>, request: Request, next: Next) -> Response {
    if PROBE_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let credentials = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| basic_credentials(value.as_bytes()));
    let Some((user, password)) = credentials else {
        return unauthorized("Unauthorized: the request has no basic-auth credentials");
    };
    let checked = {
        let users = Arc::clone(&users);
        let user = user.clone();
        tokio::task::spawn_blocking(move || users.check(&user, &password)).await
    };
    if matches!(checked, Ok(true)) {
        return next.run(request).await;
    }
    tracing::warn!(%user, "schema registry refused a request: wrong user name or password");
    unauthorized("Unauthorized: wrong user name or password")
}

/// Confluent's 401 answer.
fn unauthorized(message: &str) -> Response {
    let mut response = json(&ErrorBody {
        error_code: 401,
        message: message.to_owned(),
    })
    .into_response();
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let challenge = format!("Basic realm=\"{REALM}\", charset=\"UTF-8\"");
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// The user and password of an `Authorization: Basic …` header.
fn basic_credentials(header: &[u8]) -> Option<(String, String)> {
    let header = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn users(lines: &[String]) -> Users {
        Users::parse(&lines.join("\n"), "test").unwrap()
    }

    #[test]
    fn a_line_checks_its_own_password_and_no_other() {
        let line = user_line_with("alice", "s3cret:with colon", 1_000).unwrap();
        assert!(line.starts_with("alice:$pbkdf2-sha256$1000$"), "{line}");
        assert!(!line.contains("s3cret"));
        let users = users(&[line, "# a comment".into(), String::new()]);
        assert_eq!(users.len(), 1);
        assert!(users.check("alice", "s3cret:with colon"));
        // Again, now from the remembered digest.
        assert!(users.check("alice", "s3cret:with colon"));
        assert!(!users.check("alice", "s3cret"));
        assert!(!users.check("bob", "s3cret:with colon"));
        assert!(!format!("{users:?}").contains("pbkdf2"));
    }

    #[test]
    fn two_lines_for_one_password_differ_by_their_salt() {
        let a = user_line_with("u", "p", 10).unwrap();
        let b = user_line_with("u", "p", 10).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn bad_files_name_the_line_and_never_echo_it() {
        let cases = [
            ("alice", "expected name:"),
            ("alice:plaintext", "expected a hash"),
            ("alice:$md5$1$00$00", "not pbkdf2-sha256"),
            (
                "alice:$pbkdf2-sha256$0$0011223344556677$00112233445566778899aabbccddeeff",
                "iteration count",
            ),
            ("alice:$pbkdf2-sha256$10$zz$00", "salt is not hexadecimal"),
            ("alice:$pbkdf2-sha256$10$00$00", "too short"),
            (":$pbkdf2-sha256$10$00$00", "name is empty"),
        ];
        for (text, expected) in cases {
            let error = Users::parse(&format!("# header\n\n{text}"), "users.txt")
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(expected) && error.starts_with("users file users.txt, line 3"),
                "{text}: {error}"
            );
            assert!(!error.contains("plaintext"), "{error}");
        }
        let line = user_line_with("a", "p", 5).unwrap();
        let twice = Users::parse(&format!("{line}\n{line}"), "f").unwrap_err();
        assert!(twice
            .to_string()
            .contains("line 2: the user is named twice"));
        let empty = Users::parse("# nobody\n", "f").unwrap_err();
        assert_eq!(empty.to_string(), "users file f names no user");
        for bad in ["", "a:b", " a", "a\nb"] {
            assert!(user_line_with(bad, "p", 5).is_err(), "{bad:?}");
        }
        assert!(user_line_with("a", "", 5).is_err());
        assert!(user_line_with("a", "p", 0).is_err());
    }

    #[test]
    fn basic_headers_are_read_as_rfc_7617_says() {
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let header = format!("Basic {}", encode("alice:pa:ss"));
        assert_eq!(
            basic_credentials(header.as_bytes()),
            Some(("alice".into(), "pa:ss".into()))
        );
        let lower = format!("basic  {}", encode("a:"));
        assert_eq!(
            basic_credentials(lower.as_bytes()),
            Some(("a".into(), String::new()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
        assert_eq!(
            basic_credentials(format!("Basic {}", encode("nocolon")).as_bytes()),
            None
        );
        assert_eq!(basic_credentials(b"Basic"), None);
    }

    proptest! {
        #[test]
        fn hex_reads_back(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        }
    }
}
