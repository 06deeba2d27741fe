//! `totesys-cdc compact`: merge the lake's small files into large ones.

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
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = ParquetOptions::default().row_group_rows)]
    row_group_rows: usize,
}

/// Runs one compaction pass and prints what it did.
pub async fn run(args: CompactArgs) -> anyhow::Result<()> {
    let target = &args.target;
    let lake = target.open()?;
    let settings = target.connect.settings()?;
    let committed =
        cdc_lake::committed_offsets(&settings, &target.group, &target.topic_prefix).await?;
    anyhow::ensure!(
        !committed.is_empty(),
        "group {} has committed no offsets on the {}.* topics: nothing can be compacted safely",
        target.group,
        target.topic_prefix
    );
    let options = CompactOptions {
        target_rows: args.target_rows.max(1),
        min_age: Duration::from_secs(args.min_age_secs),
        parquet: ParquetOptions {
            row_group_rows: args.row_group_rows,
            ..ParquetOptions::default()
        },
    };
    let report = cdc_lake::compact(&lake, args.table.as_deref(), &committed, &options).await?;
    println!(
        "compacted {} files into {} ({} rows); removed {} left over from an interrupted run",
        report.merged, report.written, report.rows, report.leftovers
    );
    Ok(())
}
