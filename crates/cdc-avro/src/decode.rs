//! A strict Avro binary decoder for bytes that come from outside.
//!
//! `apache_avro`'s own reader accepts a truncated body in places (a string, boolean or union
//! cut short reads as null) and sizes allocations from lengths in the input before checking
//! them. This decoder reads the same format into the same `apache_avro::types::Value`s, but:
//!
//! - every length is checked against the bytes that are left before anything is allocated;
//! - a body that ends early, or has bytes left over, is an error;
//! - nesting is limited to [`MAX_DEPTH`] levels, so a recursive schema cannot exhaust the stack;
//! - arrays and maps of items that can take zero bytes hold at most [`MAX_EMPTY_ITEMS`] items.
//!
//! It never panics: every failure is an [`AvroError::Malformed`] naming the byte offset and
//! the field path.

use std::collections::HashMap;

use apache_avro::schema::Name;
use apache_avro::types::Value;
use apache_avro::{Decimal, Duration, Schema, Uuid};

use crate::error::{AvroError, Result};

/// Deepest nesting of records, arrays, maps and unions decoded.
pub const MAX_DEPTH: usize = 64;
/// Most items an array or map of zero-width items (such as `null`) may hold.
pub const MAX_EMPTY_ITEMS: usize = 1 << 16;

/// Decodes one Avro binary datum written with `schema`; the whole of `body` must be used.
///
/// The result is what `apache_avro::from_avro_datum` gives for a well-formed body, but this
/// reader is strict where that one is lenient: a body that ends early is an error (not a
/// trailing null), every length is checked against the bytes left before anything is
/// allocated, nesting stops at [`MAX_DEPTH`], and arrays or maps of zero-width items hold at
/// most [`MAX_EMPTY_ITEMS`]. It never panics. To read with a newer schema, decode with the
/// writer's schema and then `resolve` the value to the reader's.
pub fn decode_value(schema: &Schema, body: &[u8]) -> Result<Value> {
    decode_with(schema, &Names::of(schema), body)
}

/// [`decode_value`] with the named types of `schema` collected beforehand.
pub(crate) fn decode_with(schema: &Schema, names: &Names, body: &[u8]) -> Result<Value> {
    let mut reader = Reader::new(body, names);
    let value = reader.value(schema, None, 0)?;
    reader.finish()?;
    Ok(value)
}

/// The named types (records, enums, fixed) defined in a schema, by full name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    by_name: HashMap<String, Schema>,
}

impl Names {
    /// Collects every named type defined in `schema`.
    pub(crate) fn of(schema: &Schema) -> Self {
        let mut names = Names::default();
        names.collect(schema, None, 0);
        names
    }

    fn collect(&mut self, schema: &Schema, enclosing: Option<&str>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match schema {
            Schema::Record(record) => {
                let namespace = namespace_of(&record.name, enclosing);
                self.by_name
                    .insert(full_name(&record.name, enclosing), schema.clone());
                for field in &record.fields {
                    self.collect(&field.schema, namespace, depth + 1);
                }
            }
            Schema::Enum(e) => {
                self.by_name
                    .insert(full_name(&e.name, enclosing), schema.clone());
            }
            Schema::Fixed(f) => {
                self.by_name
                    .insert(full_name(&f.name, enclosing), schema.clone());
            }
            Schema::Decimal(d) => self.collect(&d.inner, enclosing, depth + 1),
            Schema::Array(a) => self.collect(&a.items, enclosing, depth + 1),
            Schema::Map(m) => self.collect(&m.types, enclosing, depth + 1),
            Schema::Union(u) => {
                for variant in u.variants() {
                    self.collect(variant, enclosing, depth + 1);
                }
            }
            _ => {}
        }
    }

    /// The definition a reference names (in namespace `enclosing`), if known.
    fn lookup(&self, name: &Name, enclosing: Option<&str>) -> Option<&Schema> {
        self.by_name
            .get(&full_name(name, enclosing))
            .or_else(|| self.by_name.get(&name.name))
    }

    /// `schema`, or the definition it refers to.
    pub(crate) fn resolve<'a>(&'a self, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => self.lookup(name, None).unwrap_or(schema),
            other => other,
        }
    }
}

/// The namespace a named type defines its members in: its own, else the enclosing one.
fn namespace_of<'a>(name: &'a Name, enclosing: Option<&'a str>) -> Option<&'a str> {
    if let Some((namespace, _)) = name.name.rsplit_once('.') {
        return Some(namespace);
    }
    name.namespace
        .as_deref()
        .or(enclosing)
        .filter(|ns| !ns.is_empty())
}

/// `namespace.name` of a named type (in namespace `enclosing`).
fn full_name(name: &Name, enclosing: Option<&str>) -> String {
    if name.name.contains('.') {
        return name.name.clone();
    }
    match namespace_of(name, enclosing) {
        Some(namespace) => format!("{namespace}.{}", name.name),
        None => name.name.clone(),
    }
}

/// A cursor over an Avro body that checks every length and knows which field it is in.
pub(crate) struct Reader<'b, 's> {
    body: &'b [u8],
    pos: usize,
    names: &'s Names,
    /// Field names from the top-level record down to the value being read.
    pub(crate) path: Vec<&'s str>,
    /// Zero-width array or map items read so far.
    empty_items: usize,
}

impl<'b, 's> Reader<'b, 's> {
    /// A reader at the start of `body`; `names` resolves references.
    pub(crate) fn new(body: &'b [u8], names: &'s Names) -> Self {
        Reader {
            body,
            pos: 0,
            names,
            path: Vec::new(),
            empty_items: 0,
        }
    }

    /// Checks that the whole body was read.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.pos == self.body.len() {
            Ok(())
        } else {
            Err(self.error(format!(
                "{} bytes left over after the datum",
                self.body.len().saturating_sub(self.pos)
            )))
        }
    }

    /// A boolean: one byte, 0 or 1.
    pub(crate) fn boolean(&mut self) -> Result<bool> {
        match self.take(1, "boolean")? {
            [0] => Ok(false),
            [1] => Ok(true),
            other => {
                let byte = other.first().copied().unwrap_or_default();
                self.pos -= 1;
                Err(self.error(format!("boolean byte {byte:#04x} is neither 0 nor 1")))
            }
        }
    }

    /// A union branch index, which must be below `branches`.
    pub(crate) fn branch(&mut self, branches: usize) -> Result<usize> {
        let index = self.long()?;
        usize::try_from(index)
            .ok()
            .filter(|&i| i < branches)
            .ok_or_else(|| {
                self.error(format!(
                    "union branch {index} outside the {branches} branches"
                ))
            })
    }

    /// A float, four bytes little-endian.
    pub(crate) fn float(&mut self) -> Result<f32> {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(self.take(4, "float")?);
        Ok(f32::from_le_bytes(raw))
    }

    /// A double, eight bytes little-endian.
    pub(crate) fn double(&mut self) -> Result<f64> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(self.take(8, "double")?);
        Ok(f64::from_le_bytes(raw))
    }

    /// An error at the current position and field.
    pub(crate) fn error(&self, reason: impl Into<String>) -> AvroError {
        AvroError::Malformed {
            offset: self.pos,
            path: if self.path.is_empty() {
                ".".to_owned()
            } else {
                self.path.join(".")
            },
            reason: reason.into(),
        }
    }

    fn remaining(&self) -> usize {
        self.body.len().saturating_sub(self.pos)
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.body.len());
        match end.and_then(|end| self.body.get(self.pos..end).map(|s| (end, s))) {
            Some((end, slice)) => {
                self.pos = end;
                Ok(slice)
            }
            None => Err(self.error(format!("{what} needs {n} bytes, {} left", self.remaining()))),
        }
    }

    pub(crate) fn long(&mut self) -> Result<i64> {
        let mut z: u64 = 0;
        for i in 0..10u32 {
            let Some(&byte) = self.body.get(self.pos) else {
                return Err(self.error("the body ends inside a varint"));
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(self.error("varint longer than 64 bits"));
            }
            z |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(self.error("varint longer than 64 bits"))
    }

    pub(crate) fn int(&mut self) -> Result<i32> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| self.error(format!("int value {v} out of 32-bit range")))
    }

    /// A length prefix, which must fit in what is left of the body.
    pub(crate) fn len(&mut self, what: &str) -> Result<usize> {
        let v = self.long()?;
        match usize::try_from(v) {
            Ok(len) if len <= self.remaining() => Ok(len),
            Ok(len) => Err(self.error(format!(
                "{what} length {len} runs past the end ({} bytes left)",
                self.remaining()
            ))),
            Err(_) => Err(self.error(format!("negative {what} length {v}"))),
        }
    }

    pub(crate) fn bytes(&mut self, what: &str) -> Result<Vec<u8>> {
        let len = self.len(what)?;
        Ok(self.take(len, what)?.to_vec())
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        let bytes = self.bytes("string")?;
        String::from_utf8(bytes).map_err(|e| {
            self.error(format!(
                "string is not UTF-8 (invalid byte at {})",
                e.utf8_error().valid_up_to()
            ))
        })
    }

    /// The item count of the next array or map block (0 at the end), checked against what
    /// is left; a negative count is followed by the block's size in bytes.
    pub(crate) fn block_count(&mut self, item_width: usize, what: &str) -> Result<usize> {
        let raw = self.long()?;
        let count = if raw < 0 {
            let size = self.long()?;
            if size < 0 {
                return Err(self.error(format!("negative {what} block size {size}")));
            }
            raw.checked_neg()
                .ok_or_else(|| self.error(format!("{what} block count {raw} out of range")))?
        } else {
            raw
        };
        let count = usize::try_from(count)
            .map_err(|_| self.error(format!("{what} block count {count} out of range")))?;
        if item_width > 0 {
            if count > self.remaining() {
                return Err(self.error(format!(
                    "{what} block of {count} items runs past the end ({} bytes left)",
                    self.remaining()
                )));
            }
        } else {
            self.empty_items = self.empty_items.saturating_add(count);
            if self.empty_items > MAX_EMPTY_ITEMS {
                return Err(self.error(format!(
                    "more than {MAX_EMPTY_ITEMS} zero-width {what} items"
                )));
            }
        }
        Ok(count)
    }

    /// 1 if every value of `schema` takes at least one byte, else 0.
    fn min_width(&self, schema: &Schema, depth: usize) -> usize {
        if depth > MAX_DEPTH {
            return 0;
        }
        match schema {
            Schema::Null => 0,
            Schema::Record(r) => r
                .fields
                .iter()
                .map(|f| self.min_width(&f.schema, depth + 1))
                .max()
                .unwrap_or(0),
            Schema::Fixed(f) => usize::from(f.size > 0),
            Schema::Ref { name } => self
                .names
                .lookup(name, None)
                .map_or(0, |s| self.min_width(s, depth + 1)),
            _ => 1,
        }
    }

    fn value(
        &mut self,
        schema: &'s Schema,
        enclosing: Option<&'s str>,
        depth: usize,
    ) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(match schema {
            Schema::Null => Value::Null,
            Schema::Boolean => Value::Boolean(self.boolean()?),
            Schema::Int => Value::Int(self.int()?),
            Schema::Long => Value::Long(self.long()?),
            Schema::Float => Value::Float(self.float()?),
            Schema::Double => Value::Double(self.double()?),
            Schema::Bytes => Value::Bytes(self.bytes("bytes")?),
            Schema::String => Value::String(self.string()?),
            Schema::Fixed(f) => Value::Fixed(f.size, self.take(f.size, "fixed")?.to_vec()),
            Schema::Enum(e) => {
                let index = self.int()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| {
                        self.error(format!(
                            "enum index {index} outside the {} symbols",
                            e.symbols.len()
                        ))
                    })?;
                Value::Enum(index.unsigned_abs(), symbol.clone())
            }
            Schema::Array(a) => {
                let mut items = Vec::new();
                loop {
                    let width = self.min_width(&a.items, 0);
                    let count = self.block_count(width, "array")?;
                    if count == 0 {
                        break;
                    }
                    items.reserve(count.min(4096));
                    for _ in 0..count {
                        items.push(self.value(&a.items, enclosing, depth + 1)?);
                    }
                }
                Value::Array(items)
            }
            Schema::Map(m) => {
                let mut entries = HashMap::new();
                loop {
                    // Every entry has a key, a string of at least one byte.
                    let count = self.block_count(1, "map")?;
                    if count == 0 {
                        break;
                    }
                    for _ in 0..count {
                        let key = self.string()?;
                        let value = self.value(&m.types, enclosing, depth + 1)?;
                        entries.insert(key, value);
                    }
                }
                Value::Map(entries)
            }
            Schema::Union(u) => {
                let index = self.long()?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| {
                        self.error(format!(
                            "union branch {index} outside the {} branches",
                            u.variants().len()
                        ))
                    })?;
                let value = self.value(variant, enclosing, depth + 1)?;
                Value::Union(index.unsigned_abs() as u32, Box::new(value))
            }
            Schema::Record(r) => {
                let namespace = namespace_of(&r.name, enclosing);
                let mut fields = Vec::with_capacity(r.fields.len());
                for field in &r.fields {
                    self.path.push(&field.name);
                    let value = self.value(&field.schema, namespace, depth + 1)?;
                    self.path.pop();
                    fields.push((field.name.clone(), value));
                }
                Value::Record(fields)
            }
            Schema::Decimal(d) => {
                let bytes = match d.inner.as_ref() {
                    Schema::Fixed(f) => self.take(f.size, "decimal")?.to_vec(),
                    _ => self.bytes("decimal")?,
                };
                Value::Decimal(Decimal::from(bytes))
            }
            Schema::BigDecimal => {
                return Err(self.error("the big-decimal logical type is not supported"))
            }
            Schema::Uuid => {
                let start = self.pos;
                let bytes = self.bytes("uuid")?;
                let uuid = match <[u8; 16]>::try_from(bytes.as_slice()) {
                    Ok(raw) => Some(Uuid::from_bytes(raw)),
                    Err(_) => std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|s| Uuid::parse_str(s).ok()),
                };
                match uuid {
                    Some(uuid) => Value::Uuid(uuid),
                    None => {
                        self.pos = start;
                        return Err(self.error("uuid is neither 16 bytes nor UUID text"));
                    }
                }
            }
            Schema::Date => Value::Date(self.int()?),
            Schema::TimeMillis => Value::TimeMillis(self.int()?),
            Schema::TimeMicros => Value::TimeMicros(self.long()?),
            Schema::TimestampMillis => Value::TimestampMillis(self.long()?),
            Schema::TimestampMicros => Value::TimestampMicros(self.long()?),
            Schema::TimestampNanos => Value::TimestampNanos(self.long()?),
            Schema::LocalTimestampMillis => Value::LocalTimestampMillis(self.long()?),
            Schema::LocalTimestampMicros => Value::LocalTimestampMicros(self.long()?),
            Schema::LocalTimestampNanos => Value::LocalTimestampNanos(self.long()?),
            Schema::Duration => {
                let mut raw = [0u8; 12];
                raw.copy_from_slice(self.take(12, "duration")?);
                Value::Duration(Duration::from(raw))
            }
            Schema::Ref { name } => match self.names.lookup(name, enclosing) {
                Some(definition) => {
                    self.value(definition, namespace_of(name, enclosing), depth + 1)?
                }
                None => {
                    return Err(
                        self.error(format!("reference to unknown type {}", name.fullname(None)))
                    )
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(json: &str) -> Schema {
        Schema::parse_str(json).unwrap()
    }

    #[test]
    fn primitives() {
        assert_eq!(
            decode_value(&Schema::Long, &[0x96, 0x01]).unwrap(),
            Value::Long(75)
        );
        assert_eq!(
            decode_value(&Schema::String, &[6, b'a', b'b', b'c']).unwrap(),
            Value::String("abc".into())
        );
        assert_eq!(decode_value(&Schema::Null, &[]).unwrap(), Value::Null);
        assert_eq!(
            decode_value(&Schema::Boolean, &[1]).unwrap(),
            Value::Boolean(true)
        );
    }

    #[test]
    fn refuses_what_apache_avro_lets_through() {
        // A string cut short, a union and a boolean missing at the end: errors, not nulls.
        let s = schema(r#"{"type":"record","name":"r","fields":[{"name":"a","type":"string"}]}"#);
        let err = decode_value(&s, &[6, b'a']).unwrap_err().to_string();
        assert_eq!(
            err,
            "malformed Avro body at byte 1 (field a): string length 3 runs past the end (1 bytes left)"
        );
        assert!(decode_value(&schema(r#"["null","long"]"#), &[]).is_err());
        assert!(decode_value(&Schema::Boolean, &[]).is_err());
        assert!(decode_value(&Schema::Boolean, &[2]).is_err());
        assert!(
            decode_value(&Schema::Long, &[2, 0]).is_err(),
            "trailing byte"
        );
    }

    #[test]
    fn lengths_are_checked_before_allocating() {
        let mut huge = Vec::new();
        crate::encode::put_long(&mut huge, i64::MAX);
        for s in [
            Schema::Bytes,
            Schema::String,
            schema(r#"{"type":"array","items":"long"}"#),
            schema(r#"{"type":"map","values":"long"}"#),
        ] {
            assert!(decode_value(&s, &huge).is_err());
        }
        let nulls = schema(r#"{"type":"array","items":"null"}"#);
        assert!(decode_value(&nulls, &huge).is_err());
        let mut many = Vec::new();
        crate::encode::put_long(&mut many, 1000);
        many.push(0);
        assert_eq!(
            decode_value(&nulls, &many).unwrap(),
            Value::Array(vec![Value::Null; 1000])
        );
        // Varints: ten bytes at most, the tenth carrying one bit.
        let long = [0xFF; 10];
        assert!(decode_value(&Schema::Long, &long).is_err());
        assert!(decode_value(&Schema::Int, &[0x80, 0x80, 0x80, 0x80, 0x10]).is_err());
    }

    #[test]
    fn recursion_is_bounded() {
        let list = schema(
            r#"{"type":"record","name":"node","fields":[{"name":"next","type":["null","node"]}]}"#,
        );
        let ok = [2, 2, 0];
        assert!(decode_value(&list, &ok).is_ok());
        let deep = vec![2u8; 10_000];
        let err = decode_value(&list, &deep).unwrap_err().to_string();
        assert!(err.contains("nested deeper than 64"), "{err}");
    }
}
