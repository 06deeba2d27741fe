//! The Avro contract of the totesys CDC topics: each table's key and value schemas, and
//! change events encoded to and decoded from the Confluent wire format.
//!
//! ```text
//!   TableSchema (from pgoutput / the catalogs)
//!      │ key_schema, value_schema(previous)          cached per shape by AvroCodec
//!      ▼
//!   Key { pk columns }            Envelope { before, after: ["null", Value],
//!                                            op, source: Source, ts_us,
//!                                            unchanged_toast, before_identity_only }
//!      │                                   │
//!   ChangeEvent ── encode_key / encode_value ──► 0x00 │ schema id (u32 BE) │ Avro binary body
//!                                                  │
//!   DecodedEvent ◄── decode_event ◄── decode_value ◄┴── decode_confluent
//! ```
//!
//! Names: namespace `totesys_cdc.<schema>.<table>`, records `Key`, `Envelope`, `Value` (the
//! row) and `Source`. Column names that are not valid Avro names go through [`avro_name`];
//! every totesys name is valid and kept as it is. Each column field carries its PostgreSQL
//! type as the attribute `pg.type` (and its original name as `pg.column` when renamed).
//!
//! # Types
//!
//! | PostgreSQL | Avro | decoded `Value` |
//! |---|---|---|
//! | `bool` | `boolean` | `Bool` |
//! | `int2`, `int4` | `int` | `Int16`, `Int32` |
//! | `int8`, `oid` | `long` | `Int64` |
//! | `float4`, `float8` | `float`, `double` | `Float32`, `Float64` (NaN, ±∞ kept) |
//! | `numeric(p,s)` | `bytes`, `decimal(p,s)` | `Numeric`, exactly `s` places |
//! | `numeric` (unconstrained) | `string`, PostgreSQL's exact text (`NaN`, `Infinity` too) | `Numeric` |
//! | `text`, `varchar`, `bpchar`, `name`, `"char"` | `string` | `Text` |
//! | `json`, `jsonb` | `string` (`pg.type` says which) | `Json` |
//! | `bytea` | `bytes` | `Bytes` |
//! | `date` | `int`, `date` | `Date` |
//! | `time` | `long`, `time-micros` | `Time` |
//! | `timestamp` | `long`, `local-timestamp-micros` | `Timestamp` |
//! | `timestamptz` | `long`, `timestamp-micros` | `TimestampTz` |
//! | `uuid` | `string`, `uuid` | `Uuid` |
//! | one-dimensional arrays of the above | `array` of `["null", T]` | `Array` |
//! | enums and anything else | `string`, PostgreSQL's text | `Other` |
//!
//! `numeric(p,s)` with a negative scale or one above the precision (PostgreSQL 15) has no
//! Avro decimal and travels as text like unconstrained `numeric`. Infinite dates and
//! timestamps keep PostgreSQL's sentinels (`i32::MAX`/`i32::MIN` days, `i64::MAX`/`i64::MIN`
//! microseconds). Encoding never rounds: a numeric with more places than its column's scale,
//! or NaN in a `numeric(p,s)` column, is an error.
//!
//! # Nullability and evolution
//!
//! A nullable column is `["null", T]` with default `null`, a `NOT NULL` column `T`. Key fields
//! follow the column. In the value schema nullability is sticky: [`value_schema`] takes the
//! previous value schema of the table, and a field that was nullable there (or absent, i.e. a
//! column added since) stays `["null", T]` with default `null` even if the column is
//! `NOT NULL`, so each new version can read everything written before (BACKWARD
//! compatibility). [`check_compatible`] checks that and names the field that breaks it.
//!
//! # Values PostgreSQL did not send
//!
//! - Unchanged TOASTed values (`Value::UnchangedToast` in the new row) are never written as
//!   nulls that mean NULL: their field names are listed in the envelope's `unchanged_toast`,
//!   and their slots in `after` hold null (or the type's zero value where the field is not
//!   nullable). Decoding restores `Value::UnchangedToast`.
//! - Under `REPLICA IDENTITY DEFAULT` or `USING INDEX` the old row of a delete or key change
//!   has only the identity columns: `before_identity_only` is then true and the other fields
//!   of `before` hold null (or the type's zero). Decoding sets them to `Value::Null`.
//!
//! # Consumers
//!
//! A consumer has only the writer schemas of a record. [`table_from_schemas`] rebuilds the
//! `TableSchema` they were derived from (checking that it derives them again), and
//! [`TableAvro::from_schemas`] the reader for them, so the direct decoder gives typed values.
//!
//! # Decoding bytes from outside
//!
//! [`decode_confluent`] and [`decode_value`] check every length before using it and never
//! panic; [`decode_value`] says why this crate does not use `apache_avro`'s own reader on
//! untrusted input.

mod codec;
mod decimal;
mod decode;
mod direct;
mod encode;
mod error;
mod event;
mod frame;
mod mapping;
mod schema;
mod table;

pub use codec::{AvroCodec, TableAvro};
pub use decode::{decode_value, MAX_DEPTH, MAX_EMPTY_ITEMS};
pub use error::{AvroError, Result};
pub use event::{decode_event, decode_key, DecodedEvent, SourceInfo};
pub use frame::{decode_confluent, encode_confluent, put_header, HEADER_LEN, MAGIC_BYTE};
pub use mapping::avro_name;
pub use schema::{check_compatible, key_schema, schema_json, value_schema};
pub use table::table_from_schemas;

/// The Avro library this crate's schemas and values come from.
pub use apache_avro;
