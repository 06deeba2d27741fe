//! Runs a throwaway Apache Kafka until SIGTERM or Ctrl-C: `cdc-local-kafka DIR [BROKERS]`.
//!
//! Prints `bootstrap.servers` on stdout once every broker is up, writes it to
//! `DIR/bootstrap` too, and stops the brokers (SIGTERM, then SIGKILL) when it is stopped.

use std::path::PathBuf;
use std::process::ExitCode;

use cdc_testkit::KafkaCluster;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: cdc-local-kafka DIR [BROKERS]");
        return ExitCode::from(2);
    };
    let brokers = match args.get(1).map(|n| n.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => {
            eprintln!("cdc-local-kafka: BROKERS must be a number, at least 1");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cdc-local-kafka: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Listen for the signals before starting, so none is missed.
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            eprintln!("cdc-local-kafka: cannot listen for SIGTERM");
            return ExitCode::FAILURE;
        };
        let mut cluster = match KafkaCluster::start(&dir, brokers) {
            Ok(cluster) => cluster,
            Err(e) => {
                eprintln!("cdc-local-kafka: {}", cdc_core::error_chain(&e));
                return ExitCode::FAILURE;
            }
        };
        let bootstrap = cluster.bootstrap();
        if let Err(e) = std::fs::write(dir.join("bootstrap"), format!("{bootstrap}\n")) {
            eprintln!(
                "cdc-local-kafka: cannot write {}: {e}",
                dir.join("bootstrap").display()
            );
            return ExitCode::FAILURE;
        }
        println!("{bootstrap}");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        cluster.stop(std::time::Duration::from_secs(30));
        ExitCode::SUCCESS
    })
}
