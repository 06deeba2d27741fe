//! The contract between capture and where its events go: [`ChangeSink`], and durability
//! flowing back through [`WriteAck`].
//!
//! ```text
//!   capture ──write(batch)──► sink ──(later)──► WriteAck resolves: batch durable
//!      ▲                                               │
//!      └──── the source forgets a position only past ◄─┘
//!            transactions whose every batch is durable
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::{ChangeEvent, Lsn, TransactionInfo};

/// The error a [`SinkError`] keeps as its source.
pub type SinkCause = Box<dyn std::error::Error + Send + Sync>;

/// A sink's failure; the reader stops and nothing past the last durable LSN is confirmed.
/// The backend's own error is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink's backend refused or lost the write; writing again later may succeed.
    #[error("sink write failed")]
    Write(#[source] SinkCause),
    /// The events cannot be written as they are (an incompatible schema change, a value
    /// the sink's format cannot hold); retrying will not help until someone acts.
    #[error("sink cannot accept the events")]
    Rejected(#[source] SinkCause),
    /// The sink went away before reporting durability.
    #[error("sink dropped an acknowledgement before reporting durability")]
    AckDropped,
}

impl SinkError {
    /// A [`SinkError::Write`] whose cause is only a description (no error value to keep).
    pub fn write_failed(what: impl Into<String>) -> SinkError {
        SinkError::Write(Box::new(Described(what.into())))
    }

    /// A [`SinkError::Rejected`] whose cause is only a description.
    pub fn rejected(what: impl Into<String>) -> SinkError {
        SinkError::Rejected(Box::new(Described(what.into())))
    }
}

/// A cause known only by its description (a sink's own finding, or a failure shared by
/// several waiting writes).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Described(pub String);

/// Receives change events from capture.
///
/// Guarantees the reader gives a sink:
/// - **Order**: batches arrive in source commit order; events inside a batch are in
///   position order. A transaction may span several batches; it never interleaves
///   with another.
/// - **At-least-once**: after a crash the reader restarts from the last confirmed LSN,
///   so a sink may see events again; they carry the same [`crate::Position`], the
///   key to drop duplicates by.
/// - **No concurrency**: `write` and `commit` are called by one task, one at a time.
/// - **Boundaries**: after the last batch of a source transaction that had events, the
///   reader calls [`ChangeSink::commit`] (snapshot reads are not a transaction).
///
/// What the sink promises back: a [`WriteAck`] resolves `Ok` only once the batch is
/// durable (it will survive a crash of capture and of the sink); only then may the
/// source forget it. A sink may hold acks back to make several transactions durable
/// at once (Kafka transactions); it then names when via [`ChangeSink::flush_deadline`],
/// and the reader calls [`ChangeSink::flush`] then and before it waits for an ack.
pub trait ChangeSink: Send {
    /// Claims the sink for this capture (fencing any earlier writer) before the first
    /// event, once the source's slot is known to be free; returns the commit LSN through
    /// which the sink already holds every transaction from an earlier run, if it knows.
    /// Events at or before it that are read again are dropped by the sink.
    fn start(&mut self) -> impl Future<Output = Result<Option<Lsn>, SinkError>> + Send {
        std::future::ready(Ok(None))
    }

    /// Makes what is held back durable now, so that every ack handed out resolves
    /// without further events (the reader calls it before it waits for an ack).
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send {
        std::future::ready(Ok(()))
    }

    /// When the sink wants [`ChangeSink::flush`] called if no event comes first.
    fn flush_deadline(&self) -> Option<std::time::Instant> {
        None
    }

    /// Accepts a batch; may wait to apply backpressure. Durability comes through the ack.
    fn write(
        &mut self,
        batch: Vec<ChangeEvent>,
    ) -> impl Future<Output = Result<WriteAck, SinkError>> + Send;

    /// Marks the end of source transaction `txn`, which had `events` events; a sink that
    /// records transaction boundaries writes them here. Durability comes through the ack.
    fn commit(
        &mut self,
        txn: &TransactionInfo,
        events: u64,
    ) -> impl Future<Output = Result<WriteAck, SinkError>> + Send {
        let _ = (txn, events);
        std::future::ready(Ok(WriteAck::durable()))
    }
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
            .map_err(|_| SinkError::write_failed("memory sink poisoned"))?
            .extend(batch);
        Ok(WriteAck::durable())
    }
}
