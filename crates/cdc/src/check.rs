//! `totesys-cdc check`.

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Runs `check`.
pub async fn run(_args: CheckArgs) -> anyhow::Result<()> {
    anyhow::bail!("check is not built yet")
}
