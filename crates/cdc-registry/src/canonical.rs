//! Parsing submitted Avro schemas and the normalized form that decides schema identity.
//!
//! Two submissions are the same schema when their normalized forms are equal: the
//! schema is parsed, written back as JSON by the Avro library (which fills in full
//! names and drops whitespace and key order), and printed with object keys sorted.
//!
//! Avro's *Parsing Canonical Form* is not enough for identity: it strips `default`,
//! `logicalType` and `aliases`, so `{"type":"long","logicalType":"timestamp-micros"}`
//! and a plain `long`, or a field with and without a default, would share one id even
//! though they resolve differently. The normalized form keeps everything that matters
//! to resolution (field `doc`s are the one thing the library drops).

use std::fmt::Write as _;

use apache_avro::Schema;
use serde_json::Value;

/// A schema as submitted, parsed, with its identity key.
#[derive(Debug, Clone)]
pub(crate) struct ParsedSchema {
    /// The text as the client sent it; stored and served back as is.
    pub text: String,
    /// The identity key: equal for submissions that denote the same schema.
    pub normalized: String,
    /// The parsed schema, for compatibility checks.
    pub schema: Schema,
}

/// Parses `text` as an Avro schema; the error is a one-line reason for the client.
pub(crate) fn parse(text: &str) -> Result<ParsedSchema, String> {
    if text.trim().is_empty() {
        return Err("Empty schema".to_owned());
    }
    // The Avro library is third-party code fed with network input: contain any panic.
    let outcome = std::panic::catch_unwind(|| -> Result<(Schema, String), String> {
        let schema = Schema::parse_str(text).map_err(|e| e.to_string())?;
        let json = serde_json::to_value(&schema).map_err(|e| e.to_string())?;
        let mut normalized = String::with_capacity(text.len());
        write_sorted(&json, &mut normalized);
        Ok((schema, normalized))
    });
    match outcome {
        Ok(Ok((schema, normalized))) => Ok(ParsedSchema {
            text: text.to_owned(),
            normalized,
            schema,
        }),
        Ok(Err(why)) => Err(why),
        Err(_) => Err("the schema could not be parsed".to_owned()),
    }
}

/// Writes `value` as compact JSON with object keys in byte order, whatever map serde_json uses.
fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_sorted(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    // Display of a JSON string value is its escaped, quoted form.
    let _ = write!(out, "{}", Value::String(s.to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_key_order_and_namespacing_do_not_change_identity() {
        let a = parse(
            r#"{"type":"record","name":"r","namespace":"n","fields":[{"name":"x","type":"int"}]}"#,
        )
        .unwrap();
        let b = parse(
            r#"{ "fields": [ { "type": "int", "name": "x" } ],
                 "name": "n.r",  "type": "record" }"#,
        )
        .unwrap();
        assert_eq!(a.normalized, b.normalized);
        assert_ne!(a.text, b.text);
    }

    #[test]
    fn defaults_and_logical_types_change_identity() {
        let plain =
            parse(r#"{"type":"record","name":"r","fields":[{"name":"x","type":"int"}]}"#).unwrap();
        let defaulted = parse(
            r#"{"type":"record","name":"r","fields":[{"name":"x","type":"int","default":0}]}"#,
        )
        .unwrap();
        assert_ne!(plain.normalized, defaulted.normalized);
        assert_eq!(
            plain.schema.canonical_form(),
            defaulted.schema.canonical_form()
        );

        let long = parse(r#""long""#).unwrap();
        let micros = parse(r#"{"type":"long","logicalType":"timestamp-micros"}"#).unwrap();
        assert_ne!(long.normalized, micros.normalized);
    }

    #[test]
    fn bad_schemas_are_reasons_not_panics() {
        for bad in [
            "",
            "   ",
            "not json",
            "{}",
            r#"{"type":"record"}"#,
            r#"{"type":"record","name":"r","fields":[{"name":"x","type":"nope"}]}"#,
            r#"{"type":"fixed","name":"f","size":-1}"#,
            r#"["int","int"]"#,
            "[[]]",
            "42",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn sorted_writer_escapes_strings() {
        let mut out = String::new();
        write_sorted(
            &serde_json::json!({"b": "q\"uote", "a": [1, null, true, 2.5]}),
            &mut out,
        );
        assert_eq!(out, r#"{"a":[1,null,true,2.5],"b":"q\"uote"}"#);
    }
}
