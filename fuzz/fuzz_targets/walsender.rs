//! Feeds arbitrary bytes to the replication CopyData decoders.
//!
//! Anything that decodes must survive encode → decode unchanged.

#![no_main]

use bytes::Bytes;
use cdc_postgres::walsender::{ReplicationMessage, StandbyStatusUpdate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(message) = ReplicationMessage::decode(payload.clone()) {
        assert_eq!(ReplicationMessage::decode(message.encode()), Ok(message));
    }
    if let Ok(update) = StandbyStatusUpdate::decode(payload) {
        let wire = Bytes::copy_from_slice(&update.encode());
        assert_eq!(StandbyStatusUpdate::decode(wire), Ok(update));
    }
});
