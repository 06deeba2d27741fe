//! `totesys-cdc check`: connectivity and privileges of every part the configuration
//! names, each found wrong said in one line with what to do about it.

use std::time::Duration;

use anyhow::Context;

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    stages: crate::conn::StagesOption,
    /// Publication capture streams (checked when it exists).
    #[arg(long, default_value = "totesys_cdc")]
    publication: String,
    /// The lake (as for `lake`); a probe object is written and deleted.
    #[arg(long, env = "TOTESYS_CDC_LAKE_URL")]
    lake_url: Option<String>,
}

/// What one check found.
#[derive(Debug)]
enum Finding {
    Ok(String),
    Missing(String),
    Skipped(String),
}

/// Runs every check; fails when anything is missing.
pub async fn run(args: CheckArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.stages.timeout);
    let parts: [(&str, _); 5] = [
        ("source", tokio::time::timeout(timeout, source(&args)).await),
        ("kafka", tokio::time::timeout(timeout, kafka(&args)).await),
        (
            "registry",
            tokio::time::timeout(timeout, registry(&args)).await,
        ),
        ("lake", tokio::time::timeout(timeout, lake(&args)).await),
        (
            "warehouse",
            tokio::time::timeout(timeout, warehouse(&args)).await,
        ),
    ];
    let mut missing = 0;
    for (part, result) in parts {
        let findings = match result {
            Ok(Ok(findings)) => findings,
            Ok(Err(e)) => vec![Finding::Missing(format!("{e:#}"))],
            Err(_) => vec![Finding::Missing(format!("no answer within {timeout:?}"))],
        };
        for finding in findings {
            let (mark, text) = match finding {
                Finding::Ok(text) => ("ok", text),
                Finding::Missing(text) => {
                    missing += 1;
                    ("MISSING", text)
                }
                Finding::Skipped(text) => ("skip", text),
            };
            println!("{mark:<8} {part:<10} {text}");
        }
    }
    anyhow::ensure!(
        missing == 0,
        "{missing} check(s) failed (lines marked MISSING)"
    );
    println!("every configured part is reachable with the privileges it needs");
    Ok(())
}

async fn source(args: &CheckArgs) -> anyhow::Result<Vec<Finding>> {
    let Some(client) = args.stages.source.connect().await? else {
        return Ok(vec![Finding::Skipped("--source not set".into())]);
    };
    let mut findings = Vec::new();
    let ready = cdc_postgres::setup::Readiness::read(&client)
        .await
        .context("reading the source's settings")?;
    let user = &ready.user;
    findings.push(Finding::Ok(format!("connected as {user}")));
    findings.push(match ready.server_problem() {
        None => Finding::Ok("wal_level = logical".into()),
        Some(problem) => Finding::Missing(problem.to_string()),
    });
    findings.push(match ready.role_problem() {
        None => Finding::Ok(format!("{user} may replicate")),
        Some(problem) => Finding::Missing(problem.to_string()),
    });
    if !ready.has_replication_room() {
        findings.push(Finding::Missing(format!(
            "max_replication_slots = {}, max_wal_senders = {}: both must be at least 1",
            ready.max_replication_slots, ready.max_wal_senders
        )));
    }
    let published = cdc_postgres::setup::published_tables(&client, &args.publication).await?;
    if published.is_empty() {
        findings.push(Finding::Skipped(format!(
            "publication {} has no tables yet (init or capture creates it)",
            args.publication
        )));
    } else {
        let unreadable =
            cdc_postgres::setup::unreadable_published_tables(&client, &args.publication).await?;
        findings.push(if unreadable.is_empty() {
            Finding::Ok(format!(
                "publication {}: {} tables, all readable (snapshot)",
                args.publication,
                published.len()
            ))
        } else {
            Finding::Missing(format!(
                "{user} cannot SELECT {} (the snapshot reads them): GRANT SELECT ON … TO {user}",
                unreadable.join(", ")
            ))
        });
    }
    match cdc_postgres::setup::slot_info(&client, &args.stages.slot).await? {
        Some(_) => findings.push(Finding::Ok(format!("slot {} exists", args.stages.slot))),
        None => findings.push(Finding::Skipped(format!(
            "slot {} does not exist yet (capture creates it when it first starts)",
            args.stages.slot
        ))),
    }
    Ok(findings)
}

async fn kafka(args: &CheckArgs) -> anyhow::Result<Vec<Finding>> {
    let settings = args.stages.kafka.settings()?;
    let topics = cdc_kafka::topic_stats(&settings, &args.stages.topic_prefix)
        .await
        .context("reaching the Kafka brokers (--bootstrap-servers, --kafka-property)")?;
    Ok(vec![
        Finding::Ok("brokers reachable, metadata readable".into()),
        if topics.is_empty() {
            Finding::Skipped(format!(
                "no topics {}.* yet (init or capture creates them)",
                args.stages.topic_prefix
            ))
        } else {
            Finding::Ok(format!(
                "{} topics {}.*, {} records",
                topics.len(),
                args.stages.topic_prefix,
                topics.iter().map(|t| t.records).sum::<i64>()
            ))
        },
    ])
}

async fn registry(args: &CheckArgs) -> anyhow::Result<Vec<Finding>> {
    let client = args.stages.kafka.registry()?;
    let level = client
        .compatibility(None)
        .await
        .context("reaching the schema registry (--registry-url)")?;
    Ok(vec![Finding::Ok(format!(
        "registry answers; global compatibility {level:?}"
    ))])
}

async fn lake(args: &CheckArgs) -> anyhow::Result<Vec<Finding>> {
    let Some(url) = &args.lake_url else {
        return Ok(vec![Finding::Skipped("--lake-url not set".into())]);
    };
    let lake = cdc_lake::LakeStore::open(url)?;
    lake.check_access().await?;
    let tables = cdc_lake::LakeTables::new(&lake)?;
    let files = tables.all_live_files().await?;
    let count = files
        .iter()
        .map(|(dir, _)| dir)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Ok(vec![
        Finding::Ok(format!("{url}: write, read and delete allowed")),
        Finding::Ok(format!("{count} tables, {} data files", files.len())),
    ])
}

async fn warehouse(args: &CheckArgs) -> anyhow::Result<Vec<Finding>> {
    let Some(client) = args.stages.warehouse.connect().await? else {
        return Ok(vec![Finding::Skipped("--warehouse-url not set".into())]);
    };
    let mut findings = vec![Finding::Ok("connected".into())];
    let access = cdc_modeler::warehouse::access(&client).await?;
    if !access.initialised {
        findings.push(Finding::Missing(
            "the warehouse has no totesys_cdc.applied: run `totesys-cdc init` as its owner".into(),
        ));
        return Ok(findings);
    }
    findings.push(if access.lacking.is_empty() {
        Finding::Ok("SELECT, INSERT, UPDATE, DELETE on every warehouse table".into())
    } else {
        Finding::Missing(format!(
            "no SELECT/INSERT/UPDATE/DELETE on {} (see Roles in docs/warehouse.md)",
            access.lacking.join(", ")
        ))
    });
    if !access.can_add_dates {
        findings.push(Finding::Missing(
            "no EXECUTE on totesys_cdc.add_dates(date[]) (see Roles in docs/warehouse.md)".into(),
        ));
    }
    Ok(findings)
}
