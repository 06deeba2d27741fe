//! PostgreSQL connections over TLS, configured the way libpq users know: `sslmode`
//! (disable, allow, prefer, require, verify-ca, verify-full; `prefer` by default),
//! `sslrootcert`, `sslcert` and `sslkey`, from the connection string or the `PGSSL*`
//! environment.
//!
//! ```text
//!   "host=db sslmode=verify-full sslrootcert=ca.pem …"
//!        │ split_conn_string
//!        ├─► rest ──► tokio_postgres::Config
//!        └─► TlsOptions ──► PgTls (rustls) ──► tokio-postgres connections (connect)
//!                                      └────► the replication connection (start_tls)
//! ```
//!
//! What is checked of the server's certificate follows libpq: its chain under verify-ca
//! and verify-full, and under prefer and require too when a root certificate file is
//! there (`~/.postgresql/root.crt` by default); its name only under verify-full.

mod options;
mod verify;

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

pub use options::{
    split_conn_string, split_with_env, RootCert, SplitConnString, SslMode, TlsOptions,
};

/// A TLS setting that cannot be used, or a handshake that failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A setting's value is wrong (an unknown `sslmode`, a mode the root certificate
    /// source does not allow).
    #[error("{setting}: {problem}")]
    Setting {
        /// The setting, as libpq names it.
        setting: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A certificate or key file cannot be read or holds nothing usable.
    #[error("{setting}: cannot use {path}")]
    File {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The TLS handshake with the server failed (an unknown issuer, a name that does not
    /// match, a refused client certificate).
    #[error("TLS with the server failed ({settings})")]
    Handshake {
        /// The settings in force, e.g. `sslmode=verify-full, sslrootcert=ca.pem`.
        settings: String,
        /// rustls's reason.
        #[source]
        source: io::Error,
    },
    /// The server answered the SSLRequest with `N` although the mode requires TLS.
    #[error("the server does not accept TLS connections ({settings})")]
    Refused {
        /// The settings in force.
        settings: String,
    },
}

impl TlsOptions {
    /// The connector for these settings: certificate files read, verifier chosen.
    pub fn connector(&self) -> Result<PgTls, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = self.root_store()?;
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match roots {
            Some(roots) => {
                let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| TlsError::Setting {
                    setting: "sslrootcert",
                    problem: e.to_string(),
                })?;
                if self.mode == SslMode::VerifyFull {
                    chain
                } else {
                    Arc::new(verify::Lenient {
                        chain: Some(chain),
                        provider: provider.clone(),
                    })
                }
            }
            None => Arc::new(verify::Lenient {
                chain: None,
                provider: provider.clone(),
            }),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setting {
                setting: "sslmode",
                problem: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match self.client_identity()? {
            Some((certs, key, key_path)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| file_error("sslkey", &key_path, e))?,
            None => builder.with_no_client_auth(),
        };
        Ok(PgTls {
            config: Arc::new(config),
            settings: Arc::from(self.describe()),
            mode: self.mode,
        })
    }

    /// The roots to check the chain against; `None` when nothing is checked.
    fn root_store(&self) -> Result<Option<RootCertStore>, TlsError> {
        let source = match &self.root_cert {
            Some(source) => Some(source.clone()),
            None => options::default_file("root.crt").map(RootCert::File),
        };
        let mut store = RootCertStore::empty();
        match source {
            None if self.mode.verifies() => {
                return Err(TlsError::Setting {
                    setting: "sslrootcert",
                    problem: format!(
                        "sslmode={} needs a root certificate, and ~/.postgresql/root.crt does not exist",
                        self.mode
                    ),
                })
            }
            None => return Ok(None),
            Some(RootCert::System) => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    // A certificate of the system store that rustls cannot parse is skipped.
                    let _ = store.add(cert);
                }
                if store.is_empty() {
                    return Err(TlsError::Setting {
                        setting: "sslrootcert",
                        problem: "the system trust store holds no certificate".to_owned(),
                    });
                }
            }
            Some(RootCert::File(path)) => {
                for cert in read_certs("sslrootcert", &path)? {
                    store.add(cert).map_err(|e| file_error("sslrootcert", &path, e))?;
                }
            }
        }
        Ok(Some(store))
    }

    /// The client certificate chain and key (and the key's file, for errors), when set or
    /// in libpq's default place.
    fn client_identity(&self) -> Result<Option<ClientIdentity>, TlsError> {
        let Some(cert) = self
            .cert
            .clone()
            .or_else(|| options::default_file("postgresql.crt"))
        else {
            return Ok(None);
        };
        let key = self
            .key
            .clone()
            .or_else(|| options::default_file("postgresql.key"))
            .ok_or_else(|| TlsError::Setting {
                setting: "sslkey",
                problem: format!("sslcert={} has no key (set sslkey)", cert.display()),
            })?;
        let certs = read_certs("sslcert", &cert)?;
        let der = PrivateKeyDer::from_pem_file(&key).map_err(|e| file_error("sslkey", &key, e))?;
        Ok(Some((certs, der, key)))
    }
}

/// A client certificate chain, its private key, and the key's file.
type ClientIdentity = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    std::path::PathBuf,
);

/// Every certificate of the PEM file at `path`; an empty file is an error.
fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(setting, path, e))?;
    if certs.is_empty() {
        return Err(file_error(setting, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn file_error(
    setting: &'static str,
    path: &Path,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> TlsError {
    TlsError::File {
        setting,
        path: path.display().to_string(),
        source: source.into(),
    }
}

/// TLS for PostgreSQL connections: a [`MakeTlsConnect`] for tokio-postgres and the
/// handshake of the replication connection.
#[derive(Clone)]
pub struct PgTls {
    config: Arc<ClientConfig>,
    settings: Arc<str>,
    mode: SslMode,
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTls")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PgTls {
    /// The mode the connector was made for.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The settings in force, for messages.
    pub fn settings(&self) -> &str {
        &self.settings
    }

    /// tokio-postgres's `sslmode` for this mode (`allow` is tried plain first by
    /// [`connect`]).
    fn tokio_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as T;
        match self.mode {
            SslMode::Disable | SslMode::Allow => T::Disable,
            SslMode::Prefer => T::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => T::Require,
        }
    }

    async fn handshake<S>(&self, host: &str, stream: S) -> Result<PgTlsStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| TlsError::Setting {
            setting: "host",
            problem: format!("{host:?} is not a name TLS can check: {e}"),
        })?;
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let stream =
            connector
                .connect(name, stream)
                .await
                .map_err(|source| TlsError::Handshake {
                    settings: self.settings.to_string(),
                    source,
                })?;
        Ok(PgTlsStream(stream))
    }

    /// Sends PostgreSQL's SSLRequest on `stream` as the mode says and, when the server
    /// agrees, completes the handshake: plain TCP under disable and allow (see
    /// [`PgTls::upgrade`] for allow's second attempt) and under prefer when the server
    /// declines.
    pub async fn start_tls(
        &self,
        host: &str,
        stream: tokio::net::TcpStream,
    ) -> Result<MaybeTls, TlsError> {
        match self.mode {
            SslMode::Disable | SslMode::Allow => Ok(MaybeTls::Plain(stream)),
            SslMode::Prefer => self.negotiate(host, stream, false).await,
            _ => self.negotiate(host, stream, true).await,
        }
    }

    /// TLS whatever the mode: allow's second attempt, after the server refused a plain
    /// session.
    pub async fn upgrade(
        &self,
        host: &str,
        stream: tokio::net::TcpStream,
    ) -> Result<MaybeTls, TlsError> {
        self.negotiate(host, stream, true).await
    }

    async fn negotiate(
        &self,
        host: &str,
        mut stream: tokio::net::TcpStream,
        required: bool,
    ) -> Result<MaybeTls, TlsError> {
        let io_failed = |source: io::Error| TlsError::Handshake {
            settings: self.settings.to_string(),
            source,
        };
        // Int32 length 8, Int32 80877103: the SSLRequest code.
        let mut request = [0u8; 8];
        request[..4].copy_from_slice(&8i32.to_be_bytes());
        request[4..].copy_from_slice(&80_877_103i32.to_be_bytes());
        stream.write_all(&request).await.map_err(io_failed)?;
        match stream.read_u8().await.map_err(io_failed)? {
            b'S' => Ok(MaybeTls::Tls(Box::new(self.handshake(host, stream).await?))),
            b'N' if !required => Ok(MaybeTls::Plain(stream)),
            b'N' => Err(TlsError::Refused {
                settings: self.settings.to_string(),
            }),
            other => Err(io_failed(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the server answered the SSLRequest with byte {other:#04x}"),
            ))),
        }
    }
}

/// A connection string parsed for tokio-postgres, with its TLS connector.
#[derive(Debug, Clone)]
pub struct PgConnect {
    /// Everything but TLS.
    pub config: tokio_postgres::Config,
    /// TLS as the string and the environment set it.
    pub tls: PgTls,
}

impl PgConnect {
    /// Parses `conn` (key/value or URL) and the `PGSSL*` environment.
    pub fn parse(conn: &str) -> Result<PgConnect, ConnectError> {
        let split = split_conn_string(conn)?;
        let config = split.rest.parse().map_err(ConnectError::Config)?;
        Ok(PgConnect {
            config,
            tls: split.tls.connector()?,
        })
    }

    /// Opens a connection and drives it on the current runtime.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, ConnectError> {
        connect(&self.config, &self.tls).await
    }
}

/// A connection that could not be made; the message names the TLS settings in force.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A TLS setting is wrong or a certificate file unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The connection string does not parse.
    #[error("invalid connection string")]
    Config(#[source] tokio_postgres::Error),
    /// The server could not be reached, refused the login, or the handshake failed.
    #[error("cannot connect ({settings})")]
    Connect {
        /// The TLS settings in force.
        settings: String,
        /// tokio-postgres's error (a TLS failure is its source in turn).
        #[source]
        source: tokio_postgres::Error,
    },
}

impl ConnectError {
    /// Whether trying again later may succeed: the server was unreachable, shutting down
    /// or out of connections, not refusing these settings or credentials.
    pub fn is_retryable(&self) -> bool {
        let ConnectError::Connect { source, .. } = self else {
            return false;
        };
        if std::error::Error::source(source).is_some_and(|cause| cause.is::<TlsError>()) {
            return false;
        }
        match source.code() {
            // 08: connection exception, 57P: operator intervention, 53: insufficient resources.
            Some(code) => ["08", "57P", "53"]
                .iter()
                .any(|class| code.code().starts_with(class)),
            None => !source.to_string().starts_with("invalid configuration"),
        }
    }

    /// tokio-postgres's error, when the connection itself failed.
    pub fn postgres(&self) -> Option<&tokio_postgres::Error> {
        match self {
            ConnectError::Connect { source, .. } | ConnectError::Config(source) => Some(source),
            ConnectError::Tls(_) => None,
        }
    }
}

/// Opens a tokio-postgres connection with `tls` and drives it on the current runtime;
/// under `allow`, a plain attempt the server refuses is followed by a TLS one.
pub async fn connect(
    config: &tokio_postgres::Config,
    tls: &PgTls,
) -> Result<tokio_postgres::Client, ConnectError> {
    let mut config = config.clone();
    config.ssl_mode(tls.tokio_mode());
    let attempt = config.connect(tls.clone()).await;
    let (client, connection) = match attempt {
        Err(e) if tls.mode == SslMode::Allow && refused_plain(&e) => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            config.connect(tls.clone()).await
        }
        other => other,
    }
    .map_err(|source| ConnectError::Connect {
        settings: tls.settings.to_string(),
        source,
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// Whether the server refused a connection for its lack of TLS (`pg_hba.conf` has only
/// `hostssl` lines for it).
fn refused_plain(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
}

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = TlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<PgTlsConnect, TlsError> {
        Ok(PgTlsConnect {
            tls: self.clone(),
            host: domain.to_owned(),
        })
    }
}

/// One connection's handshake, made by [`PgTls`] for tokio-postgres.
pub struct PgTlsConnect {
    tls: PgTls,
    host: String,
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<PgTlsStream<S>, TlsError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move { self.tls.handshake(&self.host, stream).await })
    }
}

/// A TLS stream to the server.
pub struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding (as libpq's channel_binding=prefer falls back to).
        ChannelBinding::none()
    }
}

/// The replication connection's stream: TLS or plain TCP, as the settings and the
/// server decided.
pub enum MaybeTls {
    /// Plain TCP.
    Plain(tokio::net::TcpStream),
    /// TLS over TCP.
    Tls(Box<PgTlsStream<tokio::net::TcpStream>>),
}

impl MaybeTls {
    /// Whether the stream is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
