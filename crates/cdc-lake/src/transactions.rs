//! Capture's transaction topic in the lake: each `END` record as a row of the table
//! `totesys_cdc.transactions`, so the modeler can tell when every change of a source
//! transaction has landed (its `data_collections` say how many per table).

use std::sync::{Arc, LazyLock};

use cdc_avro::apache_avro::types::Value as Avro;
use cdc_avro::{DecodedEvent, SourceInfo};
use cdc_core::{ColumnSchema, Lsn, Op, ReplicaIdentity, TableId, TableName, TableSchema, Value};

/// The lake table of transaction records (directory `raw/totesys_cdc.transactions/`).
pub static TRANSACTIONS_TABLE: LazyLock<Arc<TableSchema>> = LazyLock::new(|| {
    let column = |name: &str, oid: u32, type_name: &str, key: bool| ColumnSchema {
        name: name.into(),
        type_oid: oid,
        type_modifier: -1,
        type_name: type_name.into(),
        nullable: !key,
        primary_key: key,
        replica_identity: key,
    };
    Arc::new(TableSchema {
        id: TableId(0),
        name: TableName::new("totesys_cdc", "transactions"),
        columns: vec![
            column("id", 25, "text", true),
            column("xid", 20, "bigint", false),
            column("commit_lsn", 25, "pg_lsn", false),
            column("end_lsn", 25, "pg_lsn", false),
            column("commit_ts", 1184, "timestamp with time zone", false),
            column("event_count", 20, "bigint", false),
            column("data_collections", 25, "json", false),
        ],
        replica_identity: ReplicaIdentity::Default,
    })
});

/// What a transaction record holds for the lake: an `END` as a row, or nothing (`BEGIN`).
/// `Err` says why the record is not a transaction record.
pub fn transaction_row(value: &Avro) -> Result<Option<DecodedEvent>, String> {
    let Avro::Record(fields) = value else {
        return Err("not a record".into());
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| unwrap_union(v))
            .ok_or_else(|| format!("field {name} is missing"))
    };
    match field("status")? {
        Avro::Enum(_, status) if status == "BEGIN" => return Ok(None),
        Avro::Enum(_, status) if status == "END" => {}
        other => return Err(format!("status is {other:?}")),
    }
    let text = |name: &str| match field(name)? {
        Avro::String(s) => Ok(s.clone()),
        other => Err(format!("{name} is {other:?}, not a string")),
    };
    let long = |name: &str| match field(name)? {
        Avro::Long(v) | Avro::TimestampMicros(v) => Ok(Some(*v)),
        Avro::Null => Ok(None),
        other => Err(format!("{name} is {other:?}, not a long")),
    };
    let commit_lsn: Lsn = text("commit_lsn")?
        .parse()
        .map_err(|e| format!("commit_lsn: {e}"))?;
    let commit_ts_us = long("commit_ts_us")?.ok_or("commit_ts_us is null")?;
    let xid = long("xid")?;
    let collections = match field("data_collections")? {
        Avro::Array(items) => items
            .iter()
            .map(|item| {
                let Avro::Record(parts) = item else {
                    return Err("a data collection is not a record".to_owned());
                };
                let name = parts.iter().find_map(|(n, v)| match (n.as_str(), v) {
                    ("data_collection", Avro::String(s)) => Some(s.clone()),
                    _ => None,
                });
                let count = parts.iter().find_map(|(n, v)| match (n.as_str(), v) {
                    ("event_count", Avro::Long(c)) => Some(*c),
                    _ => None,
                });
                match (name, count) {
                    (Some(name), Some(count)) => Ok((name, count)),
                    _ => Err("a data collection lacks its name or count".to_owned()),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        Avro::Null => Vec::new(),
        other => return Err(format!("data_collections is {other:?}")),
    };
    let json = format!(
        "{{{}}}",
        collections
            .iter()
            .map(|(name, count)| format!("{}:{count}", json_string(name)))
            .collect::<Vec<_>>()
            .join(",")
    );
    let row = vec![
        Value::Text(text("id")?),
        xid.map_or(Value::Null, Value::Int64),
        Value::Text(commit_lsn.to_string()),
        Value::Text(text("end_lsn")?),
        Value::TimestampTz(commit_ts_us),
        long("event_count")?.map_or(Value::Null, Value::Int64),
        Value::Json(json),
    ];
    Ok(Some(DecodedEvent {
        op: Op::Insert,
        before: None,
        after: Some(row),
        source: SourceInfo {
            lsn: commit_lsn,
            commit_lsn,
            xid: xid.and_then(|x| u32::try_from(x).ok()).map(cdc_core::Xid),
            commit_ts_us,
            ordinal: 0,
            snapshot: false,
            schema: TRANSACTIONS_TABLE.name.schema.clone(),
            table: TRANSACTIONS_TABLE.name.name.clone(),
        },
        ts_us: commit_ts_us,
        before_identity_only: false,
    }))
}

fn unwrap_union(value: &Avro) -> &Avro {
    match value {
        Avro::Union(_, inner) => inner,
        other => other,
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(status: &str, collections: Avro) -> Avro {
        Avro::Record(vec![
            ("status".into(), Avro::Enum(1, status.into())),
            ("id".into(), Avro::String("0/16B3748".into())),
            ("xid".into(), Avro::Union(1, Box::new(Avro::Long(731)))),
            ("commit_lsn".into(), Avro::String("0/16B3748".into())),
            ("end_lsn".into(), Avro::String("0/16B3780".into())),
            (
                "commit_ts_us".into(),
                Avro::TimestampMicros(1_795_219_200_000_000),
            ),
            (
                "event_count".into(),
                Avro::Union(1, Box::new(Avro::Long(3))),
            ),
            ("data_collections".into(), collections),
        ])
    }

    #[test]
    fn end_records_become_rows_and_begins_nothing() {
        let collections = Avro::Union(
            1,
            Box::new(Avro::Array(vec![
                Avro::Record(vec![
                    (
                        "data_collection".into(),
                        Avro::String("public.payment".into()),
                    ),
                    ("event_count".into(), Avro::Long(2)),
                ]),
                Avro::Record(vec![
                    (
                        "data_collection".into(),
                        Avro::String("public.\"odd\"".into()),
                    ),
                    ("event_count".into(), Avro::Long(1)),
                ]),
            ])),
        );
        assert_eq!(
            transaction_row(&record("BEGIN", Avro::Union(0, Box::new(Avro::Null)))).unwrap(),
            None
        );
        let row = transaction_row(&record("END", collections))
            .unwrap()
            .unwrap();
        let after = row.after.unwrap();
        assert_eq!(after.len(), TRANSACTIONS_TABLE.columns.len());
        assert_eq!(after[1], Value::Int64(731));
        assert_eq!(after[5], Value::Int64(3));
        assert_eq!(
            after[6],
            Value::Json(r#"{"public.payment":2,"public.\"odd\"":1}"#.into())
        );
        assert_eq!(row.source.commit_lsn, "0/16B3748".parse().unwrap());
        assert_eq!(row.source.commit_ts_us, 1_795_219_200_000_000);
    }

    #[test]
    fn other_records_are_refused_with_a_reason() {
        assert!(transaction_row(&Avro::Null).is_err());
        let bad = Avro::Record(vec![("status".into(), Avro::Enum(0, "MAYBE".into()))]);
        assert!(transaction_row(&bad).unwrap_err().contains("status"));
    }
}
