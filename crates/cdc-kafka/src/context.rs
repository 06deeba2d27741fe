//! The callbacks our librdkafka clients share: librdkafka's errors logged through
//! `tracing`, and a refusal of the client's credentials or TLS kept, so the request that
//! then fails for want of a broker can say why instead of "broker transport failure".

use std::sync::{Mutex, PoisonError};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;

use crate::KafkaError;

/// A client context that logs librdkafka's errors and remembers a refusal.
#[derive(Debug, Default)]
pub struct KafkaContext {
    refused: Mutex<Option<String>>,
}

impl KafkaContext {
    /// Takes one of librdkafka's error callbacks: logs it, and keeps it when it is a refusal.
    pub fn note(&self, error: &RdKafkaError, reason: &str) {
        if is_refusal(error) || is_refusal_text(reason) {
            tracing::error!(%reason, "the Kafka cluster refused this client");
            self.keep(reason);
        } else {
            tracing::warn!(%error, %reason, "Kafka client error; librdkafka retries");
        }
    }

    fn keep(&self, reason: &str) {
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.to_owned());
    }

    /// The broker's last refusal of this client's SASL credentials or TLS, if any.
    pub fn refusal(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `error`, or [`KafkaError::Refused`] when the cluster refused this client: the
    /// cause worth naming, since the request only failed for want of a broker.
    pub fn explain(&self, error: KafkaError) -> KafkaError {
        match self.refusal() {
            Some(reason) => KafkaError::Refused { reason },
            None => error,
        }
    }
}

impl ClientContext for KafkaContext {
    fn error(&self, error: RdKafkaError, reason: &str) {
        self.note(&error, reason);
    }

    /// librdkafka reports a refused login or handshake as a `FAIL` log line (the error
    /// event does not reach a consumer that is not polled), so the line is read too.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac == "FAIL" && is_refusal_text(log_message) {
            self.keep(log_message);
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", %fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", %fac, "{log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", %fac, "{log_message}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", %fac, "{log_message}"),
        }
    }
}

impl ConsumerContext for KafkaContext {}

/// Whether a librdkafka message says the broker refused the login or the TLS handshake.
fn is_refusal_text(message: &str) -> bool {
    [
        "SASL authentication error",
        "SSL handshake failed",
        "certificate verify failed",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Whether `error` says the broker refused the client's SASL credentials or TLS (an
/// untrusted certificate, a failed handshake): no retry will mend either.
pub fn is_refusal(error: &RdKafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::SSL
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_kept_and_explain_the_failure() {
        let context = KafkaContext::default();
        context.note(
            &RdKafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "all down",
        );
        assert_eq!(context.refusal(), None);
        let timeout =
            || KafkaError::Admin(RdKafkaError::Global(RDKafkaErrorCode::OperationTimedOut));
        assert!(matches!(context.explain(timeout()), KafkaError::Admin(_)));
        let reason =
            "sasl_ssl://localhost:9093/bootstrap: SASL authentication error: Authentication failed";
        context.note(
            &RdKafkaError::Global(RDKafkaErrorCode::Authentication),
            reason,
        );
        let explained = context.explain(timeout());
        assert!(!explained.is_retryable());
        assert_eq!(
            explained.to_string(),
            format!("the Kafka cluster refused this client: {reason}")
        );
        assert!(is_refusal(&RdKafkaError::Global(RDKafkaErrorCode::SSL)));
        let logged = KafkaContext::default();
        logged.log(
            RDKafkaLogLevel::Error,
            "FAIL",
            "sasl_ssl://b:1/bootstrap: SSL handshake failed: certificate verify failed",
        );
        assert!(logged
            .refusal()
            .is_some_and(|r| r.contains("SSL handshake failed")));
        logged.log(
            RDKafkaLogLevel::Error,
            "FAIL",
            "b:1/bootstrap: Connection refused",
        );
        assert!(logged
            .refusal()
            .is_some_and(|r| r.contains("SSL handshake failed")));
        let quiet = KafkaContext::default();
        quiet.log(
            RDKafkaLogLevel::Warning,
            "FAIL",
            "b:1/bootstrap: Connection refused",
        );
        assert_eq!(quiet.refusal(), None);
        assert!(!is_refusal(&RdKafkaError::Global(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
    }
}
