//! Change events of one table to an Arrow record batch in the lake schema.
//!
//! [`BatchBuilder::build`] walks the rows once, appending each row to one Arrow builder
//! per column; the `_before` struct gets builders only once a row of the batch has an old
//! image.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer};
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema};
use cdc_avro::DecodedEvent;
use cdc_core::{Op, TableSchema, Value};

use crate::columns::{column_field, lake_schema, Kind};
use crate::values::{lake_days, lake_micros};
use crate::LakeError;

/// One change as the lake stores it: the decoded event and where it was read in Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeRow {
    /// The change.
    pub event: DecodedEvent,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
}

impl LakeRow {
    /// The row the source columns hold: the new row, or the old one for a delete.
    fn image(&self) -> Option<&[Value]> {
        match self.event.op {
            Op::Delete => self.event.before.as_deref(),
            _ => self.event.after.as_deref(),
        }
    }
}

/// Builds lake record batches for one table shape.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    table: TableSchema,
    kinds: Vec<Kind>,
    schema: Arc<Schema>,
    /// The fields of the `_before` struct: the source columns.
    before_fields: Fields,
}

impl BatchBuilder {
    /// A builder for `table`'s shape.
    pub fn new(table: TableSchema) -> Self {
        let kinds = table
            .columns
            .iter()
            .map(|c| Kind::of(c.type_oid, c.type_modifier))
            .collect();
        let schema = Arc::new(lake_schema(&table));
        let before_fields = table.columns.iter().map(column_field).collect();
        BatchBuilder {
            table,
            kinds,
            schema,
            before_fields,
        }
    }

    /// The lake schema the batches have.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The table shape.
    pub fn table(&self) -> &TableSchema {
        &self.table
    }

    /// A record batch of `rows`, in the order given.
    pub fn build(&self, rows: &[LakeRow]) -> Result<RecordBatch, LakeError> {
        let len = rows.len();
        let mut source: Vec<Column> = self.kinds.iter().map(|k| Column::new(k, len)).collect();
        // Created at the first row with an old image, null for the rows before it.
        let mut before: Option<Before> = None;
        let mut metadata = Metadata::with_capacity(len);
        for (at, row) in rows.iter().enumerate() {
            // No earlier row has a shape error or a misfit, so this is the first error.
            self.check_shape(row)?;
            let event = &row.event;
            if let Err(found) = append_image(&mut source, row.image()) {
                return Err(self.first_error(rows, found));
            }
            match (&event.before, &mut before) {
                (Some(image), _) => {
                    let before =
                        before.get_or_insert_with(|| Before::with_nulls(&self.kinds, len, at));
                    before.valid.append_non_null();
                    if let Err(found) = append_image(&mut before.children, Some(image)) {
                        return Err(self.first_error(rows, found));
                    }
                }
                (None, Some(before)) => {
                    before.valid.append_null();
                    for child in &mut before.children {
                        child.append_null();
                    }
                }
                (None, None) => {}
            }
            metadata.append(row, &self.table);
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, column) in source.into_iter().enumerate() {
            columns.push(
                column
                    .finish()
                    .map_err(|found| self.value_error(i, found))?,
            );
        }
        let before = match before {
            Some(before) => self.before(before)?,
            None => Arc::new(StructArray::new_null(self.before_fields.clone(), len)),
        };
        metadata.finish(&mut columns, before);
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(LakeError::shape(format!("batch of {}", self.table.name)))
    }

    /// `Err` when an image of `row` does not have the table's width.
    fn check_shape(&self, row: &LakeRow) -> Result<(), LakeError> {
        let width = self.table.columns.len();
        for image in [row.event.before.as_ref(), row.event.after.as_ref()]
            .into_iter()
            .flatten()
        {
            if image.len() != width {
                return Err(LakeError::bad_shape(format!(
                    "a row of {} has {} values, the table has {width} columns",
                    self.table.name,
                    image.len()
                )));
            }
        }
        Ok(())
    }

    /// The `_before` struct column from its builders.
    fn before(&self, mut before: Before) -> Result<ArrayRef, LakeError> {
        let mut children = Vec::with_capacity(before.children.len());
        for (i, child) in before.children.into_iter().enumerate() {
            children.push(child.finish().map_err(|found| self.value_error(i, found))?);
        }
        let array =
            StructArray::try_new(self.before_fields.clone(), children, before.valid.finish())
                .map_err(LakeError::shape(format!("_before of {}", self.table.name)))?;
        Ok(Arc::new(array))
    }

    /// The error a batch of `rows` reports, `found` (column, value) being a misfit met on
    /// the way: the first shape error, else the first misfit column by column (source
    /// columns, then `_before`'s), each column's rows in order.
    fn first_error(&self, rows: &[LakeRow], found: (usize, String)) -> LakeError {
        if let Err(shape) = rows.iter().try_for_each(|row| self.check_shape(row)) {
            return shape;
        }
        for old in [false, true] {
            for (i, kind) in self.kinds.iter().enumerate() {
                let values: Vec<Option<&Value>> = rows
                    .iter()
                    .map(|r| match old {
                        false => r.image(),
                        true => r.event.before.as_deref(),
                    })
                    .map(|image| image.map(|row| &row[i]))
                    .collect();
                if let Some(misfit) = first_misfit(kind, &values) {
                    return self.value_error(i, misfit);
                }
            }
        }
        self.value_error(found.0, found.1)
    }

    fn value_error(&self, index: usize, found: String) -> LakeError {
        LakeError::Value {
            table: self.table.name.to_string(),
            column: self.table.columns[index].name.clone(),
            found,
        }
    }
}

/// The builders of the lake's metadata columns (`_op` to `_offset`, around `_before`).
struct Metadata {
    op: StringBuilder,
    lsn: Int64Builder,
    commit_lsn: Int64Builder,
    ordinal: Int64Builder,
    xid: Int64Builder,
    commit_ts: TimestampMicrosecondBuilder,
    snapshot: BooleanBuilder,
    toast: ListBuilder<StringBuilder>,
    identity_only: BooleanBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
}

impl Metadata {
    fn with_capacity(len: usize) -> Self {
        Metadata {
            op: StringBuilder::with_capacity(len, len),
            lsn: Int64Builder::with_capacity(len),
            commit_lsn: Int64Builder::with_capacity(len),
            ordinal: Int64Builder::with_capacity(len),
            xid: Int64Builder::with_capacity(len),
            commit_ts: TimestampMicrosecondBuilder::with_capacity(len).with_timezone("UTC"),
            snapshot: BooleanBuilder::with_capacity(len),
            toast: ListBuilder::with_capacity(StringBuilder::new(), len)
                .with_field(Arc::new(Field::new("item", DataType::Utf8, false))),
            identity_only: BooleanBuilder::with_capacity(len),
            partition: Int32Builder::with_capacity(len),
            offset: Int64Builder::with_capacity(len),
        }
    }

    /// Appends the metadata of `row`, a change of `table`.
    fn append(&mut self, row: &LakeRow, table: &TableSchema) {
        let event = &row.event;
        let source = &event.source;
        self.op.append_value(event.op.as_str());
        self.lsn.append_value(lsn_i64(source.lsn.0));
        self.commit_lsn.append_value(lsn_i64(source.commit_lsn.0));
        self.ordinal
            .append_value(i64::try_from(source.ordinal).unwrap_or(i64::MAX));
        self.xid.append_option(source.xid.map(|x| i64::from(x.0)));
        self.commit_ts.append_value(source.commit_ts_us);
        self.snapshot.append_value(source.snapshot);
        let mut unchanged = false;
        if let Some(after) = &event.after {
            for (value, column) in after.iter().zip(&table.columns) {
                if matches!(value, Value::UnchangedToast) {
                    self.toast.values().append_value(&column.name);
                    unchanged = true;
                }
            }
        }
        if unchanged {
            self.toast.append(true);
        } else {
            self.toast.append_null();
        }
        self.identity_only.append_value(event.before_identity_only);
        self.partition.append_value(row.partition);
        self.offset.append_value(row.offset);
    }

    /// Pushes the metadata columns onto `columns` (the source columns), `before` in its place.
    fn finish(mut self, columns: &mut Vec<ArrayRef>, before: ArrayRef) {
        columns.push(Arc::new(self.op.finish()));
        columns.push(Arc::new(self.lsn.finish()));
        columns.push(Arc::new(self.commit_lsn.finish()));
        columns.push(Arc::new(self.ordinal.finish()));
        columns.push(Arc::new(self.xid.finish()));
        columns.push(Arc::new(self.commit_ts.finish()));
        columns.push(Arc::new(self.snapshot.finish()));
        columns.push(Arc::new(self.toast.finish()));
        columns.push(before);
        columns.push(Arc::new(self.identity_only.finish()));
        columns.push(Arc::new(self.partition.finish()));
        columns.push(Arc::new(self.offset.finish()));
    }
}

fn lsn_i64(lsn: u64) -> i64 {
    i64::try_from(lsn).unwrap_or(i64::MAX)
}

/// Whether `value` means "no value here".
fn absent(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null | Value::UnchangedToast))
}

/// Appends `image` (or nulls when there is none) to `columns`, one value each; `Err` holds
/// the column and the description of the first value that does not fit.
fn append_image(columns: &mut [Column], image: Option<&[Value]>) -> Result<(), (usize, String)> {
    match image {
        Some(values) => {
            for (i, (column, value)) in columns.iter_mut().zip(values).enumerate() {
                column.append(value).map_err(|found| (i, found))?;
            }
        }
        None => {
            for column in columns {
                column.append_null();
            }
        }
    }
    Ok(())
}

/// The first value of `values` (one column, rows in order) that does not fit `kind`, as
/// the column-by-column build found it: for lists, the arrays themselves before their
/// elements.
fn first_misfit(kind: &Kind, values: &[Option<&Value>]) -> Option<String> {
    if let Kind::List(element) = kind {
        let mut items: Vec<Option<&Value>> = Vec::new();
        for value in values {
            match value {
                Some(Value::Array(elements)) => items.extend(elements.iter().map(Some)),
                v if absent(*v) => {}
                Some(other) => return Some(format!("{other:?}")),
                None => {}
            }
            if i32::try_from(items.len()).is_err() {
                return Some("array too large".to_owned());
            }
        }
        if let Some(found) = first_misfit(element, &items) {
            return Some(found);
        }
    }
    let mut column = Column::new(kind, values.len());
    for value in values {
        match value {
            Some(value) => {
                if let Err(found) = column.append(value) {
                    return Some(found);
                }
            }
            None => column.append_null(),
        }
    }
    column.finish().err()
}

/// The builder of one column of a [`Kind`].
enum Column {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    TimestampTz(TimestampMicrosecondBuilder),
    Decimal(Decimal128Builder, u8, i8),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    List(Box<ListColumn>),
}

/// A list column: offsets and validity here, the elements in a column of their own.
struct ListColumn {
    field: FieldRef,
    offsets: Vec<i32>,
    valid: NullBufferBuilder,
    items: Column,
}

/// The `_before` struct's builders: validity, and a column per source column.
struct Before {
    valid: NullBufferBuilder,
    children: Vec<Column>,
}

impl Before {
    /// Builders for `len` rows holding `nulls` null rows so far.
    fn with_nulls(kinds: &[Kind], len: usize, nulls: usize) -> Self {
        let mut valid = NullBufferBuilder::new(len);
        valid.append_n_nulls(nulls);
        let children = kinds
            .iter()
            .map(|kind| {
                let mut child = Column::new(kind, len);
                child.append_nulls(nulls);
                child
            })
            .collect();
        Before { valid, children }
    }
}

impl Column {
    /// An empty column of `kind` with room for `capacity` values.
    fn new(kind: &Kind, capacity: usize) -> Column {
        match kind {
            Kind::Bool => Column::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::Int16 => Column::Int16(Int16Builder::with_capacity(capacity)),
            Kind::Int32 => Column::Int32(Int32Builder::with_capacity(capacity)),
            Kind::Int64 => Column::Int64(Int64Builder::with_capacity(capacity)),
            Kind::Float32 => Column::Float32(Float32Builder::with_capacity(capacity)),
            Kind::Float64 => Column::Float64(Float64Builder::with_capacity(capacity)),
            Kind::Date => Column::Date(Date32Builder::with_capacity(capacity)),
            Kind::Timestamp => {
                Column::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            Kind::TimestampTz => Column::TimestampTz(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            Kind::Decimal(precision, scale) => Column::Decimal(
                Decimal128Builder::with_capacity(capacity),
                *precision,
                *scale,
            ),
            Kind::Utf8 => Column::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            Kind::Binary => Column::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            Kind::List(element) => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                Column::List(Box::new(ListColumn {
                    field: Arc::new(Field::new("item", element.data_type(), true)),
                    offsets,
                    valid: NullBufferBuilder::new(capacity),
                    items: Column::new(element, capacity),
                }))
            }
        }
    }

    /// Appends `value`; `Err` describes it when it does not fit (the column is then to be
    /// dropped: a list may hold some of the array's elements).
    fn append(&mut self, value: &Value) -> Result<(), String> {
        macro_rules! primitive {
            ($builder:expr, $variant:path) => {
                primitive!($builder, $variant, |v| v)
            };
            ($builder:expr, $variant:path, $lake:expr) => {
                match value {
                    $variant(v) => $builder.append_value($lake(*v)),
                    Value::Null | Value::UnchangedToast => $builder.append_null(),
                    other => return Err(format!("{other:?}")),
                }
            };
        }
        match self {
            Column::Bool(b) => primitive!(b, Value::Bool),
            Column::Int16(b) => primitive!(b, Value::Int16),
            Column::Int32(b) => primitive!(b, Value::Int32),
            Column::Int64(b) => primitive!(b, Value::Int64),
            Column::Float32(b) => primitive!(b, Value::Float32),
            Column::Float64(b) => primitive!(b, Value::Float64),
            Column::Date(b) => primitive!(b, Value::Date, lake_days),
            Column::Timestamp(b) => primitive!(b, Value::Timestamp, lake_micros),
            Column::TimestampTz(b) => primitive!(b, Value::TimestampTz, lake_micros),
            Column::Decimal(b, _, scale) => match value {
                Value::Numeric(text) => b.append_value(
                    scaled_decimal(text, *scale)
                        .ok_or_else(|| format!("numeric {text:?} for scale {scale}"))?,
                ),
                Value::Null | Value::UnchangedToast => b.append_null(),
                other => return Err(format!("{other:?}")),
            },
            Column::Utf8(b) => match value {
                Value::Text(s) | Value::Numeric(s) | Value::Json(s) | Value::Other(s) => {
                    b.append_value(s)
                }
                Value::Uuid(bytes) => b.append_value(uuid_text(bytes)),
                // Delta has no time-of-day type: PostgreSQL's text of it.
                Value::Time(_) => b.append_option(cdc_core::pg_text(value)),
                Value::Null | Value::UnchangedToast => b.append_null(),
                other => return Err(format!("{other:?}")),
            },
            Column::Binary(b) => match value {
                Value::Bytes(bytes) => b.append_value(bytes),
                Value::Null | Value::UnchangedToast => b.append_null(),
                other => return Err(format!("{other:?}")),
            },
            Column::List(list) => match value {
                Value::Array(elements) => {
                    for element in elements {
                        list.items.append(element)?;
                    }
                    let end = list.offsets.last().copied().unwrap_or(0);
                    let end = usize::try_from(end)
                        .ok()
                        .and_then(|end| end.checked_add(elements.len()))
                        .and_then(|end| i32::try_from(end).ok())
                        .ok_or("array too large")?;
                    list.offsets.push(end);
                    list.valid.append_non_null();
                }
                Value::Null | Value::UnchangedToast => list.append_null(),
                other => return Err(format!("{other:?}")),
            },
        }
        Ok(())
    }

    /// Appends a null.
    fn append_null(&mut self) {
        match self {
            Column::Bool(b) => b.append_null(),
            Column::Int16(b) => b.append_null(),
            Column::Int32(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::Float32(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::Date(b) => b.append_null(),
            Column::Timestamp(b) | Column::TimestampTz(b) => b.append_null(),
            Column::Decimal(b, _, _) => b.append_null(),
            Column::Utf8(b) => b.append_null(),
            Column::Binary(b) => b.append_null(),
            Column::List(list) => list.append_null(),
        }
    }

    /// Appends `n` nulls.
    fn append_nulls(&mut self, n: usize) {
        match self {
            Column::Bool(b) => b.append_nulls(n),
            Column::Int16(b) => b.append_nulls(n),
            Column::Int32(b) => b.append_nulls(n),
            Column::Int64(b) => b.append_nulls(n),
            Column::Float32(b) => b.append_nulls(n),
            Column::Float64(b) => b.append_nulls(n),
            Column::Date(b) => b.append_nulls(n),
            Column::Timestamp(b) | Column::TimestampTz(b) => b.append_nulls(n),
            Column::Decimal(b, _, _) => b.append_nulls(n),
            Column::Utf8(b) => b.append_nulls(n),
            Column::Binary(b) => b.append_nulls(n),
            Column::List(list) => {
                let end = list.offsets.last().copied().unwrap_or(0);
                list.offsets.extend(std::iter::repeat_n(end, n));
                list.valid.append_n_nulls(n);
            }
        }
    }

    /// The array; `Err` says why it cannot be one.
    fn finish(self) -> Result<ArrayRef, String> {
        Ok(match self {
            Column::Bool(mut b) => Arc::new(b.finish()),
            Column::Int16(mut b) => Arc::new(b.finish()),
            Column::Int32(mut b) => Arc::new(b.finish()),
            Column::Int64(mut b) => Arc::new(b.finish()),
            Column::Float32(mut b) => Arc::new(b.finish()),
            Column::Float64(mut b) => Arc::new(b.finish()),
            Column::Date(mut b) => Arc::new(b.finish()),
            Column::Timestamp(mut b) | Column::TimestampTz(mut b) => Arc::new(b.finish()),
            Column::Decimal(mut b, precision, scale) => Arc::new(
                b.finish()
                    .with_precision_and_scale(precision, scale)
                    .map_err(|e| e.to_string())?,
            ),
            Column::Utf8(mut b) => Arc::new(b.finish()),
            Column::Binary(mut b) => Arc::new(b.finish()),
            Column::List(list) => {
                let ListColumn {
                    field,
                    offsets,
                    mut valid,
                    items,
                } = *list;
                Arc::new(
                    ListArray::try_new(
                        field,
                        OffsetBuffer::new(offsets.into()),
                        items.finish()?,
                        valid.finish(),
                    )
                    .map_err(|e| e.to_string())?,
                )
            }
        })
    }
}

impl ListColumn {
    fn append_null(&mut self) {
        let end = self.offsets.last().copied().unwrap_or(0);
        self.offsets.push(end);
        self.valid.append_null();
    }
}

/// PostgreSQL's numeric text as an integer scaled by `10^scale`; `None` when it has more
/// places than `scale` (the lake never rounds), is not a finite number, or overflows.
pub(crate) fn scaled_decimal(text: &str, scale: i8) -> Option<i128> {
    let scale = usize::try_from(scale).ok()?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let significant = fraction.trim_end_matches('0');
    if significant.len() > scale {
        return None;
    }
    let mut value: i128 = 0;
    for b in whole.bytes().chain(significant.bytes()) {
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    for _ in significant.len()..scale {
        value = value.checked_mul(10)?;
    }
    Some(if negative { -value } else { value })
}

fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The array as a value for tests and debugging.
#[cfg(test)]
pub(crate) fn is_null_at(array: &dyn arrow_array::Array, i: usize) -> bool {
    array.is_null(i)
}

/// The column-by-column build the one-pass [`BatchBuilder::build`] replaced, kept as the
/// reference its tests compare with.
#[cfg(test)]
mod reference;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::reference::array;
    use super::*;
    use arrow_array::Array;
    use proptest::prelude::*;

    #[test]
    fn decimals_are_exact_and_never_rounded() {
        assert_eq!(scaled_decimal("12.5", 2), Some(1250));
        assert_eq!(scaled_decimal("-0.05", 2), Some(-5));
        assert_eq!(scaled_decimal("7", 2), Some(700));
        assert_eq!(
            scaled_decimal("1.230", 2),
            Some(123),
            "trailing zeros are not places"
        );
        assert_eq!(scaled_decimal("1.234", 2), None, "never rounds");
        assert_eq!(scaled_decimal("NaN", 2), None);
        assert_eq!(scaled_decimal("", 2), None);
        assert_eq!(scaled_decimal("1e5", 2), None);
        assert_eq!(scaled_decimal(&"9".repeat(40), 0), None, "overflow");
    }

    proptest! {
        #[test]
        fn decimal_text_round_trips(units in -10i128.pow(30)..10i128.pow(30), scale in 0i8..8) {
            let divisor = 10i128.pow(scale as u32);
            let text = if scale == 0 {
                units.to_string()
            } else {
                let sign = if units < 0 { "-" } else { "" };
                let abs = units.abs();
                format!("{sign}{}.{:0width$}", abs / divisor, abs % divisor, width = scale as usize)
            };
            prop_assert_eq!(scaled_decimal(&text, scale), Some(units));
        }
    }

    #[test]
    fn uuids_print_canonically() {
        let bytes = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        assert_eq!(uuid_text(&bytes), "12345678-9abc-def0-0123-456789abcdef");
    }

    fn column(name: &str, oid: u32, typmod: i32, key: bool) -> cdc_core::ColumnSchema {
        cdc_core::ColumnSchema {
            name: name.into(),
            type_oid: oid,
            type_modifier: typmod,
            type_name: format!("type {oid}"),
            nullable: !key,
            primary_key: key,
            replica_identity: key,
        }
    }

    fn table(columns: Vec<cdc_core::ColumnSchema>) -> TableSchema {
        TableSchema {
            id: cdc_core::TableId(16_400),
            name: cdc_core::TableName::new("public", "kinds"),
            columns,
            replica_identity: cdc_core::ReplicaIdentity::Default,
        }
    }

    /// `numeric(p,s)`'s type modifier.
    fn typmod(precision: i32, scale: i32) -> i32 {
        ((precision << 16) | scale) + 4
    }

    fn row(op: Op, before: Option<Vec<Value>>, after: Option<Vec<Value>>) -> LakeRow {
        LakeRow {
            event: DecodedEvent {
                op,
                before_identity_only: op == Op::Delete,
                before,
                after,
                source: cdc_avro::SourceInfo {
                    lsn: cdc_core::Lsn(100),
                    commit_lsn: cdc_core::Lsn(200),
                    xid: Some(cdc_core::Xid(7)),
                    commit_ts_us: 1_000,
                    ordinal: 1,
                    snapshot: false,
                    schema: "public".into(),
                    table: "kinds".into(),
                },
                ts_us: 2_000,
            },
            partition: 3,
            offset: 0,
        }
    }

    fn array_ref(array: impl arrow_array::Array + 'static) -> ArrayRef {
        Arc::new(array)
    }

    /// Asserts two arrays hold the same values (and nulls).
    fn same(actual: ArrayRef, expected: ArrayRef) {
        assert_eq!(actual.to_data(), expected.to_data());
    }

    /// `id int PK, price numeric(10,2), note text, updated timestamptz, counts int[], day date`.
    fn small_table() -> TableSchema {
        table(vec![
            column("id", 23, -1, true),
            column("price", 1700, typmod(10, 2), false),
            column("note", 25, -1, false),
            column("updated", 1184, -1, false),
            column("counts", 1007, -1, false),
            column("day", 1082, -1, false),
        ])
    }

    #[test]
    fn batches_hold_images_metadata_toast_and_old_rows() {
        use arrow_array::cast::AsArray;
        use arrow_array::types::Int32Type;
        use arrow_array::{
            BooleanArray, Date32Array, Decimal128Array, Int32Array, Int64Array, StringArray,
            TimestampMicrosecondArray,
        };
        let ts = Value::TimestampTz;
        let mut rows = vec![
            row(
                Op::Insert,
                None,
                Some(vec![
                    Value::Int32(1),
                    Value::Numeric("12.50".into()),
                    Value::Text("a".into()),
                    ts(1_000),
                    Value::Array(vec![Value::Int32(1), Value::Null]),
                    Value::Date(3),
                ]),
            ),
            // The first old row of the batch comes second.
            row(
                Op::Update,
                Some(vec![
                    Value::Int32(1),
                    Value::Numeric("12.5".into()),
                    Value::Text("a".into()),
                    ts(1_000),
                    Value::Array(vec![]),
                    Value::Date(3),
                ]),
                Some(vec![
                    Value::Int32(1),
                    Value::Numeric("7".into()),
                    Value::UnchangedToast,
                    ts(2_000),
                    Value::UnchangedToast,
                    Value::Null,
                ]),
            ),
            // An identity-only old row: the key, the rest null.
            row(
                Op::Delete,
                Some(vec![
                    Value::Int32(2),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ]),
                None,
            ),
            row(
                Op::Read,
                None,
                Some(vec![
                    Value::Int32(3),
                    Value::Null,
                    Value::Text("c".into()),
                    Value::Null,
                    Value::Null,
                    Value::Date(-1),
                ]),
            ),
            row(Op::Truncate, None, None),
        ];
        rows[3].event.source.xid = None;
        rows[3].event.source.snapshot = true;
        rows[4].event.source.lsn = cdc_core::Lsn(u64::MAX);
        for (offset, row) in rows.iter_mut().enumerate() {
            row.offset = offset as i64 + 40;
        }
        let builder = BatchBuilder::new(small_table());
        let batch = builder.build(&rows).unwrap();
        assert_eq!(batch.num_rows(), 5);
        assert_eq!(batch.schema(), *builder.schema());
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();

        let ids = array_ref(Int32Array::from(vec![
            Some(1),
            Some(1),
            Some(2),
            Some(3),
            None,
        ]));
        same(column("id"), ids);
        let prices = Decimal128Array::from(vec![Some(1250), Some(700), None, None, None])
            .with_precision_and_scale(10, 2)
            .unwrap();
        same(column("price"), array_ref(prices));
        let notes = StringArray::from(vec![Some("a"), None, None, Some("c"), None]);
        same(column("note"), array_ref(notes));
        let updated =
            TimestampMicrosecondArray::from(vec![Some(1_000), Some(2_000), None, None, None])
                .with_timezone("UTC");
        same(column("updated"), array_ref(updated));
        let counts = arrow_array::ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
            None,
            None,
            None,
        ]);
        same(column("counts"), array_ref(counts));
        let days = Date32Array::from(vec![Some(3), None, None, Some(-1), None]);
        same(column("day"), array_ref(days));

        let ops = StringArray::from(vec!["c", "u", "d", "r", "t"]);
        same(column(crate::columns::OP), array_ref(ops));
        let lsns = Int64Array::from(vec![100, 100, 100, 100, i64::MAX]);
        same(column(crate::columns::LSN), array_ref(lsns));
        let xids = Int64Array::from(vec![Some(7), Some(7), Some(7), None, Some(7)]);
        same(column(crate::columns::XID), array_ref(xids));
        let snapshot = BooleanArray::from(vec![false, false, false, true, false]);
        same(column(crate::columns::SNAPSHOT), array_ref(snapshot));
        let offsets = Int64Array::from(vec![40, 41, 42, 43, 44]);
        same(column(crate::columns::KAFKA_OFFSET), array_ref(offsets));
        let identity_only = BooleanArray::from(vec![false, false, true, false, false]);
        same(
            column(crate::columns::BEFORE_IDENTITY_ONLY),
            array_ref(identity_only),
        );

        let toast = column(crate::columns::UNCHANGED_TOAST);
        let toast = toast.as_list::<i32>();
        assert_eq!(toast.len(), 5);
        for i in [0, 2, 3, 4] {
            assert!(toast.is_null(i), "row {i} has no unchanged TOAST");
        }
        same(
            toast.value(1),
            array_ref(StringArray::from(vec!["note", "counts"])),
        );

        let before = column(crate::columns::BEFORE);
        let before = before.as_struct();
        let valid: Vec<bool> = (0..5).map(|i| before.is_valid(i)).collect();
        assert_eq!(valid, [false, true, true, false, false]);
        let old_ids = before.column_by_name("id").unwrap();
        assert_eq!(
            (
                old_ids.as_primitive::<Int32Type>().value(1),
                old_ids.as_primitive::<Int32Type>().value(2)
            ),
            (1, 2)
        );
        let old_prices = before.column_by_name("price").unwrap();
        let old_prices = old_prices.as_primitive::<arrow_array::types::Decimal128Type>();
        assert_eq!(old_prices.value(1), 1250);
        assert!(
            old_prices.is_null(2),
            "identity-only: the price was not sent"
        );
        let old_counts = before.column_by_name("counts").unwrap();
        let old_counts = old_counts.as_list::<i32>();
        assert!(old_counts.is_valid(1) && old_counts.value(1).is_empty());
        assert!(old_counts.is_null(2));
    }

    #[test]
    fn batches_without_old_rows_have_a_null_before() {
        let rows: Vec<LakeRow> = (0..3)
            .map(|id| {
                row(
                    Op::Insert,
                    None,
                    Some(vec![
                        Value::Int32(id),
                        Value::Numeric("1".into()),
                        Value::Null,
                        Value::Null,
                        Value::Null,
                        Value::Null,
                    ]),
                )
            })
            .collect();
        let batch = BatchBuilder::new(small_table()).build(&rows).unwrap();
        let before = batch.column_by_name(crate::columns::BEFORE).unwrap();
        assert_eq!(before.len(), 3);
        assert_eq!(before.null_count(), 3);
        let empty = BatchBuilder::new(small_table()).build(&[]).unwrap();
        assert_eq!(empty.num_rows(), 0);
    }

    #[test]
    fn misfits_are_typed_errors_naming_the_column() {
        let mut values = vec![
            Value::Int32(1),
            Value::Numeric("1.234".into()),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ];
        let builder = BatchBuilder::new(small_table());
        // The error of a batch inserting `images`.
        let insert_error = |images: &[&Vec<Value>]| {
            let rows: Vec<LakeRow> = images
                .iter()
                .map(|image| row(Op::Insert, None, Some((*image).clone())))
                .collect();
            builder.build(&rows).unwrap_err()
        };
        let error = insert_error(&[&values]);
        assert!(
            matches!(&error, LakeError::Value { column, found, .. }
                if column == "price" && found == "numeric \"1.234\" for scale 2"),
            "{error:?}"
        );
        values[1] = Value::Null;
        values[5] = Value::Text("2026-11-28".into());
        let error = insert_error(&[&values]);
        assert!(
            matches!(&error, LakeError::Value { column, .. } if column == "day"),
            "{error:?}"
        );
        // Several misfits: the first column's, and in a list column the arrays' before
        // their elements', as the column-by-column build always reported them.
        let mut other = values.clone();
        other[1] = Value::Numeric("NaN".into());
        let error = insert_error(&[&values, &other]);
        assert!(
            matches!(&error, LakeError::Value { column, .. } if column == "price"),
            "{error:?}"
        );
        values[5] = Value::Null;
        let mut other = values.clone();
        values[4] = Value::Array(vec![Value::Int32(1), Value::Text("x".into())]);
        other[4] = Value::Text("y".into());
        let error = insert_error(&[&values, &other]);
        assert!(
            matches!(&error, LakeError::Value { column, found, .. }
                if column == "counts" && found == "Text(\"y\")"),
            "{error:?}"
        );
        values.pop();
        let error = insert_error(&[&values]);
        assert!(matches!(error, LakeError::Shape { .. }), "{error:?}");
    }

    /// A table with a column of every [`Kind`] (and of several element kinds of lists).
    fn every_kind_table() -> TableSchema {
        table(vec![
            column("id", 23, -1, true),
            column("flag", 16, -1, false),
            column("small", 21, -1, false),
            column("big", 20, -1, false),
            column("ref", 26, -1, false),
            column("real", 700, -1, false),
            column("double", 701, -1, false),
            column("price", 1700, typmod(10, 2), false),
            column("whole", 1700, typmod(5, 0), false),
            column("wide", 1700, typmod(38, 10), false),
            column("amount", 1700, -1, false),
            column("note", 25, -1, false),
            column("token", 2950, -1, false),
            column("doc", 3802, -1, false),
            column("blob", 17, -1, false),
            column("day", 1082, -1, false),
            column("at", 1083, -1, false),
            column("created", 1114, -1, false),
            column("updated", 1184, -1, false),
            column("smalls", 1005, -1, false),
            column("counts", 1007, -1, false),
            column("bigs", 1016, -1, false),
            column("reals", 1021, -1, false),
            column("doubles", 1022, -1, false),
            column("prices", 1231, -1, false),
            column("tags", 1009, -1, false),
            column("flags", 1000, -1, false),
            column("blobs", 1001, -1, false),
            column("days", 1182, -1, false),
            column("times", 1183, -1, false),
            column("stamps", 1115, -1, false),
            column("moments", 1185, -1, false),
        ])
    }

    /// PostgreSQL-style numeric text with at most `scale` significant places (and maybe
    /// trailing zeros, a sign, no whole part).
    fn decimal_text(scale: i8) -> impl Strategy<Value = String> {
        let scale = scale.clamp(0, 12) as u32;
        (
            0u128..10u128.pow(24),
            0..=scale,
            0usize..3,
            prop_oneof![Just(""), Just("-"), Just("+")],
            any::<bool>(),
        )
            .prop_map(|(units, places, zeros, sign, bare)| {
                let divisor = 10u128.pow(places);
                let whole = units / divisor;
                let mut text = if bare && whole == 0 && places > 0 {
                    sign.to_owned()
                } else {
                    format!("{sign}{whole}")
                };
                if places > 0 || zeros > 0 {
                    let fraction = units % divisor;
                    let digits = if places > 0 {
                        format!("{fraction:0width$}", width = places as usize)
                    } else {
                        String::new()
                    };
                    text.push_str(&format!(".{digits}{}", "0".repeat(zeros)));
                }
                text
            })
    }

    /// A value that fits `kind` (lists with elements from [`cell`]).
    fn fitting(kind: &Kind, misfits: u32) -> BoxedStrategy<Value> {
        match kind {
            Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            Kind::Int16 => any::<i16>().prop_map(Value::Int16).boxed(),
            Kind::Int32 => any::<i32>().prop_map(Value::Int32).boxed(),
            Kind::Int64 => any::<i64>().prop_map(Value::Int64).boxed(),
            // Finite: NaN is never equal to itself.
            Kind::Float32 => (-1e30f32..1e30).prop_map(Value::Float32).boxed(),
            Kind::Float64 => (-1e300f64..1e300).prop_map(Value::Float64).boxed(),
            Kind::Decimal(_, scale) => decimal_text(*scale).prop_map(Value::Numeric).boxed(),
            Kind::Utf8 => prop_oneof![
                "[a-zé ]{0,8}".prop_map(Value::Text),
                decimal_text(6).prop_map(Value::Numeric),
                "[a-z]{0,4}".prop_map(|k| Value::Json(format!("{{\"{k}\": 1}}"))),
                "[0-9:-]{0,8}".prop_map(Value::Other),
                any::<[u8; 16]>().prop_map(Value::Uuid),
                (0..86_400_000_000i64).prop_map(Value::Time),
            ]
            .boxed(),
            Kind::Binary => proptest::collection::vec(any::<u8>(), 0..6)
                .prop_map(Value::Bytes)
                .boxed(),
            Kind::Date => any::<i32>().prop_map(Value::Date).boxed(),
            Kind::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
            Kind::TimestampTz => any::<i64>().prop_map(Value::TimestampTz).boxed(),
            Kind::List(element) => proptest::collection::vec(cell(element, misfits), 0..4)
                .prop_map(Value::Array)
                .boxed(),
        }
    }

    /// A value that does not fit `kind`.
    fn misfit(kind: &Kind) -> BoxedStrategy<Value> {
        match kind {
            Kind::Utf8 => prop_oneof![
                Just(Value::Int32(5)),
                Just(Value::Bytes(vec![1])),
                Just(Value::Array(vec![]))
            ]
            .boxed(),
            Kind::Decimal(_, scale) => prop_oneof![
                Just(Value::Int64(5)),
                // One place too many: never rounded.
                Just(Value::Numeric(format!(
                    "1.{}1",
                    "0".repeat(*scale as usize)
                ))),
                Just(Value::Numeric("NaN".into())),
                Just(Value::Numeric("1e5".into())),
            ]
            .boxed(),
            _ => prop_oneof![
                Just(Value::Text("x".into())),
                Just(Value::Other("y".into()))
            ]
            .boxed(),
        }
    }

    /// A source column's value: mostly fitting, some nulls and unchanged TOAST, and
    /// `misfits` in 80 not fitting.
    fn cell(kind: &Kind, misfits: u32) -> BoxedStrategy<Value> {
        if misfits > 0 {
            prop_oneof![
                64 - misfits => fitting(kind, misfits),
                12 => Just(Value::Null),
                4 => Just(Value::UnchangedToast),
                misfits => misfit(kind),
            ]
            .boxed()
        } else {
            prop_oneof![
                16 => fitting(kind, 0),
                3 => Just(Value::Null),
                1 => Just(Value::UnchangedToast),
            ]
            .boxed()
        }
    }

    /// Changes of `table` of every op: inserts and snapshot reads, updates with and without
    /// their old row, deletes with the whole old row or only its identity (or none),
    /// truncates; with `misfits` (in 80, see [`cell`]), values that do not fit and, one
    /// row in 40, an image of the wrong width.
    fn lake_rows(
        table: &TableSchema,
        misfits: u32,
        len: std::ops::Range<usize>,
    ) -> impl Strategy<Value = Vec<LakeRow>> {
        let kinds: Vec<Kind> = table
            .columns
            .iter()
            .map(|c| Kind::of(c.type_oid, c.type_modifier))
            .collect();
        let keys: Vec<bool> = table.columns.iter().map(|c| c.replica_identity).collect();
        let image = || {
            kinds
                .iter()
                .map(|kind| cell(kind, misfits))
                .collect::<Vec<_>>()
        };
        let ops = [Op::Read, Op::Insert, Op::Update, Op::Delete, Op::Truncate];
        let row = (
            proptest::sample::select(ops.to_vec()),
            image(),
            image(),
            any::<(bool, bool)>(),
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                proptest::option::of(any::<u32>()),
                any::<i64>(),
                any::<bool>(),
            ),
            (any::<i32>(), any::<i64>(), 0u8..40),
        )
            .prop_map(
                move |(op, new, old, (with_old, identity), source, (partition, offset, cut))| {
                    let (lsn, commit_lsn, ordinal, xid, commit_ts_us, snapshot) = source;
                    let identity_only = |old: Vec<Value>| -> Vec<Value> {
                        old.into_iter()
                            .zip(&keys)
                            .map(|(v, key)| if *key { v } else { Value::Null })
                            .collect()
                    };
                    let (mut before, mut after, before_identity_only) = match op {
                        Op::Read | Op::Insert => (None, Some(new), false),
                        Op::Update => (with_old.then_some(old), Some(new), false),
                        Op::Delete if identity => (Some(identity_only(old)), None, true),
                        Op::Delete => (with_old.then_some(old), None, false),
                        Op::Truncate => (None, None, false),
                    };
                    if misfits > 0 && cut == 0 {
                        if let Some(image) = after.as_mut().or(before.as_mut()) {
                            image.pop();
                        }
                    }
                    LakeRow {
                        event: DecodedEvent {
                            op,
                            before,
                            after,
                            source: cdc_avro::SourceInfo {
                                lsn: cdc_core::Lsn(lsn),
                                commit_lsn: cdc_core::Lsn(commit_lsn),
                                xid: xid.map(cdc_core::Xid),
                                commit_ts_us,
                                ordinal,
                                snapshot,
                                schema: "public".into(),
                                table: "kinds".into(),
                            },
                            ts_us: 0,
                            before_identity_only,
                        },
                        partition,
                        offset,
                    }
                },
            );
        proptest::collection::vec(row, len)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn one_pass_build_equals_the_column_by_column_reference(
            rows in lake_rows(&every_kind_table(), 0, 0..24)
        ) {
            let builder = BatchBuilder::new(every_kind_table());
            let batch = builder.build(&rows).unwrap();
            let reference = builder.build_reference(&rows).unwrap();
            prop_assert_eq!(&batch, &reference);
            let options = crate::ParquetOptions::default();
            let file = crate::encode(&batch, &options, vec![]).unwrap();
            let reference_file = crate::encode(&reference, &options, vec![]).unwrap();
            prop_assert!(file == reference_file, "the Parquet files differ");
        }

        #[test]
        fn one_pass_build_reports_the_reference_error(
            rows in lake_rows(&every_kind_table(), 1, 0..8)
        ) {
            same_outcome(&BatchBuilder::new(every_kind_table()), &rows)?;
        }

        #[test]
        fn one_pass_build_reports_the_reference_error_among_many(
            rows in lake_rows(&small_table(), 8, 0..8)
        ) {
            same_outcome(&BatchBuilder::new(small_table()), &rows)?;
        }
    }

    /// Asserts `build` and `build_reference` give the same batch or the same error.
    fn same_outcome(builder: &BatchBuilder, rows: &[LakeRow]) -> Result<(), TestCaseError> {
        match (builder.build(rows), builder.build_reference(rows)) {
            (Ok(batch), Ok(reference)) => prop_assert_eq!(batch, reference),
            (Err(error), Err(reference)) => {
                prop_assert_eq!(format!("{error:?}"), format!("{reference:?}"))
            }
            (built, reference) => {
                prop_assert!(false, "build: {built:?}\nreference: {reference:?}")
            }
        }
        Ok(())
    }

    #[test]
    fn lists_keep_null_elements_and_null_arrays() {
        let one = Value::Array(vec![Value::Int32(1), Value::Null]);
        let values = vec![Some(&one), Some(&Value::Null), None];
        let array = array(&Kind::List(Box::new(Kind::Int32)), &values).unwrap();
        assert_eq!(array.len(), 3);
        assert!(!is_null_at(array.as_ref(), 0));
        assert!(is_null_at(array.as_ref(), 1));
        assert!(is_null_at(array.as_ref(), 2));
    }
}
