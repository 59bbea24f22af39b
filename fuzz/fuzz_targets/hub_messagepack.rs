//! MessagePack hub records: whatever parses writes back to a record that parses to the same
//! message.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard::protocol::Protocol;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(message)) = Protocol::MessagePack.parse_record(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut out = Vec::new();
    if Protocol::MessagePack.write_message(&mut out, &message).is_err() {
        return;
    }
    // The written form is length-prefixed: split it as a reader would.
    let mut buf = BytesMut::from(&out[..]);
    let record = Protocol::MessagePack
        .split_record(&mut buf, None)
        .expect("what was written frames")
        .expect("a whole record");
    assert!(buf.is_empty());
    let again = Protocol::MessagePack
        .parse_record(record)
        .expect("what was written parses")
        .expect("as a known message");
    assert_eq!(again.type_id(), message.type_id());
    let mut twice = Vec::new();
    Protocol::MessagePack.write_message(&mut twice, &again).expect("writes again");
    assert_eq!(out, twice, "writing is stable");
});
