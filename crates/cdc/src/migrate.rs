//! `totesys-cdc migrate-lake`: move a lake written before its tables (`date=` directories,
//! no Delta log) into the table layout, in place; safe to stop and run again.

use cdc_lake::ParquetOptions;

/// Arguments of `migrate-lake`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    target: crate::lake::LakeTarget,
    /// Rows per Parquet row group of the rewritten files.
    #[arg(long, default_value_t = ParquetOptions::default().row_group_rows)]
    row_group_rows: usize,
}

/// Migrates the lake and prints what it did.
pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let lake = args.target.open()?;
    let tables = cdc_lake::LakeTables::new(&lake)?;
    let parquet = ParquetOptions {
        row_group_rows: args.row_group_rows,
        ..ParquetOptions::default()
    };
    let report = cdc_lake::migrate(&tables, &parquet).await?;
    println!(
        "migrated {} files ({} rows) into {} tables; {} were already in their tables, {} \
         left out as merged into another by an old compaction; deleted {} old processed \
         files (the modeler's next export rebuilds those tables)",
        report.committed,
        report.rows,
        report.tables,
        report.already,
        report.superseded,
        report.processed
    );
    Ok(())
}
