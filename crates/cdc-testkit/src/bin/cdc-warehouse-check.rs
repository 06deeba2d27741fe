//! `cdc-warehouse-check <source-url> <warehouse-url>`: compares the warehouse's current
//! dimensions and facts with a recomputation from the source; exit status 1 on a mismatch.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, warehouse] = args.as_slice() else {
        eprintln!("usage: cdc-warehouse-check <source-url> <warehouse-url>");
        return ExitCode::FAILURE;
    };
    let (source, warehouse) = match (connect(source).await, connect(warehouse).await) {
        (Ok(s), Ok(w)) => (s, w),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checks = match cdc_testkit::check_warehouse(&source, &warehouse).await {
        Ok(checks) => checks,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    for check in &checks {
        let verdict = if check.matches() {
            "equal"
        } else {
            "DIFFERENT"
        };
        println!(
            "   {:<28} {:>7} rows in the warehouse, {:>7} recomputed from the source: {verdict}",
            check.table, check.warehouse_rows, check.source_rows
        );
        for row in &check.missing {
            println!("      missing: {row}");
        }
        for row in &check.extra {
            println!("      extra:   {row}");
        }
        ok &= check.matches();
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Connects to `url`, with the password from PGPASSWORD when the string has none.
async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("{url:?} is not a connection string: {e}"))?;
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to {url:?}: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}
