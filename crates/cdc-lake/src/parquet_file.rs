//! Record batches to Parquet bytes: zstd, dictionary encoding (but not for the metadata
//! columns that are nearly unique per row; some of those are delta-encoded), statistics,
//! bounded row groups, and key-value metadata saying which Kafka offsets the file holds.

use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::columns::{COMMIT_LSN, COMMIT_TS, KAFKA_OFFSET, LSN, ORDINAL, XID};
use crate::LakeError;

/// Metadata columns (nearly) unique per row, never dictionary-encoded: their dictionary
/// would hold about every value, or fall back to plain pages once past its size limit,
/// after the cost of interning them all.
const NO_DICTIONARY: [&str; 6] = [LSN, COMMIT_LSN, KAFKA_OFFSET, COMMIT_TS, XID, ORDINAL];

/// Of those, the int64 columns that step up by small amounts from row to row (or restart
/// low, `_ordinal`), written `DELTA_BINARY_PACKED`: smaller than plain and no slower.
/// `_commit_lsn` and `_commit_ts` repeat within a transaction and compress better plain.
const DELTA_BINARY_PACKED: [&str; 4] = [LSN, KAFKA_OFFSET, XID, ORDINAL];

/// How lake files are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetOptions {
    /// Rows per row group.
    pub row_group_rows: usize,
    /// zstd level (1–22).
    pub zstd_level: i32,
    /// Dictionary-encode columns (falls back to plain per page when it does not pay);
    /// never `_lsn`, `_commit_lsn`, `_kafka_offset`, `_commit_ts`, `_xid`, `_ordinal`.
    pub dictionary: bool,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            row_group_rows: 128 * 1024,
            zstd_level: 3,
            dictionary: true,
        }
    }
}

impl ParquetOptions {
    pub(crate) fn properties(
        &self,
        metadata: Vec<(String, String)>,
    ) -> Result<WriterProperties, LakeError> {
        let level = ZstdLevel::try_new(self.zstd_level).map_err(LakeError::parquet(format!(
            "zstd level {}",
            self.zstd_level
        )))?;
        let mut builder = WriterProperties::builder().set_dictionary_enabled(self.dictionary);
        for name in NO_DICTIONARY {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
        }
        for name in DELTA_BINARY_PACKED {
            builder =
                builder.set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
        }
        Ok(builder
            .set_compression(Compression::ZSTD(level))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(self.row_group_rows.max(1)))
            .set_created_by(format!("totesys-cdc {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(
                metadata
                    .into_iter()
                    .map(|(k, v)| KeyValue::new(k, v))
                    .collect(),
            ))
            .build())
    }
}

/// The Parquet file holding `batch`, with `metadata` in its footer.
pub fn encode(
    batch: &RecordBatch,
    options: &ParquetOptions,
    metadata: Vec<(String, String)>,
) -> Result<Bytes, LakeError> {
    encode_all(batch.schema(), [batch], options, metadata)
}

/// The Parquet file holding `batches` (all of `schema`), with `metadata` in its footer.
pub(crate) fn encode_all<'b>(
    schema: arrow_schema::SchemaRef,
    batches: impl IntoIterator<Item = &'b RecordBatch>,
    options: &ParquetOptions,
    metadata: Vec<(String, String)>,
) -> Result<Bytes, LakeError> {
    let parquet = |e: parquet::errors::ParquetError| LakeError::parquet("cannot encode a file")(e);
    let properties = options.properties(metadata)?;
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(properties)).map_err(parquet)?;
    for batch in batches {
        writer.write(batch).map_err(parquet)?;
    }
    Ok(Bytes::from(writer.into_inner().map_err(parquet)?))
}

/// The footer's key-value metadata of a Parquet file.
pub fn footer_metadata(file: Bytes) -> Result<Vec<(String, String)>, LakeError> {
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
        .map_err(LakeError::parquet("cannot read a file's footer"))?;
    use parquet::file::reader::FileReader;
    Ok(reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default())
}

/// Every row of a Parquet file as one batch (an empty batch of its schema when it has none).
pub(crate) fn read_all(file: Bytes) -> Result<RecordBatch, parquet::errors::ParquetError> {
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?;
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let schema = builder.schema().clone();
    let mut reader = builder.with_batch_size(rows.max(1)).build()?;
    match reader.next() {
        Some(batch) => Ok(batch?),
        None => Ok(RecordBatch::new_empty(schema)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    #[test]
    fn unique_metadata_columns_skip_the_dictionary_and_steps_are_delta_encoded() {
        let rows = 1_000i64;
        let names = (0..rows).map(|i| format!("name {}", i % 7));
        let column = |values: Vec<i64>| Arc::new(Int64Array::from(values)) as ArrayRef;
        let batch = RecordBatch::try_from_iter([
            (
                "name",
                Arc::new(StringArray::from_iter_values(names)) as ArrayRef,
            ),
            (LSN, column((0..rows).map(|i| 1_000 + 37 * i).collect())),
            (
                COMMIT_LSN,
                column((0..rows).map(|i| 9_000 + 40 * (i / 4)).collect()),
            ),
            (KAFKA_OFFSET, column((0..rows).collect())),
        ])
        .unwrap();
        let file = encode(&batch, &ParquetOptions::default(), vec![]).unwrap();

        let reader = SerializedFileReader::new(file.clone()).unwrap();
        let chunks = reader.metadata().row_group(0).columns();
        let chunk = |name: &str| {
            chunks
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap()
        };
        assert!(chunk("name").dictionary_page_offset().is_some());
        for name in [LSN, COMMIT_LSN, KAFKA_OFFSET] {
            assert_eq!(chunk(name).dictionary_page_offset(), None, "{name}");
        }
        for name in [LSN, KAFKA_OFFSET] {
            let delta = chunk(name)
                .encodings()
                .any(|e| e == Encoding::DELTA_BINARY_PACKED);
            assert!(delta, "{name}");
        }
        assert!(chunk(COMMIT_LSN).encodings().any(|e| e == Encoding::PLAIN));

        let back = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(back, vec![batch]);
    }
}
