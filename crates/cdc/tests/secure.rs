//! The pipeline as production runs it, every part behind TLS and a password, and no
//! secret in any log or metric.
//!
//! `ProcessStack::start_secure`:
//! - PostgreSQL accepts TLS only; every component connects with `sslmode=verify-full`.
//! - The components use only the broker's SASL_SSL listener: SCRAM-SHA-512 and a client
//!   certificate whose key is encrypted. They are configured with `--kafka-property`
//!   settings and the documented secret variables alone.
//! - The registry serves HTTPS and requires basic auth, from a users file made by
//!   `totesys-cdc registry-user`.
//!
//! Under the simulator's load, the warehouse must come to equal the source and the lake
//! must hold each change once. Then:
//! - every component's log (at debug level) and every /metrics page is searched for each
//!   secret, and none is found;
//! - a wrong Kafka password fails capture and the lake writer with one line;
//! - a wrong registry password fails `init` with one line.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use cdc_stack::process::{bin, ProcessStack};

/// Runs `totesys-cdc <args>` against the stack with `env` overriding its environment,
/// expecting it to fail within two minutes; its last line of output.
async fn fails_with(stack: &ProcessStack, args: &[&str], env: &[(&str, &str)]) -> String {
    let run = tokio::process::Command::new(bin())
        .args(stack.with_kafka_args(args))
        .envs(stack.env())
        .envs(env.iter().copied())
        .env("TOTESYS_CDC_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| panic!("totesys-cdc {args:?} did not give up within two minutes"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "totesys-cdc {args:?} succeeded:\n{stderr}"
    );
    let last = stderr
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default()
        .to_owned();
    assert!(last.starts_with("error: "), "{args:?}:\n{stderr}");
    last
}

#[tokio::test]
async fn a_secure_stack_runs_end_to_end_and_no_secret_reaches_a_log_or_metric() {
    let stack = ProcessStack::start_secure().await;
    let secure = stack.secure.clone().unwrap();
    stack.install_audit().await;
    let (mut capture, mut lake, mut model) = stack.start_pipeline().await;
    let mut simulate = stack.simulate(100, Some(12), 11);
    simulate.start();
    let status = simulate.wait_exit(Duration::from_secs(120)).await;
    assert!(
        status.success(),
        "the simulator failed:\n{}",
        simulate.log()
    );
    let end = stack.mark_end().await;
    stack
        .wait_applied(
            &end,
            Duration::from_secs(180),
            &mut [&mut capture, &mut lake, &mut model],
        )
        .await;
    stack.assert_warehouse_matches_source().await;
    stack.assert_lake_holds_each_change_once().await;

    // The registry's API needs the user; its metrics and probes do not.
    assert_eq!(stack.registry_https_get("/subjects", false).await.0, 401);
    let (status, subjects) = stack.registry_https_get("/subjects", true).await;
    assert!(
        status == 200 && subjects.contains("totesys.public."),
        "{subjects}"
    );

    let mut pages = Vec::new();
    for component in [&capture, &lake, &model] {
        pages.push((
            format!("{} /metrics", component.name),
            component.scrape().await,
        ));
    }
    let (status, registry_metrics) = stack.registry_https_get("/metrics", false).await;
    assert_eq!(status, 200);
    pages.push(("registry /metrics".to_owned(), registry_metrics));
    for (name, page) in &pages {
        assert!(
            page.contains("totesys_cdc_"),
            "{name} has no metrics:\n{page}"
        );
    }

    capture.stop(Duration::from_secs(60)).await;
    lake.stop(Duration::from_secs(60)).await;
    model.stop(Duration::from_secs(60)).await;
    stack.registry_https_get("/healthz", false).await;

    let mut logs = Vec::new();
    for entry in std::fs::read_dir(stack.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            logs.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    let names: Vec<&str> = logs.iter().map(|(name, _)| name.as_str()).collect();
    for expected in [
        "registry.log",
        "capture.log",
        "lake.log",
        "model.log",
        "simulate.log",
        "run.log",
    ] {
        assert!(
            names.iter().any(|name| name.ends_with(expected)),
            "no {expected} among {names:?}"
        );
    }
    for (name, text) in logs.iter().chain(&pages) {
        assert!(!text.is_empty(), "{name} is empty");
        for (what, secret) in secure.secrets.all() {
            if let Some(at) = text.find(&secret) {
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                panic!("{name} shows {what}:\n{}", &text[line_start..line_end]);
            }
        }
    }
    // The search means something: the logs are at debug level and the registry says it
    // required the users.
    let log_of = |file: &str| &logs.iter().find(|(n, _)| n.ends_with(file)).unwrap().1;
    for file in ["capture.log", "lake.log", "model.log"] {
        assert!(
            log_of(file).contains(" DEBUG "),
            "{file} has no debug lines"
        );
    }
    assert!(log_of("registry.log").contains("schema registry requires basic auth"));

    // A wrong Kafka password: one line, naming the refusal, for capture and the lake writer.
    let wrong_kafka = [("TOTESYS_CDC_KAFKA_SASL_PASSWORD", "wrong-kafka-password")];
    let state = stack.dir.path().join("capture-state");
    let capture_args = [
        "capture",
        "--slot",
        &stack.source.name,
        "--state-dir",
        &state.to_string_lossy(),
        "--transaction-topic",
        "--no-progress",
    ];
    for args in [&capture_args[..], &["lake"][..]] {
        let line = fails_with(&stack, args, &wrong_kafka).await;
        eprintln!("{} with a wrong Kafka password: {line}", args[0]);
        assert!(
            line.contains("the Kafka cluster refused this client")
                && line.contains("SASL authentication error"),
            "{args:?}: {line}"
        );
        assert!(!line.contains("wrong-kafka-password"), "{line}");
    }

    // A wrong registry password: one line with the registry's 401.
    let line = fails_with(
        &stack,
        &["init"],
        &[("TOTESYS_CDC_REGISTRY_PASSWORD", "wrong-registry-password")],
    )
    .await;
    eprintln!("init with a wrong registry password: {line}");
    assert!(
        line.contains("HTTP 401") && line.contains("wrong user name or password"),
        "{line}"
    );
    assert!(!line.contains("wrong-registry-password"), "{line}");
}
