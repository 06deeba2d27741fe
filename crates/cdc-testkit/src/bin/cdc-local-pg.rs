//! Starts or stops a throwaway PostgreSQL cluster: `cdc-local-pg start|stop|url DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use cdc_testkit::PgCluster;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(action), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: cdc-local-pg start|stop DIR");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    let result = match action.as_str() {
        "start" => PgCluster::ensure_running(&dir).map(|c| {
            println!("{}", c.superuser_conn_string("postgres"));
        }),
        "stop" => match PgCluster::existing(&dir) {
            Some(cluster) => cluster.stop(),
            None => Ok(()),
        },
        other => {
            eprintln!("unknown action {other:?}: expected start or stop");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cdc-local-pg: {e}");
            ExitCode::FAILURE
        }
    }
}
