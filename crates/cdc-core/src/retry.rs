//! The wait before a failed attempt is tried again: one backoff policy for every
//! component's retry loop (capture, the lake writer, the modeler).

use std::time::Duration;

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

#[cfg(test)]
mod tests {
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
}
