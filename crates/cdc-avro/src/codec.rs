//! [`AvroCodec`]: derived schemas cached per table shape, and framed encoding and decoding.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use apache_avro::Schema;
use cdc_core::{ChangeEvent, Row, TableId, TableSchema, Value};

use crate::direct::{read_envelope, read_key};
use crate::encode;
use crate::error::Result;
use crate::event::DecodedEvent;
use crate::frame::{decode_confluent, put_header, HEADER_LEN};
use crate::mapping::TablePlan;
use crate::schema::{key_schema_of, plan_with_previous, value_schema_of};

/// The Avro side of one table shape: its key and value schemas and how to fill them.
#[derive(Debug)]
pub struct TableAvro {
    table: Arc<TableSchema>,
    plan: TablePlan,
    key: Schema,
    value: Schema,
}

impl TableAvro {
    /// Derives both schemas of `table`, the value schema evolving from `previous`.
    pub fn new(table: Arc<TableSchema>, previous: Option<&Schema>) -> Result<Self> {
        let plan = plan_with_previous(&table, previous)?;
        let key = key_schema_of(&plan)?;
        let value = value_schema_of(&plan)?;
        Ok(TableAvro {
            table,
            plan,
            key,
            value,
        })
    }

    /// The table shape the schemas were derived from.
    pub fn table(&self) -> &TableSchema {
        &self.table
    }

    /// The key schema (record `Key`).
    pub fn key_schema(&self) -> &Schema {
        &self.key
    }

    /// The value schema (record `Envelope`).
    pub fn value_schema(&self) -> &Schema {
        &self.value
    }

    /// Appends the key record of `row` (a full row, table column order) to `buf`.
    pub fn write_key(&self, row: &[Value], buf: &mut Vec<u8>) -> Result<()> {
        encode::encode_key(&self.plan, row, buf)
    }

    /// Appends the envelope of `event`, stamped `ts_us`, to `buf`.
    pub fn write_value(&self, event: &ChangeEvent, ts_us: i64, buf: &mut Vec<u8>) -> Result<()> {
        encode::encode_envelope(&self.plan, event, ts_us, buf)
    }

    /// Decodes a key body written with this shape's key schema to the key columns' values.
    pub fn read_key(&self, body: &[u8]) -> Result<Row> {
        read_key(&self.plan, body)
    }

    /// Decodes a value body written with this shape's value schema.
    pub fn read_value(&self, body: &[u8]) -> Result<DecodedEvent> {
        read_envelope(&self.plan, body)
    }
}

/// One cached shape; `table` is the most recent `Arc` seen with this content, so the
/// pointer comparison keeps hitting.
#[derive(Debug)]
struct Shape {
    table: Arc<TableSchema>,
    hash: u64,
    avro: Arc<TableAvro>,
}

#[derive(Debug, Default)]
struct Slot {
    shapes: Vec<Shape>,
    /// The value schema the next new shape evolves from.
    previous: Option<Schema>,
}

/// Encodes change events and keys in the Confluent wire format, deriving each table's
/// schemas once per table shape.
///
/// Shapes are cached by table OID and a hash of the [`TableSchema`]; a change of shape
/// (a column added, a type changed) derives new schemas, evolving the value schema from the
/// one derived before for the same table (see [`crate::value_schema`]). After a restart, hand
/// it the latest registered value schema with [`AvroCodec::set_previous_value_schema`] so the
/// first shape derived evolves from it too.
///
/// It is `Send + Sync`: lookups of known shapes share a read lock.
#[derive(Debug, Default)]
pub struct AvroCodec {
    tables: RwLock<HashMap<TableId, Slot>>,
}

impl AvroCodec {
    /// An empty codec.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `value_schema` the one the next new shape of table `id` evolves from.
    pub fn set_previous_value_schema(&self, id: TableId, value_schema: Schema) {
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        tables.entry(id).or_default().previous = Some(value_schema);
    }

    /// The schemas of `table`'s shape, derived on first use.
    pub fn table(&self, table: &Arc<TableSchema>) -> Result<Arc<TableAvro>> {
        self.lookup(table, Some(table))
    }

    /// Encodes the key of `row` (a full row of `table`) as a framed message.
    pub fn encode_key(
        &self,
        table: &TableSchema,
        row: &[Value],
        schema_id: u32,
    ) -> Result<Vec<u8>> {
        let avro = self.lookup(table, None)?;
        let mut buf = Vec::with_capacity(HEADER_LEN + 16);
        put_header(&mut buf, schema_id);
        avro.write_key(row, &mut buf)?;
        Ok(buf)
    }

    /// Encodes `event`'s envelope as a framed message, stamped with the current time.
    pub fn encode_value(&self, event: &ChangeEvent, schema_id: u32) -> Result<Vec<u8>> {
        self.encode_value_at(event, schema_id, now_micros())
    }

    /// Encodes `event`'s envelope as a framed message, stamped `ts_us`.
    pub fn encode_value_at(
        &self,
        event: &ChangeEvent,
        schema_id: u32,
        ts_us: i64,
    ) -> Result<Vec<u8>> {
        let avro = self.lookup(&event.table, Some(&event.table))?;
        let mut buf = Vec::with_capacity(HEADER_LEN + 64 + 24 * event.table.columns.len());
        put_header(&mut buf, schema_id);
        avro.write_value(event, ts_us, &mut buf)?;
        Ok(buf)
    }

    /// Decodes a framed key written with `table`'s key schema: schema id and key values.
    pub fn decode_key(&self, table: &TableSchema, message: &[u8]) -> Result<(u32, Row)> {
        let (id, body) = decode_confluent(message)?;
        Ok((id, self.lookup(table, None)?.read_key(body)?))
    }

    /// Decodes a framed envelope written with `table`'s value schema.
    pub fn decode_value(&self, table: &TableSchema, message: &[u8]) -> Result<(u32, DecodedEvent)> {
        let (id, body) = decode_confluent(message)?;
        Ok((id, self.lookup(table, None)?.read_value(body)?))
    }

    fn lookup(
        &self,
        table: &TableSchema,
        arc: Option<&Arc<TableSchema>>,
    ) -> Result<Arc<TableAvro>> {
        let mut hash = None;
        {
            let tables = self.tables.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = tables.get(&table.id) {
                if let Some(shape) = slot.shapes.iter().find(|s| std::ptr::eq(&*s.table, table)) {
                    return Ok(shape.avro.clone());
                }
                let h = hash_of(table);
                hash = Some(h);
                let found = slot
                    .shapes
                    .iter()
                    .find(|s| s.hash == h && *s.table == *table)
                    .map(|s| s.avro.clone());
                if let (Some(avro), None) = (&found, arc) {
                    return Ok(avro.clone());
                }
            }
        }
        let hash = hash.unwrap_or_else(|| hash_of(table));
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        let slot = tables.entry(table.id).or_default();
        if let Some(shape) = slot
            .shapes
            .iter_mut()
            .find(|s| s.hash == hash && *s.table == *table)
        {
            if let Some(arc) = arc {
                shape.table = arc.clone();
            }
            return Ok(shape.avro.clone());
        }
        let arc = arc.cloned().unwrap_or_else(|| Arc::new(table.clone()));
        let avro = Arc::new(TableAvro::new(arc.clone(), slot.previous.as_ref())?);
        slot.previous = Some(avro.value.clone());
        slot.shapes.push(Shape {
            table: arc,
            hash,
            avro: avro.clone(),
        });
        Ok(avro)
    }
}

fn hash_of(table: &TableSchema) -> u64 {
    let mut hasher = DefaultHasher::new();
    table.hash(&mut hasher);
    hasher.finish()
}

/// Microseconds since 1970-01-01 UTC now (0 if the clock is before 1970).
fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
