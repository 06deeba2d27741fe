//! Where capture delivers change events ([`ChangeSink`], from `cdc-core`), and the
//! [`DurabilityTracker`] that turns acknowledged batches into the LSN safe to confirm.

use std::collections::VecDeque;

pub use cdc_core::sink::{AckSender, ChangeSink, MemorySink, SinkError, WriteAck};
use cdc_core::Lsn;

/// Tracks written batches and the LSN that is safe to confirm to PostgreSQL.
#[derive(Debug, Default)]
pub struct DurabilityTracker {
    in_flight: VecDeque<(Option<Lsn>, WriteAck)>,
    durable: Lsn,
}

impl DurabilityTracker {
    /// Starts from an LSN already known durable (the slot's confirmed position).
    pub fn new(durable: Lsn) -> Self {
        DurabilityTracker {
            in_flight: VecDeque::new(),
            durable,
        }
    }

    /// Records a written batch; `completes` is the LSN to confirm once it (and all
    /// before it) are durable, set on the batch that ends a transaction.
    pub fn push(&mut self, completes: Option<Lsn>, ack: WriteAck) {
        self.in_flight.push_back((completes, ack));
    }

    /// Records a position with nothing to write (an empty or filtered transaction, a
    /// keepalive while idle): confirmable once everything before it is durable.
    pub fn push_position(&mut self, lsn: Lsn) {
        if self.in_flight.is_empty() {
            self.durable = self.durable.max(lsn);
        } else {
            self.in_flight.push_back((Some(lsn), WriteAck::durable()));
        }
    }

    /// Advances over resolved acks without waiting; returns the durable LSN.
    pub fn poll(&mut self) -> Result<Lsn, SinkError> {
        while let Some((completes, ack)) = self.in_flight.front_mut() {
            match ack.poll_now() {
                None => break,
                Some(Err(e)) => return Err(e),
                Some(Ok(())) => {
                    if let Some(lsn) = *completes {
                        self.durable = self.durable.max(lsn);
                    }
                    self.in_flight.pop_front();
                }
            }
        }
        Ok(self.durable)
    }

    /// Waits for the oldest batch to resolve (for backpressure), then polls.
    pub async fn wait_oldest(&mut self) -> Result<Lsn, SinkError> {
        if let Some((completes, ack)) = self.in_flight.pop_front() {
            ack.wait().await?;
            if let Some(lsn) = completes {
                self.durable = self.durable.max(lsn);
            }
        }
        self.poll()
    }

    /// Number of batches written but not yet durable.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The highest LSN known safe to confirm.
    pub fn durable(&self) -> Lsn {
        self.durable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirms_only_past_durable_transactions() {
        let mut tracker = DurabilityTracker::new(Lsn(10));
        let (first, first_tx) = WriteAck::pending();
        let (second, second_tx) = WriteAck::pending();
        tracker.push(None, first); // first half of transaction ending at 20
        tracker.push(Some(Lsn(20)), WriteAck::durable());
        tracker.push(Some(Lsn(30)), second);
        assert_eq!(tracker.poll().unwrap(), Lsn(10));

        second_tx.send(Ok(()));
        assert_eq!(
            tracker.poll().unwrap(),
            Lsn(10),
            "an older batch is still pending"
        );

        first_tx.send(Ok(()));
        assert_eq!(tracker.poll().unwrap(), Lsn(30));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn idle_positions_wait_for_earlier_batches() {
        let mut tracker = DurabilityTracker::new(Lsn(1));
        tracker.push_position(Lsn(5));
        assert_eq!(tracker.durable(), Lsn(5));
        let (ack, tx) = WriteAck::pending();
        tracker.push(Some(Lsn(8)), ack);
        tracker.push_position(Lsn(9));
        assert_eq!(tracker.poll().unwrap(), Lsn(5));
        tx.send(Ok(()));
        assert_eq!(tracker.poll().unwrap(), Lsn(9));
    }

    #[test]
    fn a_failed_or_dropped_ack_is_an_error() {
        let mut tracker = DurabilityTracker::new(Lsn(1));
        let (ack, tx) = WriteAck::pending();
        tracker.push(Some(Lsn(2)), ack);
        drop(tx);
        assert!(matches!(tracker.poll(), Err(SinkError::AckDropped)));

        let mut tracker = DurabilityTracker::new(Lsn(1));
        let (ack, tx) = WriteAck::pending();
        tracker.push(Some(Lsn(2)), ack);
        tx.send(Err(SinkError::write_failed("disk full")));
        assert!(matches!(tracker.poll(), Err(SinkError::Write(_))));
    }
}
