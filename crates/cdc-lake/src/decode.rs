//! Kafka records to lake rows through the schema registry, or the reason they cannot be.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cdc_avro::apache_avro::Schema;
use cdc_avro::{decode_confluent, decode_value, AvroError, DecodedEvent, TableAvro};
use cdc_core::TableSchema;
use cdc_registry::{ClientError, RegistryClient, SchemaId};

use crate::transactions::{transaction_row, TRANSACTIONS_TABLE};
use crate::LakeError;

/// Why a record is a dead letter; the same on every attempt and for every writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// A short, stable code: `bad_framing`, `unknown_schema`, `unusable_schema`, `schema_mismatch`.
    pub code: &'static str,
    /// One line naming what is wrong.
    pub reason: String,
}

impl DeadLetter {
    fn new(code: &'static str, reason: impl Into<String>) -> Self {
        DeadLetter {
            code,
            reason: reason.into(),
        }
    }
}

/// What a record holds.
#[derive(Debug)]
pub enum Decoded {
    /// A change, with its table shape.
    Change(DecodedEvent, Arc<TableSchema>),
    /// A record with no row for the lake: a tombstone, a transaction's `BEGIN`.
    NoRow,
    /// A record that cannot be read.
    Dead(DeadLetter),
}

/// Decodes records with the writer schemas the registry holds for their ids.
///
/// Only answers that are final make a dead letter (bad framing, a schema id the registry
/// does not have, bytes that do not match their schema): every writer decides the same way
/// about the same record, which the lake's file chain relies on. A registry that cannot be
/// reached is retried until it answers.
pub struct RecordDecoder {
    registry: Arc<RegistryClient>,
    /// Readers and their table shapes per (key schema id, value schema id).
    readers: HashMap<(Option<u32>, u32), Result<Reader, DeadLetter>>,
    /// Schemas per id, parsed.
    schemas: HashMap<u32, Result<Schema, DeadLetter>>,
    /// Capture's transaction topic, whose `END` records become `totesys_cdc.transactions` rows.
    transaction_topic: Option<String>,
}

/// The reader of one (key, value) schema pair, and the table shape it reads.
type Reader = (Arc<TableAvro>, Arc<TableSchema>);

impl RecordDecoder {
    /// A decoder asking `registry` for schemas.
    pub fn new(registry: Arc<RegistryClient>) -> Self {
        RecordDecoder {
            registry,
            readers: HashMap::new(),
            schemas: HashMap::new(),
            transaction_topic: None,
        }
    }

    /// Also decodes the records of capture's transaction topic `topic`.
    pub fn with_transaction_topic(mut self, topic: impl Into<String>) -> Self {
        self.transaction_topic = Some(topic.into());
        self
    }

    /// Decodes a record of `topic`; errors only when the registry stays unreachable.
    pub async fn decode(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<Decoded, LakeError> {
        let Some(value) = value else {
            return Ok(Decoded::NoRow);
        };
        if self.transaction_topic.as_deref() == Some(topic) {
            return self.decode_transaction(value).await;
        }
        let (value_id, body) = match decode_confluent(value) {
            Ok(framed) => framed,
            Err(e) => {
                return Ok(Decoded::Dead(DeadLetter::new(
                    "bad_framing",
                    format!("value: {e}"),
                )))
            }
        };
        let key_id = match key.map(decode_confluent) {
            None => None,
            Some(Ok((id, _))) => Some(id),
            Some(Err(e)) => {
                return Ok(Decoded::Dead(DeadLetter::new(
                    "bad_framing",
                    format!("key: {e}"),
                )))
            }
        };
        let (reader, table) = match self.reader(key_id, value_id).await? {
            Ok(reader) => reader,
            Err(dead) => return Ok(Decoded::Dead(dead)),
        };
        Ok(match reader.read_value(body) {
            Ok(event) => Decoded::Change(event, table),
            Err(e) => Decoded::Dead(DeadLetter::new(
                "schema_mismatch",
                format!("value does not match schema {value_id}: {e}"),
            )),
        })
    }

    /// A transaction record: `END` as a row of `totesys_cdc.transactions`, `BEGIN` as none.
    async fn decode_transaction(&mut self, value: &[u8]) -> Result<Decoded, LakeError> {
        let (id, body) = match decode_confluent(value) {
            Ok(framed) => framed,
            Err(e) => {
                return Ok(Decoded::Dead(DeadLetter::new(
                    "bad_framing",
                    format!("value: {e}"),
                )))
            }
        };
        let schema = match self.schema(id).await? {
            Ok(schema) => schema,
            Err(dead) => return Ok(Decoded::Dead(dead)),
        };
        let mismatch = |reason: String| {
            Decoded::Dead(DeadLetter::new(
                "schema_mismatch",
                format!("transaction record with schema {id}: {reason}"),
            ))
        };
        Ok(match decode_value(&schema, body) {
            Ok(avro) => match transaction_row(&avro) {
                Ok(Some(event)) => Decoded::Change(event, Arc::clone(&TRANSACTIONS_TABLE)),
                Ok(None) => Decoded::NoRow,
                Err(reason) => mismatch(reason),
            },
            Err(e) => mismatch(e.to_string()),
        })
    }

    async fn reader(
        &mut self,
        key_id: Option<u32>,
        value_id: u32,
    ) -> Result<Result<Reader, DeadLetter>, LakeError> {
        if let Some(found) = self.readers.get(&(key_id, value_id)) {
            return Ok(found.clone());
        }
        let value = self.schema(value_id).await?;
        let key = match key_id {
            Some(id) => Some(self.schema(id).await?),
            None => None,
        };
        let reader = match (value, key) {
            (Err(dead), _) | (_, Some(Err(dead))) => Err(dead),
            (Ok(value), key) => {
                let key = key.and_then(Result::ok);
                TableAvro::from_schemas(key.as_ref(), &value)
                    .map(|reader| {
                        let table = Arc::new(reader.table().clone());
                        (Arc::new(reader), table)
                    })
                    .map_err(|e| unusable(value_id, &e))
            }
        };
        self.readers.insert((key_id, value_id), reader.clone());
        Ok(reader)
    }

    /// The parsed schema `id`, or why it cannot be had; retries while the registry is away.
    async fn schema(&mut self, id: u32) -> Result<Result<Schema, DeadLetter>, LakeError> {
        if let Some(found) = self.schemas.get(&id) {
            return Ok(found.clone());
        }
        let mut wait = Duration::from_millis(200);
        let text = loop {
            match self.registry.schema_by_id(SchemaId(id)).await {
                Ok(text) => break Ok(text),
                Err(e) if is_unknown_schema(&e) => {
                    break Err(DeadLetter::new(
                        "unknown_schema",
                        format!("schema id {id} is not in the registry"),
                    ))
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(schema_id = id, error = %e, "schema registry unavailable; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(LakeError::registry(format!("cannot fetch schema {id}"))(e)),
            }
        };
        let parsed = text.and_then(|text| {
            Schema::parse_str(&text).map_err(|e| {
                DeadLetter::new(
                    "unusable_schema",
                    format!("schema {id} does not parse: {e}"),
                )
            })
        });
        self.schemas.insert(id, parsed.clone());
        Ok(parsed)
    }
}

/// Whether the registry said it has no schema with that id (40403, or a bare 404).
fn is_unknown_schema(e: &ClientError) -> bool {
    e.error_code() == Some(40403) || (e.status() == Some(404) && e.error_code() == Some(404))
}

fn unusable(value_id: u32, e: &AvroError) -> DeadLetter {
    DeadLetter::new(
        "unusable_schema",
        format!("schema {value_id} is not a totesys-cdc change envelope: {e}"),
    )
}
