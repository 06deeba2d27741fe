//! The Confluent wire format: `0x00`, a 4-byte big-endian schema id, the Avro binary body.
//!
//! ```text
//!   byte 0      bytes 1..5               bytes 5..
//!   ┌──────┬──────────────────────┬──────────────────────┐
//!   │ 0x00 │ schema id (u32, BE)  │ Avro binary datum    │
//!   └──────┴──────────────────────┴──────────────────────┘
//! ```

use crate::error::{AvroError, Result};

/// The first byte of every Confluent-framed message.
pub const MAGIC_BYTE: u8 = 0;
/// Length of the frame header: magic byte and schema id.
pub const HEADER_LEN: usize = 5;

/// Appends the frame header for `schema_id` to `buf`.
pub fn put_header(buf: &mut Vec<u8>, schema_id: u32) {
    buf.push(MAGIC_BYTE);
    buf.extend_from_slice(&schema_id.to_be_bytes());
}

/// Frames an Avro body: header, then `body`.
pub fn encode_confluent(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    put_header(&mut out, schema_id);
    out.extend_from_slice(body);
    out
}

/// Splits a framed message into its schema id and Avro body, checking the magic byte and
/// the length; never panics.
pub fn decode_confluent(message: &[u8]) -> Result<(u32, &[u8])> {
    let bad = |reason: String| AvroError::Frame {
        len: message.len(),
        reason,
    };
    let Some((&magic, rest)) = message.split_first() else {
        return Err(bad(
            "empty message, expected at least the 5-byte header".to_owned()
        ));
    };
    if magic != MAGIC_BYTE {
        return Err(bad(format!("magic byte {magic:#04x}, expected 0x00")));
    }
    let Some((id, body)) = rest.split_first_chunk::<4>() else {
        return Err(bad("shorter than the 5-byte header".to_owned()));
    };
    Ok((u32::from_be_bytes(*id), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let framed = encode_confluent(0x0102_0304, b"body");
        assert_eq!(framed, b"\x00\x01\x02\x03\x04body");
        assert_eq!(
            decode_confluent(&framed).unwrap(),
            (0x0102_0304, &b"body"[..])
        );
        assert_eq!(decode_confluent(&[0, 0, 0, 0, 7]).unwrap(), (7, &[][..]));
    }

    #[test]
    fn refuses_short_and_foreign_frames() {
        for len in 0..HEADER_LEN {
            let err = decode_confluent(&[0; 5][..len]).unwrap_err();
            assert!(matches!(err, AvroError::Frame { len: l, .. } if l == len));
        }
        assert_eq!(
            decode_confluent(b"\x01\x00\x00\x00\x01x")
                .unwrap_err()
                .to_string(),
            "bad Confluent frame of 6 bytes: magic byte 0x01, expected 0x00"
        );
        assert_eq!(
            decode_confluent(b"\x00\x00").unwrap_err().to_string(),
            "bad Confluent frame of 2 bytes: shorter than the 5-byte header"
        );
    }
}
