//! A real Prometheus (Debian's `prometheus` package) scrapes capture, the lake writer and
//! the modeler (and the registry, when it serves `/metrics`) every 2 s for a minute
//! while the simulator makes changes; the test then asks Prometheus's HTTP API for every
//! job's `up` over that minute, the freshness histogram and the throughput counters.
//! Latencies are printed, never asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cdc_stack::process::{http_get, url_encode, Component, ProcessStack};

/// The `prometheus` binary: `$PROMETHEUS_BIN`, `PATH`, or `/usr/bin/prometheus`.
fn find_prometheus() -> PathBuf {
    if let Some(path) = std::env::var_os("PROMETHEUS_BIN") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("prometheus"))
        .chain([PathBuf::from("/usr/bin/prometheus")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no prometheus binary on PATH or at /usr/bin/prometheus: install Debian's \
                 `prometheus` package (scripts/setup does), or set PROMETHEUS_BIN"
            )
        })
}

/// One instant query: each series' labels and value.
async fn query(prometheus: SocketAddr, promql: &str) -> Vec<(serde_json::Value, f64)> {
    let path = format!("/api/v1/query?query={}", url_encode(promql));
    let (status, body) = http_get(prometheus, &path).await.unwrap();
    assert_eq!(status, 200, "{promql}: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], "success", "{promql}: {body}");
    answer["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{promql}: not a vector: {body}"))
        .iter()
        .map(|series| {
            let value = series["value"][1].as_str().unwrap();
            let value = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap(),
            };
            (series["metric"].clone(), value)
        })
        .collect()
}

/// The single value of a query that aggregates to one series.
async fn scalar(prometheus: SocketAddr, promql: &str) -> f64 {
    let result = query(prometheus, promql).await;
    assert_eq!(result.len(), 1, "{promql}: one series expected: {result:?}");
    result[0].1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_component_for_a_minute() {
    let prometheus_bin = find_prometheus();
    let stack = ProcessStack::start().await;
    let (mut capture, mut lake, mut model) = stack.start_pipeline().await;
    let mut load = stack.simulate(100, Some(90), 5);
    load.start();

    let mut jobs = vec![
        ("totesys-cdc-capture", capture.metrics_addr()),
        ("totesys-cdc-lake", lake.metrics_addr()),
        ("totesys-cdc-model", model.metrics_addr()),
    ];
    let registry_serves_metrics = matches!(
        http_get(stack.registry_addr, "/metrics").await,
        Ok((200, _))
    );
    if registry_serves_metrics {
        jobs.push(("totesys-cdc-registry", stack.registry_addr));
    }
    println!(
        "the registry {} /metrics on its REST address",
        if registry_serves_metrics {
            "serves (scraped as totesys-cdc-registry)"
        } else {
            "does not serve (not scraped)"
        }
    );

    let dir = stack.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let mut config =
        String::from("global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n");
    for (job, addr) in &jobs {
        let _ = write!(
            config,
            "  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n"
        );
    }
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, &config).unwrap();
    let listen: SocketAddr = format!("127.0.0.1:{}", cdc_testkit::free_port().unwrap())
        .parse()
        .unwrap();
    let mut prometheus = Component::new(
        "prometheus",
        prometheus_bin,
        &[
            &format!("--config.file={}", config_path.display()),
            &format!("--storage.tsdb.path={}", dir.join("data").display()),
            &format!("--web.listen-address={listen}"),
        ],
        Vec::new(),
        stack.dir.path(),
    );
    prometheus.start();

    // Until Prometheus has scraped every job successfully once.
    let start = Instant::now();
    loop {
        let up = match http_get(listen, "/api/v1/query?query=up").await {
            Ok((200, _)) => query(listen, "up").await,
            _ => Vec::new(),
        };
        if up.len() == jobs.len() && up.iter().all(|(_, v)| *v == 1.0) {
            break;
        }
        assert!(
            prometheus.is_running(),
            "prometheus exited:\n{}",
            prometheus.log()
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "prometheus did not scrape every job: {up:?}\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A minute and a bit of scraping under load.
    let scraping = Instant::now();
    while scraping.elapsed() < Duration::from_secs(63) {
        for component in [&mut capture, &mut lake, &mut model, &mut prometheus] {
            assert!(
                component.is_running(),
                "{} exited while scraped:\n{}",
                component.name,
                component.log()
            );
        }
        assert!(load.is_running(), "the load ended early:\n{}", load.log());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let up = query(listen, r#"min_over_time(up{job=~"totesys-cdc-.*"}[1m])"#).await;
    let mut up_jobs: Vec<String> = up
        .iter()
        .map(|(labels, value)| {
            let job = labels["job"].as_str().unwrap().to_owned();
            assert_eq!(*value, 1.0, "{job} was down at some scrape of the minute");
            job
        })
        .collect();
    up_jobs.sort();
    let mut expected: Vec<String> = jobs.iter().map(|(j, _)| (*j).to_owned()).collect();
    expected.sort();
    assert_eq!(up_jobs, expected, "every job scraped for the whole minute");

    let scrapes = scalar(
        listen,
        r#"min(count_over_time(up{job=~"totesys-cdc-.*"}[1m]))"#,
    )
    .await;
    let p99 = scalar(
        listen,
        "histogram_quantile(0.99, sum by (le) (rate(totesys_cdc_modeler_freshness_seconds_bucket[1m])))",
    )
    .await;
    let p50 = scalar(
        listen,
        "histogram_quantile(0.5, sum by (le) (rate(totesys_cdc_modeler_freshness_seconds_bucket[1m])))",
    )
    .await;
    let lake_p99 = scalar(
        listen,
        "histogram_quantile(0.99, sum by (le) (rate(totesys_cdc_lake_freshness_seconds_bucket[1m])))",
    )
    .await;
    let applied = scalar(listen, "sum(rate(totesys_cdc_modeler_changes_total[1m]))").await;
    let captured = scalar(
        listen,
        "sum(increase(totesys_cdc_capture_events_total[1m]))",
    )
    .await;
    let written = scalar(listen, "sum(rate(totesys_cdc_lake_rows_total[1m]))").await;
    let buckets = scalar(
        listen,
        "count(totesys_cdc_modeler_freshness_seconds_bucket)",
    )
    .await;

    println!("Prometheus, over the last minute ({scrapes} scrapes per job at least):");
    println!("  jobs up throughout: {}", up_jobs.join(", "));
    println!("  capture events: {captured:.0}");
    println!("  lake rows written: {written:.1}/s");
    println!("  modeler changes applied: {applied:.1}/s");
    println!("  freshness, source commit to warehouse commit: p50 {p50:.3} s, p99 {p99:.3} s");
    println!("  freshness, source commit to lake file: p99 {lake_p99:.3} s");
    println!("  modeler freshness histogram: {buckets} bucket series");

    assert!(scrapes >= 20.0, "{scrapes} scrapes in the minute");
    assert!(p99.is_finite(), "freshness p99 is {p99}");
    assert!(applied > 0.0, "modeler changes rate {applied}");
    assert!(captured > 0.0, "capture events increase {captured}");
    assert!(written > 0.0, "lake rows rate {written}");
    assert!(buckets > 0.0, "freshness bucket series {buckets}");

    prometheus.stop(Duration::from_secs(60)).await;
    load.stop(Duration::from_secs(60)).await;
    for component in [&mut model, &mut lake, &mut capture] {
        component.stop(Duration::from_secs(60)).await;
    }
}
