//! MessagePack hub records: whatever parses writes back to a record that parses to the same
//! message.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard::protocol::{HubMessage, Protocol};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(message)) = Protocol::MessagePack.parse_record(Bytes::copy_from_slice(data)) else {
        return;
    };
    // An argument nested too deeply to read stands as an empty value that binds to no type
    // (the invocation then fails its binding); such an invocation is not written back.
    if let HubMessage::Invocation(invocation) | HubMessage::StreamInvocation(invocation) = &message {
        if invocation.arguments.iter().any(|argument| argument.bytes().is_empty()) {
            return;
        }
    }
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
    assert_eq!(again, message);
});
