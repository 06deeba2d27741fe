//! `totesys-cdc up`.

/// Arguments of `up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {}

/// Runs `up`.
pub async fn run(_args: UpArgs) -> anyhow::Result<()> {
    anyhow::bail!("up is not built yet")
}
