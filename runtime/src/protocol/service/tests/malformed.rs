//! Malformed input fails with an error, never a panic: truncated records, wrong item types,
//! lengths larger than the record, deep nesting, and random bytes.

use bytes::Bytes;
use proptest::prelude::*;

use super::{cat, error_text, every_message, parse_body, round_trip, written};
use crate::protocol::service::*;

#[test]
fn malformed_truncated_records_are_errors() {
    for message in every_message() {
        let framed = written(&message);
        let (_, prefix) = crate::protocol::framing::read_varint(&framed).unwrap().unwrap();
        let body = &framed[prefix..];
        // The reference reader does not read ConnectionFlowControl's extension map.
        let ignored_tail = usize::from(matches!(message, ServiceMessage::ConnectionFlowControl(_)));
        for cut in 0..body.len() - ignored_tail {
            assert!(parse_body(&body[..cut]).is_err(), "{message:?} cut at {cut}");
        }
    }
}

#[test]
fn malformed_structure_is_an_error() {
    assert!(parse_body(&[]).is_err(), "no bytes");
    assert!(parse_body(&[0x06]).is_err(), "not an array");
    assert_eq!(
        error_text(&[0x90]),
        "Unable to read message type: the message is an empty array."
    );
    assert_eq!(
        error_text(&[0x91, 0xa1, b'x']),
        "Reading 'messageType' as Int32 failed."
    );
    assert_eq!(
        error_text(&cat(&[&[0x92, 0x06, 0xa2], b"c1"])),
        "Invalid message: expected at least 3 items, got 2."
    );
}

#[test]
fn malformed_wrong_item_types_name_the_field() {
    // [6, "c1", 5]
    assert_eq!(
        error_text(&cat(&[&[0x93, 0x06, 0xa2], b"c1", &[0x05]])),
        "Reading 'payload' as Byte[] failed."
    );
    // [11, "c1", nil]
    assert_eq!(
        error_text(&cat(&[&[0x93, 0x0b, 0xa2], b"c1", &[0xc0]])),
        "Reading 'groupName' as Not-Null String failed."
    );
    // [18, "c1", "g1", "1"] and [18, "c1", "g1", 2^31]
    let join = |ack: &[u8]| cat(&[&[0x94, 0x12, 0xa2], b"c1", &[0xa2], b"g1", ack]);
    assert_eq!(error_text(&join(&[0xa1, b'1'])), "Reading 'ackId' as Int32 failed.");
    assert_eq!(
        error_text(&join(&[0xce, 0x80, 0, 0, 0])),
        "Reading 'ackId' as Int32 failed."
    );
    // [4, "c1", {"a": nil}]: a claim needs a value.
    assert_eq!(
        error_text(&cat(&[&[0x93, 0x04, 0xa2], b"c1", &[0x81, 0xa1, b'a', 0xc0]])),
        "Reading 'claims[0].Value' as Not-Null String failed."
    );
    // [38, "c1", {"k": 1}] and [38, "c1", {1: -1}]: keys are integers; tracing ids unsigned.
    let reconnect = |ext: &[u8]| cat(&[&[0x93, 0x26, 0xa2], b"c1", ext]);
    assert!(parse_body(&reconnect(&[0x81, 0xa1, b'k', 0x01])).is_err());
    let tracing = cat(&[&[0x94, 0x0b, 0xa2], b"c1", &[0xa2], b"g1"]);
    assert!(parse_body(&cat(&[&tracing, &[0x81, 0x01, 0xff]])).is_err());
    // [39, "c1", 1, 9, {}] and [39, "c1", 0, 1, {}]
    let flow = |kind: u8, op: u8| cat(&[&[0x95, 0x27, 0xa2], b"c1", &[kind, op, 0x80]]);
    assert_eq!(error_text(&flow(1, 9)), "Unsupported operation: 9");
    assert_eq!(error_text(&flow(0, 1)), "Unsupported connection type: 0");
    // A string that is not UTF-8.
    assert!(parse_body(&[0x92, 0x0f, 0xa2, 0xc3, 0x28]).is_err());
}

#[test]
fn malformed_huge_lengths_fail_without_allocating() {
    let huge32 = [0xff, 0xff, 0xff, 0xff];
    // [6, str32(4 GiB)…]
    assert!(parse_body(&cat(&[&[0x93, 0x06, 0xdb], &huge32])).is_err());
    // [6, "c1", bin32(4 GiB)…]
    assert!(parse_body(&cat(&[&[0x93, 0x06, 0xa2], b"c1", &[0xc6], &huge32])).is_err());
    // An array32 of 4 G items.
    assert!(parse_body(&cat(&[&[0xdd], &huge32, &[0x03]])).is_err());
    // [7, array32(4 G)…] and [4, "c1", map32(4 G)…]
    assert!(parse_body(&cat(&[&[0x93, 0x07, 0xdd], &huge32])).is_err());
    assert!(parse_body(&cat(&[&[0x93, 0x04, 0xa2], b"c1", &[0xdf], &huge32])).is_err());
    // [38, "c1", {9: map32(4 G)}]: an unknown member claiming 4 G entries.
    assert!(parse_body(&cat(&[&[0x93, 0x26, 0xa2], b"c1", &[0x81, 0x09, 0xdf], &huge32])).is_err());
    // [3, 300 items…] with only one present.
    assert!(parse_body(&[0xdc, 0x01, 0x2c, 0x03, 0xa0]).is_err());
}

#[test]
fn malformed_deep_nesting_in_unknown_members_is_an_error() {
    let nested = |depth: usize| {
        let mut body = cat(&[&[0x93, 0x26, 0xa2], b"c1", &[0x81, 0x09]]);
        body.extend(std::iter::repeat_n(0x91, depth));
        body.push(0xc0);
        body
    };
    assert!(parse_body(&nested(10)).unwrap().is_some(), "shallow values are skipped");
    assert_eq!(
        error_text(&nested(100_000)),
        "The MessagePack value is nested too deeply."
    );
}

#[test]
fn group_member_query_response_rejects_malformed_payloads() {
    assert!(GroupMemberQueryResponse::decode(Bytes::from_static(&[0x92, 0x91, 0x92, 0xc0])).is_err());
    assert!(GroupMemberQueryResponse::decode(Bytes::from_static(&[0x92, 0xdd, 0xff, 0xff, 0xff, 0xff])).is_err());
    let empty = GroupMemberQueryResponse::decode(Bytes::from_static(&[0x92, 0x90, 0xc0])).unwrap();
    assert_eq!(empty, GroupMemberQueryResponse::default());
}

proptest! {
    #[test]
    fn fuzz_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse(Bytes::from(bytes));
    }

    #[test]
    fn fuzz_mutated_records_never_panic(index in 0usize..40, position in any::<usize>(), byte in any::<u8>()) {
        let framed = written(&every_message()[index]);
        let (_, prefix) = crate::protocol::framing::read_varint(&framed).unwrap().unwrap();
        let mut body = framed[prefix..].to_vec();
        let at = position % body.len();
        body[at] = byte;
        let _ = parse(Bytes::from(body));
    }

    #[test]
    fn fuzz_connection_data_round_trips(
        connection_id in ".{0,40}",
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        tracing_id in proptest::option::of(any::<u64>()),
        data_type in any::<i32>(),
        is_partial in any::<bool>(),
    ) {
        let message = ServiceMessage::ConnectionData(ConnectionData {
            connection_id,
            payload: Bytes::from(payload),
            tracing_id,
            data_type: DataMessageType::from_code(data_type),
            is_partial,
        });
        prop_assert_eq!(round_trip(&message), message);
    }
}
