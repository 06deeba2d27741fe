//! Capture's own small state: whether the initial snapshot of a slot completed.
//!
//! The slot itself remembers the streaming position (`confirmed_flush_lsn`); what it
//! cannot tell is whether the snapshot taken when it was created was delivered in
//! full. That fact is written here, atomically, after every snapshot row is durable.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use cdc_core::Lsn;

use crate::error::SourceError;

/// A directory of per-slot marker files.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// A store in `dir` (created when missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CheckpointStore { dir: dir.into() }
    }

    fn path(&self, slot: &str) -> PathBuf {
        self.dir.join(format!("{slot}.snapshot-done"))
    }

    /// The consistent point of the slot's completed snapshot, if it completed.
    pub fn snapshot_done(&self, slot: &str) -> Result<Option<Lsn>, SourceError> {
        let path = self.path(slot);
        match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| SourceError::Checkpoint {
                    path: display(&path),
                    source: std::io::Error::other(e),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SourceError::Checkpoint {
                path: display(&path),
                source,
            }),
        }
    }

    /// Records that the snapshot taken at `consistent_point` is fully durable.
    pub fn mark_snapshot_done(&self, slot: &str, consistent_point: Lsn) -> Result<(), SourceError> {
        let path = self.path(slot);
        let err = |source| SourceError::Checkpoint {
            path: display(&path),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(err)?;
        let tmp = path.with_extension("tmp");
        let mut file = fs::File::create(&tmp).map_err(err)?;
        file.write_all(consistent_point.to_string().as_bytes())
            .map_err(err)?;
        file.sync_all().map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)?;
        Ok(())
    }

    /// Forgets the slot's snapshot (when the slot is dropped and created anew).
    pub fn clear(&self, slot: &str) -> Result<(), SourceError> {
        let path = self.path(slot);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SourceError::Checkpoint {
                path: display(&path),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("state"));
        assert_eq!(store.snapshot_done("s").unwrap(), None);
        store.mark_snapshot_done("s", Lsn(0x1_0000_0010)).unwrap();
        assert_eq!(
            CheckpointStore::new(dir.path().join("state"))
                .snapshot_done("s")
                .unwrap(),
            Some(Lsn(0x1_0000_0010))
        );
        store.clear("s").unwrap();
        assert_eq!(store.snapshot_done("s").unwrap(), None);
    }
}
