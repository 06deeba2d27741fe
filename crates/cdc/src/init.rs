//! `totesys-cdc init`: everything the pipeline needs created before it runs, each part
//! idempotent and done only when its setting is given: the source's publication, the
//! change topics and their registry subjects, and the warehouse's DDL.

use std::sync::Arc;

use anyhow::Context;
use cdc_core::TableName;

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    source: crate::conn::SourceOption,
    /// Publication to create or extend (as for `capture`).
    #[arg(long, default_value = "totesys_cdc")]
    publication: String,
    /// Tables to publish, `schema.table`, comma-separated; default: all of schema public.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Do not create topics or register subjects (capture does so at its first event).
    #[arg(long)]
    no_topics: bool,
    #[command(flatten)]
    kafka: crate::kafka::KafkaArgs,
    #[command(flatten)]
    warehouse: crate::conn::WarehouseOption,
}

/// Creates what is missing; says what it did, part by part.
pub async fn run(args: InitArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.source.source.is_some() || args.warehouse.warehouse_url.is_some(),
        "init has nothing to do: set --source / TOTESYS_CDC_SOURCE_URL and/or \
         --warehouse-url / TOTESYS_CDC_WAREHOUSE_URL"
    );
    if let Some(client) = args.source.connect().await? {
        source(&args, &client).await?;
    }
    if let Some(client) = args.warehouse.connect().await? {
        cdc_modeler::warehouse::init(&client)
            .await
            .context("applying the warehouse DDL")?;
        eprintln!(
            "init: warehouse ready: star schemas, SCD2 history, calendar and bookkeeping ({} files applied)",
            cdc_modeler::warehouse::DDL.len()
        );
    }
    Ok(())
}

async fn source(args: &InitArgs, client: &tokio_postgres::Client) -> anyhow::Result<()> {
    // The role running init need not replicate (capture's role must): the server only.
    let ready = cdc_postgres::setup::Readiness::read(client)
        .await
        .context("reading the source's settings")?;
    if let Some(problem) = ready.server_problem() {
        return Err(problem).context("the source cannot do logical decoding");
    }
    let tables: Vec<TableName> = if args.tables.is_empty() {
        cdc_postgres::catalog::tables_in_schema(client, "public").await?
    } else {
        args.tables
            .iter()
            .map(|t| crate::capture::parse_table(t))
            .collect::<anyhow::Result<_>>()?
    };
    let published = cdc_postgres::setup::ensure_publication(client, &args.publication, &tables)
        .await
        .with_context(|| format!("creating publication {}", args.publication))?;
    eprintln!(
        "init: publication {} covers {} tables; the slot is created by capture's first start, \
         where its snapshot begins",
        args.publication,
        published.len()
    );
    if args.no_topics {
        return Ok(());
    }
    let publisher = args.kafka.publisher().await?;
    let mut sink = publisher
        .sink()
        .await
        .context("connecting to Kafka (--bootstrap-servers)")?;
    for table in &published {
        let id = cdc_postgres::catalog::table_id(client, table).await?;
        let schema = Arc::new(cdc_postgres::catalog::table_schema(client, id).await?);
        sink.prepare(&schema)
            .await
            .with_context(|| format!("creating the topic and subjects of {table}"))?;
    }
    eprintln!(
        "init: {} topics exist with their key and value subjects registered",
        published.len()
    );
    Ok(())
}
