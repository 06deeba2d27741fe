//! `totesys-cdc metrics`: every metric the binary's components export, for dashboards,
//! alert rules and their tests.

use anyhow::Context;
use cdc_core::MetricSet;
use prometheus::core::Collector;

/// Arguments of `metrics`.
#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// Print JSON lines (`{"name", "type", "help", "labels"}`) instead of a table.
    #[arg(long)]
    json: bool,
}

/// The metrics of every component, as collectors (nothing registered).
pub fn all_collectors() -> anyhow::Result<Vec<Box<dyn Collector>>> {
    fn of<M: MetricSet>(component: &str) -> anyhow::Result<Vec<Box<dyn Collector>>> {
        let metrics = M::unregistered().with_context(|| format!("{component} metrics"))?;
        Ok(metrics.collectors())
    }
    Ok([
        of::<cdc_postgres::metrics::CaptureMetrics>("capture")?,
        of::<cdc_publish::PublishMetrics>("publish")?,
        of::<cdc_lake::LakeMetrics>("lake")?,
        of::<cdc_modeler::ModelerMetrics>("modeler")?,
        of::<cdc_registry::RegistryMetrics>("schema registry")?,
    ]
    .into_iter()
    .flatten()
    .collect())
}

/// Prints every metric's name, type, labels and help.
pub fn run(args: MetricsArgs) -> anyhow::Result<()> {
    match print(args) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("writing to stdout"),
    }
}

fn print(args: MetricsArgs) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let collectors = all_collectors().map_err(std::io::Error::other)?;
    for collector in collectors {
        // A labelled metric with no series yet still collects as an empty family.
        let kinds: Vec<String> = collector
            .collect()
            .iter()
            .map(|family| format!("{:?}", family.get_field_type()).to_lowercase())
            .collect();
        for (desc, kind) in collector.desc().into_iter().zip(kinds) {
            if args.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "name": desc.fq_name,
                        "type": kind,
                        "help": desc.help,
                        "labels": desc.variable_labels,
                    })
                )?;
            } else {
                writeln!(
                    out,
                    "{:<52} {:<9} {:<18} {}",
                    desc.fq_name,
                    kind,
                    desc.variable_labels.join(","),
                    desc.help
                )?;
            }
        }
    }
    Ok(())
}
