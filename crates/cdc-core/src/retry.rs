//! The wait before a failed attempt is tried again, and the one supervisor every
//! long-running component (capture, the lake writer, the modeler) retries under.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Exponential backoff from [`Backoff::FIRST`] doubling to [`Backoff::MAX`]; an attempt
/// that ran [`Backoff::NEW_INCIDENT_AFTER`] or longer before failing starts again at the
/// first wait (a new incident, not the same one going on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first wait.
    pub const FIRST: Duration = Duration::from_millis(500);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(30);
    /// How long an attempt must have run for its failure to count as a new incident.
    pub const NEW_INCIDENT_AFTER: Duration = Duration::from_secs(60);

    /// A backoff at its first wait.
    pub const fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The wait before retrying an attempt that failed after running for `ran_for`.
    pub fn after(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= Self::NEW_INCIDENT_AFTER {
            self.next = Self::FIRST;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

/// Runs a component's attempts until one ends well, one fails in a way that retrying
/// cannot mend, or a stop is asked for; between failures it waits as [`Backoff`] says.
///
/// The stop is a `watch` of `bool` that turns `true` once: an attempt under way is
/// expected to see it too and end gracefully (flushing what it holds); a wait is cut
/// short by it.
#[derive(Debug)]
pub struct Supervisor {
    component: &'static str,
    stop: watch::Receiver<bool>,
    backoff: Backoff,
    retries: u64,
}

impl Supervisor {
    /// A supervisor of `component` (named in its log lines) that stops when `stop` turns true.
    pub fn new(component: &'static str, stop: watch::Receiver<bool>) -> Supervisor {
        Supervisor {
            component,
            stop,
            backoff: Backoff::new(),
            retries: 0,
        }
    }

    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Failed attempts retried so far.
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// Runs `attempt` until it succeeds (`Ok(Some(value))`), a stop ends the run between
    /// attempts (`Ok(None)`), or it fails while stopping or with an error `retryable`
    /// refuses (that error). The log line of a retried failure prints it with `{:#}`, so an
    /// `anyhow::Error` shows its whole cause chain.
    pub async fn run<T, E, F, Fut>(
        &mut self,
        mut attempt: F,
        retryable: impl Fn(&E) -> bool,
    ) -> Result<Option<T>, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        loop {
            if self.stopping() {
                return Ok(None);
            }
            let started = Instant::now();
            let error = match attempt().await {
                Ok(value) => return Ok(Some(value)),
                Err(error) if self.stopping() || !retryable(&error) => return Err(error),
                Err(error) => error,
            };
            let wait = self.backoff.after(started.elapsed());
            self.retries += 1;
            tracing::warn!(component = self.component, error = %format!("{error:#}"), retry_in = ?wait,
                "{} interrupted; retrying", self.component);
            let mut stop = self.stop.clone();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|stop| *stop) => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn waits_double_to_the_cap_and_restart_after_a_long_run() {
        let mut backoff = Backoff::new();
        let quick = Duration::from_secs(1);
        let waits: Vec<u64> = (0..9)
            .map(|_| backoff.after(quick).as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(backoff.after(Backoff::NEW_INCIDENT_AFTER), Backoff::FIRST);
        assert_eq!(backoff.after(quick), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_what_may_be_retried_until_it_succeeds() {
        let (_stop_tx, stop) = watch::channel(false);
        let mut supervisor = Supervisor::new("test", stop);
        let tries = AtomicU32::new(0);
        let result: Result<Option<u32>, String> = supervisor
            .run(
                || async {
                    match tries.fetch_add(1, Ordering::SeqCst) {
                        n @ 0..=2 => Err(format!("transient {n}")),
                        n => Ok(n),
                    }
                },
                |_| true,
            )
            .await;
        assert_eq!(result, Ok(Some(3)));
        assert_eq!(supervisor.retries(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_error_ends_the_run_at_once() {
        let (_stop_tx, stop) = watch::channel(false);
        let mut supervisor = Supervisor::new("test", stop);
        let tries = AtomicU32::new(0);
        let result: Result<Option<()>, String> = supervisor
            .run(
                || async {
                    tries.fetch_add(1, Ordering::SeqCst);
                    Err("wrong password".to_owned())
                },
                |e| !e.contains("password"),
            )
            .await;
        assert_eq!(result, Err("wrong password".to_owned()));
        assert_eq!(tries.load(Ordering::SeqCst), 1);
        assert_eq!(supervisor.retries(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_cuts_the_wait_short_and_ends_without_an_error() {
        let (stop_tx, stop) = watch::channel(false);
        let mut supervisor = Supervisor::new("test", stop);
        let tries = AtomicU32::new(0);
        let run = supervisor.run(
            || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>("down".to_owned())
            },
            |_| true,
        );
        tokio::pin!(run);
        // The first attempt fails and the supervisor waits; then the stop arrives.
        tokio::select! {
            _ = &mut run => panic!("the run must still be waiting"),
            () = tokio::time::sleep(Backoff::FIRST / 2) => {}
        }
        stop_tx.send_replace(true);
        assert_eq!(run.await, Ok(None));
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_while_stopping_is_returned_not_retried() {
        let (stop_tx, stop) = watch::channel(false);
        let mut supervisor = Supervisor::new("test", stop);
        let result: Result<Option<()>, String> = supervisor
            .run(
                || async {
                    stop_tx.send_replace(true);
                    Err("failed while flushing".to_owned())
                },
                |_| true,
            )
            .await;
        assert_eq!(result, Err("failed while flushing".to_owned()));
    }
}
