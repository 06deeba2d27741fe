//! Kafka and schema-registry settings shared by the subcommands that publish or consume.

use std::sync::Arc;

use anyhow::Context;
use cdc_avro::AvroCodec;
use cdc_core::{MetricSet, Secret};
use cdc_kafka::KafkaSettings;
use cdc_publish::{
    ExactlyOnce, KafkaSink, PublishConfig, PublishError, PublishMetrics, RETAIN_FOREVER_MS,
};
use cdc_registry::RegistryClient;

/// How to reach Kafka and the schema registry.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// Kafka `bootstrap.servers`.
    #[arg(
        long,
        env = "TOTESYS_CDC_KAFKA_BOOTSTRAP_SERVERS",
        default_value = "localhost:9092"
    )]
    bootstrap_servers: String,
    /// A librdkafka property, `name=value` (repeatable): `security.protocol=SASL_SSL`,
    /// `sasl.mechanism=SCRAM-SHA-512`, `ssl.ca.location=…`. Secrets come from the
    /// environment: TOTESYS_CDC_KAFKA_SASL_PASSWORD, TOTESYS_CDC_KAFKA_SSL_KEY_PASSWORD.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE")]
    kafka_properties: Vec<String>,
    /// Schema registry URL (any Confluent-compatible registry).
    #[arg(
        long,
        env = "TOTESYS_CDC_REGISTRY_URL",
        default_value = "http://localhost:8081"
    )]
    registry_url: String,
    /// Schema registry basic-auth user; the password comes from
    /// --registry-password-file or TOTESYS_CDC_REGISTRY_PASSWORD.
    #[arg(long, env = "TOTESYS_CDC_REGISTRY_USER")]
    registry_user: Option<String>,
    /// File holding the registry password of --registry-user.
    #[arg(
        long,
        env = "TOTESYS_CDC_REGISTRY_PASSWORD_FILE",
        requires = "registry_user"
    )]
    registry_password_file: Option<std::path::PathBuf>,
    /// File holding a bearer token for the registry (or set TOTESYS_CDC_REGISTRY_TOKEN);
    /// not with --registry-user.
    #[arg(
        long,
        env = "TOTESYS_CDC_REGISTRY_TOKEN_FILE",
        conflicts_with = "registry_user"
    )]
    registry_token_file: Option<std::path::PathBuf>,
    /// Extra CA certificates (PEM) to trust for an https:// registry, besides the system's.
    #[arg(long, env = "TOTESYS_CDC_REGISTRY_CA_FILE")]
    registry_ca_file: Option<std::path::PathBuf>,
}

/// Kafka, registry and topic options.
#[derive(Debug, clap::Args)]
pub struct KafkaArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic names are `<prefix>.<schema>.<table>`.
    #[arg(long, env = "TOTESYS_CDC_TOPIC_PREFIX", default_value = cdc_publish::DEFAULT_PREFIX)]
    topic_prefix: String,
    /// Partitions of the topics capture creates.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Replication factor of the topics capture creates (default: 3, or the number of
    /// brokers when the cluster has fewer).
    #[arg(long)]
    replication_factor: Option<i32>,
    /// `min.insync.replicas` of the topics capture creates (default: 2 with three or more
    /// replicas, else 1).
    #[arg(long)]
    min_insync_replicas: Option<i32>,
    /// `retention.ms` of the topics capture creates (default: 100 years, i.e. keep
    /// everything for replay).
    #[arg(long, default_value_t = RETAIN_FOREVER_MS)]
    retention_ms: i64,
    /// Also write BEGIN/END records per source transaction to `<prefix>.transaction`.
    #[arg(long)]
    transaction_topic: bool,
    /// Do not follow deletes with tombstones.
    #[arg(long)]
    no_tombstones: bool,
}

/// Secret librdkafka properties and the environment variables they come from.
const SECRET_PROPERTIES: [(&str, &str); 2] = [
    ("sasl.password", "TOTESYS_CDC_KAFKA_SASL_PASSWORD"),
    ("ssl.key.password", "TOTESYS_CDC_KAFKA_SSL_KEY_PASSWORD"),
];

impl ConnectArgs {
    /// The librdkafka settings, secrets included from the environment.
    pub fn settings(&self) -> anyhow::Result<KafkaSettings> {
        let mut settings = KafkaSettings::new(&self.bootstrap_servers);
        for property in &self.kafka_properties {
            let (name, value) = property
                .split_once('=')
                .with_context(|| format!("--kafka-property {property:?}: expected NAME=VALUE"))?;
            if cdc_kafka::is_secret_property(name) {
                let var = SECRET_PROPERTIES
                    .iter()
                    .find(|(secret, _)| *secret == name)
                    .map_or("the environment", |(_, var)| var);
                anyhow::bail!(
                    "--kafka-property {name}: secrets are not taken on the command line; set {var}"
                );
            }
            settings.set(name.trim(), value.trim());
        }
        for (name, var) in SECRET_PROPERTIES {
            if let Ok(value) = std::env::var(var) {
                settings.set(name, value);
            }
        }
        Ok(settings)
    }

    /// A registry client for `--registry-url`.
    pub fn registry(&self) -> anyhow::Result<RegistryClient> {
        let mut builder = RegistryClient::builder(&self.registry_url);
        if let Some(user) = &self.registry_user {
            let password = crate::password_from(
                self.registry_password_file.as_deref(),
                "--registry-password-file",
                &["TOTESYS_CDC_REGISTRY_PASSWORD"],
            )?
            .context("--registry-user is set but neither --registry-password-file nor TOTESYS_CDC_REGISTRY_PASSWORD is")?;
            builder = builder.basic_auth(user, Secret::new(password));
        } else if let Some(token) = crate::password_from(
            self.registry_token_file.as_deref(),
            "--registry-token-file",
            &["TOTESYS_CDC_REGISTRY_TOKEN"],
        )? {
            builder = builder.bearer_token(Secret::new(token));
        }
        if let Some(path) = &self.registry_ca_file {
            builder = builder.ca_file(path);
        }
        builder
            .build()
            .context("setting up the schema registry client (--registry-url, --registry-ca-file)")
    }
}

impl KafkaArgs {
    /// The librdkafka settings, secrets included from the environment.
    pub fn settings(&self) -> anyhow::Result<KafkaSettings> {
        self.connect.settings()
    }

    /// A registry client for `--registry-url`.
    pub fn registry(&self) -> anyhow::Result<RegistryClient> {
        self.connect.registry()
    }

    /// The topic prefix.
    pub fn topic_prefix(&self) -> String {
        self.topic_prefix.clone()
    }

    /// How capture publishes.
    pub fn publish_config(&self) -> anyhow::Result<PublishConfig> {
        anyhow::ensure!(self.partitions >= 1, "--partitions must be at least 1");
        anyhow::ensure!(
            self.replication_factor.is_none_or(|n| n >= 1),
            "--replication-factor must be at least 1"
        );
        anyhow::ensure!(
            self.min_insync_replicas.is_none_or(|n| n >= 1),
            "--min-insync-replicas must be at least 1"
        );
        Ok(PublishConfig {
            topic_prefix: self.topic_prefix.clone(),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            retention_ms: self.retention_ms,
            topic_config: self
                .min_insync_replicas
                .map(|n| ("min.insync.replicas".to_owned(), n.to_string()))
                .into_iter()
                .collect(),
            tombstones: !self.no_tombstones,
            transaction_topic: self.transaction_topic,
            exactly_once: None,
        })
    }

    /// What capture needs to make a [`KafkaSink`] per attempt.
    pub async fn publisher(&self) -> anyhow::Result<Publisher> {
        let metrics = PublishMetrics::register(prometheus::default_registry())
            .context("registering the Kafka sink's metrics")?;
        Ok(Publisher {
            settings: self.settings()?,
            registry: Arc::new(self.registry()?),
            codec: Arc::new(AvroCodec::new()),
            config: self.publish_config()?,
            metrics,
        })
    }
}

/// Everything a [`KafkaSink`] is made of; capture makes a fresh sink (a fresh producer)
/// for each attempt and keeps the codec, registry cache and metrics across them.
pub struct Publisher {
    settings: KafkaSettings,
    registry: Arc<RegistryClient>,
    codec: Arc<AvroCodec>,
    config: PublishConfig,
    metrics: PublishMetrics,
}

impl Publisher {
    /// Publishes in Kafka transactions with `once` (or at least once when `None`).
    pub fn with_exactly_once(mut self, once: Option<ExactlyOnce>) -> Self {
        self.config.exactly_once = once;
        self
    }

    /// A new sink.
    pub async fn sink(&self) -> Result<KafkaSink, PublishError> {
        KafkaSink::new(
            &self.settings,
            self.registry.clone(),
            self.codec.clone(),
            self.config.clone(),
            self.metrics.clone(),
        )
        .await
    }
}
