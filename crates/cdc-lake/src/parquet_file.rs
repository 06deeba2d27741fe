//! Record batches to Parquet bytes: zstd, dictionary encoding, statistics, bounded row
//! groups, and key-value metadata saying which Kafka offsets the file holds.

use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::LakeError;

/// How lake files are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetOptions {
    /// Rows per row group.
    pub row_group_rows: usize,
    /// zstd level (1–22).
    pub zstd_level: i32,
    /// Dictionary-encode columns (falls back to plain per page when it does not pay).
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
        let level = ZstdLevel::try_new(self.zstd_level)
            .map_err(|e| LakeError::Parquet(format!("zstd level {}: {e}", self.zstd_level)))?;
        Ok(WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_dictionary_enabled(self.dictionary)
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
    let properties = options.properties(metadata)?;
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties))
        .map_err(|e| LakeError::Parquet(e.to_string()))?;
    writer
        .write(batch)
        .map_err(|e| LakeError::Parquet(e.to_string()))?;
    let bytes = writer
        .into_inner()
        .map_err(|e| LakeError::Parquet(e.to_string()))?;
    Ok(Bytes::from(bytes))
}

/// The footer's key-value metadata of a Parquet file.
pub fn footer_metadata(file: Bytes) -> Result<Vec<(String, String)>, LakeError> {
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
        .map_err(|e| LakeError::Parquet(e.to_string()))?;
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
