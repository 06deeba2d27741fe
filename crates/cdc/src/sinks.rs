//! Sinks the `capture` subcommand can write to before Kafka is wired in.

use std::io::Write;

use cdc_core::{ChangeEvent, Value};
use cdc_postgres::sink::{ChangeSink, SinkError, WriteAck};

/// Counts events and drops them (for benchmarks and the demo).
#[derive(Debug, Default)]
pub struct CountingSink {
    /// Events received.
    pub events: u64,
}

impl ChangeSink for CountingSink {
    async fn write(&mut self, batch: Vec<ChangeEvent>) -> Result<WriteAck, SinkError> {
        self.events += batch.len() as u64;
        Ok(WriteAck::durable())
    }
}

/// Writes one JSON object per event to standard output; durable once flushed.
#[derive(Debug, Default)]
pub struct JsonLinesSink;

impl ChangeSink for JsonLinesSink {
    async fn write(&mut self, batch: Vec<ChangeEvent>) -> Result<WriteAck, SinkError> {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        for event in &batch {
            let line = event_json(event);
            writeln!(out, "{line}").map_err(StdoutClosed::rejected)?;
        }
        out.flush().map_err(StdoutClosed::rejected)?;
        Ok(WriteAck::durable())
    }
}

/// Standard output refused a line (closed, a full disk behind a redirect); retrying will
/// not help, so the sink rejects the events.
#[derive(Debug, thiserror::Error)]
#[error("cannot write events to standard output")]
struct StdoutClosed(#[source] std::io::Error);

impl StdoutClosed {
    fn rejected(error: std::io::Error) -> SinkError {
        SinkError::Rejected(Box::new(StdoutClosed(error)))
    }
}

/// The event as a Debezium-like JSON envelope.
pub fn event_json(event: &ChangeEvent) -> serde_json::Value {
    let row = |row: &Option<Vec<Value>>| match row {
        None => serde_json::Value::Null,
        Some(values) => serde_json::Value::Object(
            event
                .table
                .columns
                .iter()
                .zip(values)
                .map(|(column, value)| (column.name.clone(), value_json(value)))
                .collect(),
        ),
    };
    serde_json::json!({
        "op": event.op.code().to_string(),
        "source": {
            "table": event.table.name.to_string(),
            "lsn": event.lsn.to_string(),
            "commit_lsn": event.position.commit_lsn.to_string(),
            "ordinal": event.position.ordinal,
            "xid": event.transaction.xid.map(|x| x.0),
            "commit_time_us": event.transaction.commit_time_micros,
            "snapshot": event.snapshot,
        },
        "before": row(&event.before),
        "after": row(&event.after),
    })
}

fn value_json(value: &Value) -> serde_json::Value {
    use serde_json::json;
    match value {
        Value::Null => json!(null),
        Value::UnchangedToast => json!({"unchanged_toast": true}),
        Value::Bool(v) => json!(v),
        Value::Int16(v) => json!(v),
        Value::Int32(v) => json!(v),
        Value::Int64(v) => json!(v),
        Value::Float32(v) => json!(v),
        Value::Float64(v) => json!(v),
        Value::Numeric(v) | Value::Text(v) | Value::Json(v) | Value::Other(v) => json!(v),
        Value::Bytes(v) => json!(v.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        Value::Date(v) => json!({"date_days": v}),
        Value::Time(v) => json!({"time_us": v}),
        Value::Timestamp(v) | Value::TimestampTz(v) => json!({"ts_us": v}),
        Value::Uuid(v) => json!(v.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(value_json).collect()),
    }
}
