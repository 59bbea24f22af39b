//! Negotiate: response bodies (what a client reads) and the version parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::protocol::negotiate::{self, NegotiateBody};

fuzz_target!(|data: &[u8]| {
    if let Ok(NegotiateBody::Connection(response)) = NegotiateBody::parse(data) {
        let text = serde_json::to_vec(&response).expect("a response serializes");
        match NegotiateBody::parse(&text) {
            Ok(NegotiateBody::Connection(again)) => assert_eq!(again, response),
            other => panic!("a written response reads back as {other:?}"),
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(version) = negotiate::select_version(Some(text), 0) {
            assert!(version <= 1);
        }
    }
});
