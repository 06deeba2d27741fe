//! `totesys-cdc replay`.

/// Arguments of `replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {}

/// Runs `replay`.
pub async fn run(_args: ReplayArgs) -> anyhow::Result<()> {
    anyhow::bail!("replay is not built yet")
}
