//! What can go wrong between a table, its Avro schemas and the bytes on a topic.

use apache_avro::error::CompatibilityError;

/// An error of schema derivation, encoding, decoding or compatibility checking.
///
/// Every message is one line and names the table and column (or the field path and byte
/// offset, for bytes that came from outside) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    /// The Avro schema derived for a table was refused by the Avro library: a bug here.
    #[error("the Avro schema derived for {table} is invalid")]
    SchemaBuild {
        /// The table, `schema.name`.
        table: String,
        /// The library's complaint.
        #[source]
        source: apache_avro::Error,
    },
    /// Two columns whose names map to the same Avro field name.
    #[error("columns {first:?} and {second:?} of {table} both map to Avro field {field}")]
    NameCollision {
        /// The table, `schema.name`.
        table: String,
        /// The earlier column.
        first: String,
        /// The later column.
        second: String,
        /// The shared field name.
        field: String,
    },
    /// The previous value schema given for evolution is not an envelope this crate made.
    #[error("previous value schema of {table} is not a change-event envelope: {reason}")]
    PreviousSchema {
        /// The table, `schema.name`.
        table: String,
        /// What is missing from it.
        reason: &'static str,
    },
    /// A key or value schema that is not one this crate derives, so no table shape can be
    /// read from it (see [`crate::table_from_schemas`]).
    #[error("schema {schema} is not a key or value schema of cdc-avro: {path}: {reason}")]
    ForeignSchema {
        /// The schema's full name (or its type, when it is not a record).
        schema: String,
        /// Where it departs from ours: a field path such as `Value.unit_price`, `.` for the
        /// root.
        path: String,
        /// How it departs.
        reason: String,
    },
    /// A schema could not be printed as JSON.
    #[error("could not print Avro schema {name} as JSON")]
    SchemaJson {
        /// The schema's full name.
        name: String,
        /// The serializer's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A row does not have one value per column.
    #[error("row of {table} has {found} values, the table has {expected} columns")]
    RowLength {
        /// The table, `schema.name`.
        table: String,
        /// Number of columns.
        expected: usize,
        /// Number of values in the row.
        found: usize,
    },
    /// A value's kind does not fit its column's type.
    #[error("column {table}.{column} ({type_name}) cannot hold a {found} value")]
    TypeMismatch {
        /// The table, `schema.name`.
        table: String,
        /// The column.
        column: String,
        /// The column's PostgreSQL type.
        type_name: String,
        /// The `Value` variant that was found.
        found: &'static str,
    },
    /// NULL in a field the schema declares non-null.
    #[error("column {table}.{column} is NULL but its Avro field is not nullable")]
    NullInNonNullField {
        /// The table, `schema.name`.
        table: String,
        /// The column.
        column: String,
    },
    /// A numeric value that the column's Avro decimal cannot carry exactly.
    #[error("column {table}.{column} ({type_name}): numeric {text:?} {reason}")]
    Numeric {
        /// The table, `schema.name`.
        table: String,
        /// The column.
        column: String,
        /// The column's PostgreSQL type.
        type_name: String,
        /// The start of the value's text.
        text: String,
        /// Why it does not fit.
        reason: String,
    },
    /// An array column's value that capture kept as text (several dimensions or bounds).
    #[error("column {table}.{column} ({type_name}): array value {text:?} is not one-dimensional")]
    ArrayShape {
        /// The table, `schema.name`.
        table: String,
        /// The column.
        column: String,
        /// The column's PostgreSQL type.
        type_name: String,
        /// The start of the value's text.
        text: String,
    },
    /// An unchanged-TOAST marker where the envelope cannot carry one.
    #[error(
        "column {table}.{column}: unchanged TOAST value in the {place}, which must be complete"
    )]
    UnchangedToast {
        /// The table, `schema.name`.
        table: String,
        /// The column.
        column: String,
        /// `key` or `before image`.
        place: &'static str,
    },
    /// A position or id that does not fit an Avro `long`.
    #[error("{table}: {what} {value} does not fit an Avro long")]
    OutOfRange {
        /// The table, `schema.name`.
        table: String,
        /// Which number.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// A Confluent wire-format frame that is too short or has the wrong magic byte.
    #[error("bad Confluent frame of {len} bytes: {reason}")]
    Frame {
        /// Length of the whole message.
        len: usize,
        /// What is wrong.
        reason: String,
    },
    /// An Avro body that does not decode with its writer schema.
    #[error("malformed Avro body at byte {offset} (field {path}): {reason}")]
    Malformed {
        /// Byte offset in the body where decoding stopped.
        offset: usize,
        /// Field path from the top-level record, `.` for the root.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A decoded value does not have the shape the table's envelope or key should have.
    #[error("decoded {what} of {table} does not fit the table: {reason}")]
    Shape {
        /// The table, `schema.name`.
        table: String,
        /// `envelope`, `key`, or a column as `column c`.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A new schema cannot read data written with the old one.
    #[error("new schema {schema} cannot read data written with the old one: {path}: {reason}")]
    Incompatible {
        /// Full name of the top-level schema.
        schema: String,
        /// The innermost field path where the schemas disagree, `.` for the root.
        path: String,
        /// How they disagree there.
        reason: String,
        /// The Avro library's finding.
        #[source]
        source: Box<CompatibilityError>,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = AvroError> = std::result::Result<T, E>;

/// The first 40 characters of `text`, with an ellipsis when it was longer.
pub(crate) fn quote(text: &str) -> String {
    const LIMIT: usize = 40;
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(LIMIT).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}
