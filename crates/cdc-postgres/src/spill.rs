//! Streamed (in-progress) transactions spilled to disk until they commit or abort.
//!
//! ```text
//!   Stream Start(xid) ─► append (subxid, lsn, payload) records to <dir>/<xid>.spill
//!   Stream Commit(xid) ─► replay the file in order, skipping aborted subtransactions
//!   Stream Abort(xid)  ─► delete the file  (Abort(xid, subxid): remember subxid)
//! ```
//!
//! Memory stays bounded whatever the transaction's size: one buffered writer per open
//! transaction while streaming, one buffered reader while replaying.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use cdc_core::{Lsn, Xid};

use crate::error::SourceError;

/// Largest record accepted back from a spill file (a pgoutput message is far smaller).
const MAX_RECORD: usize = 1 << 30;

/// Open spill files, one per streamed top-level transaction.
#[derive(Debug)]
pub struct SpillStore {
    dir: tempfile::TempDir,
    open: HashMap<Xid, SpillFile>,
}

#[derive(Debug)]
struct SpillFile {
    path: PathBuf,
    writer: BufWriter<File>,
    aborted_subxacts: HashSet<Xid>,
    records: u64,
}

/// One spilled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpilledMessage {
    /// The (sub)transaction the message belongs to.
    pub xid: Xid,
    /// WAL position of the message.
    pub lsn: Lsn,
    /// The raw pgoutput payload.
    pub payload: Bytes,
}

impl SpillStore {
    /// A store in a fresh private directory under `parent`.
    pub fn new(parent: &Path) -> Result<Self, SourceError> {
        std::fs::create_dir_all(parent).map_err(|source| spill_err(parent, source))?;
        let dir = tempfile::Builder::new()
            .prefix("spill-")
            .tempdir_in(parent)
            .map_err(|source| spill_err(parent, source))?;
        Ok(SpillStore {
            dir,
            open: HashMap::new(),
        })
    }

    /// Appends a message of top-level transaction `top`.
    pub fn append(&mut self, top: Xid, message: &SpilledMessage) -> Result<(), SourceError> {
        let file = match self.open.entry(top) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let path = self.dir.path().join(format!("{}.spill", top.0));
                let handle = File::create(&path).map_err(|source| spill_err(&path, source))?;
                entry.insert(SpillFile {
                    writer: BufWriter::with_capacity(256 * 1024, handle),
                    path,
                    aborted_subxacts: HashSet::new(),
                    records: 0,
                })
            }
        };
        let len = u32::try_from(message.payload.len())
            .map_err(|_| spill_err(&file.path, std::io::Error::other("message over 4 GiB")))?;
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&message.xid.0.to_be_bytes());
        header[4..12].copy_from_slice(&message.lsn.0.to_be_bytes());
        header[12..16].copy_from_slice(&len.to_be_bytes());
        file.writer
            .write_all(&header)
            .and_then(|_| file.writer.write_all(&message.payload))
            .map_err(|source| spill_err(&file.path, source))?;
        file.records += 1;
        Ok(())
    }

    /// Forgets a whole transaction (`subxid == top`) or one of its subtransactions.
    pub fn abort(&mut self, top: Xid, subxid: Xid) -> Result<(), SourceError> {
        if top == subxid {
            if let Some(file) = self.open.remove(&top) {
                drop(file.writer);
                std::fs::remove_file(&file.path).map_err(|source| spill_err(&file.path, source))?;
            }
        } else if let Some(file) = self.open.get_mut(&top) {
            file.aborted_subxacts.insert(subxid);
        }
        Ok(())
    }

    /// Closes a committed transaction's file and returns a reader over its live
    /// messages (aborted subtransactions skipped); `None` when nothing was spilled.
    pub fn take_committed(&mut self, top: Xid) -> Result<Option<SpillReader>, SourceError> {
        let Some(file) = self.open.remove(&top) else {
            return Ok(None);
        };
        let SpillFile {
            path,
            writer,
            aborted_subxacts,
            records,
        } = file;
        writer
            .into_inner()
            .map_err(|e| spill_err(&path, e.into_error()))?;
        let handle = File::open(&path).map_err(|source| spill_err(&path, source))?;
        // Unlinked now; the open handle keeps the data readable until the reader drops.
        std::fs::remove_file(&path).map_err(|source| spill_err(&path, source))?;
        Ok(Some(SpillReader {
            reader: BufReader::with_capacity(256 * 1024, handle),
            path,
            aborted: aborted_subxacts,
            remaining: records,
        }))
    }

    /// Number of transactions currently spilled.
    pub fn open_transactions(&self) -> usize {
        self.open.len()
    }
}

/// Reads a committed transaction's spilled messages back in order.
#[derive(Debug)]
pub struct SpillReader {
    reader: BufReader<File>,
    path: PathBuf,
    aborted: HashSet<Xid>,
    remaining: u64,
}

impl SpillReader {
    /// The next live message, `None` at the end.
    pub fn next_message(&mut self) -> Result<Option<SpilledMessage>, SourceError> {
        while self.remaining > 0 {
            self.remaining -= 1;
            let mut header = [0u8; 16];
            self.reader
                .read_exact(&mut header)
                .map_err(|source| spill_err(&self.path, source))?;
            let xid = Xid(u32::from_be_bytes([
                header[0], header[1], header[2], header[3],
            ]));
            let mut lsn = [0u8; 8];
            lsn.copy_from_slice(&header[4..12]);
            let len = u32::from_be_bytes([header[12], header[13], header[14], header[15]]) as usize;
            if len > MAX_RECORD {
                return Err(spill_err(
                    &self.path,
                    std::io::Error::other("corrupt spill record length"),
                ));
            }
            let mut payload = vec![0u8; len];
            self.reader
                .read_exact(&mut payload)
                .map_err(|source| spill_err(&self.path, source))?;
            if self.aborted.contains(&xid) {
                continue;
            }
            return Ok(Some(SpilledMessage {
                xid,
                lsn: Lsn(u64::from_be_bytes(lsn)),
                payload: payload.into(),
            }));
        }
        Ok(None)
    }
}

fn spill_err(path: &Path, source: std::io::Error) -> SourceError {
    SourceError::Spill {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(xid: u32, lsn: u64, text: &str) -> SpilledMessage {
        SpilledMessage {
            xid: Xid(xid),
            lsn: Lsn(lsn),
            payload: Bytes::copy_from_slice(text.as_bytes()),
        }
    }

    fn drain(reader: &mut SpillReader) -> Vec<SpilledMessage> {
        std::iter::from_fn(|| reader.next_message().unwrap()).collect()
    }

    #[test]
    fn replays_in_order_without_aborted_subtransactions() {
        let parent = tempfile::tempdir().unwrap();
        let mut store = SpillStore::new(parent.path()).unwrap();
        store.append(Xid(7), &message(7, 1, "a")).unwrap();
        store.append(Xid(8), &message(8, 2, "other")).unwrap();
        store
            .append(Xid(7), &message(9, 3, "in aborted subxact"))
            .unwrap();
        store.append(Xid(7), &message(7, 4, "b")).unwrap();
        store.abort(Xid(7), Xid(9)).unwrap();
        let mut reader = store.take_committed(Xid(7)).unwrap().unwrap();
        assert_eq!(
            drain(&mut reader),
            vec![message(7, 1, "a"), message(7, 4, "b")]
        );
        assert_eq!(store.open_transactions(), 1);
        store.abort(Xid(8), Xid(8)).unwrap();
        assert_eq!(store.open_transactions(), 0);
        assert!(store.take_committed(Xid(8)).unwrap().is_none());
    }
}
