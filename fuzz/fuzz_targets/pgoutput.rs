//! Feeds arbitrary bytes through the stateful pgoutput decoder, several messages per input.
//!
//! Input layout: one settings byte (protocol version 1–4 in the low bits, parallel
//! streaming in bit 2), then messages, each prefixed by a one-byte length (the last one
//! takes whatever is left). The decoder must never panic, and must only change its
//! stream-block state on Stream Start and Stream Stop that decode successfully.

#![no_main]

use bytes::Bytes;
use cdc_postgres::pgoutput::{Decoder, PgOutputMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&settings, mut rest)) = data.split_first() else {
        return;
    };
    let version = u32::from(settings & 0b11) + 1;
    let parallel = settings & 0b100 != 0;
    let mut decoder = Decoder::new(version, parallel);
    let input = Bytes::copy_from_slice(rest);
    let mut offset = 0;

    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let start = offset + 1;
        let payload = input.slice(start..start + len);
        rest = &tail[len..];
        offset = start + len;

        let before = decoder.stream_xid();
        match decoder.decode(payload) {
            Ok(PgOutputMessage::StreamStart(start)) => {
                assert_eq!(before, None);
                assert_eq!(decoder.stream_xid(), Some(start.xid));
            }
            Ok(PgOutputMessage::StreamStop) => {
                assert!(before.is_some());
                assert_eq!(decoder.stream_xid(), None);
            }
            Ok(_) => assert_eq!(decoder.stream_xid(), before),
            Err(err) => {
                assert_eq!(decoder.stream_xid(), before);
                // Every error renders as one line.
                assert!(!err.to_string().contains('\n'));
            }
        }
    }
});
