//! Apache Kafka in KRaft mode, run from the jars `scripts/setup` installs: one combined
//! broker and controller, or a cluster of them, on free loopback ports.
//!
//! ```text
//!   KafkaCluster::start(dir, 3)
//!     node-1/ server.properties, data/, kafka.log   ─┐ controller quorum 1@,2@,3@
//!     node-2/ …                                       ├─ each node: broker + controller
//!     node-3/ …                                      ─┘ storage formatted once, kept across kills
//! ```
//!
//! A node can be killed (`SIGKILL`, as a crash) and started again on the same ports and
//! data. Heap and thread pools are sized for a 2-core machine that also runs PostgreSQL
//! and the pipeline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::{free_port, TestkitError};

/// How long a node may take to start before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Where Apache Kafka is installed and which Java runs it.
#[derive(Debug, Clone)]
pub struct KafkaInstall {
    /// The directory holding `libs/` (every jar on the class path) and `VERSION`.
    pub home: PathBuf,
    /// The `java` executable.
    pub java: PathBuf,
    /// The Kafka version, from `VERSION`.
    pub version: String,
}

impl KafkaInstall {
    /// Finds the installation: `$TOTESYS_CDC_KAFKA_HOME`, else `kafka` in the cache that
    /// `scripts/setup` fills (`$TOTESYS_CDC_CACHE`, else `$XDG_CACHE_HOME/totesys-cdc`,
    /// else `~/.cache/totesys-cdc`); Java from `$JAVA_HOME`, else `PATH`.
    pub fn find() -> Result<Self, TestkitError> {
        let home = match std::env::var_os("TOTESYS_CDC_KAFKA_HOME") {
            Some(home) => PathBuf::from(home),
            None => cache_dir().join("kafka"),
        };
        let version_file = home.join("VERSION");
        let version = std::fs::read_to_string(&version_file)
            .map_err(|_| TestkitError::Command {
                what: format!(
                    "finding Apache Kafka ({} is missing: run scripts/setup, which installs it from Maven Central, or set TOTESYS_CDC_KAFKA_HOME)",
                    version_file.display()
                ),
            })?
            .trim()
            .to_owned();
        Ok(KafkaInstall {
            home,
            java: find_java()?,
            version,
        })
    }

    fn class_path(&self) -> String {
        format!("{}/*", self.home.join("libs").display())
    }
}

/// The cache `scripts/setup` installs into.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TOTESYS_CDC_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("totesys-cdc")
}

/// `$JAVA_HOME/bin/java`, else the first `java` on `PATH`.
fn find_java() -> Result<PathBuf, TestkitError> {
    let from_home = std::env::var_os("JAVA_HOME").map(|h| PathBuf::from(h).join("bin/java"));
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("java")).collect())
        .unwrap_or_default();
    from_home
        .into_iter()
        .chain(on_path)
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| TestkitError::Command {
            what: "finding Java (install Java 17 or newer, or run scripts/setup)".into(),
        })
}

/// How the nodes' JVMs and thread pools are sized.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// Maximum heap of each node, in MiB.
    pub heap_mib: u32,
    /// Only the JIT's first tier: a faster start and less CPU for short test runs, less
    /// throughput for benchmarks.
    pub quick_start: bool,
    /// Further `server.properties` settings, applied last.
    pub properties: Vec<(String, String)>,
    /// A SASL_SSL listener beside the plaintext one, as production brokers have.
    pub sasl_ssl: Option<SaslSslListener>,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            heap_mib: 512,
            quick_start: true,
            properties: Vec::new(),
            sasl_ssl: None,
        }
    }
}

/// A `SASL_SSL` listener on `localhost`: SCRAM-SHA-512 users, the server's certificate
/// from PEM files, and optionally client certificates required (mutual TLS).
#[derive(Debug, Clone)]
pub struct SaslSslListener {
    /// The server's certificate (PEM), valid for `localhost`.
    pub server_cert: PathBuf,
    /// The server certificate's key (PEM, PKCS #8, unencrypted).
    pub server_key: PathBuf,
    /// The CA clients' certificates must be signed by (with `client_auth`).
    pub ca: PathBuf,
    /// SCRAM-SHA-512 users and their passwords, created when the storage is formatted.
    pub users: Vec<(String, String)>,
    /// Whether clients must show a certificate signed by `ca`.
    pub client_auth: bool,
}

/// The name of the SASL_SSL listener in `server.properties`.
const SECURE_LISTENER: &str = "SECURE";

impl KafkaOptions {
    /// Sized for benchmarks: a larger heap and the full JIT.
    pub fn for_benchmarks() -> Self {
        KafkaOptions {
            heap_mib: 1024,
            quick_start: false,
            ..KafkaOptions::default()
        }
    }
}

/// One combined broker and controller.
#[derive(Debug)]
struct Node {
    id: u32,
    port: u16,
    controller_port: u16,
    /// The SASL_SSL listener's port, when there is one.
    secure_port: Option<u16>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn log_path(&self) -> PathBuf {
        self.dir.join("kafka.log")
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running Apache Kafka cluster of combined broker-controller nodes; killed on drop.
#[derive(Debug)]
pub struct KafkaCluster {
    install: KafkaInstall,
    options: KafkaOptions,
    nodes: Vec<Node>,
}

impl KafkaCluster {
    /// Starts `nodes` nodes keeping their files under `dir`, formatting their storage first.
    pub fn start(dir: &Path, nodes: usize) -> Result<Self, TestkitError> {
        Self::start_with(dir, nodes, KafkaOptions::default())
    }

    /// Like [`KafkaCluster::start`], with the JVM and broker sized by `options`.
    ///
    /// Ports are chosen free, but another process may take one before the node binds it;
    /// the start is then tried again on other ports (three tries).
    pub fn start_with(
        dir: &Path,
        nodes: usize,
        options: KafkaOptions,
    ) -> Result<Self, TestkitError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::start_once(dir, nodes, options.clone()) {
                Err(e) if tries < 3 && e.to_string().contains("Address already in use") => {
                    eprintln!(
                        "testkit: a Kafka port was taken meanwhile; starting again on others"
                    );
                    for index in 0..nodes {
                        let node_dir = dir.join(format!("node-{}", index + 1));
                        let _ = std::fs::remove_dir_all(&node_dir);
                    }
                }
                result => return result,
            }
        }
    }

    fn start_once(dir: &Path, nodes: usize, options: KafkaOptions) -> Result<Self, TestkitError> {
        let started = Instant::now();
        let install = KafkaInstall::find()?;
        let mut cluster = KafkaCluster {
            install,
            options,
            nodes: Vec::with_capacity(nodes),
        };
        for index in 0..nodes {
            let id = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let node_dir = dir.join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir)
                .map_err(|e| TestkitError::io("create", &node_dir, e))?;
            cluster.nodes.push(Node {
                id,
                port: free_port()?,
                controller_port: free_port()?,
                secure_port: match cluster.options.sasl_ssl {
                    Some(_) => Some(free_port()?),
                    None => None,
                },
                dir: node_dir,
                child: None,
            });
        }
        cluster.write_configs()?;
        cluster.format()?;
        for index in 0..nodes {
            cluster.spawn(index)?;
        }
        cluster.wait_ready(nodes)?;
        eprintln!(
            "testkit: Apache Kafka {} up ({} node{}) in {:.1} s at {}",
            cluster.install.version,
            nodes,
            if nodes == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64(),
            cluster.bootstrap()
        );
        Ok(cluster)
    }

    /// `bootstrap.servers` of the SASL_SSL listeners (`localhost:<port>`, the name the
    /// server certificate holds), when the cluster has them.
    pub fn secure_bootstrap(&self) -> Option<String> {
        let ports: Option<Vec<u16>> = self.nodes.iter().map(|n| n.secure_port).collect();
        Some(
            ports?
                .iter()
                .map(|port| format!("localhost:{port}"))
                .collect::<Vec<_>>()
                .join(","),
        )
    }

    /// `bootstrap.servers` for clients: every node.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The Kafka version running.
    pub fn version(&self) -> &str {
        &self.install.version
    }

    /// How many nodes the cluster has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node ids (Kafka's `node.id`, 1-based), in order.
    pub fn node_ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Stops node `id` abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self, id: u32) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.id == id) {
            node.kill();
        }
    }

    /// Starts node `id` again on its ports and data; returns once it listens.
    pub fn restart(&mut self, id: u32) -> Result<Duration, TestkitError> {
        let index = self.index_of(id)?;
        let started = Instant::now();
        self.nodes[index].kill();
        self.spawn(index)?;
        self.wait_listening(index)?;
        Ok(started.elapsed())
    }

    /// Stops every node abruptly (SIGKILL).
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// Stops every node gracefully (SIGTERM: leaders move, logs close cleanly), killing
    /// any that has not exited within `timeout`.
    pub fn stop(&mut self, timeout: Duration) {
        for node in &self.nodes {
            if let Some(child) = &node.child {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
            }
        }
        let started = Instant::now();
        for node in &mut self.nodes {
            while let Some(child) = node.child.as_mut() {
                if !matches!(child.try_wait(), Ok(None)) {
                    node.child = None;
                } else if started.elapsed() > timeout {
                    node.kill();
                } else {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Starts every node again on its data; returns once they all serve metadata.
    pub fn restart_all(&mut self) -> Result<Duration, TestkitError> {
        let started = Instant::now();
        self.kill_all();
        for index in 0..self.nodes.len() {
            self.spawn(index)?;
        }
        self.wait_ready(self.nodes.len())?;
        Ok(started.elapsed())
    }

    /// The process id of node `id`, while it runs.
    pub fn pid(&self, id: u32) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| n.child.as_ref())
            .map(Child::id)
    }

    fn index_of(&self, id: u32) -> Result<usize, TestkitError> {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .ok_or_else(|| TestkitError::Command {
                what: format!("finding Kafka node {id}"),
            })
    }

    /// Writes each node's `server.properties` and Log4j configuration.
    fn write_configs(&self) -> Result<(), TestkitError> {
        let count = self.nodes.len();
        let voters = self
            .nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        let replicas = count.min(3);
        let min_isr = if replicas >= 3 { 2 } else { 1 };
        for node in &self.nodes {
            let mut props: Vec<(String, String)> = vec![
                ("process.roles".into(), "broker,controller".into()),
                ("node.id".into(), node.id.to_string()),
                ("controller.quorum.voters".into(), voters.clone()),
                (
                    "listeners".into(),
                    format!(
                        "PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                        node.port, node.controller_port
                    ),
                ),
                (
                    "advertised.listeners".into(),
                    format!("PLAINTEXT://127.0.0.1:{}", node.port),
                ),
                ("controller.listener.names".into(), "CONTROLLER".into()),
                ("inter.broker.listener.name".into(), "PLAINTEXT".into()),
                (
                    "listener.security.protocol.map".into(),
                    "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
                ),
                (
                    "log.dirs".into(),
                    node.dir.join("data").display().to_string(),
                ),
                // Two cores shared with PostgreSQL and the pipeline.
                ("num.network.threads".into(), "2".into()),
                ("num.io.threads".into(), "2".into()),
                ("background.threads".into(), "2".into()),
                ("num.replica.fetchers".into(), "1".into()),
                ("num.recovery.threads.per.data.dir".into(), "1".into()),
                ("log.cleaner.threads".into(), "1".into()),
                ("offsets.topic.num.partitions".into(), "10".into()),
                (
                    "offsets.topic.replication.factor".into(),
                    replicas.to_string(),
                ),
                (
                    "transaction.state.log.replication.factor".into(),
                    replicas.to_string(),
                ),
                ("transaction.state.log.min.isr".into(), min_isr.to_string()),
                (
                    "share.coordinator.state.topic.replication.factor".into(),
                    replicas.to_string(),
                ),
                (
                    "share.coordinator.state.topic.min.isr".into(),
                    min_isr.to_string(),
                ),
                // Tests start many new groups; production keeps Kafka's 3 s.
                ("group.initial.rebalance.delay.ms".into(), "0".into()),
                // The pipeline creates every topic it uses; nothing may rely on auto-creation.
                ("auto.create.topics.enable".into(), "false".into()),
            ];
            if let (Some(secure), Some(port)) = (&self.options.sasl_ssl, node.secure_port) {
                secure_listener(&mut props, node, port, secure)?;
            }
            props.extend(self.options.properties.iter().cloned());
            let mut text = String::from("# Written by cdc-testkit.\n");
            for (key, value) in &props {
                let _ = writeln!(text, "{key}={value}");
            }
            write_file(&node.dir.join("server.properties"), &text)?;
            write_file(&node.dir.join("log4j2.properties"), LOG4J_CONFIG)?;
        }
        Ok(())
    }

    /// Formats every node's storage with one cluster id (KRaft needs it before the first start).
    fn format(&self) -> Result<(), TestkitError> {
        let cluster_id = random_cluster_id();
        let mut children = Vec::new();
        for node in &self.nodes {
            if node.dir.join("data/meta.properties").exists() {
                continue;
            }
            let log_path = node.dir.join("format.log");
            let (log, log_err) = open_log(&log_path)?;
            let child = self
                .java(node)
                .args(["kafka.tools.StorageTool", "format"])
                .arg(format!("--cluster-id={cluster_id}"))
                .args(self.options.sasl_ssl.iter().flat_map(|secure| {
                    secure.users.iter().flat_map(|(name, password)| {
                        [
                            "--add-scram".to_owned(),
                            format!("SCRAM-SHA-512=[name={name},password={password}]"),
                        ]
                    })
                }))
                .arg(format!(
                    "--config={}",
                    node.dir.join("server.properties").display()
                ))
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .map_err(|e| TestkitError::spawn("java (kafka storage format)", e))?;
            children.push((child, log_path));
        }
        for (mut child, log_path) in children {
            let status = child
                .wait()
                .map_err(|e| TestkitError::spawn("java (kafka storage format)", e))?;
            if !status.success() {
                return Err(TestkitError::Command {
                    what: format!(
                        "kafka storage format exited with {status}: {}",
                        tail(&log_path)
                    ),
                });
            }
        }
        Ok(())
    }

    /// A `java` command for `node` with the JVM options and class path set.
    fn java(&self, node: &Node) -> Command {
        let mut command = Command::new(&self.install.java);
        command
            .arg(format!("-Xmx{}m", self.options.heap_mib))
            .arg("-Xms64m")
            .args([
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:-UsePerfData",
            ])
            .arg("-XX:ActiveProcessorCount=2")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                node.dir.join("log4j2.properties").display()
            ))
            .arg(format!("-Dkafka.logs.dir={}", node.dir.display()))
            .arg("-Djava.awt.headless=true");
        if self.options.quick_start {
            command.arg("-XX:TieredStopAtLevel=1");
        }
        if let Ok(extra) = std::env::var("TOTESYS_CDC_KAFKA_JAVA_OPTS") {
            command.args(extra.split_whitespace());
        }
        command
            .arg("-cp")
            .arg(self.install.class_path())
            .current_dir(&node.dir)
            .stdin(Stdio::null());
        command
    }

    fn spawn(&mut self, index: usize) -> Result<(), TestkitError> {
        let node = &self.nodes[index];
        let (log, log_err) = open_log(&node.log_path())?;
        let child = self
            .java(node)
            .arg("kafka.Kafka")
            .arg(node.dir.join("server.properties"))
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| TestkitError::spawn("java (kafka broker)", e))?;
        self.nodes[index].child = Some(child);
        Ok(())
    }

    /// Fails if node `index` has exited.
    fn check_alive(&mut self, index: usize) -> Result<(), TestkitError> {
        let node = &mut self.nodes[index];
        if let Some(child) = node.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                node.child = None;
                let log = std::fs::read_to_string(node.log_path()).unwrap_or_default();
                let port_taken = if log.contains("Address already in use") {
                    "Address already in use; "
                } else {
                    ""
                };
                return Err(TestkitError::Command {
                    what: format!(
                        "kafka node {} exited with {status}: {port_taken}{}",
                        node.id,
                        tail(&node.log_path())
                    ),
                });
            }
        }
        Ok(())
    }

    /// Waits until node `index` accepts TCP connections on its client port.
    fn wait_listening(&mut self, index: usize) -> Result<(), TestkitError> {
        let started = Instant::now();
        let port = self.nodes[index].port;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            self.check_alive(index)?;
            if started.elapsed() > START_TIMEOUT {
                return Err(TestkitError::Command {
                    what: format!(
                        "kafka node {} did not listen within {} s",
                        self.nodes[index].id,
                        START_TIMEOUT.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Waits until the cluster's metadata lists `brokers` brokers.
    fn wait_ready(&mut self, brokers: usize) -> Result<(), TestkitError> {
        for index in 0..self.nodes.len() {
            self.wait_listening(index)?;
        }
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("log_level", "3")
            .create()
            .map_err(|e| TestkitError::Command {
                what: format!("creating a Kafka client for the readiness check: {e}"),
            })?;
        let started = Instant::now();
        loop {
            if let Ok(metadata) = consumer.fetch_metadata(None, Duration::from_secs(2)) {
                if metadata.brokers().len() >= brokers {
                    return self.probe_produce();
                }
            }
            for index in 0..self.nodes.len() {
                self.check_alive(index)?;
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(TestkitError::Command {
                    what: format!(
                        "kafka cluster did not list {brokers} brokers within {} s",
                        START_TIMEOUT.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl KafkaCluster {
    /// Creates `testkit-ready` (once) and waits until an idempotent `acks=all` producer
    /// has a record acknowledged in it: a broker just started lists itself in the metadata
    /// before it hands out producer ids ("coordinator load in progress").
    fn probe_produce(&self) -> Result<(), TestkitError> {
        const PROBE: &str = "testkit-ready";
        let bootstrap = self.bootstrap();
        let replicas = i32::try_from(self.nodes.len().min(3)).unwrap_or(1);
        let failed = |what: String| TestkitError::Command { what };
        // rdkafka's futures need no runtime; a thread of its own keeps this usable from
        // inside a test's runtime.
        std::thread::spawn(move || -> Result<(), TestkitError> {
            use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
            use rdkafka::producer::{FutureProducer, FutureRecord};
            let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .create()
                .map_err(|e| failed(format!("creating a Kafka admin client: {e}")))?;
            let topic = NewTopic::new(PROBE, 1, TopicReplication::Fixed(replicas));
            let created = block_on_here(admin.create_topics(&[topic], &AdminOptions::new()))
                .map_err(|e| failed(format!("creating {PROBE}: {e}")))?;
            for result in created {
                match result {
                    Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, code)) => return Err(failed(format!("creating {PROBE}: {code}"))),
                }
            }
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("message.timeout.ms", "60000")
                .create()
                .map_err(|e| failed(format!("creating a Kafka producer: {e}")))?;
            let delivery = producer
                .send_result(FutureRecord::<[u8], [u8]>::to(PROBE).payload(b"ready"))
                .map_err(|(e, _)| failed(format!("queueing the readiness probe: {e}")))?;
            match block_on_here(delivery) {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(failed(format!(
                    "the readiness probe was not acknowledged: {e}"
                ))),
                Err(_) => Err(failed(
                    "the readiness probe's delivery report was lost".into(),
                )),
            }
        })
        .join()
        .map_err(|_| TestkitError::Command {
            what: "the readiness probe panicked".into(),
        })?
    }
}

/// Adds the SASL_SSL listener of `node` on `port` to its settings `props`, writing its
/// PEM key store (key and certificate in one file, as Kafka's PEM type wants).
fn secure_listener(
    props: &mut Vec<(String, String)>,
    node: &Node,
    port: u16,
    secure: &SaslSslListener,
) -> Result<(), TestkitError> {
    let read =
        |path: &Path| std::fs::read_to_string(path).map_err(|e| TestkitError::io("read", path, e));
    let keystore = node.dir.join("keystore.pem");
    write_file(
        &keystore,
        &format!(
            "{}{}",
            read(&secure.server_key)?,
            read(&secure.server_cert)?
        ),
    )?;
    let set = |props: &mut Vec<(String, String)>, key: &str, value: String| {
        if let Some(entry) = props.iter_mut().find(|(k, _)| k == key) {
            entry.1 = value;
        }
    };
    let extend = |props: &[(String, String)], key: &str| {
        props
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let listeners = format!(
        "{},{SECURE_LISTENER}://127.0.0.1:{port}",
        extend(props, "listeners")
    );
    let advertised = format!(
        "{},{SECURE_LISTENER}://localhost:{port}",
        extend(props, "advertised.listeners")
    );
    let map = format!(
        "{},{SECURE_LISTENER}:SASL_SSL",
        extend(props, "listener.security.protocol.map")
    );
    set(props, "listeners", listeners);
    set(props, "advertised.listeners", advertised);
    set(props, "listener.security.protocol.map", map);
    let prefix = format!("listener.name.{}", SECURE_LISTENER.to_lowercase());
    props.extend([
        (
            "sasl.enabled.mechanisms".to_owned(),
            "SCRAM-SHA-512".to_owned(),
        ),
        (
            format!("{prefix}.scram-sha-512.sasl.jaas.config"),
            "org.apache.kafka.common.security.scram.ScramLoginModule required;".to_owned(),
        ),
        (format!("{prefix}.ssl.keystore.type"), "PEM".to_owned()),
        (
            format!("{prefix}.ssl.keystore.location"),
            keystore.display().to_string(),
        ),
        (format!("{prefix}.ssl.truststore.type"), "PEM".to_owned()),
        (
            format!("{prefix}.ssl.truststore.location"),
            secure.ca.display().to_string(),
        ),
        (
            format!("{prefix}.ssl.client.auth"),
            if secure.client_auth {
                "required"
            } else {
                "none"
            }
            .to_owned(),
        ),
    ]);
    Ok(())
}

/// Runs `future` to completion on this thread (rdkafka's futures are woken by its own
/// threads, so no runtime is needed).
fn block_on_here<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// A single-node Apache Kafka (combined broker and controller); killed on drop.
#[derive(Debug)]
pub struct KafkaBroker {
    cluster: KafkaCluster,
    /// TCP port on 127.0.0.1.
    pub port: u16,
}

impl KafkaBroker {
    /// `bootstrap.servers` of the SASL_SSL listener, when it has one.
    pub fn secure_bootstrap(&self) -> Option<String> {
        self.cluster.secure_bootstrap()
    }

    /// Starts a broker keeping its files in `dir`.
    pub fn start(dir: &Path) -> Result<Self, TestkitError> {
        Self::start_with(dir, KafkaOptions::default())
    }

    /// Like [`KafkaBroker::start`], with the JVM and broker sized by `options`.
    pub fn start_with(dir: &Path, options: KafkaOptions) -> Result<Self, TestkitError> {
        let cluster = KafkaCluster::start_with(dir, 1, options)?;
        let port = cluster.nodes[0].port;
        Ok(KafkaBroker { cluster, port })
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap()
    }

    /// The Kafka version running.
    pub fn version(&self) -> &str {
        self.cluster.version()
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.cluster.pid(1)
    }

    /// Stops the broker abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.cluster.kill_all();
    }

    /// Starts the broker again on the same port and data; returns once it serves metadata.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.cluster.restart_all().map(|_| ())
    }
}

/// Logs at WARN, with the server's start and the group coordinator's decisions at INFO.
const LOG4J_CONFIG: &str = "\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
logger.group.name = org.apache.kafka.coordinator.group
logger.group.level = info
";

/// A KRaft cluster id: 16 random bytes in URL-safe base64 without padding, not starting
/// with `-` (as Kafka's own ids never do, so that no tool reads one as an option).
fn random_cluster_id() -> String {
    loop {
        let id = random_base64_id();
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn random_base64_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes: [u8; 16] = rand::random();
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = String::with_capacity(22);
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        count += 8;
        while count >= 6 {
            count -= 6;
            out.push(char::from(ALPHABET[((bits >> count) & 63) as usize]));
        }
    }
    if count > 0 {
        out.push(char::from(ALPHABET[((bits << (6 - count)) & 63) as usize]));
    }
    out
}

fn write_file(path: &Path, text: &str) -> Result<(), TestkitError> {
    std::fs::write(path, text).map_err(|e| TestkitError::io("write", path, e))
}

/// A log file opened for appending, twice: for a child's stdout and its stderr.
fn open_log(path: &Path) -> Result<(std::fs::File, std::fs::File), TestkitError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TestkitError::io("open", path, e))?;
    let again = log
        .try_clone()
        .map_err(|e| TestkitError::io("open", path, e))?;
    Ok((log, again))
}

/// The last lines of a log, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(8);
    format!("{} (log: {})", lines[start..].join(" | "), path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_22_url_safe_characters() {
        let id = random_cluster_id();
        assert_eq!(id.len(), 22, "{id}");
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(id, random_cluster_id());
        assert!((0..1000).all(|_| !random_cluster_id().starts_with('-')));
    }
}
