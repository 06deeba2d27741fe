//! Change events of one table to an Arrow record batch in the lake schema.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema};
use cdc_avro::DecodedEvent;
use cdc_core::{Op, TableSchema, Value};

use crate::columns::{column_field, lake_schema, Kind};
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
        BatchBuilder {
            table,
            kinds,
            schema,
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
        let width = self.table.columns.len();
        for row in rows {
            for image in [row.event.before.as_ref(), row.event.after.as_ref()]
                .into_iter()
                .flatten()
            {
                if image.len() != width {
                    return Err(LakeError::Shape(format!(
                        "a row of {} has {} values, the table has {width} columns",
                        self.table.name,
                        image.len()
                    )));
                }
            }
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, kind) in self.kinds.iter().enumerate() {
            let values: Vec<Option<&Value>> =
                rows.iter().map(|r| r.image().map(|row| &row[i])).collect();
            columns.push(self.column(i, kind, &values)?);
        }

        let mut op = StringBuilder::with_capacity(rows.len(), rows.len());
        let mut lsn = Int64Builder::with_capacity(rows.len());
        let mut commit_lsn = Int64Builder::with_capacity(rows.len());
        let mut ordinal = Int64Builder::with_capacity(rows.len());
        let mut xid = Int64Builder::with_capacity(rows.len());
        let mut commit_ts =
            TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
        let mut snapshot = BooleanBuilder::with_capacity(rows.len());
        let mut toast = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
            "item",
            DataType::Utf8,
            false,
        )));
        let mut identity_only = BooleanBuilder::with_capacity(rows.len());
        let mut partition = Int32Builder::with_capacity(rows.len());
        let mut offset = Int64Builder::with_capacity(rows.len());
        for row in rows {
            let source = &row.event.source;
            op.append_value(row.event.op.code().to_string());
            lsn.append_value(lsn_i64(source.lsn.0));
            commit_lsn.append_value(lsn_i64(source.commit_lsn.0));
            ordinal.append_value(i64::try_from(source.ordinal).unwrap_or(i64::MAX));
            xid.append_option(source.xid.map(|x| i64::from(x.0)));
            commit_ts.append_value(source.commit_ts_us);
            snapshot.append_value(source.snapshot);
            let unchanged: Vec<&str> = row
                .event
                .after
                .iter()
                .flat_map(|after| {
                    after
                        .iter()
                        .zip(&self.table.columns)
                        .filter(|(v, _)| matches!(v, Value::UnchangedToast))
                        .map(|(_, c)| c.name.as_str())
                })
                .collect();
            if unchanged.is_empty() {
                toast.append_null();
            } else {
                for name in unchanged {
                    toast.values().append_value(name);
                }
                toast.append(true);
            }
            identity_only.append_value(row.event.before_identity_only);
            partition.append_value(row.partition);
            offset.append_value(row.offset);
        }
        columns.push(Arc::new(op.finish()));
        columns.push(Arc::new(lsn.finish()));
        columns.push(Arc::new(commit_lsn.finish()));
        columns.push(Arc::new(ordinal.finish()));
        columns.push(Arc::new(xid.finish()));
        columns.push(Arc::new(commit_ts.finish()));
        columns.push(Arc::new(snapshot.finish()));
        columns.push(Arc::new(toast.finish()));
        columns.push(self.before(rows)?);
        columns.push(Arc::new(identity_only.finish()));
        columns.push(Arc::new(partition.finish()));
        columns.push(Arc::new(offset.finish()));
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| LakeError::Shape(format!("batch of {}: {e}", self.table.name)))
    }

    /// The `_before` struct column: the old row when the source sent one.
    fn before(&self, rows: &[LakeRow]) -> Result<ArrayRef, LakeError> {
        let fields: Fields = self.table.columns.iter().map(column_field).collect();
        let mut children = Vec::with_capacity(self.kinds.len());
        for (i, kind) in self.kinds.iter().enumerate() {
            let values: Vec<Option<&Value>> = rows
                .iter()
                .map(|r| r.event.before.as_ref().map(|row| &row[i]))
                .collect();
            children.push(self.column(i, kind, &values)?);
        }
        let nulls = NullBuffer::from(
            rows.iter()
                .map(|r| r.event.before.is_some())
                .collect::<Vec<bool>>(),
        );
        let array = StructArray::try_new(fields, children, Some(nulls))
            .map_err(|e| LakeError::Shape(format!("_before of {}: {e}", self.table.name)))?;
        Ok(Arc::new(array))
    }

    fn column(
        &self,
        index: usize,
        kind: &Kind,
        values: &[Option<&Value>],
    ) -> Result<ArrayRef, LakeError> {
        array(kind, values).map_err(|found| LakeError::Value {
            table: self.table.name.to_string(),
            column: self.table.columns[index].name.clone(),
            found,
        })
    }
}

fn lsn_i64(lsn: u64) -> i64 {
    i64::try_from(lsn).unwrap_or(i64::MAX)
}

/// Whether `value` means "no value here".
fn absent(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null | Value::UnchangedToast))
}

/// An Arrow array of `kind` from `values`; `Err` describes the first value that does not fit.
fn array(kind: &Kind, values: &[Option<&Value>]) -> Result<ArrayRef, String> {
    macro_rules! primitive {
        ($builder:ty, $variant:path) => {{
            let mut builder = <$builder>::with_capacity(values.len());
            for value in values {
                match value {
                    Some($variant(v)) => builder.append_value(v.clone()),
                    v if absent(*v) => builder.append_null(),
                    Some(other) => return Err(format!("{other:?}")),
                    None => builder.append_null(),
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    Ok(match kind {
        Kind::Bool => primitive!(BooleanBuilder, Value::Bool),
        Kind::Int16 => primitive!(Int16Builder, Value::Int16),
        Kind::Int32 => primitive!(Int32Builder, Value::Int32),
        Kind::Int64 => primitive!(Int64Builder, Value::Int64),
        Kind::Float32 => primitive!(Float32Builder, Value::Float32),
        Kind::Float64 => primitive!(Float64Builder, Value::Float64),
        Kind::Date => primitive!(Date32Builder, Value::Date),
        Kind::Time => primitive!(Time64MicrosecondBuilder, Value::Time),
        Kind::Timestamp => primitive!(TimestampMicrosecondBuilder, Value::Timestamp),
        Kind::TimestampTz => {
            let mut builder =
                TimestampMicrosecondBuilder::with_capacity(values.len()).with_timezone("UTC");
            for value in values {
                match value {
                    Some(Value::TimestampTz(v)) => builder.append_value(*v),
                    v if absent(*v) => builder.append_null(),
                    Some(other) => return Err(format!("{other:?}")),
                    None => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        Kind::Decimal(precision, scale) => {
            let mut builder = Decimal128Builder::with_capacity(values.len());
            for value in values {
                match value {
                    Some(Value::Numeric(text)) => builder.append_value(
                        scaled_decimal(text, *scale)
                            .ok_or_else(|| format!("numeric {text:?} for scale {scale}"))?,
                    ),
                    v if absent(*v) => builder.append_null(),
                    Some(other) => return Err(format!("{other:?}")),
                    None => builder.append_null(),
                }
            }
            Arc::new(
                builder
                    .finish()
                    .with_precision_and_scale(*precision, *scale)
                    .map_err(|e| e.to_string())?,
            )
        }
        Kind::Utf8 => {
            let mut builder = StringBuilder::with_capacity(values.len(), values.len() * 16);
            for value in values {
                match value {
                    Some(Value::Text(s) | Value::Numeric(s) | Value::Json(s) | Value::Other(s)) => {
                        builder.append_value(s)
                    }
                    Some(Value::Uuid(bytes)) => builder.append_value(uuid_text(bytes)),
                    v if absent(*v) => builder.append_null(),
                    Some(other) => return Err(format!("{other:?}")),
                    None => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        Kind::Binary => {
            let mut builder = BinaryBuilder::with_capacity(values.len(), values.len() * 16);
            for value in values {
                match value {
                    Some(Value::Bytes(bytes)) => builder.append_value(bytes),
                    v if absent(*v) => builder.append_null(),
                    Some(other) => return Err(format!("{other:?}")),
                    None => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        Kind::List(element) => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut items: Vec<Option<&Value>> = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            for value in values {
                match value {
                    Some(Value::Array(elements)) => {
                        items.extend(elements.iter().map(Some));
                        valid.push(true);
                    }
                    v if absent(*v) => valid.push(false),
                    Some(other) => return Err(format!("{other:?}")),
                    None => valid.push(false),
                }
                offsets.push(i32::try_from(items.len()).map_err(|_| "array too large")?);
            }
            let child = array(element, &items)?;
            let field = Arc::new(Field::new("item", element.data_type(), true));
            Arc::new(
                ListArray::try_new(
                    field,
                    OffsetBuffer::new(offsets.into()),
                    child,
                    Some(NullBuffer::from(valid)),
                )
                .map_err(|e| e.to_string())?,
            )
        }
    })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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

        let ids = array_ref(Int32Array::from(vec![Some(1), Some(1), Some(2), Some(3), None]));
        same(column("id"), ids);
        let prices = Decimal128Array::from(vec![Some(1250), Some(700), None, None, None])
            .with_precision_and_scale(10, 2)
            .unwrap();
        same(column("price"), array_ref(prices));
        let notes = StringArray::from(vec![Some("a"), None, None, Some("c"), None]);
        same(column("note"), array_ref(notes));
        let updated = TimestampMicrosecondArray::from(vec![Some(1_000), Some(2_000), None, None, None])
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
        same(column(crate::columns::BEFORE_IDENTITY_ONLY), array_ref(identity_only));

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
        assert_eq!((old_ids.as_primitive::<Int32Type>().value(1), old_ids.as_primitive::<Int32Type>().value(2)), (1, 2));
        let old_prices = before.column_by_name("price").unwrap();
        let old_prices = old_prices.as_primitive::<arrow_array::types::Decimal128Type>();
        assert_eq!(old_prices.value(1), 1250);
        assert!(old_prices.is_null(2), "identity-only: the price was not sent");
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
        let error = builder
            .build(&[row(Op::Insert, None, Some(values.clone()))])
            .unwrap_err();
        assert!(
            matches!(&error, LakeError::Value { column, found, .. }
                if column == "price" && found == "numeric \"1.234\" for scale 2"),
            "{error:?}"
        );
        values[1] = Value::Null;
        values[5] = Value::Text("2026-11-28".into());
        let error = builder
            .build(&[row(Op::Insert, None, Some(values.clone()))])
            .unwrap_err();
        assert!(
            matches!(&error, LakeError::Value { column, .. } if column == "day"),
            "{error:?}"
        );
        values.pop();
        let error = builder
            .build(&[row(Op::Insert, None, Some(values))])
            .unwrap_err();
        assert!(matches!(error, LakeError::Shape(_)), "{error:?}");
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
