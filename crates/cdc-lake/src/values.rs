//! Reading the lake back: one cell of a lake column as the [`Value`] it was written from,
//! the inverse of [`crate::BatchBuilder`]'s mapping.
//!
//! The lake keeps a column's PostgreSQL type in the field's `pg.type` metadata, not in its
//! Arrow type, so text-like values (`text`, unconstrained `numeric`, `json`, `uuid`, enums,
//! `interval`) all read back as [`Value::Text`] holding PostgreSQL's text, and a decimal as
//! [`Value::Numeric`] at its declared scale: [`cdc_core::pg_text`] prints each as the source
//! did.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};
use cdc_core::Value;

/// PostgreSQL's `-infinity` date (`i32::MIN` days) as the lake stores it: `-i32::MAX`, the
/// value Arrow readers such as DuckDB take for `-infinity` (they read `i32::MIN` as a date in
/// 5,877,642 BC). No real date is that far back: PostgreSQL's first is in 4713 BC.
pub(crate) const fn lake_days(days: i32) -> i32 {
    if days == i32::MIN {
        -i32::MAX
    } else {
        days
    }
}

/// PostgreSQL's `-infinity` timestamp (`i64::MIN` microseconds) as the lake stores it:
/// `-i64::MAX`, the value Arrow readers such as DuckDB take for `-infinity` (`i64::MIN` is
/// out of their range and stops the query).
pub(crate) const fn lake_micros(us: i64) -> i64 {
    if us == i64::MIN {
        -i64::MAX
    } else {
        us
    }
}

/// A lake date as PostgreSQL's days, the inverse of [`lake_days`] (a lake written before
/// `-infinity` moved reads the same).
const fn source_days(days: i32) -> i32 {
    if days == -i32::MAX {
        i32::MIN
    } else {
        days
    }
}

/// A lake timestamp as PostgreSQL's microseconds, the inverse of [`lake_micros`].
const fn source_micros(us: i64) -> i64 {
    if us == -i64::MAX {
        i64::MIN
    } else {
        us
    }
}

/// A lake cell of an Arrow type the lake writer does not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Arrow type {data_type} is not one the lake writes")]
pub struct UnreadableValue {
    /// The column's Arrow type.
    pub data_type: String,
}

/// Row `i` of `array` as a [`Value`] (`Value::Null` when null).
pub fn value_at(array: &dyn Array, i: usize) -> Result<Value, UnreadableValue> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Utf8 => Value::Text(array.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Value::Text(array.as_string::<i64>().value(i).to_owned()),
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int16 => Value::Int16(array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => Value::Int32(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => Value::Int64(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float32 => Value::Float32(array.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => Value::Float64(array.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(_, scale) => Value::Numeric(cdc_core::decimal_text(
            array.as_primitive::<Decimal128Type>().value(i),
            i32::from(*scale),
        )),
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(i).to_vec()),
        DataType::LargeBinary => Value::Bytes(array.as_binary::<i64>().value(i).to_vec()),
        DataType::Date32 => Value::Date(source_days(array.as_primitive::<Date32Type>().value(i))),
        DataType::Time64(TimeUnit::Microsecond) => {
            Value::Time(array.as_primitive::<Time64MicrosecondType>().value(i))
        }
        DataType::Timestamp(TimeUnit::Microsecond, zone) => {
            let us = source_micros(array.as_primitive::<TimestampMicrosecondType>().value(i));
            if zone.is_some() {
                Value::TimestampTz(us)
            } else {
                Value::Timestamp(us)
            }
        }
        DataType::List(_) => {
            let elements = array.as_list::<i32>().value(i);
            Value::Array(
                (0..elements.len())
                    .map(|j| value_at(elements.as_ref(), j))
                    .collect::<Result<_, _>>()?,
            )
        }
        other => {
            return Err(UnreadableValue {
                data_type: other.to_string(),
            })
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{Int32Builder, ListBuilder};
    use arrow_array::{
        Date32Array, Decimal128Array, Int8Array, StringArray, TimestampMicrosecondArray,
    };

    use super::*;

    #[test]
    fn cells_read_back_as_values() {
        let decimals = Decimal128Array::from(vec![Some(1250), None])
            .with_precision_and_scale(10, 2)
            .unwrap();
        assert_eq!(
            value_at(&decimals, 0).unwrap(),
            Value::Numeric("12.50".into())
        );
        assert_eq!(value_at(&decimals, 1).unwrap(), Value::Null);
        let utc = TimestampMicrosecondArray::from(vec![5]).with_timezone("UTC");
        assert_eq!(value_at(&utc, 0).unwrap(), Value::TimestampTz(5));
        let local = TimestampMicrosecondArray::from(vec![5]);
        assert_eq!(value_at(&local, 0).unwrap(), Value::Timestamp(5));
        assert_eq!(
            value_at(&StringArray::from(vec!["x"]), 0).unwrap(),
            Value::Text("x".into())
        );
        let mut list = ListBuilder::new(Int32Builder::new());
        list.values().append_value(1);
        list.values().append_null();
        list.append(true);
        let list = list.finish();
        assert_eq!(
            value_at(&list, 0).unwrap(),
            Value::Array(vec![Value::Int32(1), Value::Null])
        );
    }

    #[test]
    fn infinities_round_trip_in_the_values_readers_know() {
        let days = [i32::MIN, i32::MAX, -1, 0];
        let stored = days.map(lake_days);
        assert_eq!(
            stored,
            [-i32::MAX, i32::MAX, -1, 0],
            "what DuckDB reads as -infinity"
        );
        let dates = Date32Array::from(stored.to_vec());
        for (i, day) in days.iter().enumerate() {
            assert_eq!(value_at(&dates, i).unwrap(), Value::Date(*day));
        }
        let micros = [i64::MIN, i64::MAX, -1, 0];
        let stored = micros.map(lake_micros);
        assert_eq!(stored, [-i64::MAX, i64::MAX, -1, 0]);
        let utc = TimestampMicrosecondArray::from(stored.to_vec()).with_timezone("UTC");
        for (i, us) in micros.iter().enumerate() {
            assert_eq!(value_at(&utc, i).unwrap(), Value::TimestampTz(*us));
        }
        // A lake written before `-infinity` moved keeps reading as `-infinity`.
        let old = TimestampMicrosecondArray::from(vec![i64::MIN]);
        assert_eq!(value_at(&old, 0).unwrap(), Value::Timestamp(i64::MIN));
    }

    #[test]
    fn a_type_the_lake_does_not_write_is_an_error_not_a_null() {
        let bytes: Arc<dyn Array> = Arc::new(Int8Array::from(vec![1]));
        let err = value_at(bytes.as_ref(), 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Arrow type Int8 is not one the lake writes"
        );
    }
}
