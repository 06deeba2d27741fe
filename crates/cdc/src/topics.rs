//! `totesys-cdc topics`: what the pipeline's topics hold, and their registered schemas.

use crate::kafka::KafkaArgs;

/// Arguments of `topics`.
#[derive(Debug, clap::Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
}

/// Prints each topic under the prefix: partitions, records, latest value schema version.
pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let settings = args.kafka.settings()?;
    let registry = args.kafka.registry()?;
    let prefix = format!("{}.", args.kafka.publish_config()?.topic_prefix);
    let topics = cdc_kafka::topic_stats(&settings, &prefix).await?;
    println!(
        "{:<40} {:>10} {:>10} {:>14}",
        "topic", "partitions", "records", "value schema"
    );
    for topic in &topics {
        let subject = cdc_publish::value_subject(&topic.name);
        let version = match registry.latest(&subject).await {
            Ok(found) => format!("v{} (id {})", found.version, found.id.get()),
            Err(e) if e.status() == Some(404) => "-".to_owned(),
            Err(e) => return Err(anyhow::Error::from(e).context(format!("subject {subject}"))),
        };
        println!(
            "{:<40} {:>10} {:>10} {:>14}",
            topic.name, topic.partitions, topic.records, version
        );
    }
    if topics.is_empty() {
        println!("(no topics start with {prefix})");
    }
    // Replay from the beginning needs every record since the snapshot (docs/replay.md).
    let partitions =
        cdc_lake::lake_partitions(&settings, &args.kafka.publish_config()?.topic_prefix).await?;
    let truncated: Vec<_> = partitions.iter().filter(|p| p.low > 0).collect();
    if let Some(first) = truncated.first() {
        println!(
            "warning: {} partitions no longer start at offset 0 (first {} partition {} starts at {}): retention or deletion removed records, and a replay from the beginning would be partial",
            truncated.len(),
            first.topic,
            first.partition,
            first.low
        );
    }
    Ok(())
}
