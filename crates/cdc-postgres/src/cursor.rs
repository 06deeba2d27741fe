//! A cursor over one replication-protocol payload (pgoutput messages and the walsender's
//! CopyData messages alike): big-endian fields, every length checked before it is read.

use bytes::Bytes;
use cdc_core::{Lsn, Xid};

use crate::pgoutput::DecodeError;
use crate::walsender::pg_to_unix_micros;

/// A cursor over one payload that reads big-endian fields and checks every length first.
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
    message: &'static str,
}

impl Reader {
    /// A reader at offset 0 of `buf`, naming `message` in its errors.
    pub(crate) fn new(buf: Bytes, message: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            message,
        }
    }

    /// The offset of the next byte to read.
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn rest(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn truncated(&self, field: &'static str, needed: usize) -> DecodeError {
        DecodeError::Truncated {
            message: self.message,
            offset: self.pos,
            field,
            needed,
            available: self.remaining(),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        match self.rest().first_chunk::<N>() {
            Some(chunk) => {
                let out = *chunk;
                self.pos += N;
                Ok(out)
            }
            None => Err(self.truncated(field, N)),
        }
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }

    /// Reads a byte that must equal `want`.
    pub(crate) fn tag(&mut self, want: u8, expected: &'static str) -> Result<(), DecodeError> {
        let offset = self.pos;
        let found = self.u8(expected)?;
        if found == want {
            Ok(())
        } else {
            Err(self.unexpected(offset, found, expected))
        }
    }

    /// An error for a byte at `offset` that is not what the protocol allows there.
    pub(crate) fn unexpected(
        &self,
        offset: usize,
        found: u8,
        expected: &'static str,
    ) -> DecodeError {
        DecodeError::UnexpectedByte {
            message: self.message,
            offset,
            found,
            expected,
        }
    }

    /// Reads a big-endian `Int16`.
    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, DecodeError> {
        self.array(field).map(i16::from_be_bytes)
    }

    /// Reads a big-endian `Int32`.
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        self.array(field).map(i32::from_be_bytes)
    }

    /// Reads a big-endian `Int32` as unsigned (OIDs, transaction ids).
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_be_bytes)
    }

    /// Reads a big-endian `Int64`.
    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.array(field).map(i64::from_be_bytes)
    }

    /// Reads a big-endian `Int64` as an LSN.
    pub(crate) fn lsn(&mut self, field: &'static str) -> Result<Lsn, DecodeError> {
        self.array(field).map(u64::from_be_bytes).map(Lsn)
    }

    /// Reads a PostgreSQL timestamp and returns it as microseconds since the Unix epoch.
    pub(crate) fn timestamp(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.i64(field).map(pg_to_unix_micros)
    }

    /// Reads a transaction id.
    pub(crate) fn xid(&mut self, field: &'static str) -> Result<Xid, DecodeError> {
        self.u32(field).map(Xid)
    }

    /// Reads an `Int16` count that must not be negative.
    pub(crate) fn count16(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let value = self.i16(field)?;
        usize::try_from(value).map_err(|_| self.negative(offset, field, i32::from(value)))
    }

    /// Reads an `Int32` count or length that must not be negative.
    pub(crate) fn count32(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let value = self.i32(field)?;
        usize::try_from(value).map_err(|_| self.negative(offset, field, value))
    }

    fn negative(&self, offset: usize, field: &'static str, value: i32) -> DecodeError {
        DecodeError::NegativeLength {
            message: self.message,
            offset,
            field,
            value,
        }
    }

    /// Takes the next `len` bytes as a zero-copy slice of the payload.
    pub(crate) fn bytes(&mut self, len: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        if len > self.remaining() {
            return Err(self.truncated(field, len));
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    /// Takes every byte that is left.
    pub(crate) fn rest_bytes(&mut self) -> Bytes {
        let out = self.buf.slice(self.pos.min(self.buf.len())..);
        self.pos = self.buf.len();
        out
    }

    /// Reads a NUL-terminated UTF-8 string.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let offset = self.pos;
        let mut parts = self.rest().splitn(2, |&b| b == 0);
        let text = parts.next().unwrap_or_default();
        if parts.next().is_none() {
            return Err(DecodeError::UnterminatedString {
                message: self.message,
                offset,
                field,
            });
        }
        let text = std::str::from_utf8(text)
            .map_err(|source| DecodeError::InvalidUtf8 {
                message: self.message,
                offset,
                field,
                source,
            })?
            .to_owned();
        self.pos += text.len() + 1;
        Ok(text)
    }

    /// Checks that the whole payload was consumed.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                message: self.message,
                offset: self.pos,
                count,
            }),
        }
    }
}
