//! JSON hub records: whatever parses writes back to a record that parses to the same
//! message.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard::protocol::Protocol;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(message)) = Protocol::Json.parse_record(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut out = Vec::new();
    if Protocol::Json.write_message(&mut out, &message).is_err() {
        return;
    }
    // The written form is a whole record: its body, then the record separator.
    let body = out.strip_suffix(&[0x1e]).expect("a record ends with its separator");
    let again = Protocol::Json
        .parse_record(Bytes::copy_from_slice(body))
        .expect("what was written parses")
        .expect("as a known message");
    // Headers are a map: the written order may differ, the message may not.
    assert_eq!(again, message);
});
