/// One column value, typed losslessly from PostgreSQL's text form.
///
/// Dates and timestamps use PostgreSQL's own sentinels for infinity
/// (`i32::MAX`/`i32::MIN` days, `i64::MAX`/`i64::MIN` microseconds).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A TOASTed value that did not change and was not sent: the column keeps its previous value.
    UnchangedToast,
    /// `boolean`.
    Bool(bool),
    /// `smallint`.
    Int16(i16),
    /// `integer`, `serial`.
    Int32(i32),
    /// `bigint`, `bigserial`.
    Int64(i64),
    /// `real`.
    Float32(f32),
    /// `double precision`.
    Float64(f64),
    /// `numeric`, exactly as PostgreSQL prints it (`-12.3400`, `NaN`, `Infinity`).
    Numeric(String),
    /// `text`, `varchar`, `char`, `name`, and enum labels.
    Text(String),
    /// `bytea`.
    Bytes(Vec<u8>),
    /// `date`: days since 1970-01-01.
    Date(i32),
    /// `time`: microseconds since midnight.
    Time(i64),
    /// `timestamp` (without time zone): microseconds since 1970-01-01 00:00:00.
    Timestamp(i64),
    /// `timestamptz`: microseconds since 1970-01-01 00:00:00 UTC.
    TimestampTz(i64),
    /// `uuid`.
    Uuid([u8; 16]),
    /// `json` or `jsonb` document text.
    Json(String),
    /// A one-dimensional array of the element type; NULL elements are `Value::Null`.
    Array(Vec<Value>),
    /// A type capture does not interpret (interval, money, ranges, multi-dimensional
    /// arrays, …): PostgreSQL's text form, kept verbatim.
    Other(String),
}

impl Value {
    /// Whether the value is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// A row's values in the table's column order.
pub type Row = Vec<Value>;
