//! The binary as an operator meets it: `up` runs every component from one config file
//! and stops them in order on SIGTERM; `status` and `check` report on a running
//! pipeline; bad settings and credentials give one line naming the setting.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use cdc_stack::process::ProcessStack;

const BIN: &str = env!("CARGO_BIN_EXE_totesys-cdc");

/// Three consecutive free loopback ports (capture, lake, modeler under `up`).
fn three_free_ports() -> u16 {
    loop {
        let base = cdc_testkit::free_port().unwrap();
        if base < u16::MAX - 3
            && (1..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_pipeline_from_one_config_file_and_stops_it_in_order() {
    let stack = ProcessStack::start().await;
    let config = stack.dir.path().join("totesys-cdc.toml");
    // Slots are per cluster and tests share one: the slot is named after the database.
    std::fs::write(
        &config,
        format!(
            "heartbeat-secs = 1\n[capture]\nslot = \"{}\"\nstate-dir = \"{}\"\n[simulate]\nseed = 11\n",
            stack.source.name,
            stack.dir.path().join("state").display()
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let port = three_free_ports().to_string();
    let up_args = [
        "up",
        "--config",
        &config,
        "--no-registry",
        "--no-init",
        "--metrics-port",
        &port,
    ];
    let mut up = stack
        .component("up", &up_args)
        .arg(&["--simulate", "--simulate-rate", "100"]);
    up.start();

    // The simulator's changes reach the warehouse.
    let warehouse = stack.warehouse.client().await.unwrap();
    let start = Instant::now();
    loop {
        let versions: i64 = warehouse
            .query_one("SELECT count(*) FROM fact_sales_order_version", &[])
            .await
            .unwrap()
            .get(0);
        if versions > 320 {
            break;
        }
        assert!(up.is_running(), "up exited:\n{}", up.log());
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no changes reached the warehouse:\n{}",
            up.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let slot = ["--slot", stack.source.name.as_str()];
    let status = stack.run(&[&["status"][..], &slot].concat()).await;
    println!("{status}");
    for expected in [
        "streaming to pid",
        "group totesys-cdc-lake:",
        "waiting for the modeler",
    ] {
        assert!(
            status.contains(expected),
            "status lacks {expected:?}:\n{status}"
        );
    }
    // An applied LSN (`X/Y` in hex; the cluster's WAL may be past 0/FFFFFFFF).
    let watermark = status
        .split("watermark ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_default();
    assert!(
        watermark
            .parse::<cdc_core::Lsn>()
            .is_ok_and(|lsn| lsn > cdc_core::Lsn(0)),
        "status lacks an applied watermark:\n{status}"
    );
    let check = stack.run(&[&["check"][..], &slot].concat()).await;
    println!("{check}");
    assert!(
        check.contains("every configured part is reachable") && !check.contains("MISSING"),
        "{check}"
    );

    up.sigterm();
    let exit = up.wait_exit(Duration::from_secs(120)).await;
    let log = up.log();
    assert!(exit.success(), "up exited with {exit} on SIGTERM:\n{log}");
    let order: Vec<usize> = ["simulate", "capture", "lake", "model"]
        .iter()
        .map(|c| {
            log.find(&format!("up: {c} stopped"))
                .unwrap_or_else(|| panic!("{c} did not stop cleanly:\n{log}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "stop order:\n{log}");
    assert!(log.contains("up: every component stopped cleanly"), "{log}");

    // Started again without the simulator, it picks up where it stopped: the warehouse
    // ends equal to the source, so the ordered stop lost nothing.
    let mut again = stack.component("up-again", &up_args);
    again.start();
    let end = stack.mark_end().await;
    stack
        .wait_applied(&end, Duration::from_secs(120), &mut [&mut again])
        .await;
    stack.assert_warehouse_matches_source().await;
    again.sigterm();
    assert!(again.wait_exit(Duration::from_secs(120)).await.success());
}

/// Runs the binary with `args` and `env`; returns its exit code, stdout and stderr.
async fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let output = tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("TOTESYS_CDC_CONFIG")
        .env_remove("TOTESYS_CDC_WAREHOUSE_URL")
        .env_remove("TOTESYS_CDC_SOURCE_URL")
        .env_remove("PGPASSWORD")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_settings_and_credentials_give_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");

    std::fs::write(&config, "sourec = \"host=db\"\n").unwrap();
    let path = config.to_string_lossy().into_owned();
    let (code, _, err) = run(&["--config", &path, "status"], &[]).await;
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("unknown setting `sourec`"), "{err}");

    std::fs::write(
        &config,
        "warehouse-url = \"host=x\"\n[model]\npoll-ms = \"often\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["model"], &[("TOTESYS_CDC_CONFIG", &path)]).await;
    assert_eq!(code, Some(2), "clap's usage error: {err}");
    assert!(err.contains("--poll-ms"), "{err}");

    let (code, _, err) = run(&["init"], &[]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("--warehouse-url"), "{err}");

    // A real server, the wrong password: the line names the setting, no secret printed.
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let url = format!(
        "host=127.0.0.1 port={} user=postgres dbname={}",
        db.cluster.port, db.name
    );
    let lake = dir.path().join("lake").to_string_lossy().into_owned();
    let (code, _, err) = run(
        &["model", "--warehouse-url", &url, "--lake-url", &lake],
        &[("TOTESYS_CDC_WAREHOUSE_PASSWORD", "not-the-password")],
    )
    .await;
    assert_eq!(code, Some(1), "{err}");
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: connecting to --warehouse-url") && last.contains("password"),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "{err}");

    let (code, out, _) = run(
        &[
            "check",
            "--warehouse-url",
            &url,
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--registry-url",
            "http://127.0.0.1:1",
            "--timeout",
            "3",
        ],
        &[("PGPASSWORD", "not-the-password")],
    )
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("MISSING  warehouse")
            && l.contains("--warehouse-url")
            && l.contains("password authentication failed")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("skip") && l.contains("--source not set")),
        "{out}"
    );
    assert!(!out.contains("not-the-password"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_reaches_a_tls_only_warehouse_with_verify_full_and_names_a_wrong_ca() {
    let tls = cdc_testkit::TlsCluster::start().await.unwrap();
    let url = tls.verify_full();
    let (code, _, err) = run(&["init", "--warehouse-url", &url], &[]).await;
    assert_eq!(code, Some(0), "{err}");
    let client = tls.db.client().await.unwrap();
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'fact_sales_order'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "init created the star schemas over TLS");

    let wrong_ca = tls.conn(
        "localhost",
        &format!(
            "sslmode=verify-full sslrootcert={}",
            tls.certs.other_ca.display()
        ),
    );
    let (code, _, err) = run(&["init", "--warehouse-url", &wrong_ca], &[]).await;
    assert_eq!(code, Some(1), "{err}");
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: connecting to --warehouse-url")
            && last.contains("sslmode=verify-full")
            && last.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(!err.contains("password="), "no secret printed: {err}");
}
