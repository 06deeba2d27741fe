//! `totesys-cdc status`.

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}

/// Runs `status`.
pub async fn run(_args: StatusArgs) -> anyhow::Result<()> {
    anyhow::bail!("status is not built yet")
}
