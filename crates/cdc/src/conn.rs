//! The source and warehouse connection options of the subcommands that can run without
//! either (`init`, `status`, `check`): each part they do is done only when it is set.

use std::path::PathBuf;

/// The source database, optional.
#[derive(Debug, clap::Args)]
pub struct SourceOption {
    /// Source database (libpq string or postgres:// URL; password from
    /// --source-password-file or PGPASSWORD).
    #[arg(long, env = "TOTESYS_CDC_SOURCE_URL")]
    pub source: Option<String>,
    /// File holding the source password (else PGPASSWORD).
    #[arg(long, env = "TOTESYS_CDC_SOURCE_PASSWORD_FILE")]
    pub source_password_file: Option<PathBuf>,
}

impl SourceOption {
    /// Connects when `--source` is set.
    pub async fn connect(&self) -> anyhow::Result<Option<tokio_postgres::Client>> {
        let Some(url) = &self.source else {
            return Ok(None);
        };
        crate::connect_postgres(
            url,
            "--source / TOTESYS_CDC_SOURCE_URL",
            self.source_password_file.as_deref(),
            &["PGPASSWORD"],
        )
        .await
        .map(Some)
    }
}

/// The warehouse database, optional.
#[derive(Debug, clap::Args)]
pub struct WarehouseOption {
    /// The warehouse database (libpq string or postgres:// URL; password from
    /// TOTESYS_CDC_WAREHOUSE_PASSWORD, --warehouse-password-file or PGPASSWORD).
    #[arg(long, env = "TOTESYS_CDC_WAREHOUSE_URL")]
    pub warehouse_url: Option<String>,
    /// File holding the warehouse password.
    #[arg(long, env = "TOTESYS_CDC_WAREHOUSE_PASSWORD_FILE")]
    pub warehouse_password_file: Option<PathBuf>,
}

impl WarehouseOption {
    /// Connects when `--warehouse-url` is set.
    pub async fn connect(&self) -> anyhow::Result<Option<tokio_postgres::Client>> {
        let Some(url) = &self.warehouse_url else {
            return Ok(None);
        };
        crate::connect_postgres(
            url,
            "--warehouse-url / TOTESYS_CDC_WAREHOUSE_URL",
            self.warehouse_password_file.as_deref(),
            &["TOTESYS_CDC_WAREHOUSE_PASSWORD", "PGPASSWORD"],
        )
        .await
        .map(Some)
    }
}

/// Where the pipeline's stages are, for the commands that look at every one of them.
#[derive(Debug, clap::Args)]
pub struct StagesOption {
    #[command(flatten)]
    pub source: SourceOption,
    /// Replication slot capture streams from.
    #[arg(long, default_value = "totesys_cdc")]
    pub slot: String,
    #[command(flatten)]
    pub kafka: crate::kafka::ConnectArgs,
    /// Prefix of the pipeline's topics.
    #[arg(long, env = "TOTESYS_CDC_TOPIC_PREFIX", default_value = cdc_publish::DEFAULT_PREFIX)]
    pub topic_prefix: String,
    #[command(flatten)]
    pub warehouse: WarehouseOption,
    /// Seconds each part may take to answer.
    #[arg(long, default_value_t = 15)]
    pub timeout: u64,
}
