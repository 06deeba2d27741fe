//! Where capture delivers change events, and how durability flows back.
//!
//! ```text
//!   reader ──write(batch)──► sink ──(later)──► WriteAck resolves: batch durable
//!      ▲                                               │
//!      └──── confirmed_flush_lsn advances only past ◄──┘
//!            transactions whose every batch is durable
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use cdc_core::{ChangeEvent, Lsn};
use tokio::sync::oneshot;

/// A sink's failure; the reader stops and nothing past the last durable LSN is confirmed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink's backend refused or lost the write.
    #[error("sink write failed: {0}")]
    Write(String),
    /// The sink went away before reporting durability.
    #[error("sink dropped an acknowledgement before reporting durability")]
    AckDropped,
}

/// Receives change events from capture.
///
/// Guarantees the reader gives a sink:
/// - **Order**: batches arrive in source commit order; events inside a batch are in
///   position order. A transaction may span several batches; it never interleaves
///   with another.
/// - **At-least-once**: after a crash the reader restarts from the last confirmed LSN,
///   so a sink may see events again; they carry the same [`cdc_core::Position`], the
///   key to drop duplicates by.
/// - **No concurrency**: `write` is called by one task, one batch at a time.
///
/// What the sink promises back: a [`WriteAck`] resolves `Ok` only once the batch is
/// durable (it will survive a crash of capture and of the sink); only then may the
/// source forget it.
pub trait ChangeSink: Send {
    /// Accepts a batch; may wait to apply backpressure. Durability comes through the ack.
    fn write(
        &mut self,
        batch: Vec<ChangeEvent>,
    ) -> impl Future<Output = Result<WriteAck, SinkError>> + Send;
}

/// Resolves when a written batch is durable.
#[derive(Debug)]
pub struct WriteAck(AckState);

#[derive(Debug)]
enum AckState {
    Done,
    Pending(oneshot::Receiver<Result<(), SinkError>>),
}

/// The sink's half of a pending [`WriteAck`].
#[derive(Debug)]
pub struct AckSender(oneshot::Sender<Result<(), SinkError>>);

impl AckSender {
    /// Reports the batch durable (`Ok`) or lost (`Err`).
    pub fn send(self, result: Result<(), SinkError>) {
        // The reader may have gone away; then nobody needs the answer.
        let _ = self.0.send(result);
    }
}

impl WriteAck {
    /// An ack for a batch that is already durable.
    pub fn durable() -> Self {
        WriteAck(AckState::Done)
    }

    /// An ack resolved later through the returned sender.
    pub fn pending() -> (Self, AckSender) {
        let (tx, rx) = oneshot::channel();
        (WriteAck(AckState::Pending(rx)), AckSender(tx))
    }

    /// Checks without waiting: `Some` once resolved.
    pub fn poll_now(&mut self) -> Option<Result<(), SinkError>> {
        match &mut self.0 {
            AckState::Done => Some(Ok(())),
            AckState::Pending(rx) => match rx.try_recv() {
                Ok(result) => {
                    self.0 = AckState::Done;
                    Some(result)
                }
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(Err(SinkError::AckDropped)),
            },
        }
    }

    /// Waits until resolved.
    pub async fn wait(self) -> Result<(), SinkError> {
        match self.0 {
            AckState::Done => Ok(()),
            AckState::Pending(rx) => rx.await.unwrap_or(Err(SinkError::AckDropped)),
        }
    }
}

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

/// A sink that keeps every event in memory and acks at once: for tests and `--sink memory`.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    events: Arc<Mutex<Vec<ChangeEvent>>>,
}

impl MemorySink {
    /// A new, empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything received so far.
    pub fn events(&self) -> Vec<ChangeEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// How many events were received.
    pub fn len(&self) -> usize {
        self.events.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing was received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ChangeSink for MemorySink {
    async fn write(&mut self, batch: Vec<ChangeEvent>) -> Result<WriteAck, SinkError> {
        self.events
            .lock()
            .map_err(|_| SinkError::Write("memory sink poisoned".into()))?
            .extend(batch);
        Ok(WriteAck::durable())
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
        tx.send(Err(SinkError::Write("disk full".into())));
        assert!(matches!(tracker.poll(), Err(SinkError::Write(_))));
    }
}
