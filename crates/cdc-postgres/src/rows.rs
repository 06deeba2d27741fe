//! Turning text-form column values (from pgoutput tuples or COPY rows) into typed rows.

use cdc_core::{Row, TableSchema, Value};

use crate::error::SourceError;
use crate::pgoutput::{TupleData, TupleValue};
use crate::text_value::parse_text_value;

/// Types a COPY row's fields in the table's column order.
pub fn text_row(table: &TableSchema, fields: Vec<Option<String>>) -> Result<Row, SourceError> {
    if fields.len() != table.columns.len() {
        return Err(SourceError::Protocol(format!(
            "row of {} has {} fields, the table has {} columns",
            table.name,
            fields.len(),
            table.columns.len()
        )));
    }
    table
        .columns
        .iter()
        .zip(fields)
        .map(|(column, field)| match field {
            None => Ok(Value::Null),
            Some(text) => {
                parse_text_value(column.type_oid, &text).map_err(|source| SourceError::Value {
                    table: table.name.to_string(),
                    column: column.name.clone(),
                    source,
                })
            }
        })
        .collect()
}

/// Types a pgoutput tuple; unchanged TOASTed values stay [`Value::UnchangedToast`].
pub fn tuple_row(table: &TableSchema, tuple: &TupleData) -> Result<Row, SourceError> {
    if tuple.0.len() != table.columns.len() {
        return Err(SourceError::Protocol(format!(
            "tuple of {} has {} values, its Relation message {} columns",
            table.name,
            tuple.0.len(),
            table.columns.len()
        )));
    }
    let bad = |column: &str, source| SourceError::Value {
        table: table.name.to_string(),
        column: column.to_owned(),
        source,
    };
    table
        .columns
        .iter()
        .zip(&tuple.0)
        .map(|(column, value)| match value {
            TupleValue::Null => Ok(Value::Null),
            TupleValue::UnchangedToast => Ok(Value::UnchangedToast),
            TupleValue::Text(bytes) => {
                let text = std::str::from_utf8(bytes).map_err(|_| {
                    SourceError::Protocol(format!(
                        "non-UTF-8 text in {}.{}",
                        table.name, column.name
                    ))
                })?;
                parse_text_value(column.type_oid, text).map_err(|e| bad(&column.name, e))
            }
            TupleValue::Binary(_) => Err(SourceError::Protocol(format!(
                "binary value in {}.{} but capture asked for text",
                table.name, column.name
            ))),
        })
        .collect()
}

/// Replaces unchanged TOASTed values in `after` with the old row's values where known.
pub fn fill_unchanged_toast(after: &mut Row, before: Option<&Row>) {
    let Some(before) = before else { return };
    for (new, old) in after.iter_mut().zip(before) {
        if matches!(new, Value::UnchangedToast) && !matches!(old, Value::UnchangedToast) {
            *new = old.clone();
        }
    }
}
