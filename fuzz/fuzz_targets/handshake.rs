//! Handshake requests and responses: what parses writes back and parses the same.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard::protocol::handshake;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(request)) = handshake::read_request(&mut buf, Some(32 * 1024)) {
        let written = handshake::write_request(&request);
        let mut again = BytesMut::from(&written[..]);
        let parsed = handshake::read_request(&mut again, None)
            .expect("what was written parses")
            .expect("whole");
        assert_eq!(parsed, request);
    }
    let mut buf = BytesMut::from(data);
    let _ = handshake::read_response(&mut buf, Some(32 * 1024));
});
