//! `totesys-cdc status`: where every stage stands, read from the stages themselves
//! (the slot, the consumer groups, the lake, the warehouse), one line or a few each.

use std::time::Duration;

use anyhow::Context;
use cdc_core::Lsn;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    source: crate::conn::SourceOption,
    /// Replication slot capture streams from.
    #[arg(long, default_value = "totesys_cdc")]
    slot: String,
    #[command(flatten)]
    kafka: crate::kafka::ConnectArgs,
    /// Prefix of the pipeline's topics.
    #[arg(long, env = "TOTESYS_CDC_TOPIC_PREFIX", default_value = cdc_publish::DEFAULT_PREFIX)]
    topic_prefix: String,
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
    #[command(flatten)]
    warehouse: crate::conn::WarehouseOption,
    /// Seconds each part may take to answer.
    #[arg(long, default_value_t = 15)]
    timeout: u64,
}

/// Prints the summary; a part that cannot be reached says why on its line.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout);
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
    let Some(client) = args.source.connect().await? else {
        return Ok(vec!["not configured (--source)".into()]);
    };
    let row = client
        .query_opt(
            "SELECT active, active_pid, confirmed_flush_lsn::text, pg_current_wal_lsn()::text,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
                    coalesce(wal_status, '')
               FROM pg_replication_slots WHERE slot_name = $1",
            &[&args.slot],
        )
        .await
        .context("reading pg_replication_slots")?;
    let Some(row) = row else {
        return Ok(vec![format!(
            "slot {} does not exist yet (capture creates it when it first starts)",
            args.slot
        )]);
    };
    let active: bool = row.get(0);
    let pid: Option<i32> = row.get(1);
    let confirmed: Option<String> = row.get(2);
    let current: String = row.get(3);
    let lag: Option<i64> = row.get(4);
    let wal_status: String = row.get(5);
    Ok(vec![format!(
        "slot {}: {}, lag {} (confirmed {}, server at {}){}",
        args.slot,
        match (active, pid) {
            (true, Some(pid)) => format!("streaming to pid {pid}"),
            _ => "NOT streaming (is capture running?)".into(),
        },
        lag.map_or("unknown".into(), bytes),
        confirmed.as_deref().unwrap_or("none"),
        current,
        if wal_status.is_empty() {
            String::new()
        } else {
            format!(", WAL {wal_status}")
        },
    )])
}

async fn kafka(args: &StatusArgs) -> anyhow::Result<Vec<String>> {
    let settings = args.kafka.settings()?;
    // The lake's topics (changes and transactions), as the lake writers read them.
    let partitions = cdc_lake::lake_partitions(&settings, &args.topic_prefix).await?;
    let mut lines = Vec::new();
    for group in &args.group {
        let committed = cdc_lake::committed_offsets(&settings, group, &args.topic_prefix).await?;
        // Per topic: records above the group's committed offset (a partition without a
        // commit counts from its low watermark).
        let mut behind: std::collections::BTreeMap<&str, i64> = Default::default();
        for p in &partitions {
            let position = committed.get(&p.key()).map_or(p.low, |c| (*c).max(p.low));
            *behind.entry(p.topic.as_str()).or_default() += (p.high - position).max(0);
        }
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
    let files = cdc_lake::live_files(&lake, None).await?;
    let transactions = cdc_lake::table_dir(&cdc_lake::TRANSACTIONS_TABLE.name);
    let changes: Vec<_> = files.iter().filter(|f| f.table != transactions).collect();
    let Some(watermark) = watermark else {
        return Ok(vec![format!(
            "{} change files ({} tables); files waiting unknown without the warehouse",
            changes.len(),
            changes
                .iter()
                .map(|f| &f.table)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        )]);
    };
    // A partition's files hold commit LSNs in offset order (capture produces in commit
    // order), so reading footers newest first, the first file wholly at or below the
    // watermark ends that partition's count: a few footer reads, however large the lake.
    let mut partitions: std::collections::BTreeMap<(&str, i32), Vec<_>> = Default::default();
    for file in &changes {
        partitions
            .entry((file.topic.as_str(), file.partition))
            .or_default()
            .push(*file);
    }
    let mut waiting = 0;
    for files in partitions.values_mut() {
        files.sort_by_key(|f| std::cmp::Reverse(f.first_offset));
        for file in files.iter() {
            let max = cdc_modeler::lake::max_commit_lsn(&lake, &file.path(&lake.root)).await?;
            if max.is_some_and(|max| max <= watermark) {
                break;
            }
            waiting += 1;
        }
    }
    Ok(vec![format!(
        "{} change files, {waiting} waiting for the modeler (changes above its watermark)",
        changes.len()
    )])
}

async fn warehouse(args: &StatusArgs) -> anyhow::Result<(Vec<String>, Option<Lsn>)> {
    let Some(client) = args.warehouse.connect().await? else {
        return Ok((vec!["not configured (--warehouse-url)".into()], None));
    };
    let watermark = cdc_modeler::warehouse::watermark(&client).await?;
    let row = client
        .query_opt(
            "SELECT source_commit_ts::text,
                    extract(epoch FROM now() - source_commit_ts)::float8,
                    extract(epoch FROM now() - applied_at)::float8
               FROM totesys_cdc.applied",
            &[],
        )
        .await
        .context("reading totesys_cdc.applied")?;
    let line = match row {
        None => "nothing applied yet (watermark 0/0)".to_owned(),
        Some(row) => {
            let commit: Option<String> = row.get(0);
            let age: Option<f64> = row.get(1);
            let applied: f64 = row.get(2);
            format!(
                "watermark {watermark}: source commit {}, {} ago (the freshness while changes \
                 flow), applied {} ago",
                commit.as_deref().unwrap_or("unknown"),
                age.map_or("?".into(), seconds),
                seconds(applied),
            )
        }
    };
    Ok((vec![line], Some(watermark)))
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
