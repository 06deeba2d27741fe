//! A `replication=database` connection speaking the frontend/backend protocol directly.
//!
//! ```text
//!   startup(replication=database) ─► auth (trust | password | md5 | SCRAM-SHA-256)
//!   simple queries: IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT …, SHOW …
//!   START_REPLICATION ─► CopyBoth: server sends XLogData / keepalives,
//!                                  we send standby status updates
//! ```
//!
//! `tokio-postgres` cannot enter CopyBoth mode, so this module frames the messages
//! itself with `postgres-protocol`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cdc_pgtls::SslMode;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::SourceError;

/// Whether a tokio-postgres connection failed for a reason retrying cannot mend: wrong
/// credentials, a database or role that does not exist, a configuration it refused.
pub fn is_settings_error(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match error.code() {
        Some(code) => [
            SqlState::INVALID_PASSWORD,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            SqlState::INVALID_CATALOG_NAME,
        ]
        .contains(code),
        None => error.to_string().starts_with("invalid configuration"),
    }
}

/// Where and as whom to connect; built from a libpq-style connection string.
#[derive(Debug, Clone)]
pub struct ConnectParams {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Role to log in as.
    pub user: String,
    /// The role's password, when the server asks for one.
    pub password: Option<cdc_core::Secret>,
    /// Database to replicate from.
    pub dbname: String,
    /// Reported in `pg_stat_replication.application_name`.
    pub application_name: String,
    /// Extra server settings sent at startup (`-c name=value`).
    pub options: Vec<(String, String)>,
    /// How long to wait for the TCP connection.
    pub connect_timeout: Duration,
    /// TLS as `sslmode`, `sslrootcert`, `sslcert` and `sslkey` (or `PGSSL*`) set it.
    pub tls: cdc_pgtls::PgTls,
}

impl ConnectParams {
    /// Parses a libpq key/value string or a `postgres://` URL, its TLS settings with it
    /// (a missing one from `PGSSL*`).
    pub fn parse(conn: &str) -> Result<Self, SourceError> {
        let split = cdc_pgtls::split_conn_string(conn)?;
        let config: tokio_postgres::Config =
            split.rest.parse().map_err(|e: tokio_postgres::Error| {
                SourceError::Protocol(format!("invalid source connection string: {e}"))
            })?;
        Ok(Self::from_config(&config, split.tls.connector()?))
    }

    /// Takes host, port, user, password and database from a `tokio_postgres::Config`.
    pub fn from_config(config: &tokio_postgres::Config, tls: cdc_pgtls::PgTls) -> Self {
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".to_owned());
        let password = config
            .get_password()
            .map(|p| cdc_core::Secret::new(String::from_utf8_lossy(p).into_owned()));
        ConnectParams {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            user: config.get_user().unwrap_or("postgres").to_owned(),
            password,
            dbname: config.get_dbname().unwrap_or("postgres").to_owned(),
            application_name: config
                .get_application_name()
                .unwrap_or("totesys-cdc")
                .to_owned(),
            options: Vec::new(),
            connect_timeout: config
                .get_connect_timeout()
                .copied()
                .unwrap_or(Duration::from_secs(10)),
            tls,
        }
    }

    /// A `tokio_postgres::Config` for regular (non-replication) connections to the same place.
    pub fn to_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .connect_timeout(self.connect_timeout);
        if let Some(password) = &self.password {
            config.password(password.expose());
        }
        config
    }
}

/// Opens a regular (non-replication) connection, driven on the current runtime.
pub async fn connect_regular(
    params: &ConnectParams,
    purpose: &str,
) -> Result<tokio_postgres::Client, SourceError> {
    cdc_pgtls::connect(&params.to_config(), &params.tls)
        .await
        .map_err(|source| {
            let what = format!("connect to the source database for {purpose}");
            match source
                .postgres()
                .and_then(tokio_postgres::Error::as_db_error)
            {
                // The server's own answer (a refused login, no pg_hba.conf line) in one line.
                Some(db) => SourceError::server(format!("{what} ({})", params.tls.settings()), db),
                None => SourceError::Connection {
                    what: format!("cannot {what}"),
                    source,
                },
            }
        })
}

/// The session settings capture relies on for the text form of values.
pub const SESSION_SETTINGS: [(&str, &str); 5] = [
    ("DateStyle", "ISO, MDY"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
];

/// Rows of a simple query's result, every value as optional text.
pub type TextRows = Vec<Vec<Option<String>>>;

/// One replication connection.
pub struct ReplicationConnection {
    stream: cdc_pgtls::MaybeTls,
    read_buf: BytesMut,
    write_buf: BytesMut,
    params: ConnectParams,
}

impl ReplicationConnection {
    /// Connects (over TLS as `params.tls` says), authenticates and waits until the server
    /// is ready for queries.
    pub async fn connect(params: &ConnectParams) -> Result<Self, SourceError> {
        let stream = Self::tcp(params).await?;
        let stream = params.tls.start_tls(&params.host, stream).await?;
        let encrypted = stream.is_tls();
        match Self::session(params, stream).await {
            // allow: plain first, TLS when pg_hba.conf has no line for a plain session.
            Err(e) if !encrypted && refused_plain(&e) && params.tls.mode() == SslMode::Allow => {
                let stream = Self::tcp(params).await?;
                let stream = params.tls.upgrade(&params.host, stream).await?;
                Self::session(params, stream).await
            }
            Err(SourceError::Server {
                context,
                code,
                message,
                detail,
            }) if !encrypted => Err(SourceError::Server {
                context: format!("{context} without TLS ({})", params.tls.settings()),
                code,
                message,
                detail,
            }),
            other => other,
        }
    }

    async fn tcp(params: &ConnectParams) -> Result<TcpStream, SourceError> {
        let addr = format!("{}:{}", params.host, params.port);
        let stream = tokio::time::timeout(params.connect_timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| SourceError::Connect {
                addr: addr.clone(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
            })?
            .map_err(|source| SourceError::Connect {
                addr: addr.clone(),
                source,
            })?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn session(
        params: &ConnectParams,
        stream: cdc_pgtls::MaybeTls,
    ) -> Result<Self, SourceError> {
        let mut conn = ReplicationConnection {
            stream,
            read_buf: BytesMut::with_capacity(64 * 1024),
            write_buf: BytesMut::with_capacity(1024),
            params: params.clone(),
        };
        conn.startup().await?;
        Ok(conn)
    }

    async fn startup(&mut self) -> Result<(), SourceError> {
        let options: String = SESSION_SETTINGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(self.params.options.iter().cloned())
            .map(|(k, v)| format!("-c {}={} ", k, v.replace(' ', "\\ ")))
            .collect();
        let startup = [
            ("user", self.params.user.as_str()),
            ("database", self.params.dbname.as_str()),
            ("replication", "database"),
            ("application_name", self.params.application_name.as_str()),
            ("client_encoding", "UTF8"),
            ("options", options.trim_end()),
        ];
        frontend::startup_message(startup.iter().copied(), &mut self.write_buf)?;
        self.flush().await?;
        self.authenticate().await?;
        loop {
            match self.read_message().await? {
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ParameterStatus(_)
                | Message::BackendKeyData(_)
                | Message::NoticeResponse(_) => {}
                Message::ErrorResponse(body) => return Err(server_error("start session", &body)),
                other => return Err(unexpected("startup", &other)),
            }
        }
    }

    async fn authenticate(&mut self) -> Result<(), SourceError> {
        let user = self.params.user.clone();
        let configured = self.params.password.clone();
        let password = || {
            configured
                .clone()
                .ok_or_else(|| SourceError::PasswordRequired { user: user.clone() })
        };
        match self.read_message().await? {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                let password = password()?;
                frontend::password_message(password.expose().as_bytes(), &mut self.write_buf)?;
            }
            Message::AuthenticationMd5Password(body) => {
                let password = password()?;
                let hash = md5_hash(user.as_bytes(), password.expose().as_bytes(), body.salt());
                frontend::password_message(hash.as_bytes(), &mut self.write_buf)?;
            }
            Message::AuthenticationSasl(body) => {
                let password = password()?;
                let mut mechanisms = body.mechanisms();
                let mut scram_offered = false;
                while let Some(mechanism) = mechanisms.next()? {
                    scram_offered |= mechanism == SCRAM_SHA_256;
                }
                if !scram_offered {
                    return Err(SourceError::UnsupportedAuth(
                        "SASL without SCRAM-SHA-256".into(),
                    ));
                }
                self.scram(password.expose().as_bytes()).await?;
            }
            Message::ErrorResponse(body) => return Err(server_error("authenticate", &body)),
            Message::AuthenticationGss | Message::AuthenticationSspi => {
                return Err(SourceError::UnsupportedAuth("GSSAPI/SSPI".into()))
            }
            other => return Err(unexpected("authentication", &other)),
        }
        self.flush().await?;
        match self.read_message().await? {
            Message::AuthenticationOk => Ok(()),
            Message::ErrorResponse(body) => Err(server_error("authenticate", &body)),
            other => Err(unexpected("authentication result", &other)),
        }
    }

    async fn scram(&mut self, password: &[u8]) -> Result<(), SourceError> {
        let mut scram = ScramSha256::new(password, ChannelBinding::unsupported());
        frontend::sasl_initial_response(SCRAM_SHA_256, scram.message(), &mut self.write_buf)?;
        self.flush().await?;
        match self.read_message().await? {
            Message::AuthenticationSaslContinue(body) => scram.update(body.data())?,
            Message::ErrorResponse(body) => return Err(server_error("authenticate", &body)),
            other => return Err(unexpected("SCRAM continue", &other)),
        }
        frontend::sasl_response(scram.message(), &mut self.write_buf)?;
        self.flush().await?;
        match self.read_message().await? {
            Message::AuthenticationSaslFinal(body) => scram.finish(body.data())?,
            Message::ErrorResponse(body) => return Err(server_error("authenticate", &body)),
            other => return Err(unexpected("SCRAM final", &other)),
        }
        // The caller reads the AuthenticationOk that follows.
        Ok(())
    }

    /// Runs one simple-protocol command and returns its rows as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<TextRows, SourceError> {
        frontend::query(sql, &mut self.write_buf)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::DataRow(body) => {
                    let buffer = body.buffer();
                    let mut values = Vec::new();
                    let mut ranges = body.ranges();
                    while let Some(range) = ranges.next()? {
                        values.push(match range {
                            Some(r) => Some(
                                std::str::from_utf8(buffer.get(r).unwrap_or_default())
                                    .map_err(|_| {
                                        SourceError::Protocol(
                                            "non-UTF-8 text in a result row".into(),
                                        )
                                    })?
                                    .to_owned(),
                            ),
                            None => None,
                        });
                    }
                    rows.push(values);
                }
                Message::ErrorResponse(body) => error = Some(server_error(sql, &body)),
                Message::ReadyForQuery(_) => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    }
                }
                Message::RowDescription(_)
                | Message::CommandComplete(_)
                | Message::EmptyQueryResponse
                | Message::NoticeResponse(_)
                | Message::ParameterStatus(_) => {}
                other => return Err(unexpected("query result", &other)),
            }
        }
    }

    /// Sends `START_REPLICATION …` and waits for the server to enter CopyBoth mode.
    pub async fn start_copy_both(&mut self, command: &str) -> Result<(), SourceError> {
        frontend::query(command, &mut self.write_buf)?;
        self.flush().await?;
        loop {
            if self.take_copy_both_response().await? {
                return Ok(());
            }
            match self.read_message().await? {
                Message::NoticeResponse(_) | Message::ParameterStatus(_) => {}
                Message::ErrorResponse(body) => {
                    return Err(server_error("START_REPLICATION", &body))
                }
                other => return Err(unexpected("START_REPLICATION", &other)),
            }
        }
    }

    /// Reads the next CopyData payload of the replication stream; `None` when the server ended it.
    pub async fn next_copy_data(&mut self) -> Result<Option<Bytes>, SourceError> {
        loop {
            match self.read_message().await? {
                Message::CopyData(body) => return Ok(Some(body.into_bytes())),
                Message::CopyDone => return Ok(None),
                Message::NoticeResponse(_) | Message::ParameterStatus(_) => {}
                Message::ErrorResponse(body) => {
                    return Err(server_error("replication stream", &body))
                }
                other => return Err(unexpected("replication stream", &other)),
            }
        }
    }

    /// Sends one CopyData message (a standby status update) to the server.
    pub async fn send_copy_data(&mut self, payload: &[u8]) -> Result<(), SourceError> {
        frontend::CopyData::new(payload)?.write(&mut self.write_buf);
        self.flush().await
    }

    /// Ends the session politely.
    pub async fn close(mut self) -> Result<(), SourceError> {
        frontend::terminate(&mut self.write_buf);
        self.flush().await?;
        self.stream.shutdown().await?;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SourceError> {
        self.stream.write_all(&self.write_buf).await?;
        self.write_buf.clear();
        Ok(())
    }

    /// Consumes a CopyBothResponse ('W') if it is the next message; postgres-protocol
    /// does not know that message, so it is framed here.
    async fn take_copy_both_response(&mut self) -> Result<bool, SourceError> {
        while self.read_buf.len() < 5 {
            self.fill_buf().await?;
        }
        if self.read_buf.first() != Some(&b'W') {
            return Ok(false);
        }
        let len = u32::from_be_bytes([
            self.read_buf[1],
            self.read_buf[2],
            self.read_buf[3],
            self.read_buf[4],
        ]);
        let total =
            1 + usize::try_from(len).map_err(|_| SourceError::Protocol("huge message".into()))?;
        if !(4..=1 << 20).contains(&len) {
            return Err(SourceError::Protocol(format!(
                "CopyBothResponse of length {len}"
            )));
        }
        while self.read_buf.len() < total {
            self.fill_buf().await?;
        }
        let _ = self.read_buf.split_to(total);
        Ok(true)
    }

    async fn read_message(&mut self) -> Result<Message, SourceError> {
        loop {
            if let Some(message) = Message::parse(&mut self.read_buf)? {
                return Ok(message);
            }
            self.fill_buf().await?;
        }
    }

    async fn fill_buf(&mut self) -> Result<(), SourceError> {
        if self.read_buf.capacity() - self.read_buf.len() < 8 * 1024 {
            self.read_buf.reserve(64 * 1024);
        }
        let n = self.stream.read_buf(&mut self.read_buf).await?;
        if n == 0 {
            return Err(SourceError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            )));
        }
        Ok(())
    }
}

/// Whether the server refused the session for its lack of TLS (no `pg_hba.conf` line
/// but `hostssl` ones for it).
fn refused_plain(error: &SourceError) -> bool {
    matches!(error, SourceError::Server { code, .. } if code == "28000")
}

fn server_error(context: &str, body: &ErrorResponseBody) -> SourceError {
    let mut code = String::new();
    let mut message = String::new();
    let mut detail = None;
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        match field.type_() {
            b'C' => code = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            b'M' => message = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            b'D' => detail = Some(String::from_utf8_lossy(field.value_bytes()).into_owned()),
            _ => {}
        }
    }
    SourceError::Server {
        context: context.to_owned(),
        code,
        message,
        detail,
    }
}

fn unexpected(stage: &str, message: &Message) -> SourceError {
    let name = match message {
        Message::ReadyForQuery(_) => "ReadyForQuery",
        Message::CopyOutResponse(_) => "CopyOutResponse",
        Message::CopyInResponse(_) => "CopyInResponse",
        Message::DataRow(_) => "DataRow",
        _ => "another message",
    };
    SourceError::Protocol(format!("unexpected {name} during {stage}"))
}
