use std::collections::BTreeMap;
use std::fmt;

use cdc_core::Secret;
use rdkafka::ClientConfig;

/// How to reach the Kafka cluster; librdkafka properties pass through unchanged.
#[derive(Clone, Default)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Other librdkafka properties (`security.protocol`, `ssl.ca.location`, `sasl.mechanism`, …).
    pub properties: BTreeMap<String, String>,
    /// Properties whose values are secret (`sasl.password`, `ssl.key.password`, …).
    pub secret_properties: BTreeMap<String, Secret>,
}

impl KafkaSettings {
    /// Settings for `bootstrap_servers` with nothing else set.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaSettings {
            bootstrap_servers: bootstrap_servers.into(),
            ..Default::default()
        }
    }

    /// Adds a property; one whose name says it is secret is kept as a [`Secret`].
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        if is_secret_property(name) {
            self.secret_properties
                .insert(name.to_owned(), Secret::new(value));
        } else {
            self.properties.insert(name.to_owned(), value);
        }
        self
    }

    /// A librdkafka client configuration with every property applied.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (name, value) in &self.properties {
            config.set(name, value);
        }
        for (name, value) in &self.secret_properties {
            config.set(name, value.expose());
        }
        config
    }
}

/// Whether a librdkafka property holds a secret.
pub fn is_secret_property(name: &str) -> bool {
    name.contains("password") || name.contains("secret") || name.ends_with(".key.pem")
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("properties", &self.properties)
            .field(
                "secret_properties",
                &self.secret_properties.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_but_reach_the_client() {
        let mut settings = KafkaSettings::new("localhost:9092");
        settings
            .set("sasl.password", "hunter2")
            .set("security.protocol", "SASL_SSL");
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("sasl.password") && printed.contains("SASL_SSL"));
        assert_eq!(
            settings.client_config().get("sasl.password"),
            Some("hunter2")
        );
    }
}
