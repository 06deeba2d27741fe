//! Decoding of the messages PostgreSQL's `pgoutput` plugin writes into a logical slot.
//!
//! ```text
//!   WAL ──► logical decoding ──► pgoutput (filters by publication)
//!                                   │ one message per XLogData
//!                                   ▼
//!   walsender ── CopyData 'w' ──► walsender::ReplicationMessage::decode
//!                                   │ XLogData.data: Bytes
//!                                   ▼
//!                                 Decoder::decode ──► PgOutputMessage
//! ```
//!
//! Every XLogData payload of a `pgoutput` slot holds exactly one message: a type byte
//! followed by big-endian fields, as documented in PostgreSQL's "Logical Replication
//! Message Formats". Timestamps are converted to microseconds since the Unix epoch.
//!
//! # Protocol versions
//!
//! | version | adds |
//! |---|---|
//! | 1 | Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate, Message |
//! | 2 | streaming of large in-progress transactions: Stream Start/Stop/Commit/Abort |
//! | 3 | two-phase commit: Begin Prepare, Prepare, Commit Prepared, Rollback Prepared, Stream Prepare |
//! | 4 | parallel streaming: Stream Abort also carries the abort LSN and time |
//!
//! # Stream blocks
//!
//! Between Stream Start and Stream Stop, Relation, Type, Insert, Update, Delete,
//! Truncate and Message carry an extra leading transaction id (the sub-transaction
//! the change belongs to). Whether that field is there cannot be told from the bytes,
//! so [`Decoder`] remembers whether it is inside a stream block, and refuses messages
//! that PostgreSQL never sends there (or never sends outside one).
//!
//! The decoder never panics and never allocates more than the payload can justify:
//! every length is checked against the bytes that are actually there.

use std::fmt;
use std::str::Utf8Error;

use bytes::Bytes;
use cdc_core::{Lsn, ReplicaIdentity, TableId, TruncateOptions, Xid};

use crate::cursor::Reader;

/// A malformed message from the server; the text names the message, the offset and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload has no bytes at all.
    #[error("empty {protocol} payload: expected a message type byte at offset 0")]
    Empty {
        /// Which framing was being decoded (`pgoutput`, `replication CopyData`).
        protocol: &'static str,
    },
    /// The first byte names no message this decoder knows.
    #[error("unknown {protocol} message type {} at offset 0", ByteLiteral(*.tag))]
    UnknownMessage {
        /// Which framing was being decoded.
        protocol: &'static str,
        /// The type byte found.
        tag: u8,
    },
    /// The payload ends before a field is complete.
    #[error("{message} message truncated at offset {offset}: expected {field} ({needed} bytes), {available} left")]
    Truncated {
        /// The message being decoded.
        message: &'static str,
        /// Where the field starts.
        offset: usize,
        /// The field that is cut short.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A string runs to the end of the payload without its NUL terminator.
    #[error("{message} message: {field} at offset {offset} has no terminating NUL byte")]
    UnterminatedString {
        /// The message being decoded.
        message: &'static str,
        /// Where the string starts.
        offset: usize,
        /// The string field.
        field: &'static str,
    },
    /// A string is not valid UTF-8.
    #[error("{message} message: {field} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// The message being decoded.
        message: &'static str,
        /// Where the string starts.
        offset: usize,
        /// The string field.
        field: &'static str,
        /// The cause.
        #[source]
        source: Utf8Error,
    },
    /// A byte that selects a variant (tuple kind, replica identity, …) has a value the protocol does not define.
    #[error("{message} message: found {} at offset {offset}, expected {expected}", ByteLiteral(*.found))]
    UnexpectedByte {
        /// The message being decoded.
        message: &'static str,
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        found: u8,
        /// What the protocol allows there.
        expected: &'static str,
    },
    /// A count or length field is negative.
    #[error("{message} message: {field} at offset {offset} is negative ({value})")]
    NegativeLength {
        /// The message being decoded.
        message: &'static str,
        /// Where the field is.
        offset: usize,
        /// The count or length field.
        field: &'static str,
        /// The value found.
        value: i32,
    },
    /// Bytes follow a message that is already complete.
    #[error(
        "{message} message has {count} trailing bytes at offset {offset} after its last field"
    )]
    TrailingBytes {
        /// The message decoded.
        message: &'static str,
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// The message cannot come at this point of the stream (inside or outside a stream block).
    #[error("{message} message at offset 0 is not allowed {place}")]
    OutOfPlace {
        /// The message found.
        message: &'static str,
        /// Where the decoder was, e.g. "inside a stream block".
        place: &'static str,
    },
    /// The message belongs to a later protocol version than the one requested from the server.
    #[error("{message} message at offset 0 needs pgoutput protocol version {required} or later, but the decoder is set up for version {configured}")]
    ProtocolVersion {
        /// The message found.
        message: &'static str,
        /// The first version that has it.
        required: u32,
        /// The version the decoder was created with.
        configured: u32,
    },
}

/// Prints a byte as a quoted ASCII character and its hex value, e.g. `'K' (0x4b)`.
struct ByteLiteral(u8);

impl fmt::Display for ByteLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}' (0x{:02x})", char::from(self.0), self.0)
        } else {
            write!(f, "0x{:02x}", self.0)
        }
    }
}

/// One decoded `pgoutput` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgOutputMessage {
    /// 'B': a transaction starts.
    Begin(Begin),
    /// 'C': the transaction started by the last Begin commits.
    Commit(Commit),
    /// 'O': the current transaction was replicated from another origin.
    Origin(Origin),
    /// 'R': the shape of a table, sent before its first change (and after every change of shape).
    Relation(Relation),
    /// 'Y': the name of a non-built-in data type used by a later Relation.
    Type(TypeInfo),
    /// 'I': a row was inserted.
    Insert(Insert),
    /// 'U': a row was updated.
    Update(Update),
    /// 'D': a row was deleted.
    Delete(Delete),
    /// 'T': tables were truncated.
    Truncate(Truncate),
    /// 'M': a message written with `pg_logical_emit_message`.
    Message(LogicalMessage),
    /// 'S': a chunk of a large in-progress transaction follows (protocol 2).
    StreamStart(StreamStart),
    /// 'E': the current chunk of a streamed transaction ends (protocol 2).
    StreamStop,
    /// 'c': a streamed transaction commits (protocol 2).
    StreamCommit(StreamCommit),
    /// 'A': a streamed transaction, or one of its sub-transactions, aborts (protocol 2).
    StreamAbort(StreamAbort),
    /// 'b': a transaction that will be prepared for two-phase commit starts (protocol 3).
    BeginPrepare(PrepareInfo),
    /// 'P': the transaction started by Begin Prepare is prepared (protocol 3).
    Prepare(PrepareInfo),
    /// 'K': a prepared transaction is committed (protocol 3).
    CommitPrepared(CommitPrepared),
    /// 'r': a prepared transaction is rolled back (protocol 3).
    RollbackPrepared(RollbackPrepared),
    /// 'p': a streamed transaction is prepared (protocol 3).
    StreamPrepare(PrepareInfo),
}

impl PgOutputMessage {
    /// The message's name as the PostgreSQL documentation spells it, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            PgOutputMessage::Begin(_) => "Begin",
            PgOutputMessage::Commit(_) => "Commit",
            PgOutputMessage::Origin(_) => "Origin",
            PgOutputMessage::Relation(_) => "Relation",
            PgOutputMessage::Type(_) => "Type",
            PgOutputMessage::Insert(_) => "Insert",
            PgOutputMessage::Update(_) => "Update",
            PgOutputMessage::Delete(_) => "Delete",
            PgOutputMessage::Truncate(_) => "Truncate",
            PgOutputMessage::Message(_) => "Message",
            PgOutputMessage::StreamStart(_) => "Stream Start",
            PgOutputMessage::StreamStop => "Stream Stop",
            PgOutputMessage::StreamCommit(_) => "Stream Commit",
            PgOutputMessage::StreamAbort(_) => "Stream Abort",
            PgOutputMessage::BeginPrepare(_) => "Begin Prepare",
            PgOutputMessage::Prepare(_) => "Prepare",
            PgOutputMessage::CommitPrepared(_) => "Commit Prepared",
            PgOutputMessage::RollbackPrepared(_) => "Rollback Prepared",
            PgOutputMessage::StreamPrepare(_) => "Stream Prepare",
        }
    }
}

/// The start of a transaction ('B').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    /// LSN of the transaction's commit record.
    pub final_lsn: Lsn,
    /// Commit time, microseconds since the Unix epoch.
    pub commit_time_micros: i64,
    /// The transaction id.
    pub xid: Xid,
}

/// The commit of the current transaction ('C').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// LSN just past the commit record: the position to confirm once the transaction is durable.
    pub end_lsn: Lsn,
    /// Commit time, microseconds since the Unix epoch.
    pub commit_time_micros: i64,
}

/// The replication origin of the current transaction ('O').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// LSN of the commit on the origin server.
    pub commit_lsn: Lsn,
    /// The origin's name.
    pub name: String,
}

/// A table's shape as pgoutput describes it ('R').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The (sub-)transaction id, present only inside a stream block.
    pub xid: Option<Xid>,
    /// The table's OID.
    pub id: TableId,
    /// The schema name (empty for `pg_catalog`).
    pub namespace: String,
    /// The table name.
    pub name: String,
    /// The table's `REPLICA IDENTITY` setting.
    pub replica_identity: ReplicaIdentity,
    /// The published columns, in the order tuples send them.
    pub columns: Vec<RelationColumn>,
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Whether the column is part of the replica identity key.
    pub is_key: bool,
    /// The column name.
    pub name: String,
    /// The OID of the column's data type.
    pub type_oid: u32,
    /// The type modifier (`atttypmod`), -1 when none.
    pub type_modifier: i32,
}

/// The name of a data type that is not built in ('Y').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// The (sub-)transaction id, present only inside a stream block.
    pub xid: Option<Xid>,
    /// The type's OID.
    pub type_oid: u32,
    /// The schema name (empty for `pg_catalog`).
    pub namespace: String,
    /// The type name.
    pub name: String,
}

/// A row image: one value per column of the relation, in column order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TupleData(pub Vec<TupleValue>);

/// One column value inside a [`TupleData`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    /// 'n': SQL NULL.
    Null,
    /// 'u': a TOASTed value that did not change and was not sent.
    UnchangedToast,
    /// 't': the value in the type's text output format.
    Text(Bytes),
    /// 'b': the value in the type's binary format (only with the `binary` option).
    Binary(Bytes),
}

/// The old row sent with an update or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldTuple {
    /// 'K': only the replica identity key columns are meaningful; the others are NULL.
    Key(TupleData),
    /// 'O': every column (`REPLICA IDENTITY FULL`).
    Full(TupleData),
}

impl OldTuple {
    /// The row image, whichever kind it is.
    pub fn tuple(&self) -> &TupleData {
        match self {
            OldTuple::Key(t) | OldTuple::Full(t) => t,
        }
    }
}

/// An inserted row ('I').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert {
    /// The (sub-)transaction id, present only inside a stream block.
    pub xid: Option<Xid>,
    /// The table's OID.
    pub relation: TableId,
    /// The new row.
    pub new: TupleData,
}

/// An updated row ('U').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The (sub-)transaction id, present only inside a stream block.
    pub xid: Option<Xid>,
    /// The table's OID.
    pub relation: TableId,
    /// The old key (when the key changed) or old row (`REPLICA IDENTITY FULL`), if sent.
    pub old: Option<OldTuple>,
    /// The new row; unchanged TOASTed columns are [`TupleValue::UnchangedToast`].
    pub new: TupleData,
}

/// A deleted row ('D').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// The (sub-)transaction id, present only inside a stream block.
    pub xid: Option<Xid>,
    /// The table's OID.
    pub relation: TableId,
    /// The old key or, under `REPLICA IDENTITY FULL`, the old row.
    pub old: OldTuple,
}

/// A `TRUNCATE` of one or more tables ('T').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    /// The (sub-)transaction id, present only inside a stream block.
    pub xid: Option<Xid>,
    /// `CASCADE` and `RESTART IDENTITY`.
    pub options: TruncateOptions,
    /// The OIDs of the truncated tables.
    pub relations: Vec<TableId>,
}

/// A message written with `pg_logical_emit_message` ('M').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalMessage {
    /// The (sub-)transaction id, present only inside a stream block.
    pub xid: Option<Xid>,
    /// Whether the message is part of its transaction (else it was sent immediately).
    pub transactional: bool,
    /// LSN of the message.
    pub lsn: Lsn,
    /// The prefix the writer chose.
    pub prefix: String,
    /// The content, as raw bytes.
    pub content: Bytes,
}

/// The start of a chunk of a streamed transaction ('S').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStart {
    /// The top-level transaction id.
    pub xid: Xid,
    /// Whether this is the transaction's first chunk.
    pub first_segment: bool,
}

/// The commit of a streamed transaction ('c').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCommit {
    /// The top-level transaction id.
    pub xid: Xid,
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// LSN just past the commit record.
    pub end_lsn: Lsn,
    /// Commit time, microseconds since the Unix epoch.
    pub commit_time_micros: i64,
}

/// The abort of a streamed transaction or of one of its sub-transactions ('A').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamAbort {
    /// The top-level transaction id.
    pub xid: Xid,
    /// The aborted sub-transaction (equal to `xid` when the whole transaction aborts).
    pub subxid: Xid,
    /// LSN of the abort record; only in parallel streaming (protocol 4).
    pub abort_lsn: Option<Lsn>,
    /// Abort time in microseconds since the Unix epoch; only in parallel streaming (protocol 4).
    pub abort_time_micros: Option<i64>,
}

/// A prepared transaction's position and identity, sent by Begin Prepare, Prepare and Stream Prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareInfo {
    /// LSN of the prepare record.
    pub prepare_lsn: Lsn,
    /// LSN just past the prepared transaction.
    pub end_lsn: Lsn,
    /// Prepare time, microseconds since the Unix epoch.
    pub prepare_time_micros: i64,
    /// The transaction id.
    pub xid: Xid,
    /// The global transaction id given to `PREPARE TRANSACTION`.
    pub gid: String,
}

/// `COMMIT PREPARED` of a prepared transaction ('K').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPrepared {
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// LSN just past the commit record.
    pub end_lsn: Lsn,
    /// Commit time, microseconds since the Unix epoch.
    pub commit_time_micros: i64,
    /// The transaction id.
    pub xid: Xid,
    /// The global transaction id.
    pub gid: String,
}

/// `ROLLBACK PREPARED` of a prepared transaction ('r').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackPrepared {
    /// LSN just past the prepared transaction.
    pub prepare_end_lsn: Lsn,
    /// LSN just past the rollback record.
    pub rollback_end_lsn: Lsn,
    /// Prepare time, microseconds since the Unix epoch.
    pub prepare_time_micros: i64,
    /// Rollback time, microseconds since the Unix epoch.
    pub rollback_time_micros: i64,
    /// The transaction id.
    pub xid: Xid,
    /// The global transaction id.
    pub gid: String,
}

/// Where a message may appear relative to stream blocks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Only outside a stream block (transaction boundaries, Stream Start).
    Outside,
    /// Only inside a stream block (Stream Stop).
    Inside,
    /// Either (changes, Origin).
    Anywhere,
}

/// The name, first protocol version and placement of a message type byte.
fn message_info(tag: u8) -> Option<(&'static str, u32, Placement)> {
    use Placement::{Anywhere, Inside, Outside};
    Some(match tag {
        b'B' => ("Begin", 1, Outside),
        b'C' => ("Commit", 1, Outside),
        b'O' => ("Origin", 1, Anywhere),
        b'R' => ("Relation", 1, Anywhere),
        b'Y' => ("Type", 1, Anywhere),
        b'I' => ("Insert", 1, Anywhere),
        b'U' => ("Update", 1, Anywhere),
        b'D' => ("Delete", 1, Anywhere),
        b'T' => ("Truncate", 1, Anywhere),
        b'M' => ("Message", 1, Anywhere),
        b'S' => ("Stream Start", 2, Outside),
        b'E' => ("Stream Stop", 2, Inside),
        b'c' => ("Stream Commit", 2, Outside),
        b'A' => ("Stream Abort", 2, Outside),
        b'b' => ("Begin Prepare", 3, Outside),
        b'P' => ("Prepare", 3, Outside),
        b'K' => ("Commit Prepared", 3, Outside),
        b'r' => ("Rollback Prepared", 3, Outside),
        b'p' => ("Stream Prepare", 3, Outside),
        _ => return None,
    })
}

/// Truncate option bit for `CASCADE`.
const TRUNCATE_CASCADE: u8 = 1;
/// Truncate option bit for `RESTART IDENTITY`.
const TRUNCATE_RESTART_IDENTITY: u8 = 2;
/// The smallest encoding of a Relation column: flags, empty name, type OID, type modifier.
const MIN_RELATION_COLUMN_LEN: usize = 1 + 1 + 4 + 4;

/// A stateful decoder of one slot's pgoutput messages, in the order the server sends them.
///
/// It tracks whether it is inside a stream block, because that decides whether change
/// messages carry a transaction id. A failed decode leaves that state unchanged.
#[derive(Debug, Clone)]
pub struct Decoder {
    protocol_version: u32,
    parallel_streaming: bool,
    stream_xid: Option<Xid>,
}

impl Decoder {
    /// A decoder for the `proto_version` (1–4) and `streaming = parallel` asked of the server.
    pub fn new(protocol_version: u32, parallel_streaming: bool) -> Self {
        Decoder {
            protocol_version,
            parallel_streaming,
            stream_xid: None,
        }
    }

    /// The protocol version the decoder was created with.
    pub fn protocol_version(&self) -> u32 {
        self.protocol_version
    }

    /// Whether Stream Abort messages carry the abort LSN and time (parallel streaming, protocol 4+).
    pub fn parallel_abort_fields(&self) -> bool {
        self.parallel_streaming && self.protocol_version >= 4
    }

    /// The transaction of the open stream block, `None` outside one.
    pub fn stream_xid(&self) -> Option<Xid> {
        self.stream_xid
    }

    /// Decodes one message (the data of one XLogData), updating the stream-block state.
    pub fn decode(&mut self, payload: Bytes) -> Result<PgOutputMessage, DecodeError> {
        let Some(&tag) = payload.first() else {
            return Err(DecodeError::Empty {
                protocol: "pgoutput",
            });
        };
        let Some((name, required, placement)) = message_info(tag) else {
            return Err(DecodeError::UnknownMessage {
                protocol: "pgoutput",
                tag,
            });
        };
        if self.protocol_version < required {
            return Err(DecodeError::ProtocolVersion {
                message: name,
                required,
                configured: self.protocol_version,
            });
        }
        let in_stream = self.stream_xid.is_some();
        match (placement, in_stream) {
            (Placement::Outside, true) => {
                return Err(DecodeError::OutOfPlace {
                    message: name,
                    place: "inside a stream block (after Stream Start, before Stream Stop)",
                })
            }
            (Placement::Inside, false) => {
                return Err(DecodeError::OutOfPlace {
                    message: name,
                    place: "outside a stream block (no Stream Start before it)",
                })
            }
            _ => {}
        }

        let mut r = Reader::new(payload, name);
        r.u8("message type")?;
        let message = self.decode_body(tag, &mut r, in_stream)?;
        r.finish()?;

        match &message {
            PgOutputMessage::StreamStart(start) => self.stream_xid = Some(start.xid),
            PgOutputMessage::StreamStop => self.stream_xid = None,
            _ => {}
        }
        Ok(message)
    }

    fn decode_body(
        &self,
        tag: u8,
        r: &mut Reader,
        in_stream: bool,
    ) -> Result<PgOutputMessage, DecodeError> {
        // Changes carry the (sub-)transaction id only inside a stream block.
        let streamed_xid = |r: &mut Reader| -> Result<Option<Xid>, DecodeError> {
            if in_stream {
                r.xid("transaction id (Int32)").map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(match tag {
            b'B' => PgOutputMessage::Begin(Begin {
                final_lsn: r.lsn("final LSN (Int64)")?,
                commit_time_micros: r.timestamp("commit timestamp (Int64)")?,
                xid: r.xid("transaction id (Int32)")?,
            }),
            b'C' => {
                r.u8("flags (Int8)")?;
                PgOutputMessage::Commit(Commit {
                    commit_lsn: r.lsn("commit LSN (Int64)")?,
                    end_lsn: r.lsn("end LSN (Int64)")?,
                    commit_time_micros: r.timestamp("commit timestamp (Int64)")?,
                })
            }
            b'O' => PgOutputMessage::Origin(Origin {
                commit_lsn: r.lsn("origin commit LSN (Int64)")?,
                name: r.string("origin name (String)")?,
            }),
            b'R' => {
                let xid = streamed_xid(r)?;
                let id = TableId(r.u32("relation OID (Int32)")?);
                let namespace = r.string("namespace (String)")?;
                let name = r.string("relation name (String)")?;
                let at = r.offset();
                let code = r.u8("replica identity (Int8)")?;
                let replica_identity = ReplicaIdentity::from_code(code).ok_or_else(|| {
                    r.unexpected(at, code, "replica identity 'd', 'n', 'f' or 'i'")
                })?;
                let count = r.count16("column count (Int16)")?;
                let mut columns =
                    Vec::with_capacity(count.min(r.remaining() / MIN_RELATION_COLUMN_LEN));
                for _ in 0..count {
                    let flags = r.u8("column flags (Int8)")?;
                    columns.push(RelationColumn {
                        is_key: flags & 1 != 0,
                        name: r.string("column name (String)")?,
                        type_oid: r.u32("column type OID (Int32)")?,
                        type_modifier: r.i32("column type modifier (Int32)")?,
                    });
                }
                PgOutputMessage::Relation(Relation {
                    xid,
                    id,
                    namespace,
                    name,
                    replica_identity,
                    columns,
                })
            }
            b'Y' => PgOutputMessage::Type(TypeInfo {
                xid: streamed_xid(r)?,
                type_oid: r.u32("type OID (Int32)")?,
                namespace: r.string("namespace (String)")?,
                name: r.string("type name (String)")?,
            }),
            b'I' => {
                let xid = streamed_xid(r)?;
                let relation = TableId(r.u32("relation OID (Int32)")?);
                r.tag(b'N', "new tuple marker 'N'")?;
                PgOutputMessage::Insert(Insert {
                    xid,
                    relation,
                    new: tuple(r)?,
                })
            }
            b'U' => {
                let xid = streamed_xid(r)?;
                let relation = TableId(r.u32("relation OID (Int32)")?);
                let at = r.offset();
                let marker = r.u8("tuple marker 'K', 'O' or 'N'")?;
                let old = match marker {
                    b'K' => Some(OldTuple::Key(tuple(r)?)),
                    b'O' => Some(OldTuple::Full(tuple(r)?)),
                    b'N' => None,
                    other => return Err(r.unexpected(at, other, "tuple marker 'K', 'O' or 'N'")),
                };
                if old.is_some() {
                    r.tag(b'N', "new tuple marker 'N'")?;
                }
                PgOutputMessage::Update(Update {
                    xid,
                    relation,
                    old,
                    new: tuple(r)?,
                })
            }
            b'D' => {
                let xid = streamed_xid(r)?;
                let relation = TableId(r.u32("relation OID (Int32)")?);
                let at = r.offset();
                let marker = r.u8("old tuple marker 'K' or 'O'")?;
                let old = match marker {
                    b'K' => OldTuple::Key(tuple(r)?),
                    b'O' => OldTuple::Full(tuple(r)?),
                    other => return Err(r.unexpected(at, other, "old tuple marker 'K' or 'O'")),
                };
                PgOutputMessage::Delete(Delete { xid, relation, old })
            }
            b'T' => {
                let xid = streamed_xid(r)?;
                let count = r.count32("relation count (Int32)")?;
                let bits = r.u8("options (Int8)")?;
                let options = TruncateOptions {
                    cascade: bits & TRUNCATE_CASCADE != 0,
                    restart_identity: bits & TRUNCATE_RESTART_IDENTITY != 0,
                };
                let mut relations = Vec::with_capacity(count.min(r.remaining() / 4));
                for _ in 0..count {
                    relations.push(TableId(r.u32("relation OID (Int32)")?));
                }
                PgOutputMessage::Truncate(Truncate {
                    xid,
                    options,
                    relations,
                })
            }
            b'M' => {
                let xid = streamed_xid(r)?;
                let flags = r.u8("flags (Int8)")?;
                let lsn = r.lsn("message LSN (Int64)")?;
                let prefix = r.string("prefix (String)")?;
                let len = r.count32("content length (Int32)")?;
                let content = r.bytes(len, "content (Byten)")?;
                PgOutputMessage::Message(LogicalMessage {
                    xid,
                    transactional: flags & 1 != 0,
                    lsn,
                    prefix,
                    content,
                })
            }
            b'S' => PgOutputMessage::StreamStart(StreamStart {
                xid: r.xid("transaction id (Int32)")?,
                first_segment: r.u8("first segment flag (Int8)")? != 0,
            }),
            b'E' => PgOutputMessage::StreamStop,
            b'c' => {
                let xid = r.xid("transaction id (Int32)")?;
                r.u8("flags (Int8)")?;
                PgOutputMessage::StreamCommit(StreamCommit {
                    xid,
                    commit_lsn: r.lsn("commit LSN (Int64)")?,
                    end_lsn: r.lsn("end LSN (Int64)")?,
                    commit_time_micros: r.timestamp("commit timestamp (Int64)")?,
                })
            }
            b'A' => {
                let xid = r.xid("transaction id (Int32)")?;
                let subxid = r.xid("sub-transaction id (Int32)")?;
                let (abort_lsn, abort_time_micros) = if self.parallel_abort_fields() {
                    (
                        Some(r.lsn("abort LSN (Int64)")?),
                        Some(r.timestamp("abort timestamp (Int64)")?),
                    )
                } else {
                    (None, None)
                };
                PgOutputMessage::StreamAbort(StreamAbort {
                    xid,
                    subxid,
                    abort_lsn,
                    abort_time_micros,
                })
            }
            b'b' => PgOutputMessage::BeginPrepare(prepare_info(r)?),
            b'P' => {
                r.u8("flags (Int8)")?;
                PgOutputMessage::Prepare(prepare_info(r)?)
            }
            b'K' => {
                r.u8("flags (Int8)")?;
                PgOutputMessage::CommitPrepared(CommitPrepared {
                    commit_lsn: r.lsn("commit LSN (Int64)")?,
                    end_lsn: r.lsn("end LSN (Int64)")?,
                    commit_time_micros: r.timestamp("commit timestamp (Int64)")?,
                    xid: r.xid("transaction id (Int32)")?,
                    gid: r.string("GID (String)")?,
                })
            }
            b'r' => {
                r.u8("flags (Int8)")?;
                PgOutputMessage::RollbackPrepared(RollbackPrepared {
                    prepare_end_lsn: r.lsn("prepare end LSN (Int64)")?,
                    rollback_end_lsn: r.lsn("rollback end LSN (Int64)")?,
                    prepare_time_micros: r.timestamp("prepare timestamp (Int64)")?,
                    rollback_time_micros: r.timestamp("rollback timestamp (Int64)")?,
                    xid: r.xid("transaction id (Int32)")?,
                    gid: r.string("GID (String)")?,
                })
            }
            b'p' => {
                r.u8("flags (Int8)")?;
                PgOutputMessage::StreamPrepare(prepare_info(r)?)
            }
            other => {
                return Err(DecodeError::UnknownMessage {
                    protocol: "pgoutput",
                    tag: other,
                })
            }
        })
    }
}

/// Reads the fields Begin Prepare, Prepare and Stream Prepare share (after any flags byte).
fn prepare_info(r: &mut Reader) -> Result<PrepareInfo, DecodeError> {
    Ok(PrepareInfo {
        prepare_lsn: r.lsn("prepare LSN (Int64)")?,
        end_lsn: r.lsn("end LSN (Int64)")?,
        prepare_time_micros: r.timestamp("prepare timestamp (Int64)")?,
        xid: r.xid("transaction id (Int32)")?,
        gid: r.string("GID (String)")?,
    })
}

/// Reads a TupleData: a column count, then per column a kind byte and, for text and
/// binary values, a length and the bytes.
fn tuple(r: &mut Reader) -> Result<TupleData, DecodeError> {
    let count = r.count16("tuple column count (Int16)")?;
    // Every column takes at least its kind byte, so this never over-allocates.
    let mut values = Vec::with_capacity(count.min(r.remaining()));
    for _ in 0..count {
        let at = r.offset();
        let kind = r.u8("tuple column kind (Byte1)")?;
        let value = match kind {
            b'n' => TupleValue::Null,
            b'u' => TupleValue::UnchangedToast,
            b't' => {
                let len = r.count32("text value length (Int32)")?;
                TupleValue::Text(r.bytes(len, "text value (Byten)")?)
            }
            b'b' => {
                let len = r.count32("binary value length (Int32)")?;
                TupleValue::Binary(r.bytes(len, "binary value (Byten)")?)
            }
            other => return Err(r.unexpected(at, other, "tuple column kind 'n', 'u', 't' or 'b'")),
        };
        values.push(value);
    }
    Ok(TupleData(values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walsender::PG_EPOCH_OFFSET_MICROS;
    use proptest::prelude::*;

    /// 2024-01-01 00:00:00.000123 UTC, in Unix-epoch micros.
    const T: i64 = 1_704_067_200_000_123;

    /// A tiny encoder that writes pgoutput fields the way the server does.
    struct Wire(Vec<u8>);

    impl Wire {
        fn new(tag: u8) -> Self {
            Wire(vec![tag])
        }
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn i16(mut self, v: i16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        /// A timestamp given in Unix micros, written in PostgreSQL-epoch micros.
        fn time(mut self, unix_micros: i64) -> Self {
            self.0
                .extend_from_slice(&(unix_micros - PG_EPOCH_OFFSET_MICROS).to_be_bytes());
            self
        }
        fn str(mut self, s: &str) -> Self {
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(0);
            self
        }
        fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
        fn tuple(mut self, values: &[TupleValue]) -> Self {
            self = self.i16(values.len() as i16);
            for value in values {
                self = match value {
                    TupleValue::Null => self.u8(b'n'),
                    TupleValue::UnchangedToast => self.u8(b'u'),
                    TupleValue::Text(b) => self.u8(b't').i32(b.len() as i32).raw(b),
                    TupleValue::Binary(b) => self.u8(b'b').i32(b.len() as i32).raw(b),
                };
            }
            self
        }
        fn bytes(self) -> Bytes {
            Bytes::from(self.0)
        }
    }

    fn text(s: &'static str) -> TupleValue {
        TupleValue::Text(Bytes::from_static(s.as_bytes()))
    }

    /// A decoder inside the stream block of `xid`.
    fn streaming(version: u32, xid: u32) -> Decoder {
        let mut decoder = Decoder::new(version, false);
        let start = Wire::new(b'S').u32(xid).u8(1).bytes();
        decoder.decode(start).unwrap();
        decoder
    }

    /// One message on the wire, the decoder state it arrives in, and what it must decode to.
    struct Case {
        name: &'static str,
        decoder: Decoder,
        wire: Bytes,
        expected: PgOutputMessage,
    }

    fn case(name: &'static str, decoder: Decoder, wire: Wire, expected: PgOutputMessage) -> Case {
        Case {
            name,
            decoder,
            wire: wire.bytes(),
            expected,
        }
    }

    fn check(case: Case) {
        let mut decoder = case.decoder.clone();
        assert_eq!(
            decoder.decode(case.wire.clone()),
            Ok(case.expected),
            "{}",
            case.name
        );
    }

    fn begin() -> Case {
        case(
            "begin",
            Decoder::new(1, false),
            Wire::new(b'B').u64(0x16_B374_D848).time(T).u32(742),
            PgOutputMessage::Begin(Begin {
                final_lsn: Lsn(0x16_B374_D848),
                commit_time_micros: T,
                xid: Xid(742),
            }),
        )
    }

    fn commit() -> Case {
        case(
            "commit",
            Decoder::new(1, false),
            Wire::new(b'C').u8(0).u64(100).u64(120).time(T),
            PgOutputMessage::Commit(Commit {
                commit_lsn: Lsn(100),
                end_lsn: Lsn(120),
                commit_time_micros: T,
            }),
        )
    }

    fn origin() -> Case {
        case(
            "origin",
            Decoder::new(1, false),
            Wire::new(b'O').u64(55).str("pg_16399"),
            PgOutputMessage::Origin(Origin {
                commit_lsn: Lsn(55),
                name: "pg_16399".into(),
            }),
        )
    }

    fn relation() -> Case {
        case(
            "relation",
            Decoder::new(1, false),
            Wire::new(b'R')
                .u32(16_385)
                .str("public")
                .str("sales_order")
                .u8(b'd')
                .i16(3)
                .u8(1)
                .str("sales_order_id")
                .u32(23)
                .i32(-1)
                .u8(0)
                .str("unit_price")
                .u32(1700)
                .i32((10 << 16 | 2) + 4)
                .u8(0)
                .str("désignation")
                .u32(25)
                .i32(-1),
            PgOutputMessage::Relation(Relation {
                xid: None,
                id: TableId(16_385),
                namespace: "public".into(),
                name: "sales_order".into(),
                replica_identity: ReplicaIdentity::Default,
                columns: vec![
                    RelationColumn {
                        is_key: true,
                        name: "sales_order_id".into(),
                        type_oid: 23,
                        type_modifier: -1,
                    },
                    RelationColumn {
                        is_key: false,
                        name: "unit_price".into(),
                        type_oid: 1700,
                        type_modifier: (10 << 16 | 2) + 4,
                    },
                    RelationColumn {
                        is_key: false,
                        name: "désignation".into(),
                        type_oid: 25,
                        type_modifier: -1,
                    },
                ],
            }),
        )
    }

    fn relation_without_columns() -> Case {
        case(
            "relation without columns",
            Decoder::new(1, false),
            Wire::new(b'R').u32(1).str("").str("t").u8(b'n').i16(0),
            PgOutputMessage::Relation(Relation {
                xid: None,
                id: TableId(1),
                namespace: String::new(),
                name: "t".into(),
                replica_identity: ReplicaIdentity::Nothing,
                columns: vec![],
            }),
        )
    }

    fn type_info() -> Case {
        case(
            "type",
            Decoder::new(1, false),
            Wire::new(b'Y').u32(16_400).str("public").str("txn_type"),
            PgOutputMessage::Type(TypeInfo {
                xid: None,
                type_oid: 16_400,
                namespace: "public".into(),
                name: "txn_type".into(),
            }),
        )
    }

    fn insert() -> Case {
        let values = vec![
            text("1"),
            TupleValue::Null,
            text(""),
            TupleValue::Binary(Bytes::from_static(&[0, 0, 0, 7])),
        ];
        case(
            "insert",
            Decoder::new(1, false),
            Wire::new(b'I').u32(16_385).u8(b'N').tuple(&values),
            PgOutputMessage::Insert(Insert {
                xid: None,
                relation: TableId(16_385),
                new: TupleData(values.clone()),
            }),
        )
    }

    fn update_plain() -> Case {
        let new = vec![text("1"), text("9.99")];
        case(
            "update without old row",
            Decoder::new(1, false),
            Wire::new(b'U').u32(16_385).u8(b'N').tuple(&new),
            PgOutputMessage::Update(Update {
                xid: None,
                relation: TableId(16_385),
                old: None,
                new: TupleData(new.clone()),
            }),
        )
    }

    /// An update carrying its old row: after `b'K'` the old key, after `b'O'` all of it.
    fn update_with_old(
        name: &'static str,
        old_tag: u8,
        old: Vec<TupleValue>,
        new: Vec<TupleValue>,
    ) -> Case {
        let wire = Wire::new(b'U')
            .u32(16_385)
            .u8(old_tag)
            .tuple(&old)
            .u8(b'N')
            .tuple(&new);
        let old = match old_tag {
            b'K' => OldTuple::Key(TupleData(old)),
            _ => OldTuple::Full(TupleData(old)),
        };
        case(
            name,
            Decoder::new(1, false),
            wire,
            PgOutputMessage::Update(Update {
                xid: None,
                relation: TableId(16_385),
                old: Some(old),
                new: TupleData(new),
            }),
        )
    }

    fn update_key_change() -> Case {
        update_with_old(
            "update of the key (K then N)",
            b'K',
            vec![text("1"), TupleValue::Null],
            vec![text("2"), text("9.99")],
        )
    }

    fn update_full_with_toast() -> Case {
        update_with_old(
            "update under REPLICA IDENTITY FULL with an unchanged TOAST value",
            b'O',
            vec![text("1"), text("a long description")],
            vec![text("1"), TupleValue::UnchangedToast],
        )
    }

    fn delete_key() -> Case {
        let old = vec![text("1"), TupleValue::Null];
        case(
            "delete with old key",
            Decoder::new(1, false),
            Wire::new(b'D').u32(16_385).u8(b'K').tuple(&old),
            PgOutputMessage::Delete(Delete {
                xid: None,
                relation: TableId(16_385),
                old: OldTuple::Key(TupleData(old.clone())),
            }),
        )
    }

    fn delete_full() -> Case {
        let old = vec![text("1"), text("9.99")];
        case(
            "delete with full old row",
            Decoder::new(1, false),
            Wire::new(b'D').u32(16_385).u8(b'O').tuple(&old),
            PgOutputMessage::Delete(Delete {
                xid: None,
                relation: TableId(16_385),
                old: OldTuple::Full(TupleData(old.clone())),
            }),
        )
    }

    fn truncate(options: u8) -> Case {
        case(
            "truncate",
            Decoder::new(1, false),
            Wire::new(b'T').i32(2).u8(options).u32(16_385).u32(16_390),
            PgOutputMessage::Truncate(Truncate {
                xid: None,
                options: TruncateOptions {
                    cascade: options & 1 != 0,
                    restart_identity: options & 2 != 0,
                },
                relations: vec![TableId(16_385), TableId(16_390)],
            }),
        )
    }

    fn message(transactional: bool) -> Case {
        case(
            "logical decoding message",
            Decoder::new(1, false),
            Wire::new(b'M')
                .u8(u8::from(transactional))
                .u64(77)
                .str("totesys")
                .i32(3)
                .raw(&[0, 0xff, b'x']),
            PgOutputMessage::Message(LogicalMessage {
                xid: None,
                transactional,
                lsn: Lsn(77),
                prefix: "totesys".into(),
                content: Bytes::from_static(&[0, 0xff, b'x']),
            }),
        )
    }

    fn stream_start() -> Case {
        case(
            "stream start",
            Decoder::new(2, false),
            Wire::new(b'S').u32(900).u8(1),
            PgOutputMessage::StreamStart(StreamStart {
                xid: Xid(900),
                first_segment: true,
            }),
        )
    }

    fn stream_stop() -> Case {
        case(
            "stream stop",
            streaming(2, 900),
            Wire::new(b'E'),
            PgOutputMessage::StreamStop,
        )
    }

    fn stream_commit() -> Case {
        case(
            "stream commit",
            Decoder::new(2, false),
            Wire::new(b'c').u32(900).u8(0).u64(1000).u64(1040).time(T),
            PgOutputMessage::StreamCommit(StreamCommit {
                xid: Xid(900),
                commit_lsn: Lsn(1000),
                end_lsn: Lsn(1040),
                commit_time_micros: T,
            }),
        )
    }

    fn stream_abort() -> Case {
        case(
            "stream abort",
            Decoder::new(2, false),
            Wire::new(b'A').u32(900).u32(901),
            PgOutputMessage::StreamAbort(StreamAbort {
                xid: Xid(900),
                subxid: Xid(901),
                abort_lsn: None,
                abort_time_micros: None,
            }),
        )
    }

    fn stream_abort_parallel() -> Case {
        case(
            "stream abort in parallel mode",
            Decoder::new(4, true),
            Wire::new(b'A').u32(900).u32(900).u64(2000).time(T),
            PgOutputMessage::StreamAbort(StreamAbort {
                xid: Xid(900),
                subxid: Xid(900),
                abort_lsn: Some(Lsn(2000)),
                abort_time_micros: Some(T),
            }),
        )
    }

    fn prepare_info_fields() -> PrepareInfo {
        PrepareInfo {
            prepare_lsn: Lsn(3000),
            end_lsn: Lsn(3050),
            prepare_time_micros: T,
            xid: Xid(950),
            gid: "tx-950".into(),
        }
    }

    /// A message carrying [`PrepareInfo`]: every tag but `b` (begin prepare) has a flags byte.
    fn prepare_info_case(
        name: &'static str,
        tag: u8,
        message: fn(PrepareInfo) -> PgOutputMessage,
    ) -> Case {
        let wire = Wire::new(tag);
        let wire = if tag == b'b' { wire } else { wire.u8(0) };
        case(
            name,
            Decoder::new(3, false),
            wire.u64(3000).u64(3050).time(T).u32(950).str("tx-950"),
            message(prepare_info_fields()),
        )
    }

    fn begin_prepare() -> Case {
        prepare_info_case("begin prepare", b'b', PgOutputMessage::BeginPrepare)
    }

    fn prepare() -> Case {
        prepare_info_case("prepare", b'P', PgOutputMessage::Prepare)
    }

    fn stream_prepare() -> Case {
        prepare_info_case("stream prepare", b'p', PgOutputMessage::StreamPrepare)
    }

    fn commit_prepared() -> Case {
        case(
            "commit prepared",
            Decoder::new(3, false),
            Wire::new(b'K')
                .u8(0)
                .u64(4000)
                .u64(4040)
                .time(T)
                .u32(950)
                .str("tx-950"),
            PgOutputMessage::CommitPrepared(CommitPrepared {
                commit_lsn: Lsn(4000),
                end_lsn: Lsn(4040),
                commit_time_micros: T,
                xid: Xid(950),
                gid: "tx-950".into(),
            }),
        )
    }

    fn rollback_prepared() -> Case {
        case(
            "rollback prepared",
            Decoder::new(3, false),
            Wire::new(b'r')
                .u8(0)
                .u64(3050)
                .u64(4100)
                .time(T)
                .time(T + 5)
                .u32(950)
                .str("tx-950"),
            PgOutputMessage::RollbackPrepared(RollbackPrepared {
                prepare_end_lsn: Lsn(3050),
                rollback_end_lsn: Lsn(4100),
                prepare_time_micros: T,
                rollback_time_micros: T + 5,
                xid: Xid(950),
                gid: "tx-950".into(),
            }),
        )
    }

    /// Change messages inside a stream block: each starts with the sub-transaction id.
    fn streamed_changes() -> Vec<Case> {
        let row = vec![text("1")];
        vec![
            case(
                "streamed relation",
                streaming(2, 900),
                Wire::new(b'R')
                    .u32(901)
                    .u32(5)
                    .str("public")
                    .str("t")
                    .u8(b'f')
                    .i16(0),
                PgOutputMessage::Relation(Relation {
                    xid: Some(Xid(901)),
                    id: TableId(5),
                    namespace: "public".into(),
                    name: "t".into(),
                    replica_identity: ReplicaIdentity::Full,
                    columns: vec![],
                }),
            ),
            case(
                "streamed type",
                streaming(2, 900),
                Wire::new(b'Y').u32(901).u32(6).str("public").str("mood"),
                PgOutputMessage::Type(TypeInfo {
                    xid: Some(Xid(901)),
                    type_oid: 6,
                    namespace: "public".into(),
                    name: "mood".into(),
                }),
            ),
            case(
                "streamed insert",
                streaming(2, 900),
                Wire::new(b'I').u32(901).u32(5).u8(b'N').tuple(&row),
                PgOutputMessage::Insert(Insert {
                    xid: Some(Xid(901)),
                    relation: TableId(5),
                    new: TupleData(row.clone()),
                }),
            ),
            case(
                "streamed update",
                streaming(3, 900),
                Wire::new(b'U')
                    .u32(900)
                    .u32(5)
                    .u8(b'K')
                    .tuple(&row)
                    .u8(b'N')
                    .tuple(&row),
                PgOutputMessage::Update(Update {
                    xid: Some(Xid(900)),
                    relation: TableId(5),
                    old: Some(OldTuple::Key(TupleData(row.clone()))),
                    new: TupleData(row.clone()),
                }),
            ),
            case(
                "streamed delete",
                streaming(4, 900),
                Wire::new(b'D').u32(900).u32(5).u8(b'O').tuple(&row),
                PgOutputMessage::Delete(Delete {
                    xid: Some(Xid(900)),
                    relation: TableId(5),
                    old: OldTuple::Full(TupleData(row.clone())),
                }),
            ),
            case(
                "streamed truncate",
                streaming(2, 900),
                Wire::new(b'T').u32(900).i32(1).u8(3).u32(5),
                PgOutputMessage::Truncate(Truncate {
                    xid: Some(Xid(900)),
                    options: TruncateOptions {
                        cascade: true,
                        restart_identity: true,
                    },
                    relations: vec![TableId(5)],
                }),
            ),
            case(
                "streamed message",
                streaming(2, 900),
                Wire::new(b'M').u32(900).u8(1).u64(9).str("p").i32(0),
                PgOutputMessage::Message(LogicalMessage {
                    xid: Some(Xid(900)),
                    transactional: true,
                    lsn: Lsn(9),
                    prefix: "p".into(),
                    content: Bytes::new(),
                }),
            ),
            case(
                "origin inside a stream block",
                streaming(2, 900),
                Wire::new(b'O').u64(0).str("upstream"),
                PgOutputMessage::Origin(Origin {
                    commit_lsn: Lsn(0),
                    name: "upstream".into(),
                }),
            ),
        ]
    }

    fn all_cases() -> Vec<Case> {
        let mut cases = vec![
            begin(),
            commit(),
            origin(),
            relation(),
            relation_without_columns(),
            type_info(),
            insert(),
            update_plain(),
            update_key_change(),
            update_full_with_toast(),
            delete_key(),
            delete_full(),
            truncate(0),
            truncate(1),
            truncate(2),
            truncate(3),
            message(true),
            message(false),
            stream_start(),
            stream_stop(),
            stream_commit(),
            stream_abort(),
            stream_abort_parallel(),
            begin_prepare(),
            prepare(),
            stream_prepare(),
            commit_prepared(),
            rollback_prepared(),
        ];
        cases.extend(streamed_changes());
        cases
    }

    #[test]
    fn decodes_begin() {
        check(begin());
    }

    #[test]
    fn decodes_commit() {
        check(commit());
    }

    #[test]
    fn decodes_origin() {
        check(origin());
    }

    #[test]
    fn decodes_relation() {
        check(relation());
        check(relation_without_columns());
    }

    #[test]
    fn decodes_type() {
        check(type_info());
    }

    #[test]
    fn decodes_insert_with_every_value_kind() {
        check(insert());
    }

    #[test]
    fn decodes_update_without_old_row() {
        check(update_plain());
    }

    #[test]
    fn decodes_update_of_the_key() {
        check(update_key_change());
    }

    #[test]
    fn decodes_update_with_full_old_row_and_unchanged_toast() {
        check(update_full_with_toast());
    }

    #[test]
    fn decodes_delete() {
        check(delete_key());
        check(delete_full());
    }

    #[test]
    fn decodes_truncate_options() {
        for options in 0..4 {
            check(truncate(options));
        }
    }

    #[test]
    fn decodes_logical_message() {
        check(message(true));
        check(message(false));
    }

    #[test]
    fn decodes_stream_start_and_stop() {
        check(stream_start());
        check(stream_stop());
    }

    #[test]
    fn decodes_stream_commit() {
        check(stream_commit());
    }

    #[test]
    fn decodes_stream_abort_with_and_without_parallel_fields() {
        check(stream_abort());
        check(stream_abort_parallel());
        // Protocol 4 without streaming = parallel: no abort LSN or time.
        let mut decoder = Decoder::new(4, false);
        let wire = Wire::new(b'A').u32(900).u32(901).bytes();
        assert_eq!(decoder.decode(wire), Ok(stream_abort().expected));
        // Parallel requested with an older protocol: the server cannot send them either.
        assert!(!Decoder::new(3, true).parallel_abort_fields());
    }

    #[test]
    fn decodes_two_phase_messages() {
        check(begin_prepare());
        check(prepare());
        check(stream_prepare());
        check(commit_prepared());
        check(rollback_prepared());
    }

    #[test]
    fn changes_in_a_stream_block_carry_an_xid() {
        for case in streamed_changes() {
            check(case);
        }
    }

    #[test]
    fn stream_block_state_follows_start_and_stop() {
        let mut decoder = Decoder::new(2, false);
        assert_eq!(decoder.stream_xid(), None);
        decoder
            .decode(Wire::new(b'S').u32(900).u8(0).bytes())
            .unwrap();
        assert_eq!(decoder.stream_xid(), Some(Xid(900)));

        let streamed = Wire::new(b'I').u32(900).u32(5).u8(b'N').tuple(&[]).bytes();
        let plain = Wire::new(b'I').u32(5).u8(b'N').tuple(&[]).bytes();
        let insert = |xid| {
            PgOutputMessage::Insert(Insert {
                xid,
                relation: TableId(5),
                new: TupleData::default(),
            })
        };
        assert_eq!(decoder.decode(streamed.clone()), Ok(insert(Some(Xid(900)))));
        // Without the xid the same change is two bytes short (reads 5 as the xid).
        assert!(decoder.decode(plain.clone()).is_err());

        assert_eq!(
            decoder.decode(Wire::new(b'E').bytes()),
            Ok(PgOutputMessage::StreamStop)
        );
        assert_eq!(decoder.stream_xid(), None);
        assert_eq!(decoder.decode(plain), Ok(insert(None)));
        assert!(decoder.decode(streamed).is_err());
    }

    #[test]
    fn refuses_messages_out_of_place() {
        let mut decoder = streaming(2, 900);
        let err = decoder.decode(begin().wire).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Begin message at offset 0 is not allowed inside a stream block (after Stream Start, before Stream Stop)"
        );
        assert!(
            decoder.decode(stream_start().wire).is_err(),
            "nested Stream Start"
        );
        assert!(decoder.decode(stream_commit().wire).is_err());
        assert_eq!(decoder.stream_xid(), Some(Xid(900)));

        let err = Decoder::new(2, false)
            .decode(Wire::new(b'E').bytes())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Stream Stop message at offset 0 is not allowed outside a stream block (no Stream Start before it)"
        );
    }

    #[test]
    fn refuses_messages_of_later_protocol_versions() {
        let err = Decoder::new(1, false)
            .decode(stream_start().wire)
            .unwrap_err();
        assert_eq!(
            err,
            DecodeError::ProtocolVersion {
                message: "Stream Start",
                required: 2,
                configured: 1
            }
        );
        assert!(Decoder::new(2, false).decode(prepare().wire).is_err());
        assert!(Decoder::new(3, false).decode(prepare().wire).is_ok());
    }

    #[test]
    fn every_prefix_of_every_message_is_an_error() {
        for case in all_cases() {
            for len in 0..case.wire.len() {
                let mut decoder = case.decoder.clone();
                let before = decoder.stream_xid();
                let result = decoder.decode(case.wire.slice(..len));
                assert!(
                    result.is_err(),
                    "{}: prefix of {len} bytes decoded: {result:?}",
                    case.name
                );
                assert_eq!(
                    decoder.stream_xid(),
                    before,
                    "{}: state changed on error",
                    case.name
                );
            }
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        for case in all_cases() {
            let mut long = case.wire.to_vec();
            long.push(0);
            let err = case.decoder.clone().decode(Bytes::from(long)).unwrap_err();
            assert!(
                matches!(err, DecodeError::TrailingBytes { count: 1, .. }),
                "{}: {err}",
                case.name
            );
        }
        let err = Decoder::new(1, false).decode(Wire::new(b'E').bytes());
        assert!(err.is_err());
        let err = streaming(2, 1)
            .decode(Wire::new(b'E').u8(0).bytes())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Stream Stop message has 1 trailing bytes at offset 1 after its last field"
        );
    }

    #[test]
    fn errors_say_what_is_wrong_and_where() {
        let mut decoder = Decoder::new(4, true);
        let cases: Vec<(Bytes, &str)> = vec![
            (Bytes::new(), "empty pgoutput payload: expected a message type byte at offset 0"),
            (Wire::new(b'Z').bytes(), "unknown pgoutput message type 'Z' (0x5a) at offset 0"),
            (
                Wire::new(b'B').u64(1).bytes(),
                "Begin message truncated at offset 9: expected commit timestamp (Int64) (8 bytes), 0 left",
            ),
            (
                Wire::new(b'O').u64(1).raw(b"abc").bytes(),
                "Origin message: origin name (String) at offset 9 has no terminating NUL byte",
            ),
            (
                Wire::new(b'O').u64(1).raw(&[0xc3, 0x28, 0]).bytes(),
                "Origin message: origin name (String) at offset 9 is not valid UTF-8",
            ),
            (
                Wire::new(b'R').u32(1).str("s").str("t").u8(b'x').i16(0).bytes(),
                "Relation message: found 'x' (0x78) at offset 9, expected replica identity 'd', 'n', 'f' or 'i'",
            ),
            (
                Wire::new(b'I').u32(1).u8(b'N').i16(1).u8(b'q').bytes(),
                "Insert message: found 'q' (0x71) at offset 8, expected tuple column kind 'n', 'u', 't' or 'b'",
            ),
            (
                Wire::new(b'I').u32(1).u8(b'O').i16(0).bytes(),
                "Insert message: found 'O' (0x4f) at offset 5, expected new tuple marker 'N'",
            ),
            (
                Wire::new(b'U').u32(1).u8(0).bytes(),
                "Update message: found 0x00 at offset 5, expected tuple marker 'K', 'O' or 'N'",
            ),
            (
                Wire::new(b'U').u32(1).u8(b'K').i16(0).u8(b'K').i16(0).bytes(),
                "Update message: found 'K' (0x4b) at offset 8, expected new tuple marker 'N'",
            ),
            (
                Wire::new(b'D').u32(1).u8(b'N').i16(0).bytes(),
                "Delete message: found 'N' (0x4e) at offset 5, expected old tuple marker 'K' or 'O'",
            ),
            (
                Wire::new(b'I').u32(1).u8(b'N').i16(-1).bytes(),
                "Insert message: tuple column count (Int16) at offset 6 is negative (-1)",
            ),
            (
                Wire::new(b'I').u32(1).u8(b'N').i16(1).u8(b't').i32(-2).bytes(),
                "Insert message: text value length (Int32) at offset 9 is negative (-2)",
            ),
            (
                Wire::new(b'I').u32(1).u8(b'N').i16(1).u8(b't').i32(10).raw(b"abc").bytes(),
                "Insert message truncated at offset 13: expected text value (Byten) (10 bytes), 3 left",
            ),
            (
                Wire::new(b'T').i32(-1).u8(0).bytes(),
                "Truncate message: relation count (Int32) at offset 1 is negative (-1)",
            ),
            (
                Wire::new(b'M').u8(1).u64(1).str("p").i32(i32::MAX).bytes(),
                "Message message truncated at offset 16: expected content (Byten) (2147483647 bytes), 0 left",
            ),
        ];
        for (wire, want) in cases {
            let err = decoder.decode(wire).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn huge_claimed_counts_fail_without_allocating_for_them() {
        let mut decoder = Decoder::new(1, false);
        let relation = Wire::new(b'R')
            .u32(1)
            .str("s")
            .str("t")
            .u8(b'd')
            .i16(i16::MAX)
            .bytes();
        assert!(matches!(
            decoder.decode(relation),
            Err(DecodeError::Truncated { .. })
        ));
        let truncate = Wire::new(b'T').i32(i32::MAX).u8(0).u32(1).bytes();
        assert!(matches!(
            decoder.decode(truncate),
            Err(DecodeError::Truncated { .. })
        ));
        let tuple = Wire::new(b'I')
            .u32(1)
            .u8(b'N')
            .i16(i16::MAX)
            .u8(b'n')
            .bytes();
        assert!(matches!(
            decoder.decode(tuple),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn tuple_values_share_the_payload() {
        let wire = Wire::new(b'I')
            .u32(1)
            .u8(b'N')
            .tuple(&[text("hello")])
            .bytes();
        let Ok(PgOutputMessage::Insert(insert)) = Decoder::new(1, false).decode(wire.clone())
        else {
            panic!("not an insert");
        };
        let TupleValue::Text(value) = &insert.new.0[0] else {
            panic!("not text")
        };
        assert_eq!(value.as_ptr(), wire[wire.len() - 5..].as_ptr());
    }

    #[test]
    fn kind_names_every_message() {
        for case in all_cases() {
            let tag = case.wire[0];
            let (name, _, _) = message_info(tag).unwrap();
            assert_eq!(case.expected.kind(), name, "{}", case.name);
        }
    }

    fn any_value() -> impl Strategy<Value = TupleValue> {
        prop_oneof![
            Just(TupleValue::Null),
            Just(TupleValue::UnchangedToast),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(|b| TupleValue::Text(b.into())),
            proptest::collection::vec(any::<u8>(), 0..16)
                .prop_map(|b| TupleValue::Binary(b.into())),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            version in 0u32..6,
            parallel: bool,
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..48), 1..8),
        ) {
            let mut decoder = Decoder::new(version, parallel);
            for payload in payloads {
                let _ = decoder.decode(Bytes::from(payload));
            }
        }

        #[test]
        fn arbitrary_bodies_after_a_valid_tag_never_panic(
            version in 1u32..5,
            parallel: bool,
            tag in proptest::sample::select(b"BCORYIUDTMSEcAbPKrp".to_vec()),
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut decoder = Decoder::new(version, parallel);
            let _ = decoder.decode(Wire::new(b'S').u32(1).u8(1).bytes());
            let _ = decoder.decode(Wire::new(tag).raw(&body).bytes());
        }

        #[test]
        fn mutated_messages_never_panic(index in any::<prop::sample::Index>(), pos: usize, byte: u8) {
            let cases = all_cases();
            let case = &cases[index.index(cases.len())];
            let mut wire = case.wire.to_vec();
            let at = pos % wire.len();
            wire[at] = byte;
            let _ = case.decoder.clone().decode(Bytes::from(wire));
        }

        #[test]
        fn tuples_round_trip(
            values in proptest::collection::vec(any_value(), 0..12),
            old in proptest::option::of(proptest::collection::vec(any_value(), 0..12)),
            key: bool,
        ) {
            let mut wire = Wire::new(b'U').u32(7);
            if let Some(old) = &old {
                wire = wire.u8(if key { b'K' } else { b'O' }).tuple(old);
            }
            wire = wire.u8(b'N').tuple(&values);
            let old = old.map(|o| if key { OldTuple::Key(TupleData(o)) } else { OldTuple::Full(TupleData(o)) });
            let expected = PgOutputMessage::Update(Update {
                xid: None,
                relation: TableId(7),
                old,
                new: TupleData(values),
            });
            prop_assert_eq!(Decoder::new(1, false).decode(wire.bytes()), Ok(expected));
        }
    }
}
