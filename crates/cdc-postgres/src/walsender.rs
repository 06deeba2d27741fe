//! The CopyData framing of the streaming replication protocol, once `START_REPLICATION` has
//! put the connection into CopyBoth mode.
//!
//! ```text
//!   PostgreSQL walsender                               this client
//!   ────────────────────                               ───────────
//!   'w' XLogData { wal_start, wal_end, time, data } ──►  data = one pgoutput message
//!   'k' Primary keepalive { wal_end, time, reply? } ──►  answer at once if reply?
//!                                                   ◄──  'r' Standby status update
//!                                                        { write, flush, apply, time, reply? }
//! ```
//!
//! Each arrow is the payload of one CopyData ('d') message; the connection code strips
//! the CopyData frame and hands the payload here. All integers are big-endian.
//!
//! # Time
//!
//! Timestamps on the wire count microseconds since 2000-01-01 00:00 UTC (PostgreSQL's
//! epoch). Our types hold microseconds since 1970-01-01 UTC, in fields named
//! `*_micros`; the conversion saturates at the ends of the `i64` range.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use cdc_core::Lsn;

use crate::cursor::Reader;
use crate::pgoutput::DecodeError;

/// Microseconds from the Unix epoch (1970-01-01) to PostgreSQL's epoch (2000-01-01).
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Converts a PostgreSQL timestamp (micros since 2000-01-01) to micros since the Unix epoch.
pub fn pg_to_unix_micros(pg_micros: i64) -> i64 {
    pg_micros.saturating_add(PG_EPOCH_OFFSET_MICROS)
}

/// Converts micros since the Unix epoch to a PostgreSQL timestamp (micros since 2000-01-01).
pub fn unix_to_pg_micros(unix_micros: i64) -> i64 {
    unix_micros.saturating_sub(PG_EPOCH_OFFSET_MICROS)
}

/// The current wall-clock time in microseconds since the Unix epoch.
pub fn now_unix_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
    }
}

/// The CopyData type byte of XLogData.
const XLOG_DATA: u8 = b'w';
/// The CopyData type byte of a primary keepalive.
const PRIMARY_KEEPALIVE: u8 = b'k';
/// The CopyData type byte of a standby status update.
const STANDBY_STATUS_UPDATE: u8 = b'r';
/// Length of an XLogData header: type byte, two LSNs and a timestamp.
const XLOG_DATA_HEADER_LEN: usize = 1 + 8 + 8 + 8;

/// A message the server sends inside CopyData during streaming replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationMessage {
    /// 'w': a chunk of WAL; for a logical slot, one output plugin message.
    XLogData(XLogData),
    /// 'k': the server's position and clock, possibly asking for a status update.
    Keepalive(PrimaryKeepalive),
}

/// WAL data sent by the server ('w').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XLogData {
    /// WAL position of the start of `data`.
    pub wal_start: Lsn,
    /// The current end of WAL on the server.
    pub wal_end: Lsn,
    /// The server's clock when it sent the message, micros since the Unix epoch.
    pub server_time_micros: i64,
    /// The payload: for a `pgoutput` slot, one pgoutput message.
    pub data: Bytes,
}

/// A keepalive from the server ('k').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryKeepalive {
    /// The current end of WAL on the server.
    pub wal_end: Lsn,
    /// The server's clock when it sent the message, micros since the Unix epoch.
    pub server_time_micros: i64,
    /// Whether the server wants a status update as soon as possible (else it may time us out).
    pub reply_requested: bool,
}

impl ReplicationMessage {
    /// Decodes one CopyData payload from the server; `data` of XLogData shares `payload`'s memory.
    pub fn decode(payload: Bytes) -> Result<Self, DecodeError> {
        let protocol = "replication CopyData";
        let Some(&tag) = payload.first() else {
            return Err(DecodeError::Empty { protocol });
        };
        match tag {
            XLOG_DATA => {
                let mut r = Reader::new(payload, "XLogData");
                r.u8("message type")?;
                let message = XLogData {
                    wal_start: r.lsn("WAL start (Int64)")?,
                    wal_end: r.lsn("WAL end (Int64)")?,
                    server_time_micros: r.timestamp("server clock (Int64)")?,
                    data: r.rest_bytes(),
                };
                r.finish()?;
                Ok(ReplicationMessage::XLogData(message))
            }
            PRIMARY_KEEPALIVE => {
                let mut r = Reader::new(payload, "Primary keepalive");
                r.u8("message type")?;
                let message = PrimaryKeepalive {
                    wal_end: r.lsn("WAL end (Int64)")?,
                    server_time_micros: r.timestamp("server clock (Int64)")?,
                    reply_requested: r.u8("reply requested (Byte1)")? != 0,
                };
                r.finish()?;
                Ok(ReplicationMessage::Keepalive(message))
            }
            tag => Err(DecodeError::UnknownMessage { protocol, tag }),
        }
    }

    /// Encodes the message as the server would (for test servers and round-trip checks).
    pub fn encode(&self) -> Bytes {
        match self {
            ReplicationMessage::XLogData(x) => {
                let mut buf = BytesMut::with_capacity(XLOG_DATA_HEADER_LEN + x.data.len());
                buf.put_u8(XLOG_DATA);
                buf.put_u64(x.wal_start.0);
                buf.put_u64(x.wal_end.0);
                buf.put_i64(unix_to_pg_micros(x.server_time_micros));
                buf.put_slice(&x.data);
                buf.freeze()
            }
            ReplicationMessage::Keepalive(k) => {
                let mut buf = BytesMut::with_capacity(1 + 8 + 8 + 1);
                buf.put_u8(PRIMARY_KEEPALIVE);
                buf.put_u64(k.wal_end.0);
                buf.put_i64(unix_to_pg_micros(k.server_time_micros));
                buf.put_u8(u8::from(k.reply_requested));
                buf.freeze()
            }
        }
    }
}

/// The client's progress report ('r'): what it has written, flushed and applied.
///
/// PostgreSQL may recycle WAL before `flush` and moves the slot's `confirmed_flush_lsn`
/// to it, so `flush` must only cover changes that are durable downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandbyStatusUpdate {
    /// One past the last WAL byte received and written.
    pub write: Lsn,
    /// One past the last WAL byte durably handled.
    pub flush: Lsn,
    /// One past the last WAL byte applied.
    pub apply: Lsn,
    /// The client's clock, micros since the Unix epoch.
    pub client_time_micros: i64,
    /// Whether the server should answer with a keepalive at once.
    pub reply_requested: bool,
}

impl StandbyStatusUpdate {
    /// Length of the encoded message: type byte, three LSNs, a timestamp and a flag.
    pub const ENCODED_LEN: usize = 1 + 8 + 8 + 8 + 8 + 1;

    /// Encodes the update as the payload of one CopyData message.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        let mut buf = &mut out[..];
        buf.put_u8(STANDBY_STATUS_UPDATE);
        buf.put_u64(self.write.0);
        buf.put_u64(self.flush.0);
        buf.put_u64(self.apply.0);
        buf.put_i64(unix_to_pg_micros(self.client_time_micros));
        buf.put_u8(u8::from(self.reply_requested));
        out
    }

    /// Decodes a status update as the server would (for test servers and round-trip checks).
    pub fn decode(payload: Bytes) -> Result<Self, DecodeError> {
        let protocol = "replication CopyData";
        match payload.first() {
            None => return Err(DecodeError::Empty { protocol }),
            Some(&STANDBY_STATUS_UPDATE) => {}
            Some(&tag) => return Err(DecodeError::UnknownMessage { protocol, tag }),
        }
        let mut r = Reader::new(payload, "Standby status update");
        r.u8("message type")?;
        let update = StandbyStatusUpdate {
            write: r.lsn("write LSN (Int64)")?,
            flush: r.lsn("flush LSN (Int64)")?,
            apply: r.lsn("apply LSN (Int64)")?,
            client_time_micros: r.timestamp("client clock (Int64)")?,
            reply_requested: r.u8("reply requested (Byte1)")? != 0,
        };
        r.finish()?;
        Ok(update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn epochs_are_thirty_years_apart() {
        assert_eq!(pg_to_unix_micros(0), 946_684_800_000_000);
        assert_eq!(unix_to_pg_micros(946_684_800_000_000), 0);
        assert_eq!(pg_to_unix_micros(i64::MAX), i64::MAX);
        assert_eq!(unix_to_pg_micros(i64::MIN), i64::MIN);
        // 2024-01-01 00:00 UTC.
        assert_eq!(
            pg_to_unix_micros(757_382_400_000_000),
            1_704_067_200_000_000
        );
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_unix_micros() > 1_704_067_200_000_000);
    }

    #[test]
    fn decodes_xlog_data_by_hand() {
        let mut wire = vec![b'w'];
        wire.extend_from_slice(&0x0000_0001_0000_0010u64.to_be_bytes());
        wire.extend_from_slice(&0x0000_0001_0000_0020u64.to_be_bytes());
        wire.extend_from_slice(&1_000_000i64.to_be_bytes());
        wire.extend_from_slice(b"BEGIN");
        let message = ReplicationMessage::decode(Bytes::from(wire)).unwrap();
        assert_eq!(
            message,
            ReplicationMessage::XLogData(XLogData {
                wal_start: Lsn(0x1_0000_0010),
                wal_end: Lsn(0x1_0000_0020),
                server_time_micros: PG_EPOCH_OFFSET_MICROS + 1_000_000,
                data: Bytes::from_static(b"BEGIN"),
            })
        );
    }

    #[test]
    fn xlog_data_may_be_empty() {
        let message = ReplicationMessage::XLogData(XLogData {
            wal_start: Lsn(1),
            wal_end: Lsn(2),
            server_time_micros: 3,
            data: Bytes::new(),
        });
        assert_eq!(
            ReplicationMessage::decode(message.encode()).unwrap(),
            message
        );
    }

    #[test]
    fn decodes_keepalive_by_hand() {
        let mut wire = vec![b'k'];
        wire.extend_from_slice(&0x16_B374_D848u64.to_be_bytes());
        wire.extend_from_slice(&(-5i64).to_be_bytes());
        wire.push(1);
        let message = ReplicationMessage::decode(Bytes::from(wire)).unwrap();
        assert_eq!(
            message,
            ReplicationMessage::Keepalive(PrimaryKeepalive {
                wal_end: Lsn(0x16_B374_D848),
                server_time_micros: PG_EPOCH_OFFSET_MICROS - 5,
                reply_requested: true,
            })
        );
    }

    #[test]
    fn encodes_status_update_by_hand() {
        let update = StandbyStatusUpdate {
            write: Lsn(0x0102_0304_0506_0708),
            flush: Lsn(2),
            apply: Lsn(3),
            client_time_micros: PG_EPOCH_OFFSET_MICROS + 0x10,
            reply_requested: false,
        };
        let wire = update.encode();
        assert_eq!(wire[0], b'r');
        assert_eq!(wire[1..9], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(wire[9..17], 2u64.to_be_bytes());
        assert_eq!(wire[17..25], 3u64.to_be_bytes());
        assert_eq!(wire[25..33], 0x10u64.to_be_bytes());
        assert_eq!(wire[33], 0);
    }

    #[test]
    fn rejects_unknown_empty_truncated_and_trailing() {
        assert_eq!(
            ReplicationMessage::decode(Bytes::new()),
            Err(DecodeError::Empty {
                protocol: "replication CopyData"
            })
        );
        let err = ReplicationMessage::decode(Bytes::from_static(b"h")).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownMessage {
                protocol: "replication CopyData",
                tag: b'h'
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown replication CopyData message type 'h' (0x68) at offset 0"
        );

        let keepalive = ReplicationMessage::Keepalive(PrimaryKeepalive {
            wal_end: Lsn(7),
            server_time_micros: 8,
            reply_requested: false,
        })
        .encode();
        for len in 0..keepalive.len() {
            assert!(
                ReplicationMessage::decode(keepalive.slice(..len)).is_err(),
                "prefix {len}"
            );
        }
        let mut long = keepalive.to_vec();
        long.push(0);
        let err = ReplicationMessage::decode(Bytes::from(long)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Primary keepalive message has 1 trailing bytes at offset 18 after its last field"
        );

        let xlog = ReplicationMessage::XLogData(XLogData {
            wal_start: Lsn(1),
            wal_end: Lsn(2),
            server_time_micros: 3,
            data: Bytes::from_static(b"x"),
        })
        .encode();
        for len in 0..XLOG_DATA_HEADER_LEN {
            let err = ReplicationMessage::decode(xlog.slice(..len)).unwrap_err();
            if len > 0 {
                assert!(
                    matches!(
                        err,
                        DecodeError::Truncated {
                            message: "XLogData",
                            ..
                        }
                    ),
                    "{err}"
                );
            }
        }

        let update = StandbyStatusUpdate {
            write: Lsn(1),
            flush: Lsn(1),
            apply: Lsn(1),
            client_time_micros: 0,
            reply_requested: true,
        }
        .encode();
        for len in 0..update.len() {
            let prefix = Bytes::copy_from_slice(&update[..len]);
            assert!(StandbyStatusUpdate::decode(prefix).is_err(), "prefix {len}");
        }
    }

    /// Unix-epoch micros that survive the trip through PostgreSQL's epoch without saturating.
    fn wire_time() -> impl Strategy<Value = i64> {
        (i64::MIN + PG_EPOCH_OFFSET_MICROS)..=i64::MAX
    }

    proptest! {
        #[test]
        fn xlog_data_round_trips(
            start: u64,
            end: u64,
            time in wire_time(),
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let message = ReplicationMessage::XLogData(XLogData {
                wal_start: Lsn(start),
                wal_end: Lsn(end),
                server_time_micros: time,
                data: Bytes::from(data),
            });
            prop_assert_eq!(ReplicationMessage::decode(message.encode()), Ok(message));
        }

        #[test]
        fn keepalive_round_trips(end: u64, time in wire_time(), reply: bool) {
            let message = ReplicationMessage::Keepalive(PrimaryKeepalive {
                wal_end: Lsn(end),
                server_time_micros: time,
                reply_requested: reply,
            });
            prop_assert_eq!(ReplicationMessage::decode(message.encode()), Ok(message));
        }

        #[test]
        fn status_update_round_trips(
            write: u64,
            flush: u64,
            apply: u64,
            time in wire_time(),
            reply: bool,
        ) {
            let update = StandbyStatusUpdate {
                write: Lsn(write),
                flush: Lsn(flush),
                apply: Lsn(apply),
                client_time_micros: time,
                reply_requested: reply,
            };
            let wire = Bytes::copy_from_slice(&update.encode());
            prop_assert_eq!(StandbyStatusUpdate::decode(wire), Ok(update));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ReplicationMessage::decode(Bytes::from(bytes.clone()));
            let _ = StandbyStatusUpdate::decode(Bytes::from(bytes));
        }
    }
}
