//! `totesys-cdc`: the pipeline's one binary. Each subcommand wires library crates
//! together; no pipeline logic lives here.

mod capture;
mod check;
mod compact;
mod config;
mod conn;
mod init;
mod kafka;
mod lake;
mod metrics;
mod migrate;
mod model;
mod registry;
mod replay;
mod simulate;
mod sinks;
mod status;
mod telemetry;
mod topics;
mod up;

use clap::{CommandFactory, Parser, Subcommand};

/// Streams every change in the totesys database into a star-schema warehouse.
#[derive(Debug, Parser)]
#[command(name = "totesys-cdc", version, about)]
struct Cli {
    /// Config file (TOML): top-level keys are long option names for every subcommand,
    /// `[capture]`-style tables for one; the command line and the environment win.
    #[arg(long, global = true, env = config::CONFIG_ENV, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Snapshot and stream changes out of the source database into Kafka.
    Capture(Box<capture::CaptureArgs>),
    /// Write the change topics to the lake as typed Parquet, each change exactly once.
    Lake(Box<lake::LakeArgs>),
    /// Create what the pipeline needs: publication, topics, registry subjects, warehouse DDL (idempotent).
    Init(Box<init::InitArgs>),
    /// Apply the lake's changes to the warehouse: SCD2 history, whole source transactions in commit order, exactly once.
    Model(Box<model::ModelArgs>),
    /// Merge the lake tables' small files into large ones (one commit per run), checkpoint their logs, vacuum what no snapshot needs.
    Compact(Box<compact::CompactArgs>),
    /// Move a lake written before its tables (`date=` directories, no Delta log) into the table layout, in place.
    MigrateLake(Box<migrate::MigrateArgs>),
    /// Serve the Confluent-compatible schema registry (REST) over PostgreSQL.
    Registry(registry::RegistryArgs),
    /// Print a line for the registry's --users-file; the password is read from standard input.
    RegistryUser(registry::RegistryUserArgs),
    /// List the pipeline's topics: partitions, records, registered schema version.
    Topics(topics::TopicsArgs),
    /// Create the totesys schema, seed it, and make live changes.
    Simulate(simulate::SimulateArgs),
    /// Run every component (registry, capture, lake, model, optionally the simulator) as one process tree.
    Up(Box<up::UpArgs>),
    /// Rebuild the lake and/or the warehouse from the topics into fresh targets.
    Replay(Box<replay::ReplayArgs>),
    /// Summarise slot lag, consumer lag, files waiting, the warehouse watermark and freshness.
    Status(Box<status::StatusArgs>),
    /// Verify connectivity and privileges of every part, and say what is missing.
    Check(Box<check::CheckArgs>),
    /// List every metric the binary exports: name, type and help.
    Metrics(metrics::MetricsArgs),
}

/// A database password: from `file` (option `flag`) when given, else the first of the
/// environment variables `vars` that is set.
fn password_from(
    file: Option<&std::path::Path>,
    flag: &str,
    vars: &[&str],
) -> anyhow::Result<Option<String>> {
    use anyhow::Context;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {flag} {}", path.display()))?;
        return Ok(Some(text.trim_end().to_owned()));
    }
    Ok(vars.iter().find_map(|v| std::env::var(v).ok()))
}

/// Connects to a PostgreSQL database given by `url` (setting `setting`), over TLS as its
/// `ssl*` keys or the `PGSSL*` environment ask, the password from `password_file` or the
/// first of `vars` set when the URL has none; the connection is driven on the current
/// runtime.
async fn connect_postgres(
    url: &str,
    setting: &str,
    password_file: Option<&std::path::Path>,
    vars: &[&str],
) -> anyhow::Result<tokio_postgres::Client> {
    use anyhow::Context;
    let not_a_string = || format!("setting {setting} is not a connection string");
    let split = cdc_pgtls::split_conn_string(url).with_context(not_a_string)?;
    let mut config: tokio_postgres::Config = split.rest.parse().with_context(not_a_string)?;
    if config.get_password().is_none() {
        let flag = format!("{setting} password file");
        if let Some(password) = password_from(password_file, &flag, vars)? {
            config.password(password);
        }
    }
    let tls = split
        .tls
        .connector()
        .with_context(|| format!("the TLS settings of {setting}"))?;
    cdc_pgtls::connect(&config, &tls)
        .await
        .with_context(|| format!("connecting to {setting}"))
}

/// Whether a connection failed for a reason retrying cannot mend (see
/// [`cdc_postgres::connection::is_settings_error`]), anywhere in the error's chain.
fn is_settings_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<cdc_pgtls::TlsError>()
            || cause
                .downcast_ref::<tokio_postgres::Error>()
                .is_some_and(cdc_postgres::connection::is_settings_error)
    })
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOTESYS_CDC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match config::apply(std::env::args_os().collect(), &Cli::command()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Capture(args) => capture::run(*args).await,
            Command::Lake(args) => lake::run(*args).await,
            Command::Init(args) => init::run(*args).await,
            Command::Model(args) => model::run(*args).await,
            Command::Compact(args) => compact::run(*args).await,
            Command::MigrateLake(args) => migrate::run(*args).await,
            Command::Registry(args) => registry::run(args).await,
            Command::RegistryUser(args) => registry::user_line(&args),
            Command::Topics(args) => topics::run(args).await,
            Command::Simulate(args) => simulate::run(args).await,
            Command::Up(args) => up::run(*args).await,
            Command::Replay(args) => replay::run(*args).await,
            Command::Status(args) => status::run(*args).await,
            Command::Check(args) => check::run(*args).await,
            Command::Metrics(args) => metrics::run(args),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}

/// A stop that turns true at Ctrl-C or SIGTERM, or after `duration_secs` when given.
fn stop_on_signal(duration_secs: Option<u64>) -> tokio::sync::watch::Receiver<bool> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        match duration_secs {
            Some(secs) => {
                tokio::select! {
                    () = shutdown_signal() => {}
                    () = tokio::time::sleep(std::time::Duration::from_secs(secs)) => {}
                }
            }
            None => shutdown_signal().await,
        }
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
