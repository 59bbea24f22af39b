//! The service protocol (app server ⇄ service records): what parses writes back to a record
//! that parses, and writes the same bytes again.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard::protocol::framing;
use switchboard::protocol::service;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(message)) = service::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut out = Vec::new();
    service::write(&message, &mut out);
    let mut buf = BytesMut::from(&out[..]);
    let record = framing::split_binary_record(&mut buf, None)
        .expect("what was written frames")
        .expect("a whole record");
    let again = service::parse(record).expect("what was written parses").expect("known");
    // The writer normalizes (a Default connection's handshake carries no target, as the
    // reference writes it): what it wrote reads back to a message it writes the same way.
    let mut twice = Vec::new();
    service::write(&again, &mut twice);
    assert_eq!(out, twice);
});
