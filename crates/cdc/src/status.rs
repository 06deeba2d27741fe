//! `totesys-cdc status`: where every stage stands, read from the stages themselves
//! (the slot, the consumer groups, the lake, the warehouse), one line or a few each.

use std::time::Duration;

use cdc_core::Lsn;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    stages: crate::conn::StagesOption,
    /// Consumer groups to report the lag of (comma-separated): the lake writers', and
    /// any of your own that read the topics.
    #[arg(
        long,
        env = "TOTESYS_CDC_LAKE_GROUP",
        value_delimiter = ',',
        default_value = "totesys-cdc-lake"
    )]
    group: Vec<String>,
    /// The lake (as for `lake`), for the files the modeler has not applied yet.
    #[arg(long, env = "TOTESYS_CDC_LAKE_URL")]
    lake_url: Option<String>,
}

/// Prints the summary; a part that cannot be reached says why on its line.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.stages.timeout);
    let within = |what: &'static str| {
        move |r: Result<anyhow::Result<Vec<String>>, tokio::time::error::Elapsed>| match r {
            Ok(Ok(lines)) => lines,
            Ok(Err(e)) => vec![format!("unavailable: {e:#}")],
            Err(_) => vec![format!(
                "unavailable: no answer from the {what} within {timeout:?}"
            )],
        }
    };
    let (source, kafka, warehouse) = tokio::join!(
        async { tokio::time::timeout(timeout, source(&args)).await },
        async { tokio::time::timeout(timeout, kafka(&args)).await },
        async { tokio::time::timeout(timeout, warehouse(&args)).await },
    );
    let warehouse = match warehouse {
        Ok(Ok((lines, watermark))) => (lines, watermark),
        other => (within("warehouse")(other.map(|r| r.map(|(l, _)| l))), None),
    };
    let lake = tokio::time::timeout(timeout, lake(&args, warehouse.1)).await;
    print_section("source", within("source")(source));
    print_section("kafka", within("broker")(kafka));
    print_section("lake", within("lake")(lake));
    print_section("warehouse", warehouse.0);
    Ok(())
}

fn print_section(name: &str, lines: Vec<String>) {
    for (i, line) in lines.iter().enumerate() {
        let label = if i == 0 { name } else { "" };
        println!("{label:<10} {line}");
    }
}

async fn source(args: &StatusArgs) -> anyhow::Result<Vec<String>> {
    let Some(client) = args.stages.source.connect().await? else {
        return Ok(vec!["not configured (--source)".into()]);
    };
    let Some(slot) = cdc_postgres::setup::slot_status(&client, &args.stages.slot).await? else {
        return Ok(vec![format!(
            "slot {} does not exist yet (capture creates it when it first starts)",
            args.stages.slot
        )]);
    };
    Ok(vec![format!(
        "slot {}: {}, lag {} (confirmed {}, server at {}){}",
        args.stages.slot,
        match slot.streaming_pid {
            Some(pid) => format!("streaming to pid {pid}"),
            None => "NOT streaming (is capture running?)".into(),
        },
        slot.lag_bytes.map_or("unknown".into(), bytes),
        slot.confirmed_flush
            .map_or("none".into(), |lsn| lsn.to_string()),
        slot.server_lsn,
        slot.wal_status
            .map_or(String::new(), |status| format!(", WAL {status}")),
    )])
}

async fn kafka(args: &StatusArgs) -> anyhow::Result<Vec<String>> {
    let settings = args.stages.kafka.settings()?;
    // The lake's topics (changes and transactions), as the lake writers read them.
    let partitions = cdc_lake::lake_partitions(&settings, &args.stages.topic_prefix).await?;
    let mut lines = Vec::new();
    for group in &args.group {
        let committed =
            cdc_lake::committed_offsets(&settings, group, &args.stages.topic_prefix).await?;
        let behind = cdc_lake::records_behind(&partitions, &committed);
        lines.push(format!(
            "group {group}: {} records behind over {} topics",
            behind.values().sum::<i64>(),
            behind.len()
        ));
        for (topic, n) in behind.iter().filter(|(_, n)| **n > 0) {
            lines.push(format!("  {topic}: {n}"));
        }
    }
    Ok(lines)
}

async fn lake(args: &StatusArgs, watermark: Option<Lsn>) -> anyhow::Result<Vec<String>> {
    let Some(url) = &args.lake_url else {
        return Ok(vec!["not configured (--lake-url)".into()]);
    };
    let lake = cdc_lake::LakeStore::open(url)?;
    let backlog = cdc_modeler::lake::backlog(&lake, watermark).await?;
    Ok(vec![match backlog.waiting {
        None => format!(
            "{} change files ({} tables); files waiting unknown without the warehouse",
            backlog.change_files, backlog.tables
        ),
        Some(waiting) => format!(
            "{} change files, {waiting} waiting for the modeler (changes above its watermark)",
            backlog.change_files
        ),
    }])
}

async fn warehouse(args: &StatusArgs) -> anyhow::Result<(Vec<String>, Option<Lsn>)> {
    let Some(client) = args.stages.warehouse.connect().await? else {
        return Ok((vec!["not configured (--warehouse-url)".into()], None));
    };
    let Some(fresh) = cdc_modeler::warehouse::freshness(&client).await? else {
        return Ok((
            vec!["nothing applied yet (watermark 0/0)".to_owned()],
            Some(Lsn::ZERO),
        ));
    };
    let line = format!(
        "watermark {}: source commit {}, {} ago (the freshness while changes flow), applied {} ago",
        fresh.watermark,
        fresh.source_commit.as_deref().unwrap_or("unknown"),
        fresh.commit_age_secs.map_or("?".into(), seconds),
        seconds(fresh.applied_age_secs),
    );
    Ok((vec![line], Some(fresh.watermark)))
}

/// `1.2 MiB`-style.
fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    match n {
        n if n >= 1024.0 * 1024.0 * 1024.0 => format!("{:.1} GiB", n / (1024.0 * 1024.0 * 1024.0)),
        n if n >= 1024.0 * 1024.0 => format!("{:.1} MiB", n / (1024.0 * 1024.0)),
        n if n >= 1024.0 => format!("{:.1} KiB", n / 1024.0),
        n => format!("{n} bytes"),
    }
}

/// `2.1 s`, `3 min 4 s`, `5 h 6 min`.
fn seconds(s: f64) -> String {
    let s = s.max(0.0);
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(seconds(2.14), "2.1 s");
        assert_eq!(seconds(185.0), "3 min 5 s");
        assert_eq!(seconds(7300.0), "2 h 1 min");
    }
}
