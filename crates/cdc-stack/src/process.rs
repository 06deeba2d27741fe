//! The pipeline's components as real processes of `totesys-cdc`, for process-level tests.
//!
//! ```text
//!   ProcessStack::start()
//!     ├─ source TestDb ── `simulate --init` (schema, seed) ── audit trigger (optional)
//!     ├─ registry TestDb ── `totesys-cdc registry` process (REST on a free port)
//!     ├─ warehouse TestDb ── `totesys-cdc init`
//!     └─ Apache Kafka (KRaft): one node, or a cluster (start_with_brokers); data kept across kills
//!   stack.capture() / lake() / model() / simulate(..) ── Component (not started)
//!     start() · wait_ready() · scrape() · sigterm() · wait_exit() · restart · kill on drop
//! ```
//!
//! Every component logs to `<dir>/<name>.log` (all its runs, appended); tests print the
//! log when something fails.

pub mod chaos;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cdc_testkit::{free_port, KafkaCluster, PgCluster, TestDb, SUPERUSER_PASSWORD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The binary under test: `$TOTESYS_CDC_BIN`, else the `totesys-cdc` Cargo built beside the
/// running program (a test in `target/<profile>/deps/` or a bench in `target/<profile>/`;
/// Cargo builds a package's binaries for its integration tests).
pub fn bin() -> String {
    if let Ok(path) = std::env::var("TOTESYS_CDC_BIN") {
        return path;
    }
    let exe = std::env::current_exe().expect("the running program's path");
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("totesys-cdc"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no totesys-cdc beside {}: build it or set TOTESYS_CDC_BIN",
                exe.display()
            )
        })
        .display()
        .to_string()
}

/// The source tables (the simulator's totesys schema).
pub const TABLES: [&str; 11] = cdc_sim::TABLES;

/// One long-running process: a pipeline component, the simulator, or anything else.
pub struct Component {
    /// Short name, used for the log file and messages.
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    metrics: Option<SocketAddr>,
    child: Option<Child>,
    /// Where this run's output starts in the log.
    run_offset: u64,
    /// How many times it was started.
    pub starts: u32,
}

impl Component {
    /// A process of `program` with `args` and extra `env`, logging to `<log_dir>/<name>.log`.
    pub fn new(
        name: &str,
        program: impl Into<PathBuf>,
        args: &[&str],
        env: Vec<(String, String)>,
        log_dir: &Path,
    ) -> Component {
        Component {
            name: name.to_owned(),
            program: program.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env,
            log: log_dir.join(format!("{name}.log")),
            metrics: None,
            child: None,
            run_offset: 0,
            starts: 0,
        }
    }

    /// Adds `--metrics-listen 127.0.0.1:<free port>` (the same port on every start).
    pub fn with_metrics(mut self) -> Component {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        self.args.push("--metrics-listen".into());
        self.args.push(addr.to_string());
        self.metrics = Some(addr);
        self
    }

    /// Adds arguments.
    pub fn arg(mut self, args: &[&str]) -> Component {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Sets (or overrides) an environment variable.
    pub fn with_env(mut self, key: &str, value: &str) -> Component {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts (or starts again) the process; its stdout and stderr append to the log.
    pub fn start(&mut self) -> &mut Component {
        assert!(
            self.child.is_none(),
            "{} is already running (pid {})",
            self.name,
            self.pid()
        );
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        std::io::Write::write_all(
            &mut log,
            format!("===== {} start {} =====\n", self.name, self.starts).as_bytes(),
        )
        .unwrap();
        self.run_offset = log.metadata().unwrap().len();
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("TOTESYS_CDC_CONFIG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
        self
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("{} is not running", self.name))
    }

    /// Whether the process runs (reaping it when it has exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// `--metrics-listen` of this component.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
            .unwrap_or_else(|| panic!("{} has no metrics address", self.name))
    }

    /// The `/metrics` text.
    pub async fn scrape(&self) -> String {
        let (status, body) = http_get(self.metrics_addr(), "/metrics")
            .await
            .unwrap_or_else(|e| panic!("scraping {}: {e}", self.name));
        assert_eq!(status, 200, "{} /metrics: {body}", self.name);
        body
    }

    /// The sum of every sample of `metric` (all label sets), 0 when it has none.
    pub async fn metric(&self, metric: &str) -> f64 {
        metric_sum(&self.scrape().await, metric)
    }

    /// Like [`Component::metric`], `None` while the process does not answer (starting).
    pub async fn try_metric(&self, metric: &str) -> Option<f64> {
        match http_get(self.metrics_addr(), "/metrics").await {
            Ok((200, body)) => Some(metric_sum(&body, metric)),
            _ => None,
        }
    }

    /// Waits until `/readyz` answers 200; panics with the log if the process exits first.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if !self.is_running() {
                panic!("{} exited before it was ready:\n{}", self.name, self.log());
            }
            if let Ok((200, _)) = http_get(self.metrics_addr(), "/readyz").await {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{} not ready after {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "kill -TERM {} ({})",
            self.pid(),
            self.name
        );
    }

    /// Waits for the process to exit and returns its status; panics with the log after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            let child = self
                .child
                .as_mut()
                .unwrap_or_else(|| panic!("{} is not running", self.name));
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            if start.elapsed() > timeout {
                let pid = child.id();
                let log = self.log_of_this_run();
                panic!(
                    "{} (pid {pid}) did not exit within {timeout:?}; its log:\n{log}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit; asserts it was clean (status 0) within `timeout`.
    pub async fn stop(&mut self, timeout: Duration) {
        self.sigterm();
        let status = self.wait_exit(timeout).await;
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM:\n{}",
            self.name,
            self.log_of_this_run()
        );
    }

    /// SIGKILL (if running) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything every run logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the current (or last) run logged.
    pub fn log_of_this_run(&self) -> String {
        let all = std::fs::read(&self.log).unwrap_or_default();
        let from = (self.run_offset as usize).min(all.len());
        String::from_utf8_lossy(&all[from..]).into_owned()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The sum of the samples of `metric` in a Prometheus text exposition.
pub fn metric_sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A plain HTTP/1.0 GET to `addr`: the status code and the body.
pub async fn http_get(addr: SocketAddr, path_and_query: &str) -> std::io::Result<(u16, String)> {
    let connect = tokio::net::TcpStream::connect(addr);
    let mut stream = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    stream
        .write_all(format!("GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .map_err(|_| std::io::Error::other("response timed out"))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    Ok((status, body.to_owned()))
}

/// `text` percent-encoded for a URL query value.
pub fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A small seeded generator (xorshift64*) for reproducible random delays and orders.
pub struct Rng(u64);

impl Rng {
    /// Seeded (any seed, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// A number in `range`.
    pub fn range(&mut self, range: std::ops::Range<u64>) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        range.start + self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % (range.end - range.start)
    }
}

/// One source table's changes in the lake, as DuckDB reads the Parquet files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeTable {
    /// Rows of the initial snapshot (`_op = 'r'`).
    pub snapshot_rows: i64,
    /// Distinct `(_kafka_partition, _kafka_offset)` among the snapshot rows.
    pub snapshot_positions: i64,
    /// Streamed change rows (`_op` other than `r`).
    pub changes: i64,
    /// Distinct `(_commit_lsn, _ordinal)` among them: the changes themselves.
    pub distinct_changes: i64,
    /// Distinct `(_kafka_partition, _kafka_offset)` over every row.
    pub distinct_positions: i64,
    /// Rows in total.
    pub rows: i64,
}

/// The subcommands that talk to Kafka (and so take `--kafka-property`).
const KAFKA_SUBCOMMANDS: [&str; 7] = [
    "init", "capture", "lake", "topics", "replay", "status", "check",
];

/// The SCRAM-SHA-512 user of a secure stack's broker.
pub const KAFKA_USER: &str = "cdc-pipeline";
/// The PostgreSQL role a secure stack's components log in as (with a password of its
/// own: the test clusters' superuser password is too common a word to search logs for).
pub const PG_USER: &str = "cdc_secure_login";
/// The registry's basic-auth user in a secure stack.
pub const REGISTRY_USER: &str = "cdc-pipeline";

/// The secrets a secure stack hands its components, each only through the environment:
/// no log line or metric may ever show one.
#[derive(Debug, Clone)]
pub struct StackSecrets {
    /// `TOTESYS_CDC_KAFKA_SASL_PASSWORD`.
    pub kafka_password: String,
    /// `TOTESYS_CDC_KAFKA_SSL_KEY_PASSWORD` (the client key is encrypted with it).
    pub key_password: String,
    /// `TOTESYS_CDC_REGISTRY_PASSWORD`.
    pub registry_password: String,
    /// `PGPASSWORD`, of [`PG_USER`].
    pub pg_password: String,
}

impl StackSecrets {
    /// Fresh, recognisable values.
    fn generate() -> StackSecrets {
        let tag = format!("{:08x}", rand::random::<u32>());
        StackSecrets {
            kafka_password: format!("kafka-SASL-secret-{tag}"),
            key_password: format!("client-KEY-secret-{tag}"),
            registry_password: format!("registry-BASIC-secret-{tag}"),
            pg_password: format!("pg-LOGIN-secret-{tag}"),
        }
    }

    /// Every secret, with the forms it could leak in (the basic-auth header's base64),
    /// each with what it is.
    pub fn all(&self) -> Vec<(&'static str, String)> {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{REGISTRY_USER}:{}", self.registry_password));
        vec![
            ("the Kafka SASL password", self.kafka_password.clone()),
            ("the client key's password", self.key_password.clone()),
            ("the registry password", self.registry_password.clone()),
            ("the PostgreSQL password", self.pg_password.clone()),
            ("the registry's basic-auth header", basic),
        ]
    }
}

/// What a secure stack's components are given: TLS to PostgreSQL (`verify-full`),
/// SASL_SSL with a client certificate to Kafka, HTTPS with basic auth to the registry.
#[derive(Debug, Clone)]
pub struct Secure {
    /// The test CA and the certificates it signed.
    pub certs: cdc_testkit::TestCerts,
    /// The client key, encrypted with [`StackSecrets::key_password`].
    pub encrypted_key: PathBuf,
    /// The secrets.
    pub secrets: StackSecrets,
}

impl Secure {
    /// The `--kafka-property` arguments of a component (no secret among them).
    pub fn kafka_args(&self) -> Vec<String> {
        [
            "security.protocol=SASL_SSL".to_owned(),
            "sasl.mechanism=SCRAM-SHA-512".to_owned(),
            format!("sasl.username={KAFKA_USER}"),
            format!("ssl.ca.location={}", self.certs.ca.display()),
            format!(
                "ssl.certificate.location={}",
                self.certs.client_cert.display()
            ),
            format!("ssl.key.location={}", self.encrypted_key.display()),
        ]
        .into_iter()
        .flat_map(|property| ["--kafka-property".to_owned(), property])
        .collect()
    }
}

/// Source database, registry, warehouse and broker; the components are made on demand.
pub struct ProcessStack {
    /// Logs, capture state, the lake, the broker's files.
    pub dir: tempfile::TempDir,
    /// The source database (the simulator's schema and seed).
    pub source: TestDb,
    /// A client of the source database.
    pub source_client: tokio_postgres::Client,
    /// The registry's database.
    pub registry_db: TestDb,
    /// The warehouse database (`totesys-cdc init` done).
    pub warehouse: TestDb,
    /// The Apache Kafka node or cluster.
    pub kafka: KafkaCluster,
    /// The `totesys-cdc registry` process.
    pub registry: Component,
    /// Where the registry listens.
    pub registry_addr: SocketAddr,
    /// The lake (a local directory).
    pub lake_dir: PathBuf,
    /// The source's and the warehouse's own clusters, when the stack has them (to be
    /// restarted); stopped when the stack is dropped.
    pub own_clusters: Option<(PgCluster, PgCluster)>,
    /// TLS, SASL and basic auth everywhere, when the stack is secure.
    pub secure: Option<Secure>,
}

impl Drop for ProcessStack {
    fn drop(&mut self) {
        if let Some((source, warehouse)) = &self.own_clusters {
            let _ = source.stop();
            let _ = warehouse.stop();
        }
    }
}

impl ProcessStack {
    /// Starts the databases, a one-node Kafka and the registry; creates and seeds the
    /// totesys schema (`simulate --init`) and initialises the warehouse (`init`).
    pub async fn start() -> ProcessStack {
        Self::start_with_brokers(1).await
    }

    /// Like [`ProcessStack::start`], on a Kafka cluster of `brokers` nodes.
    pub async fn start_with_brokers(brokers: usize) -> ProcessStack {
        Self::start_with(brokers, false).await
    }

    /// Like [`ProcessStack::start_with_brokers`]; with `own_clusters`, the source and
    /// the warehouse (with the registry's database) get PostgreSQL clusters of their own,
    /// so that each can be restarted ([`ProcessStack::restart_source`]).
    pub async fn start_with(brokers: usize, own_clusters: bool) -> ProcessStack {
        Self::start_inner(brokers, own_clusters, false).await
    }

    /// A stack as production runs it: one PostgreSQL cluster that accepts only TLS
    /// (components connect with `sslmode=verify-full`), a broker whose only listener the
    /// components use is SASL_SSL (SCRAM-SHA-512, client certificate with an encrypted
    /// key), and the registry over HTTPS requiring basic auth from a users file made by
    /// `totesys-cdc registry-user`. Every secret reaches the components through the
    /// environment only.
    pub async fn start_secure() -> ProcessStack {
        Self::start_inner(1, false, true).await
    }

    async fn start_inner(brokers: usize, own_clusters: bool, secure: bool) -> ProcessStack {
        let dir = tempfile::tempdir().unwrap();
        let secure = secure.then(|| {
            cdc_testkit::open_to_postgres(dir.path()).unwrap();
            let certs = cdc_testkit::TestCerts::generate(&dir.path().join("certs")).unwrap();
            let secrets = StackSecrets::generate();
            let encrypted_key = certs.encrypted_client_key(&secrets.key_password).unwrap();
            Secure {
                certs,
                encrypted_key,
                secrets,
            }
        });
        let tls_cluster = secure.as_ref().map(|secure| {
            let cluster = PgCluster::ensure_running(&dir.path().join("pg-tls")).unwrap();
            cluster.require_tls(&secure.certs).unwrap();
            cluster
        });
        let clusters = match &tls_cluster {
            Some(cluster) => Some((cluster.clone(), cluster.clone())),
            None => own_clusters.then(|| {
                (
                    PgCluster::ensure_running(&dir.path().join("pg-source")).unwrap(),
                    PgCluster::ensure_running(&dir.path().join("pg-warehouse")).unwrap(),
                )
            }),
        };
        let create = |cluster: Option<&PgCluster>| {
            let cluster = cluster.cloned();
            async move {
                match cluster {
                    Some(cluster) => TestDb::create_in(cluster).await.unwrap(),
                    None => TestDb::create().await.unwrap(),
                }
            }
        };
        let source = create(clusters.as_ref().map(|c| &c.0)).await;
        let source_client = source.client().await.unwrap();
        if let Some(secure) = &secure {
            // A literal is needed (utility statements take no parameters); the value is ours.
            source_client
                .batch_execute(&format!(
                    "CREATE ROLE \"{PG_USER}\" LOGIN SUPERUSER PASSWORD '{}'",
                    secure.secrets.pg_password
                ))
                .await
                .unwrap();
        }
        let registry_db = create(clusters.as_ref().map(|c| &c.1)).await;
        let warehouse = create(clusters.as_ref().map(|c| &c.1)).await;
        let kafka_options = cdc_testkit::KafkaOptions {
            sasl_ssl: secure.as_ref().map(|secure| cdc_testkit::SaslSslListener {
                server_cert: secure.certs.server_cert.clone(),
                server_key: secure.certs.server_key.clone(),
                ca: secure.certs.ca.clone(),
                users: vec![(KAFKA_USER.to_owned(), secure.secrets.kafka_password.clone())],
                client_auth: true,
            }),
            ..cdc_testkit::KafkaOptions::default()
        };
        let kafka =
            KafkaCluster::start_with(&dir.path().join("kafka"), brokers, kafka_options).unwrap();
        let registry_addr: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        let lake_dir = dir.path().join("lake");
        let mut registry_args = vec![
            "registry".to_owned(),
            "--listen".to_owned(),
            registry_addr.to_string(),
        ];
        if let Some(secure) = &secure {
            let users = dir.path().join("registry-users");
            let line = registry_user_line(&secure.secrets.registry_password).await;
            std::fs::write(
                &users,
                format!("# made by totesys-cdc registry-user\n{line}\n"),
            )
            .unwrap();
            registry_args.extend([
                "--tls-cert".to_owned(),
                secure.certs.server_cert.display().to_string(),
                "--tls-key".to_owned(),
                secure.certs.server_key.display().to_string(),
                "--users-file".to_owned(),
                users.display().to_string(),
            ]);
        }
        let registry_args: Vec<&str> = registry_args.iter().map(String::as_str).collect();
        let mut stack = ProcessStack {
            registry: Component::new("registry", bin(), &registry_args, Vec::new(), dir.path()),
            dir,
            source,
            source_client,
            registry_db,
            warehouse,
            kafka,
            registry_addr,
            lake_dir,
            own_clusters: clusters,
            secure,
        };
        stack.registry.env = stack.env();
        stack.registry.start();
        let start = Instant::now();
        while !stack.registry_answers().await {
            assert!(
                stack.registry.is_running(),
                "the registry exited:\n{}",
                stack.registry.log()
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the registry did not answer on {registry_addr}:\n{}",
                stack.registry.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stack.run(&["simulate", "--init", "--rate", "0"]).await;
        stack.run(&["init"]).await;
        stack
    }

    /// Whether the registry answers `GET /subjects` with 200 (over HTTPS with the
    /// stack's CA and user when the stack is secure).
    async fn registry_answers(&self) -> bool {
        let Some(secure) = &self.secure else {
            return matches!(
                http_get(self.registry_addr, "/subjects").await,
                Ok((200, _))
            );
        };
        let client = cdc_registry::RegistryClient::builder(&self.registry_url())
            .ca_file(&secure.certs.ca)
            .basic_auth(
                REGISTRY_USER,
                cdc_core::Secret::new(&secure.secrets.registry_password),
            )
            .max_retries(0)
            .build()
            .unwrap();
        client.compatibility(None).await.is_ok()
    }

    /// `GET path` of the registry over HTTPS with the stack's CA (no credentials unless
    /// `authenticated`): its status and body. The stack must be secure.
    pub async fn registry_https_get(&self, path: &str, authenticated: bool) -> (u16, String) {
        let secure = self.secure.as_ref().expect("a secure stack");
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&secure.certs.ca).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .unwrap();
        let mut request = client.get(format!("{}{path}", self.registry_url()));
        if authenticated {
            request = request.basic_auth(REGISTRY_USER, Some(&secure.secrets.registry_password));
        }
        let reply = request.send().await.unwrap();
        let status = reply.status().as_u16();
        (status, reply.text().await.unwrap())
    }

    /// Restarts the source's own cluster in immediate mode (a crash) and reconnects.
    pub async fn restart_source(&mut self) {
        let (source, _) = self
            .own_clusters
            .as_ref()
            .expect("the stack has its own clusters");
        source.restart_immediate().unwrap();
        self.source_client = self.source.client().await.unwrap();
    }

    /// Restarts the warehouse's own cluster (with the registry's database) in immediate mode.
    pub fn restart_warehouse(&self) {
        let (_, warehouse) = self
            .own_clusters
            .as_ref()
            .expect("the stack has its own clusters");
        warehouse.restart_immediate().unwrap();
    }

    /// The lake writer `name`, optionally a static member of the writers' group.
    pub fn lake_writer(&self, name: &str, static_member: bool) -> Component {
        let mut args = vec!["lake"];
        if static_member {
            args.extend(["--group-instance-id", name]);
        }
        self.component(name, &args).with_metrics()
    }

    /// A connection string without a password (it comes from PGPASSWORD); through
    /// `localhost` under `sslmode=verify-full` with the test CA when the stack is secure.
    fn url(&self, db: &TestDb) -> String {
        match &self.secure {
            None => format!(
                "host=127.0.0.1 port={} user=postgres dbname={}",
                db.cluster.port, db.name
            ),
            Some(secure) => format!(
                "host=localhost port={} user={PG_USER} dbname={} sslmode=verify-full sslrootcert={}",
                db.cluster.port,
                db.name,
                secure.certs.ca.display()
            ),
        }
    }

    /// The environment every component gets: where everything is.
    pub fn env(&self) -> Vec<(String, String)> {
        let pg_password = match &self.secure {
            Some(secure) => secure.secrets.pg_password.clone(),
            None => SUPERUSER_PASSWORD.to_owned(),
        };
        let mut env: Vec<(String, String)> = [
            ("PGPASSWORD", pg_password),
            ("TOTESYS_CDC_SOURCE_URL", self.url(&self.source)),
            ("TOTESYS_CDC_WAREHOUSE_URL", self.url(&self.warehouse)),
            (
                "TOTESYS_CDC_REGISTRY_DATABASE_URL",
                self.url(&self.registry_db),
            ),
            (
                "TOTESYS_CDC_KAFKA_BOOTSTRAP_SERVERS",
                self.kafka
                    .secure_bootstrap()
                    .unwrap_or_else(|| self.kafka.bootstrap()),
            ),
            ("TOTESYS_CDC_REGISTRY_URL", self.registry_url()),
            (
                "TOTESYS_CDC_LAKE_URL",
                self.lake_dir.to_string_lossy().into_owned(),
            ),
            (
                "TOTESYS_CDC_LOG",
                // A secure stack logs everything, so its logs can be searched for secrets.
                std::env::var("TOTESYS_CDC_LOG").unwrap_or_else(|_| {
                    if self.secure.is_some() {
                        "debug"
                    } else {
                        "info"
                    }
                    .into()
                }),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(secure) = &self.secure {
            let secrets = &secure.secrets;
            env.extend(
                [
                    (
                        "TOTESYS_CDC_KAFKA_SASL_PASSWORD",
                        secrets.kafka_password.clone(),
                    ),
                    (
                        "TOTESYS_CDC_KAFKA_SSL_KEY_PASSWORD",
                        secrets.key_password.clone(),
                    ),
                    ("TOTESYS_CDC_REGISTRY_USER", REGISTRY_USER.to_owned()),
                    (
                        "TOTESYS_CDC_REGISTRY_PASSWORD",
                        secrets.registry_password.clone(),
                    ),
                    (
                        "TOTESYS_CDC_REGISTRY_CA_FILE",
                        secure.certs.ca.display().to_string(),
                    ),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v)),
            );
        }
        env
    }

    /// `http://<registry address>`, or `https://localhost:<port>` when the stack is secure.
    pub fn registry_url(&self) -> String {
        match self.secure {
            Some(_) => format!("https://localhost:{}", self.registry_addr.port()),
            None => format!("http://{}", self.registry_addr),
        }
    }

    /// `args` with the secure stack's `--kafka-property` settings added when the
    /// subcommand talks to Kafka.
    pub fn with_kafka_args(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        if let (Some(secure), Some(sub)) = (&self.secure, args.first()) {
            if KAFKA_SUBCOMMANDS.contains(sub) {
                all.extend(secure.kafka_args());
            }
        }
        all
    }

    /// A `totesys-cdc <args>` component with the stack's environment (not started).
    pub fn component(&self, name: &str, args: &[&str]) -> Component {
        let args = self.with_kafka_args(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Component::new(name, bin(), &args, self.env(), self.dir.path())
    }

    /// Capture into Kafka (slot named after the source database, transaction topic on).
    pub fn capture(&self) -> Component {
        let state = self.dir.path().join("capture-state");
        self.component(
            "capture",
            &[
                "capture",
                "--slot",
                &self.source.name,
                "--state-dir",
                &state.to_string_lossy(),
                "--transaction-topic",
                "--no-progress",
                "--heartbeat-secs",
                "1",
                "--report-every",
                "0",
            ],
        )
        .with_metrics()
    }

    /// The lake writer.
    pub fn lake(&self) -> Component {
        self.component("lake", &["lake"]).with_metrics()
    }

    /// The modeler.
    pub fn model(&self) -> Component {
        self.component("model", &["model"]).with_metrics()
    }

    /// The simulator's live workload (not started).
    pub fn simulate(&self, rate: u64, duration: Option<u64>, seed: u64) -> Component {
        let mut args = vec![
            "simulate".to_owned(),
            "--rate".to_owned(),
            rate.to_string(),
            "--seed".to_owned(),
            seed.to_string(),
        ];
        if let Some(secs) = duration {
            args.extend(["--duration".to_owned(), secs.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.component("simulate", &args)
    }

    /// Runs `totesys-cdc <args>` to completion and returns its output; panics if it fails.
    pub async fn run(&self, args: &[&str]) -> String {
        let output = tokio::process::Command::new(bin())
            .args(self.with_kafka_args(args))
            .envs(self.env())
            .env_remove("TOTESYS_CDC_CONFIG")
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // Kept with the components' logs (a secure stack's are searched for secrets).
        let log = self.dir.path().join("run.log");
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        {
            use std::io::Write as _;
            let _ = writeln!(file, "$ totesys-cdc {}\n{text}", args.join(" "));
        }
        assert!(
            output.status.success(),
            "totesys-cdc {args:?} failed:\n{text}"
        );
        text
    }

    /// Starts capture for the first time and waits until its initial snapshot (every
    /// row the source holds now) is acknowledged by the broker.
    pub async fn start_capture(&self, capture: &mut Component) {
        let mut rows = 0;
        for table in TABLES {
            let n: i64 = self
                .source_client
                .query_one(&format!("SELECT count(*) FROM public.\"{table}\""), &[])
                .await
                .unwrap()
                .get(0);
            rows += n;
        }
        capture.start();
        capture.wait_ready(Duration::from_secs(60)).await;
        let start = Instant::now();
        while capture
            .metric(cdc_publish::metrics::RECORDS_ACKED_TOTAL.name)
            .await
            < rows as f64
        {
            assert!(capture.is_running(), "capture exited:\n{}", capture.log());
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "capture did not deliver its snapshot of {rows} rows:\n{}",
                capture.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts the lake writer and waits until the group gave it its partitions.
    pub async fn start_lake(&self, lake: &mut Component) {
        lake.start();
        lake.wait_ready(Duration::from_secs(60)).await;
        let start = Instant::now();
        while lake
            .metric(cdc_lake::metrics::PARTITIONS_ASSIGNED.name)
            .await
            < 1.0
        {
            assert!(lake.is_running(), "the lake writer exited:\n{}", lake.log());
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no partitions assigned to the lake writer:\n{}",
                lake.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Capture (past its snapshot), the lake writer (with partitions) and the modeler
    /// (ready), each a running process.
    pub async fn start_pipeline(&self) -> (Component, Component, Component) {
        let mut capture = self.capture();
        self.start_capture(&mut capture).await;
        let mut lake = self.lake();
        self.start_lake(&mut lake).await;
        let mut model = self.model();
        model.start();
        model.wait_ready(Duration::from_secs(60)).await;
        (capture, lake, model)
    }

    /// Records, on the source, the row count of every table now (`audit.initial`) and
    /// every row change from now on (`audit.log`, by trigger: independent of decoding).
    pub async fn install_audit(&self) {
        let mut sql = String::from(cdc_testkit::audit::AUDIT_LOG);
        sql.push_str("CREATE TABLE audit.initial (tbl text PRIMARY KEY, n bigint NOT NULL);\n");
        for table in TABLES {
            let _ = write!(
                sql,
                "INSERT INTO audit.initial SELECT '{table}', count(*) FROM public.\"{table}\";\n{}",
                cdc_testkit::audit::audit_trigger(table)
            );
        }
        self.source_client.batch_execute(&sql).await.unwrap();
    }

    /// Per table: (rows when the audit was installed, row changes since).
    pub async fn audit_counts(&self) -> BTreeMap<String, (i64, i64)> {
        let rows = self
            .source_client
            .query(
                "SELECT i.tbl, i.n, (SELECT count(*) FROM audit.log l WHERE l.tbl = i.tbl)
                 FROM audit.initial i",
                &[],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect()
    }

    /// Commits one last change on the source and returns an LSN its commit is above:
    /// once the warehouse's watermark reaches it, everything committed before is applied.
    pub async fn mark_end(&self) -> String {
        let mut client = self.source.client().await.unwrap();
        let txn = client.transaction().await.unwrap();
        txn.execute(
            "UPDATE currency SET last_updated = now()
             WHERE currency_id = (SELECT min(currency_id) FROM currency)",
            &[],
        )
        .await
        .unwrap();
        let lsn: String = txn
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .unwrap()
            .get(0);
        txn.commit().await.unwrap();
        lsn
    }

    /// The warehouse's applied watermark (`totesys_cdc.applied`), if any.
    pub async fn watermark(&self, warehouse: &tokio_postgres::Client) -> Option<String> {
        warehouse
            .query_opt("SELECT commit_lsn::text FROM totesys_cdc.applied", &[])
            .await
            .unwrap()
            .map(|r| r.get(0))
    }

    /// Waits until the warehouse has applied everything up to `lsn` (from [`Self::mark_end`]);
    /// panics after `timeout`, naming the components that are not running.
    pub async fn wait_applied(&self, lsn: &str, timeout: Duration, running: &mut [&mut Component]) {
        let warehouse = self.warehouse.client().await.unwrap();
        let start = Instant::now();
        loop {
            let done: Option<bool> = warehouse
                .query_opt(
                    "SELECT commit_lsn >= $1::text::pg_lsn FROM totesys_cdc.applied",
                    &[&lsn],
                )
                .await
                .unwrap()
                .map(|r| r.get(0));
            if done == Some(true) {
                return;
            }
            if start.elapsed() > timeout {
                let mut why = String::new();
                for c in running.iter_mut() {
                    let alive = c.is_running();
                    let _ = writeln!(
                        why,
                        "--- {} (running: {alive}):\n{}",
                        c.name,
                        tail(&c.log(), 40)
                    );
                }
                panic!(
                    "the warehouse did not reach {lsn} within {timeout:?} (watermark {:?})\n{why}",
                    self.watermark(&warehouse).await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every current dimension and fact equals the recomputation from the source.
    pub async fn assert_warehouse_matches_source(&self) {
        let warehouse = self.warehouse.client().await.unwrap();
        let checks = cdc_testkit::check_warehouse(&self.source_client, &warehouse)
            .await
            .unwrap();
        for check in &checks {
            assert!(
                check.matches(),
                "warehouse differs from the source: {check:#?}"
            );
            assert!(check.source_rows > 0, "{}: empty", check.table);
        }
    }

    /// The lake (read by DuckDB) holds every Kafka record once, the initial snapshot
    /// once, and each streamed change once: per table as many `(_commit_lsn, _ordinal)`
    /// as the audit trigger recorded row changes, none twice. Nothing may write the lake
    /// meanwhile.
    pub async fn assert_lake_holds_each_change_once(&self) {
        let audit = self.audit_counts().await;
        let in_lake = self.lake_tables().await;
        let mut changes = 0;
        for (table, (initial, changed)) in &audit {
            let got = in_lake.get(table).cloned().unwrap_or_default();
            println!("lake {table}: {got:?}; source: {initial} rows at the start, {changed} row changes since");
            assert_eq!(
                got.distinct_positions, got.rows,
                "{table}: a Kafka record is in the lake twice"
            );
            assert_eq!(
            (got.snapshot_rows, got.snapshot_positions),
            (*initial, *initial),
            "{table}: the snapshot in the lake (rows, distinct records) against the source's rows"
        );
            assert_eq!(
                got.distinct_changes, *changed,
                "{table}: the changes in the lake against the row changes the source made"
            );
            assert_eq!(
                got.changes, got.distinct_changes,
                "{table}: a change (_commit_lsn, _ordinal) is in the lake twice"
            );
            changes += changed;
        }
        assert!(changes > 1000, "the load made {changes} row changes");
    }

    /// The warehouse history has no version twice, and as many fact versions as the
    /// source made inserts and updates (audit trigger).
    pub async fn assert_history_once(&self) {
        let warehouse = self.warehouse.client().await.unwrap();
        for (history, key) in [
            ("dim_staff_history", "staff_id"),
            ("dim_location_history", "location_id"),
            ("dim_currency_history", "currency_id"),
            ("dim_design_history", "design_id"),
            ("dim_counterparty_history", "counterparty_id"),
            ("dim_payment_type_history", "payment_type_id"),
            ("dim_transaction_history", "transaction_id"),
            ("fact_sales_order_version", "sales_order_id"),
            ("fact_purchase_order_version", "purchase_order_id"),
            ("fact_payment_version", "payment_id"),
        ] {
            let twice: i64 = warehouse
                .query_one(
                    &format!(
                        "SELECT count(*) FROM (SELECT 1 FROM {history}
                     GROUP BY {key}, source_commit_lsn, source_ordinal HAVING count(*) > 1) d"
                    ),
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(twice, 0, "{history}: versions made twice by one change");
        }
        for (versions, table) in [
            ("fact_sales_order_version", "sales_order"),
            ("fact_purchase_order_version", "purchase_order"),
            ("fact_payment_version", "payment"),
        ] {
            let held: i64 = warehouse
                .query_one(&format!("SELECT count(*) FROM {versions}"), &[])
                .await
                .unwrap()
                .get(0);
            let made = rows_and_versions_made(&self.source_client, table).await;
            println!("{versions}: {held} versions; the source made {made} rows and row versions");
            assert_eq!(held, made, "{versions}: one version per insert and update");
        }
    }

    /// Kafka settings for the stack's cluster.
    pub fn kafka_settings(&self) -> cdc_kafka::KafkaSettings {
        cdc_kafka::KafkaSettings::new(self.kafka.bootstrap())
    }

    /// The high watermark of every partition the lake reads (change topics and the
    /// transaction topic), by topic and partition.
    /// Right after a broker is killed a partition may have no serving leader yet: the
    /// lookup is repeated for up to a minute.
    pub async fn lake_highs(&self) -> BTreeMap<(String, i32), i64> {
        let start = Instant::now();
        loop {
            match cdc_lake::lake_partitions(&self.kafka_settings(), "totesys").await {
                Ok(partitions) => {
                    return partitions
                        .into_iter()
                        .map(|p| ((p.topic, p.partition), p.high))
                        .collect()
                }
                Err(e) => assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "the watermarks stay unreadable: {e}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the lake group `group` has committed every partition up to `highs`
    /// (what the topics held at some moment): everything produced before that moment is
    /// in the lake. Returns how long it took; panics when a writer of `lakes` exits, or after
    /// `timeout` with the laggards and the writers' logs.
    pub async fn wait_lake_past(
        &self,
        group: &str,
        highs: &BTreeMap<(String, i32), i64>,
        timeout: Duration,
        lakes: &mut [&mut Component],
    ) -> Duration {
        let settings = self.kafka_settings();
        let start = Instant::now();
        loop {
            let committed = cdc_lake::committed_offsets(&settings, group, "totesys").await;
            let behind: Vec<_> = match &committed {
                Ok(committed) => highs
                    .iter()
                    .filter(|(key, high)| {
                        **high > 0 && committed.get(*key).is_none_or(|c| c < *high)
                    })
                    .map(|(key, high)| (key.clone(), *high, committed.get(key).copied()))
                    .collect(),
                Err(_) => Vec::new(),
            };
            if committed.is_ok() && behind.is_empty() {
                return start.elapsed();
            }
            for lake in lakes.iter_mut() {
                assert!(
                    lake.is_running(),
                    "the lake writer {} exited:\n{}",
                    lake.name,
                    tail(&lake.log_of_this_run(), 40)
                );
            }
            if start.elapsed() > timeout {
                let mut logs = String::new();
                for lake in lakes.iter() {
                    let _ = writeln!(logs, "--- {}:\n{}", lake.name, tail(&lake.log(), 60));
                }
                panic!(
                    "the lake group {group} did not commit up to the watermarks within {timeout:?}: \
                     (partition, high, committed) {behind:?} {committed:?}\n{logs}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Each source table's changes in the lake, read by DuckDB's delta extension (the
    /// latest snapshot of each table `raw/<table>/`).
    pub async fn lake_tables(&self) -> BTreeMap<String, LakeTable> {
        const SCRIPT: &str = r#"
import json, os, sys
lake, tables = sys.argv[1], sys.argv[2:]
con = delta_duckdb()
for table in tables:
    if not os.path.isdir(f"{lake}/raw/{table}/_delta_log"):
        print(json.dumps({"table": table, "counts": [0, 0, 0, 0, 0, 0]}))
        continue
    counts = con.sql(f'''
        SELECT count(*) FILTER (WHERE _op = 'r'),
               count(DISTINCT (_kafka_partition, _kafka_offset)) FILTER (WHERE _op = 'r'),
               count(*) FILTER (WHERE _op <> 'r'),
               count(DISTINCT (_commit_lsn, _ordinal)) FILTER (WHERE _op <> 'r'),
               count(DISTINCT (_kafka_partition, _kafka_offset)),
               count(*)
        FROM delta_scan('{lake}/raw/{table}')''').fetchall()[0]
    print(json.dumps({"table": table, "counts": list(counts)}))
"#;
        let python = cdc_testkit::python::venv_python().unwrap_or_else(|e| panic!("{e}"));
        let output = tokio::process::Command::new(python)
            .arg("-c")
            .arg(format!("{}{SCRIPT}", cdc_testkit::python::DELTA_DUCKDB))
            .arg(&self.lake_dir)
            .args(TABLES)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "DuckDB on the lake: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut out = BTreeMap::new();
        for line in String::from_utf8(output.stdout).unwrap().lines() {
            let read: serde_json::Value = serde_json::from_str(line).unwrap();
            let c: Vec<i64> = read["counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            out.insert(
                read["table"].as_str().unwrap().to_owned(),
                LakeTable {
                    snapshot_rows: c[0],
                    snapshot_positions: c[1],
                    changes: c[2],
                    distinct_changes: c[3],
                    distinct_positions: c[4],
                    rows: c[5],
                },
            );
        }
        out
    }
}

/// A users-file line for [`REGISTRY_USER`] made by `totesys-cdc registry-user`, the
/// password given on its standard input.
async fn registry_user_line(password: &str) -> String {
    let mut child = tokio::process::Command::new(bin())
        .args(["registry-user", REGISTRY_USER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        output.status.success() && stdout.starts_with(&format!("{REGISTRY_USER}:$pbkdf2-sha256$")),
        "registry-user failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains(password));
    stdout
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Rows and row versions the source made in `table` (its initial rows plus every audited
/// insert and update): what its fact history must hold, one version each.
pub async fn rows_and_versions_made(source: &tokio_postgres::Client, table: &str) -> i64 {
    source
        .query_one(
            "SELECT (SELECT n FROM audit.initial WHERE tbl = $1)
              + (SELECT count(*) FROM audit.log WHERE tbl = $1 AND new IS NOT NULL)",
            &[&table],
        )
        .await
        .unwrap()
        .get(0)
}
