//! A 1,000,000-row transaction goes through capture with bounded memory.
//!
//! Capture runs as the real binary in its own process so that its peak resident set
//! (VmHWM) measures the reader alone. With `logical_decoding_work_mem = 64kB` the
//! server streams the transaction in blocks before it commits; capture spills them to
//! disk and replays them at commit, so memory does not grow with the transaction.
//!
//! Measured on the 2-core development machine: peak RSS 8 MB for 1,000,000 rows of
//! ~100 bytes (≈ 100 MB of row data; the test takes about 12 s in a debug build). The
//! bound asserted is 64 MB: holding the transaction's events in memory would need
//! several times the row data.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdc_testkit::TestDb;

const ROWS: u64 = 1_000_000;
const PEAK_RSS_BOUND_KB: u64 = 64 * 1024;

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_transaction_streams_with_bounded_memory() {
    let db = TestDb::create().await.unwrap();
    let client = db.client().await.unwrap();
    client
        .batch_execute("CREATE TABLE big (id int PRIMARY KEY, payload text NOT NULL)")
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_totesys-cdc"))
        .args([
            "capture",
            "--sink",
            "count",
            "--report-every",
            "0",
            "--no-progress",
        ])
        .args([
            "--logical-decoding-work-mem",
            "64kB",
            "--heartbeat-secs",
            "1",
        ])
        .args(["--max-events", &ROWS.to_string(), "--slot", &db.name])
        .arg("--state-dir")
        .arg(state.path())
        .env("TOTESYS_CDC_SOURCE_URL", db.conn_string())
        .env("TOTESYS_CDC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start capture");
    let pid = child.id();
    // Read capture's output as it comes: a full pipe would stall it.
    let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let output = output.clone();
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            output.lock().unwrap().push_str(&text);
        })
    };

    let start = Instant::now();
    while client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
            &[&db.name],
        )
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "capture never started streaming"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client
        .batch_execute(&format!(
            "INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, {ROWS}) g"
        ))
        .await
        .unwrap();

    let mut peak = 0;
    let status = loop {
        if let Some(kb) = peak_rss_kb(pid) {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // A liveness bound (nextest ends a test at 600 s), not a performance one.
        if start.elapsed() > Duration::from_secs(540) {
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            panic!(
                "capture did not finish the transaction in 540 s; its output:\n{}",
                output.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = reader.join();
    let stderr = output.lock().unwrap().clone();
    assert!(status.success(), "capture failed: {stderr}");
    let big_line = stderr
        .lines()
        .find(|l| l.contains("public.big"))
        .unwrap_or_else(|| panic!("no report: {stderr}"));
    let inserts: u64 = big_line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(
        inserts, ROWS,
        "every row of the transaction was delivered: {big_line}"
    );
    println!(
        "peak RSS of capture for a {ROWS}-row transaction: {} MB",
        peak / 1024
    );
    assert!(peak > 0, "could not measure memory");
    assert!(
        peak < PEAK_RSS_BOUND_KB,
        "capture peaked at {} MB for one transaction",
        peak / 1024
    );
}
