//! The column-by-column build the one-pass [`BatchBuilder::build`] replaced, kept as the
//! reference its tests compare with.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{Field, Fields};
use cdc_core::Value;

use super::{absent, scaled_decimal, uuid_text, BatchBuilder, LakeRow, Metadata};
use crate::columns::{column_field, Kind};
use crate::values::{lake_days, lake_micros};
use crate::LakeError;

impl BatchBuilder {
    /// [`BatchBuilder::build`] as it was: column by column, the reference the tests hold
    /// the one-pass build to.
    pub(crate) fn build_reference(&self, rows: &[LakeRow]) -> Result<RecordBatch, LakeError> {
        for row in rows {
            self.check_shape(row)?;
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, kind) in self.kinds.iter().enumerate() {
            let values: Vec<Option<&Value>> =
                rows.iter().map(|r| r.image().map(|row| &row[i])).collect();
            columns.push(self.column_reference(i, kind, &values)?);
        }

        let mut metadata = Metadata::with_capacity(rows.len());
        for row in rows {
            metadata.append(row, &self.table);
        }
        metadata.finish(&mut columns, self.before_reference(rows)?);
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(LakeError::shape(format!("batch of {}", self.table.name)))
    }

    /// The `_before` struct column: the old row when the source sent one.
    fn before_reference(&self, rows: &[LakeRow]) -> Result<ArrayRef, LakeError> {
        let fields: Fields = self.table.columns.iter().map(column_field).collect();
        let mut children = Vec::with_capacity(self.kinds.len());
        for (i, kind) in self.kinds.iter().enumerate() {
            let values: Vec<Option<&Value>> = rows
                .iter()
                .map(|r| r.event.before.as_ref().map(|row| &row[i]))
                .collect();
            children.push(self.column_reference(i, kind, &values)?);
        }
        let nulls = NullBuffer::from(
            rows.iter()
                .map(|r| r.event.before.is_some())
                .collect::<Vec<bool>>(),
        );
        let array = StructArray::try_new(fields, children, Some(nulls))
            .map_err(LakeError::shape(format!("_before of {}", self.table.name)))?;
        Ok(Arc::new(array))
    }

    fn column_reference(
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

/// An Arrow array of `kind` from `values`; `Err` describes the first value that does not fit.
pub(crate) fn array(kind: &Kind, values: &[Option<&Value>]) -> Result<ArrayRef, String> {
    macro_rules! primitive {
        ($builder:ty, $variant:path) => {
            primitive!($builder, $variant, |v| v)
        };
        ($builder:ty, $variant:path, $lake:expr) => {{
            let mut builder = <$builder>::with_capacity(values.len());
            for value in values {
                match value {
                    Some($variant(v)) => builder.append_value($lake(v.clone())),
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
        Kind::Date => primitive!(Date32Builder, Value::Date, lake_days),
        Kind::Timestamp => {
            primitive!(TimestampMicrosecondBuilder, Value::Timestamp, lake_micros)
        }
        Kind::TimestampTz => {
            let mut builder =
                TimestampMicrosecondBuilder::with_capacity(values.len()).with_timezone("UTC");
            for value in values {
                match value {
                    Some(Value::TimestampTz(v)) => builder.append_value(lake_micros(*v)),
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
                    Some(time @ Value::Time(_)) => builder.append_option(cdc_core::pg_text(time)),
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
