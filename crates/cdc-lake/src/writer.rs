//! One Kafka partition's stream of changes into its lake table, each change exactly once.
//!
//! # The commit chain
//!
//! A partition's commits cover consecutive, non-overlapping ranges of Kafka offsets. A
//! writer buffers the records from a *boundary* `start`, writes the rows as a file of its
//! own (records without a row, tombstones and dead letters, are covered but not stored),
//! and commits the file to its table with the transaction record (`<topic>+<partition>`,
//! `last`). The table takes the commit only if its record for the partition is below
//! `start` ([`crate::LakeTables::append`]); otherwise another writer (a restarted one, a
//! zombie, the partition's new owner) has committed those offsets: the writer deletes its
//! file, drops its buffered records up to the table's record, and goes on after it. The
//! Kafka offset is committed only after the table commit.
//!
//! Why no offset is committed twice: the record only grows, each commit covers from the
//! record plus one or later, and a commit and the check it was made on are one step (the
//! log entry after the version checked is created only if absent). Why none is lost: a
//! writer starts at the group's committed offset, below which every offset is in the
//! table, and only moves on past offsets a table commit holds.
//!
//! # Changes it already holds
//!
//! A partition carries its streamed changes in source order, each `(commit LSN, ordinal)`
//! above the one before. A streamed change at or below the highest position this writer
//! has taken since it started is one it already holds (re-sent by an at-least-once or an
//! older capture, or by another producer): it is left out of its file and counted
//! ([`Flushed::duplicates`]). It still counts as a record of the range (a file may then
//! hold no row at all). Snapshot rows are not compared: several snapshot workers
//! interleave their ordinals in a partition.

use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use cdc_core::{Position, TableSchema};
use object_store::ObjectStoreExt;

use crate::batch::{BatchBuilder, LakeRow};
use crate::layout::{commit_date, table_dir, DataFile};
use crate::parquet_file::{encode, ParquetOptions};
use crate::table::{Append, Appended, LakeTables, NewFile};
use crate::LakeError;

/// Footer key: the first Kafka offset a file covers (its chain start, at or before its first row).
pub const FIRST_OFFSET_KEY: &str = "totesys_cdc.kafka.first_offset";
/// Footer key: the last Kafka offset a file covers.
pub const LAST_OFFSET_KEY: &str = "totesys_cdc.kafka.last_offset";

/// When a partition's buffer becomes a file: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Rows buffered.
    pub max_rows: usize,
    /// Approximate encoded bytes buffered (the Avro size of the records).
    pub max_bytes: usize,
    /// Age of the oldest buffered record.
    pub max_age: Duration,
}

impl Default for FlushPolicy {
    /// 1 s keeps the lake's share of the 5 s freshness objective small.
    fn default() -> Self {
        FlushPolicy {
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_age: Duration::from_secs(1),
        }
    }
}

/// What a flush did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flushed {
    /// The file now covering the range (ours, or another writer's we adopted).
    pub file: DataFile,
    /// Offsets it covers, inclusive.
    pub first_offset: i64,
    /// Last offset it covers.
    pub last_offset: i64,
    /// Rows this writer wrote (0 when it adopted another writer's file).
    pub rows: usize,
    /// Encoded file size this writer wrote.
    pub bytes: usize,
    /// Whether the name was taken and this writer adopted the existing file.
    pub adopted: bool,
    /// Streamed changes the writer already held, left out of the file it wrote.
    pub duplicates: usize,
    /// Source commit times of the streamed (not snapshot) rows written, microseconds since the epoch.
    pub commit_ts_us: Vec<i64>,
    /// Time spent encoding and storing (or adopting) the file.
    pub duration: Duration,
}

impl Flushed {
    /// The offset to commit: everything before it is in the lake.
    pub fn commit_offset(&self) -> i64 {
        self.last_offset + 1
    }
}

/// Buffers one topic-partition's records and writes them as lake files.
pub struct PartitionWriter {
    tables: LakeTables,
    /// The lake group, recorded in each commit.
    group: String,
    topic: String,
    partition: i32,
    options: ParquetOptions,
    policy: FlushPolicy,
    /// The chain position: the next file starts here (`None` until the first record).
    next_offset: Option<i64>,
    /// The last offset seen (rows or not).
    last_seen: Option<i64>,
    rows: Vec<LakeRow>,
    bytes: usize,
    oldest: Option<Instant>,
    builder: Option<BatchBuilder>,
    /// The highest streamed position taken since the writer started.
    high: Option<Position>,
    /// Offsets of the buffered rows that repeat a change already taken (left out of files).
    repeated: BTreeSet<i64>,
}

impl PartitionWriter {
    /// A writer for `topic`'s `partition`; rows go to the table `raw/<their table>/`.
    pub fn new(
        tables: &LakeTables,
        topic: &str,
        partition: i32,
        options: ParquetOptions,
        policy: FlushPolicy,
    ) -> Self {
        PartitionWriter {
            tables: tables.clone(),
            group: String::new(),
            topic: topic.to_owned(),
            partition,
            options,
            policy,
            next_offset: None,
            last_seen: None,
            rows: Vec::new(),
            bytes: 0,
            oldest: None,
            builder: None,
            high: None,
            repeated: BTreeSet::new(),
        }
    }

    /// Records `group` (the lake group) in the writer's commits.
    pub fn with_group(mut self, group: &str) -> Self {
        self.group = group.to_owned();
        self
    }

    /// The offset the next file starts at, once known.
    pub fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }

    /// Rows waiting to be written.
    pub fn buffered(&self) -> usize {
        self.rows.len()
    }

    /// Places the chain at `offset`, a boundary (the group's committed offset, or the
    /// partition's first offset when nothing is committed); records before it are ignored.
    pub fn start_at(&mut self, offset: i64) {
        self.next_offset = Some(offset);
        self.last_seen = Some(offset - 1);
    }

    /// Takes a record without a row (a tombstone, a dead letter) at `offset`.
    pub fn skip(&mut self, offset: i64) {
        if !self.seen(offset) {
            self.see(offset);
        }
    }

    /// Takes every offset up to `last` that no record was read at as rowless (the
    /// consumer's position says nothing below it is still to come: Kafka transaction
    /// markers, records of aborted transactions). Only once the chain has started.
    pub fn skip_through(&mut self, last: i64) {
        if let Some(seen) = self.last_seen {
            if last > seen {
                self.last_seen = Some(last);
            }
        }
    }

    /// When nothing is buffered, moves the chain past the rowless records seen since the
    /// last file and returns the offset to commit; `None` when there is nothing to move.
    ///
    /// Safe because a file is named after its first row: every writer reading on from any
    /// boundary at or before this one names its next file after the same row.
    pub fn settle(&mut self) -> Option<i64> {
        let (next, last) = (self.next_offset?, self.last_seen?);
        if !self.rows.is_empty() || last < next {
            return None;
        }
        self.next_offset = Some(last + 1);
        Some(last + 1)
    }

    /// Takes a change read at `row.offset`, `size` bytes as encoded. Returns the files
    /// written (or adopted) first when the change cannot share the buffer (another table
    /// shape or another commit date).
    pub async fn push(
        &mut self,
        table: &TableSchema,
        row: LakeRow,
        size: usize,
    ) -> Result<Vec<Flushed>, LakeError> {
        let mut flushed = Vec::new();
        if self.seen(row.offset) {
            return Ok(flushed);
        }
        let same_shape = self.builder.as_ref().is_some_and(|b| b.table() == table);
        let same_date = self.rows.first().is_none_or(|first| {
            commit_date(first.event.source.commit_ts_us)
                == commit_date(row.event.source.commit_ts_us)
        });
        if !self.rows.is_empty() && (!same_shape || !same_date) {
            // The row starts the next file: the buffered rows end just before it. A file
            // another writer made first may cover only some of them (it flushed at another
            // row), so files are written until none is left in the old shape.
            while !self.rows.is_empty() {
                match self.flush_until(row.offset - 1).await? {
                    Some(file) => flushed.push(file),
                    None => break,
                }
            }
            if self.already_written(row.offset) {
                return Ok(flushed);
            }
        }
        if !same_shape {
            self.builder = Some(BatchBuilder::new(table.clone()));
        }
        self.see(row.offset);
        if !row.event.source.snapshot {
            let position = row.event.source.position();
            if self.high.is_some_and(|high| position <= high) {
                tracing::debug!(
                    topic = %self.topic,
                    partition = self.partition,
                    offset = row.offset,
                    commit_lsn = %row.event.source.commit_lsn,
                    ordinal = row.event.source.ordinal,
                    "a change already taken, read again at a later offset; leaving it out of the lake"
                );
                self.repeated.insert(row.offset);
            } else {
                self.high = Some(position);
            }
        }
        self.bytes += size;
        self.oldest.get_or_insert_with(Instant::now);
        self.rows.push(row);
        Ok(flushed)
    }

    /// Whether a limit of the flush policy is reached.
    pub fn due(&self, now: Instant) -> bool {
        self.rows.len() >= self.policy.max_rows
            || self.bytes >= self.policy.max_bytes
            || self
                .oldest
                .is_some_and(|oldest| now.duration_since(oldest) >= self.policy.max_age)
    }

    /// Writes the buffered rows as one file covering everything seen so far; `None` when
    /// no row is buffered.
    pub async fn flush(&mut self) -> Result<Option<Flushed>, LakeError> {
        match self.last_seen {
            Some(last) => self.flush_until(last).await,
            None => Ok(None),
        }
    }

    fn already_written(&self, offset: i64) -> bool {
        self.next_offset.is_some_and(|next| offset < next)
    }

    /// Whether the record at `offset` was taken before (a redelivery) or is in the lake.
    pub fn has_taken(&self, offset: i64) -> bool {
        self.seen(offset)
    }

    fn seen(&self, offset: i64) -> bool {
        self.already_written(offset) || self.last_seen.is_some_and(|last| offset <= last)
    }

    fn see(&mut self, offset: i64) {
        self.next_offset.get_or_insert(offset);
        self.last_seen = Some(self.last_seen.map_or(offset, |last| last.max(offset)));
    }

    /// Writes the buffered rows with offsets ≤ `last` as the file covering
    /// `[next_offset, last]`, named after its first row.
    async fn flush_until(&mut self, last: i64) -> Result<Option<Flushed>, LakeError> {
        let Some(start) = self.next_offset else {
            return Ok(None);
        };
        let take = self.rows.partition_point(|r| r.offset <= last);
        let (Some(first_row), Some(builder)) = (self.rows.first(), &self.builder) else {
            return Ok(None);
        };
        if take == 0 || last < start {
            return Ok(None);
        }
        let started = Instant::now();
        let file = DataFile {
            table: table_dir(&builder.table().name),
            date: commit_date(first_row.event.source.commit_ts_us),
            topic: self.topic.clone(),
            partition: self.partition,
            first_offset: first_row.offset,
            attempt: Some(crate::layout::new_attempt()),
        };
        let repeated = self.repeated.range(..=last).count();
        let batch = if repeated == 0 {
            builder.build(&self.rows[..take])?
        } else {
            let kept: Vec<LakeRow> = self.rows[..take]
                .iter()
                .filter(|r| !self.repeated.contains(&r.offset))
                .cloned()
                .collect();
            builder.build(&kept)?
        };
        let bytes = encode(
            &batch,
            &self.options,
            vec![
                ("totesys_cdc.kafka.topic".into(), self.topic.clone()),
                (
                    "totesys_cdc.kafka.partition".into(),
                    self.partition.to_string(),
                ),
                (FIRST_OFFSET_KEY.into(), start.to_string()),
                (LAST_OFFSET_KEY.into(), last.to_string()),
            ],
        )?;
        let size = bytes.len();
        let lake = self.tables.lake();
        let path = file.path(&lake.root);
        lake.ensure_dir(&file.dir(&lake.root))?;
        lake.put_new(&path, bytes).await?;
        let new_file = NewFile {
            date: file.date,
            name: file.name(),
            size: size as u64,
            batch,
        };
        let appended = self
            .tables
            .append(Append {
                dir: file.table.clone(),
                topic: self.topic.clone(),
                partition: self.partition,
                first_offset: start,
                last_offset: last,
                group: self.group.clone(),
                schema: new_file.batch.schema(),
                file: Some(new_file),
            })
            .await?;
        let flushed = match appended {
            Appended::Committed { .. } => {
                if repeated > 0 {
                    let first = self.repeated.first().copied().unwrap_or_default();
                    tracing::warn!(
                        topic = %self.topic,
                        partition = self.partition,
                        changes = repeated,
                        first_offset = first,
                        file = %path,
                        "left changes out of the lake that this writer had already taken (the same commit LSN and ordinal at a later offset: a producer wrote them twice)"
                    );
                }
                Flushed {
                    file,
                    first_offset: start,
                    last_offset: last,
                    rows: take - repeated,
                    bytes: size,
                    adopted: false,
                    duplicates: repeated,
                    commit_ts_us: self.rows[..take]
                        .iter()
                        .filter(|r| !r.event.source.snapshot && !self.repeated.contains(&r.offset))
                        .map(|r| r.event.source.commit_ts_us)
                        .collect(),
                    duration: started.elapsed(),
                }
            }
            Appended::Covered { through } => {
                tracing::info!(
                    topic = %self.topic,
                    partition = self.partition,
                    first_offset = start,
                    through,
                    "the table already holds these offsets (another writer committed them); dropping them"
                );
                // Never in the log: no reader sees it.
                if let Err(e) = lake.store.delete(&path).await {
                    tracing::warn!(path = %path, error = %e, "cannot delete a file the table refused; vacuum will");
                }
                Flushed {
                    file,
                    first_offset: start,
                    last_offset: through,
                    rows: 0,
                    bytes: 0,
                    adopted: true,
                    duplicates: 0,
                    commit_ts_us: Vec::new(),
                    duration: started.elapsed(),
                }
            }
        };
        self.next_offset = Some(flushed.last_offset + 1);
        // Drop what the file covers (after adopting a longer file, more than was written).
        let keep = self
            .rows
            .partition_point(|r| r.offset <= flushed.last_offset);
        self.rows.drain(..keep);
        self.repeated = self.repeated.split_off(&(flushed.last_offset + 1));
        if self
            .last_seen
            .is_some_and(|seen| seen < flushed.last_offset)
        {
            self.last_seen = Some(flushed.last_offset);
        }
        if self.rows.is_empty() {
            self.bytes = 0;
            self.oldest = None;
        }
        Ok(Some(flushed))
    }
}
