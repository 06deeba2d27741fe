//! SIGTERM during load loses nothing: capture, the lake writer and the modeler run as
//! real `totesys-cdc` processes under the simulator's load; each is sent SIGTERM at
//! seeded random moments (three rounds, each component once per round, in a seeded
//! order), must exit with status 0 within a liveness bound, and is started again. Once the load ends and the
//! warehouse has applied the source's last commit:
//! - the warehouse equals an independent recomputation from the source (`check_warehouse`);
//! - the lake (read by DuckDB) holds every Kafka record once, the snapshot once, and each
//!   streamed change once: per table as many `(_commit_lsn, _ordinal)` as the source's
//!   audit trigger recorded row changes, none twice;
//! - the warehouse history has no version twice, and as many fact versions as the source
//!   made inserts and updates.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use cdc_stack::process::{tail, Component, ProcessStack, Rng};

/// How long a component may take to exit after SIGTERM (liveness, not performance).
const EXIT_BOUND: Duration = Duration::from_secs(60);

/// Rounds of SIGTERMs: each component once per round, in a seeded random order.
const ROUNDS: usize = 3;

/// Which component a SIGTERM goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Capture,
    Lake,
    Model,
}

/// SIGTERM, a clean exit within the bound, and what the process said on its way out.
async fn terminate(component: &mut Component, which: Which) {
    component.sigterm();
    let status = component.wait_exit(EXIT_BOUND).await;
    let log = component.log_of_this_run();
    assert!(
        status.success(),
        "{} exited with {status} after SIGTERM; its log:\n{}",
        component.name,
        tail(&log, 60)
    );
    // What each component prints once it has drained: the lake writer after its last
    // flush and offset commit, the modeler with its committed watermark, capture its
    // final report (after the slot confirmed what Kafka acknowledged; no periodic reports).
    let farewell = match which {
        Which::Capture => "── capture:",
        Which::Lake => "records read",
        Which::Model => "model: applied up to",
    };
    let said = log.lines().rev().find(|l| l.contains(farewell));
    assert!(
        said.is_some(),
        "{} did not say {farewell:?} on SIGTERM; its log:\n{}",
        component.name,
        tail(&log, 60)
    );
    println!(
        "{}: exit 0 after SIGTERM: {}",
        component.name,
        said.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing_and_duplicates_nothing() {
    let stack = ProcessStack::start().await;
    stack.install_audit().await;
    let (mut capture, mut lake, mut model) = stack.start_pipeline().await;

    // A few hundred changes a second until the SIGTERM rounds are over.
    let mut load = stack
        .simulate(200, None, 17)
        .arg(&["--max-changes", "20000"]);
    load.start();
    let mut rng = Rng::new(2026);
    let mut under_load = 0;
    for round in 0..ROUNDS {
        let mut order = [Which::Capture, Which::Lake, Which::Model];
        for i in (1..order.len()).rev() {
            order.swap(i, rng.range(0..i as u64 + 1) as usize);
        }
        for which in order {
            tokio::time::sleep(Duration::from_millis(rng.range(100..3000))).await;
            if load.is_running() {
                under_load += 1;
            }
            println!("round {round}: SIGTERM to {which:?}");
            match which {
                Which::Capture => {
                    terminate(&mut capture, which).await;
                    capture.start();
                    capture.wait_ready(Duration::from_secs(60)).await;
                }
                Which::Lake => {
                    terminate(&mut lake, which).await;
                    stack.start_lake(&mut lake).await;
                }
                Which::Model => {
                    terminate(&mut model, which).await;
                    model.start();
                    model.wait_ready(Duration::from_secs(60)).await;
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        load.is_running(),
        "the load ended before the SIGTERMs did:\n{}",
        load.log()
    );
    assert_eq!(under_load, 3 * ROUNDS, "every SIGTERM came under load");
    load.stop(EXIT_BOUND).await;
    println!("load: {}", tail(&load.log_of_this_run(), 3));

    let end = stack.mark_end().await;
    stack
        .wait_applied(
            &end,
            Duration::from_secs(300),
            &mut [&mut capture, &mut lake, &mut model],
        )
        .await;

    // (a) The warehouse equals the source.
    stack.assert_warehouse_matches_source().await;

    // (b) The lake holds each change exactly once. The lake writer has flushed what the
    // modeler applied; stop it so that nothing is written while DuckDB reads.
    terminate(&mut lake, Which::Lake).await;
    stack.assert_lake_holds_each_change_once().await;

    // (c) The warehouse history: no version twice, every fact version once.
    stack.assert_history_once().await;

    terminate(&mut model, Which::Model).await;
    terminate(&mut capture, Which::Capture).await;
    let mut stack = stack;
    stack.registry.stop(EXIT_BOUND).await;
}
