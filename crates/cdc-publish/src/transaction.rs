//! The transaction-metadata topic: a `BEGIN` and an `END` record per source transaction,
//! shaped like Debezium's so existing consumers can read it.

use std::collections::BTreeMap;

use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use cdc_core::{Lsn, TransactionInfo};

use crate::PublishError;

/// The key schema of the transaction topic.
pub const KEY_SCHEMA: &str = r#"{
  "type": "record",
  "name": "TransactionKey",
  "namespace": "totesys_cdc",
  "fields": [
    {"name": "id", "type": "string"}
  ]
}
"#;

/// The value schema of the transaction topic.
pub const VALUE_SCHEMA: &str = r#"{
  "type": "record",
  "name": "TransactionMetadata",
  "namespace": "totesys_cdc",
  "fields": [
    {"name": "status", "type": {"type": "enum", "name": "TransactionStatus", "symbols": ["BEGIN", "END"]}},
    {"name": "id", "type": "string", "doc": "The commit LSN, the transaction's position in the source."},
    {"name": "xid", "type": ["null", "long"], "default": null},
    {"name": "commit_lsn", "type": "string"},
    {"name": "end_lsn", "type": "string"},
    {"name": "commit_ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "event_count", "type": ["null", "long"], "default": null, "doc": "Events in the transaction; END only."},
    {"name": "data_collections", "default": null, "type": ["null", {"type": "array", "items": {
      "type": "record", "name": "DataCollection", "fields": [
        {"name": "data_collection", "type": "string", "doc": "schema.table"},
        {"name": "event_count", "type": "long"}
      ]}}]}
  ]
}
"#;

/// The two parsed schemas.
#[derive(Debug)]
pub(crate) struct TransactionSchemas {
    key: Schema,
    value: Schema,
}

impl TransactionSchemas {
    pub(crate) fn new() -> Result<Self, PublishError> {
        let parse = |text: &str| {
            Schema::parse_str(text).map_err(|e| {
                PublishError::Rejected(format!("transaction topic schema is invalid: {e}"))
            })
        };
        Ok(TransactionSchemas {
            key: parse(KEY_SCHEMA)?,
            value: parse(VALUE_SCHEMA)?,
        })
    }

    /// The Avro body of the key of `txn`.
    pub(crate) fn key(&self, txn: &TransactionInfo) -> Result<Vec<u8>, PublishError> {
        let value = Avro::Record(vec![(
            "id".into(),
            Avro::String(txn.commit_lsn.to_string()),
        )]);
        body(&self.key, value)
    }

    /// The Avro body of a `BEGIN` (`counts` is `None`) or `END` record of `txn`.
    pub(crate) fn value(
        &self,
        txn: &TransactionInfo,
        counts: Option<(u64, &BTreeMap<String, u64>)>,
    ) -> Result<Vec<u8>, PublishError> {
        let status = match counts {
            None => Avro::Enum(0, "BEGIN".into()),
            Some(_) => Avro::Enum(1, "END".into()),
        };
        let xid = match txn.xid {
            Some(xid) => Avro::Union(1, Box::new(Avro::Long(i64::from(xid.0)))),
            None => Avro::Union(0, Box::new(Avro::Null)),
        };
        let (event_count, collections) = match counts {
            None => (
                Avro::Union(0, Box::new(Avro::Null)),
                Avro::Union(0, Box::new(Avro::Null)),
            ),
            Some((events, per_table)) => (
                Avro::Union(1, Box::new(Avro::Long(saturating_i64(events)))),
                Avro::Union(
                    1,
                    Box::new(Avro::Array(
                        per_table
                            .iter()
                            .map(|(table, count)| {
                                Avro::Record(vec![
                                    ("data_collection".into(), Avro::String(table.clone())),
                                    ("event_count".into(), Avro::Long(saturating_i64(*count))),
                                ])
                            })
                            .collect(),
                    )),
                ),
            ),
        };
        let value = Avro::Record(vec![
            ("status".into(), status),
            ("id".into(), Avro::String(txn.commit_lsn.to_string())),
            ("xid".into(), xid),
            (
                "commit_lsn".into(),
                Avro::String(txn.commit_lsn.to_string()),
            ),
            ("end_lsn".into(), Avro::String(txn.end_lsn.to_string())),
            (
                "commit_ts_us".into(),
                Avro::TimestampMicros(txn.commit_time_micros),
            ),
            ("event_count".into(), event_count),
            ("data_collections".into(), collections),
        ]);
        body(&self.value, value)
    }
}

impl TransactionSchemas {
    /// The commit LSN of an `END` record's Avro body; `None` for a `BEGIN`.
    pub(crate) fn end_commit_lsn(&self, mut body: &[u8]) -> Result<Option<Lsn>, String> {
        let value = apache_avro::from_avro_datum(&self.value, &mut body, None)
            .map_err(|e| format!("not a transaction record: {e}"))?;
        let Avro::Record(fields) = value else {
            return Err("not a record".into());
        };
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        match field("status") {
            Some(Avro::Enum(_, status)) if status == "END" => {}
            Some(Avro::Enum(_, _)) => return Ok(None),
            _ => return Err("no status".into()),
        }
        match field("commit_lsn") {
            Some(Avro::String(text)) => text
                .parse()
                .map(Some)
                .map_err(|_| format!("commit_lsn {text:?} is not an LSN")),
            _ => Err("no commit_lsn".into()),
        }
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn body(schema: &Schema, value: Avro) -> Result<Vec<u8>, PublishError> {
    apache_avro::to_avro_datum(schema, value)
        .map_err(|e| PublishError::Rejected(format!("cannot encode transaction metadata: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cdc_core::Xid;

    #[test]
    fn begin_and_end_round_trip_through_the_schema() {
        let schemas = TransactionSchemas::new().unwrap();
        let txn = TransactionInfo {
            xid: Some(Xid(42)),
            commit_lsn: Lsn(0x1_0000_0010),
            end_lsn: Lsn(0x1_0000_0040),
            commit_time_micros: 1_700_000_000_000_000,
        };
        let counts: BTreeMap<String, u64> = [("public.staff".to_owned(), 3)].into();
        for counts in [None, Some((3, &counts))] {
            let bytes = schemas.value(&txn, counts).unwrap();
            let read =
                apache_avro::from_avro_datum(&schemas.value, &mut bytes.as_slice(), None).unwrap();
            let Avro::Record(fields) = read else {
                panic!("not a record")
            };
            assert_eq!(fields[1], ("id".into(), Avro::String("1/10".into())));
            assert_eq!(
                fields[0].1,
                if counts.is_some() {
                    Avro::Enum(1, "END".into())
                } else {
                    Avro::Enum(0, "BEGIN".into())
                }
            );
        }
        assert!(!schemas.key(&txn).unwrap().is_empty());
        let end = schemas.value(&txn, Some((3, &counts))).unwrap();
        assert_eq!(schemas.end_commit_lsn(&end).unwrap(), Some(txn.commit_lsn));
        let begin = schemas.value(&txn, None).unwrap();
        assert_eq!(schemas.end_commit_lsn(&begin).unwrap(), None);
        assert!(schemas.end_commit_lsn(b"\x02junk").is_err());
    }
}
