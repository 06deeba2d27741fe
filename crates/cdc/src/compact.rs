//! `totesys-cdc compact`: merge the lake tables' small files into large ones, checkpoint
//! their logs and vacuum the files no snapshot holds.

use std::time::Duration;

use cdc_lake::{CompactOptions, ParquetOptions};

/// Arguments of `compact`.
#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    target: crate::lake::LakeTarget,
    /// Only this table (its directory name under `raw/`).
    #[arg(long)]
    table: Option<String>,
    /// Rows per compacted file, at most.
    #[arg(long, default_value_t = CompactOptions::default().target_rows)]
    target_rows: usize,
    /// Leave files younger than this many seconds alone.
    #[arg(long, default_value_t = 3600)]
    min_age_secs: u64,
    /// Delete files no snapshot holds once they are this many seconds old (readers of an
    /// older snapshot have that long to finish).
    #[arg(long, default_value_t = 3600)]
    retention_secs: u64,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = ParquetOptions::default().row_group_rows)]
    row_group_rows: usize,
}

/// Runs one compaction pass and prints what it did.
pub async fn run(args: CompactArgs) -> anyhow::Result<()> {
    let lake = args.target.open()?;
    let tables = cdc_lake::LakeTables::new(&lake)?;
    let options = CompactOptions {
        target_rows: args.target_rows.max(1),
        min_age: Duration::from_secs(args.min_age_secs),
        retention: Duration::from_secs(args.retention_secs),
        parquet: ParquetOptions {
            row_group_rows: args.row_group_rows,
            ..ParquetOptions::default()
        },
    };
    let report = cdc_lake::compact(&tables, args.table.as_deref(), &options).await?;
    println!(
        "compacted {} files into {} ({} rows); vacuumed {} files no snapshot holds",
        report.merged, report.written, report.rows, report.vacuumed
    );
    Ok(())
}
