//! The Kafka clients against a broker that demands what production brokers do: a
//! SASL_SSL listener with SCRAM-SHA-512 users, a certificate from a test CA, and a
//! client certificate whose key is encrypted (mutual TLS).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use cdc_kafka::{broker_count, ensure_topics, KafkaSettings, TopicSpec};
use cdc_testkit::{KafkaBroker, KafkaOptions, SaslSslListener, TestCerts};

const USER: &str = "cdc";
const PASSWORD: &str = "scram-Pa55-for-the-test";
const KEY_PASSWORD: &str = "key-Pa55-for-the-test";

struct Secure {
    _dir: tempfile::TempDir,
    broker: KafkaBroker,
    certs: TestCerts,
    encrypted_key: std::path::PathBuf,
}

fn start() -> Secure {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(&dir.path().join("certs")).unwrap();
    let encrypted_key = certs.encrypted_client_key(KEY_PASSWORD).unwrap();
    let options = KafkaOptions {
        sasl_ssl: Some(SaslSslListener {
            server_cert: certs.server_cert.clone(),
            server_key: certs.server_key.clone(),
            ca: certs.ca.clone(),
            users: vec![(USER.to_owned(), PASSWORD.to_owned())],
            client_auth: true,
        }),
        ..KafkaOptions::default()
    };
    let broker = KafkaBroker::start_with(&dir.path().join("kafka"), options).unwrap();
    Secure {
        _dir: dir,
        broker,
        certs,
        encrypted_key,
    }
}

impl Secure {
    fn settings(&self, password: &str, key_password: &str) -> KafkaSettings {
        let mut settings = KafkaSettings::new(self.broker.secure_bootstrap().unwrap());
        settings
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", USER)
            .set("sasl.password", password)
            .set("ssl.ca.location", self.certs.ca.display().to_string())
            .set(
                "ssl.certificate.location",
                self.certs.client_cert.display().to_string(),
            )
            .set("ssl.key.location", self.encrypted_key.display().to_string())
            .set("ssl.key.password", key_password);
        settings
    }
}

#[tokio::test]
async fn scram_over_tls_with_a_client_certificate_works_and_each_refusal_says_why() {
    let secure = start();
    let settings = secure.settings(PASSWORD, KEY_PASSWORD);
    assert_eq!(broker_count(&settings).await.unwrap(), 1);
    ensure_topics(&settings, &[TopicSpec::new("secure.topic", 2)])
        .await
        .unwrap();

    let wrong = secure.settings("not-the-password", KEY_PASSWORD);
    let error = broker_count(&wrong).await.unwrap_err();
    let text = cdc_core::error_chain(&error);
    assert!(
        text.starts_with("the Kafka cluster refused this client: ")
            && text.contains("SASL authentication error"),
        "{text}"
    );
    assert!(!error.is_retryable());
    assert!(!text.contains("not-the-password"), "{text}");

    // A CA that did not sign the broker's certificate.
    let mut untrusted = secure.settings(PASSWORD, KEY_PASSWORD);
    untrusted.set(
        "ssl.ca.location",
        secure.certs.other_ca.display().to_string(),
    );
    let error = broker_count(&untrusted).await.unwrap_err();
    let text = cdc_core::error_chain(&error);
    assert!(
        text.starts_with("the Kafka cluster refused this client: ")
            && text.contains("certificate verify failed"),
        "{text}"
    );

    // The client key's password is wrong: the client cannot even be made.
    let bad_key = secure.settings(PASSWORD, "not-the-key-password");
    let error = broker_count(&bad_key).await.unwrap_err();
    let text = cdc_core::error_chain(&error);
    assert!(
        text.starts_with("invalid Kafka client settings: "),
        "{text}"
    );
    assert!(text.contains("ssl.key"), "{text}");
    assert!(!text.contains("not-the-key-password"), "{text}");
    assert!(!error.is_retryable());
}
