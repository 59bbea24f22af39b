//! Golden bytes from the hub protocol specification, tolerance of real clients' quirks, and
//! round trips of random messages through both protocols.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::framing::{self, read_varint, write_varint};
use super::handshake;
use super::negotiate::{NegotiateBody, select_version};
use super::*;

fn parse_one(protocol: Protocol, bytes: &[u8]) -> HubMessage {
    let mut buf = BytesMut::from(bytes);
    let record = protocol.split_record(&mut buf, None).unwrap().expect("a whole record");
    assert!(buf.is_empty(), "one record");
    protocol.parse_record(record).unwrap().expect("a known message")
}

fn json(text: &str) -> HubMessage {
    parse_one(Protocol::Json, format!("{text}\u{1e}").as_bytes())
}

fn framed_msgpack(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_varint(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

fn written(protocol: Protocol, message: &HubMessage) -> Vec<u8> {
    let mut out = Vec::new();
    protocol.write_message(&mut out, message).unwrap();
    out
}

#[test]
fn framing_varint_matches_spec_example() {
    // The specification's example: 0x80 0x29 is 5248.
    assert_eq!(read_varint(&[0x80, 0x29]).unwrap(), Some((5248, 2)));
    let mut out = Vec::new();
    write_varint(&mut out, 5248);
    assert_eq!(out, [0x80, 0x29]);
    assert_eq!(read_varint(&[0x80]).unwrap(), None);
    assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f]).is_err(), "over 2 GB");
    assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err(), "six bytes");
}

#[test]
fn framing_text_records_split_across_and_within_chunks() {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"{\"type\":6}\x1e{\"ty");
    assert_eq!(
        Protocol::Json.split_record(&mut buf, None).unwrap().unwrap(),
        Bytes::from_static(b"{\"type\":6}")
    );
    assert_eq!(Protocol::Json.split_record(&mut buf, None).unwrap(), None);
    buf.extend_from_slice(b"pe\":6}\x1e");
    assert_eq!(
        Protocol::Json
            .parse_record(Protocol::Json.split_record(&mut buf, None).unwrap().unwrap())
            .unwrap(),
        Some(HubMessage::Ping)
    );
    assert!(buf.is_empty());
}

#[test]
fn framing_enforces_maximum_size_early() {
    let mut buf = BytesMut::from(&[b'x'; 11][..]);
    let err = Protocol::Json.split_record(&mut buf, Some(10)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "The maximum message size of 10B was exceeded. The message size can be configured in AddHubOptions."
    );
    // Exactly at the limit is fine.
    let mut buf = BytesMut::from(&b"0123456789\x1e"[..]);
    assert!(Protocol::Json.split_record(&mut buf, Some(10)).unwrap().is_some());
    // A binary prefix announcing too much fails before the body arrives.
    let mut buf = BytesMut::from(&[0x80, 0x29][..]);
    assert!(matches!(
        Protocol::MessagePack.split_record(&mut buf, Some(1024)),
        Err(ProtocolError::MessageTooLarge { max: 1024 })
    ));
}

#[test]
fn msgpack_golden_invocation() {
    // The specification's example: [1, {}, "xyz", "method", [42]]
    let body = [
        0x95, 0x01, 0x80, 0xa3, b'x', b'y', b'z', 0xa6, b'm', b'e', b't', b'h', b'o', b'd', 0x91, 0x2a,
    ];
    let message = parse_one(Protocol::MessagePack, &framed_msgpack(&body));
    let HubMessage::Invocation(inv) = &message else {
        panic!("{message:?}")
    };
    assert_eq!(inv.invocation_id.as_deref(), Some("xyz"));
    assert_eq!(inv.target, "method");
    assert_eq!(inv.arguments[0].decode::<i32>().unwrap(), 42);
    // Written, as .NET writes it, with an empty stream id array as a sixth item.
    let six = [
        0x96, 0x01, 0x80, 0xa3, b'x', b'y', b'z', 0xa6, b'm', b'e', b't', b'h', b'o', b'd', 0x91, 0x2a, 0x90,
    ];
    assert_eq!(written(Protocol::MessagePack, &message), framed_msgpack(&six));
    assert_eq!(parse_one(Protocol::MessagePack, &framed_msgpack(&six)), message);
}

#[test]
fn msgpack_golden_non_blocking_invocation_and_stream_ids() {
    // [1, {}, nil, "method", [42], ["1"]]
    let body = [
        0x96, 0x01, 0x80, 0xc0, 0xa6, b'm', b'e', b't', b'h', b'o', b'd', 0x91, 0x2a, 0x91, 0xa1, b'1',
    ];
    let message = parse_one(Protocol::MessagePack, &framed_msgpack(&body));
    let HubMessage::Invocation(inv) = &message else {
        panic!()
    };
    assert_eq!(inv.invocation_id, None);
    assert_eq!(inv.stream_ids, vec!["1".to_owned()]);
    assert_eq!(written(Protocol::MessagePack, &message), framed_msgpack(&body));
}

#[test]
fn msgpack_golden_completions_items_cancel_ping_close() {
    let cases: Vec<Vec<u8>> = vec![
        // Completion with a result: [3, {}, "xyz", 3, 42]
        vec![0x95, 0x03, 0x80, 0xa3, b'x', b'y', b'z', 0x03, 0x2a],
        // Completion with an error: [3, {}, "xyz", 1, "Error"]
        vec![
            0x95, 0x03, 0x80, 0xa3, b'x', b'y', b'z', 0x01, 0xa5, b'E', b'r', b'r', b'o', b'r',
        ],
        // Void completion: [3, {}, "xyz", 2]
        vec![0x94, 0x03, 0x80, 0xa3, b'x', b'y', b'z', 0x02],
        // StreamItem: [2, {}, "xyz", 42]
        vec![0x94, 0x02, 0x80, 0xa3, b'x', b'y', b'z', 0x2a],
        // StreamInvocation: [4, {}, "xyz", "method", [42], []]
        vec![
            0x96, 0x04, 0x80, 0xa3, b'x', b'y', b'z', 0xa6, b'm', b'e', b't', b'h', b'o', b'd', 0x91, 0x2a, 0x90,
        ],
        // CancelInvocation: [5, {}, "xyz"]
        vec![0x93, 0x05, 0x80, 0xa3, b'x', b'y', b'z'],
        // Ping: [6]
        vec![0x91, 0x06],
        // Close with an error and allowReconnect: [7, "Error", true]
        vec![0x93, 0x07, 0xa5, b'E', b'r', b'r', b'o', b'r', 0xc3],
        // Ack and Sequence: [8, 1394], [9, 7]
        vec![0x92, 0x08, 0xcd, 0x05, 0x72],
        vec![0x92, 0x09, 0x07],
    ];
    for body in cases {
        let message = parse_one(Protocol::MessagePack, &framed_msgpack(&body));
        assert_eq!(
            written(Protocol::MessagePack, &message),
            framed_msgpack(&body),
            "{message:?}"
        );
    }
    // The TypeScript client writes Close as [7, nil].
    assert_eq!(
        parse_one(Protocol::MessagePack, &framed_msgpack(&[0x92, 0x07, 0xc0])),
        HubMessage::Close(Close::default())
    );
}

#[test]
fn msgpack_headers_are_read_and_written() {
    // [1, {"Foo": "Bar"}, "xyz", "method", [], []]
    let body = [
        0x96, 0x01, 0x81, 0xa3, b'F', b'o', b'o', 0xa3, b'B', b'a', b'r', 0xa3, b'x', b'y', b'z', 0xa6, b'm', b'e',
        b't', b'h', b'o', b'd', 0x90, 0x90,
    ];
    let message = parse_one(Protocol::MessagePack, &framed_msgpack(&body));
    let HubMessage::Invocation(inv) = &message else {
        panic!()
    };
    assert_eq!(inv.headers.get("Foo").map(String::as_str), Some("Bar"));
    assert_eq!(written(Protocol::MessagePack, &message), framed_msgpack(&body));
}

#[test]
fn msgpack_rejects_malformed_records_without_panicking() {
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x90],
        vec![0xa3, b'a', b'b', b'c'],
        vec![0x95, 0x01, 0x80, 0xa3, b'x'],
        vec![0x95, 0x01, 0x80, 0x2a, 0xa1, b'm', 0x90],
        vec![0x95, 0x03, 0x80, 0xa1, b'x', 0x07, 0x2a],
        vec![0x95, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x91, 0xc1],
        vec![0x92, 0x08, 0xff],
    ];
    for record in bad {
        assert!(
            Protocol::MessagePack.parse_record(Bytes::from(record.clone())).is_err(),
            "{record:02x?}"
        );
    }
    // Deep nesting is never recursed into. In a stream item it fails the record; in an
    // invocation's argument it stands as a value that binds to no type, the other arguments
    // keep their places, and the stream ids after it are not read.
    let deep = |head: &[u8], tail: &[u8]| {
        let mut bytes = head.to_vec();
        bytes.extend(std::iter::repeat_n(0x91, 10_000));
        bytes.push(0x01);
        bytes.extend_from_slice(tail);
        Bytes::from(bytes)
    };
    let item = deep(&[0x94, 0x02, 0x80, 0xa1, b'1'], &[]);
    assert!(Protocol::MessagePack.parse_record(item).is_err());
    let call = deep(
        &[0x96, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x93, 0x07],
        &[0x08, 0x91, 0xa1, b's'],
    );
    let Some(HubMessage::Invocation(invocation)) = Protocol::MessagePack.parse_record(call).unwrap() else {
        panic!("an invocation")
    };
    assert_eq!(invocation.target, "m");
    assert_eq!(invocation.arguments.len(), 3);
    assert_eq!(invocation.arguments[0].decode::<i32>().unwrap(), 7);
    assert!(invocation.arguments[1].decode::<serde_json::Value>().is_err());
    assert!(invocation.arguments[2].decode::<Option<i32>>().is_err());
    assert!(invocation.stream_ids.is_empty());
}

#[test]
fn msgpack_unknown_message_type_is_ignored() {
    assert_eq!(
        Protocol::MessagePack
            .parse_record(Bytes::from_static(&[0x92, 0x63, 0x01]))
            .unwrap(),
        None
    );
}

#[test]
fn json_tolerates_type_last_unknown_properties_and_null_error() {
    let message =
        json(r#"{"target":"Echo","arguments":["x", {"a":[1,2]}],"invocationId":"0","extra":{"deep":[1]},"type":1}"#);
    let HubMessage::Invocation(inv) = &message else {
        panic!()
    };
    assert_eq!(inv.target, "Echo");
    assert_eq!(inv.arguments[0].bytes().as_ref(), b"\"x\"");
    assert_eq!(inv.arguments[1].bytes().as_ref(), br#"{"a":[1,2]}"#);
    // signalrcore sends both properties, error being null.
    let message = json(r#"{"type":3,"invocationId":"1","result":null,"error":null}"#);
    let HubMessage::Completion(c) = &message else { panic!() };
    assert_eq!(
        c.result,
        CompletionResult::Value(RawValue::new(Protocol::Json, Bytes::from_static(b"null")))
    );
    let message = json(r#"{"type":3,"invocationId":"1"}"#);
    let HubMessage::Completion(c) = &message else { panic!() };
    assert_eq!(c.result, CompletionResult::Void);
    assert_eq!(
        Protocol::Json
            .parse_record(Bytes::from_static(br#"{"type":42,"x":1}"#))
            .unwrap(),
        None
    );
}

#[test]
fn json_reports_the_reference_error_texts() {
    let err = |text: &str| {
        Protocol::Json
            .parse_record(Bytes::copy_from_slice(text.as_bytes()))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(r#"{"target":"x","arguments":[]}"#),
        "Missing required property 'type'."
    );
    assert_eq!(
        err(r#"{"type":1,"arguments":[]}"#),
        "Missing required property 'target'."
    );
    assert_eq!(
        err(r#"{"type":1,"target":"x"}"#),
        "Missing required property 'arguments'."
    );
    assert_eq!(
        err(r#"{"type":2,"invocationId":"1"}"#),
        "Missing required property 'item'."
    );
    assert_eq!(
        err(r#"{"type":3,"result":1}"#),
        "Missing required property 'invocationId'."
    );
    assert_eq!(
        err(r#"{"type":3,"invocationId":"1","result":1,"error":"e"}"#),
        "The 'error' and 'result' properties are mutually exclusive."
    );
    assert_eq!(err(r#"{"type":"one"}"#), "Expected 'type' to be of type Number.");
    assert_eq!(err(r#"{"type":1,"target""#), "Error reading JSON.");
    assert_eq!(
        err(r#"[1,2]"#),
        "Unexpected JSON Token Type 'Array'. Expected a JSON Object."
    );
    assert_eq!(
        err(r#""text""#),
        "Unexpected JSON Token Type 'String'. Expected a JSON Object."
    );
    // Each property of the wrong type is named, as the reference server names it; the first
    // one in the record wins.
    let cases = [
        (
            r#"{"type":1,"invocationId":5,"target":"x","arguments":[]}"#,
            "Expected 'invocationId' to be of type String.",
        ),
        (
            r#"{"type":1,"target":[],"arguments":[]}"#,
            "Expected 'target' to be of type String.",
        ),
        (
            r#"{"type":1,"target":"x","arguments":{}}"#,
            "Expected 'arguments' to be of type Array.",
        ),
        (
            r#"{"type":1,"target":"x","arguments":[],"streamIds":"s"}"#,
            "Expected 'streamIds' to be of type Array.",
        ),
        (r#"{"type":7,"error":false}"#, "Expected 'error' to be of type String."),
        (
            r#"{"type":7,"allowReconnect":"yes"}"#,
            "Expected 'allowReconnect' to be true or false.",
        ),
        (
            r#"{"type":1,"target":"x","arguments":[],"headers":[]}"#,
            "Expected 'headers' to be of type StartObject.",
        ),
        (
            r#"{"type":1,"target":"x","arguments":[],"headers":{"a":"1","b":2}}"#,
            "Expected header 'b' to be of type String.",
        ),
        (
            r#"{"type":8,"sequenceId":"1"}"#,
            "Expected 'sequenceId' to be of type Number.",
        ),
        (r#"{"target":7,"type":"x"}"#, "Expected 'target' to be of type String."),
    ];
    for (record, text) in cases {
        assert_eq!(err(record), text, "{record}");
    }
    // Nesting deeper than 64, as .NET's JSON reader refuses it; 64 is fine.
    let nested = |depth: usize| {
        format!(
            r#"{{"type":1,"target":"x","arguments":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    assert_eq!(err(&nested(64)), "Error reading JSON.");
    assert!(Protocol::Json.parse_record(Bytes::from(nested(63))).is_ok());
    let in_strings = format!(r#"{{"type":1,"target":"x","arguments":["{}"]}}"#, "[".repeat(200));
    assert!(
        Protocol::Json.parse_record(Bytes::from(in_strings)).is_ok(),
        "brackets in strings do not count"
    );
}

#[test]
fn json_writes_the_shapes_clients_expect() {
    let mut out = Vec::new();
    Protocol::Json
        .write_invocation(&mut out, false, None, "Send", &("a", 1), &[])
        .unwrap();
    assert_eq!(out, b"{\"type\":1,\"target\":\"Send\",\"arguments\":[\"a\",1]}\x1e");
    out.clear();
    Protocol::Json
        .write_completion::<()>(&mut out, "7", CompletionResult::Void)
        .unwrap();
    assert_eq!(out, b"{\"type\":3,\"invocationId\":\"7\"}\x1e");
    out.clear();
    Protocol::Json
        .write_completion(&mut out, "7", CompletionResult::Value(&Option::<i32>::None))
        .unwrap();
    assert_eq!(out, b"{\"type\":3,\"invocationId\":\"7\",\"result\":null}\x1e");
    out.clear();
    Protocol::Json
        .write_completion::<()>(&mut out, "7", CompletionResult::Error("boom \"x\"".into()))
        .unwrap();
    assert_eq!(
        out,
        b"{\"type\":3,\"invocationId\":\"7\",\"error\":\"boom \\\"x\\\"\"}\x1e"
    );
    assert_eq!(written(Protocol::Json, &HubMessage::Ping), b"{\"type\":6}\x1e");
    assert_eq!(
        written(
            Protocol::Json,
            &HubMessage::Close(Close {
                error: Some("e".into()),
                allow_reconnect: true
            })
        ),
        b"{\"type\":7,\"error\":\"e\",\"allowReconnect\":true}\x1e"
    );
    assert_eq!(
        written(Protocol::Json, &HubMessage::Close(Close::default())),
        b"{\"type\":7}\x1e"
    );
}

#[test]
fn msgpack_typed_writers_match_the_raw_writer() {
    let mut typed = Vec::new();
    Protocol::MessagePack
        .write_invocation(&mut typed, false, Some("xyz"), "method", &(42,), &[])
        .unwrap();
    let body = [
        0x96, 0x01, 0x80, 0xa3, b'x', b'y', b'z', 0xa6, b'm', b'e', b't', b'h', b'o', b'd', 0x91, 0x2a, 0x90,
    ];
    assert_eq!(typed, framed_msgpack(&body));
    let mut typed = Vec::new();
    Protocol::MessagePack
        .write_completion(&mut typed, "xyz", CompletionResult::Value(&42))
        .unwrap();
    assert_eq!(
        typed,
        framed_msgpack(&[0x95, 0x03, 0x80, 0xa3, b'x', b'y', b'z', 0x03, 0x2a])
    );
    let mut typed = Vec::new();
    Protocol::MessagePack.write_stream_item(&mut typed, "xyz", &42).unwrap();
    assert_eq!(typed, framed_msgpack(&[0x94, 0x02, 0x80, 0xa3, b'x', b'y', b'z', 0x2a]));
}

#[test]
fn values_convert_between_protocols_when_forwarded() {
    let from_json = HubMessage::Invocation(Invocation {
        target: "Send".into(),
        arguments: vec![RawValue::new(
            Protocol::Json,
            Bytes::from_static(br#"{"Name":"x","Value":[1,2]}"#),
        )],
        ..Default::default()
    });
    let bytes = written(Protocol::MessagePack, &from_json);
    let HubMessage::Invocation(inv) = parse_one(Protocol::MessagePack, &bytes) else {
        panic!()
    };
    let value: serde_json::Value = inv.arguments[0].decode().unwrap();
    assert_eq!(value, serde_json::json!({"Name": "x", "Value": [1, 2]}));
}

#[test]
fn handshake_request_and_response() {
    let mut buf = BytesMut::from(&b"{\"protocol\":\"messagepack\",\"version\":1}\x1e\x02\x91\x06"[..]);
    let request = handshake::read_request(&mut buf, Some(32768)).unwrap().unwrap();
    assert_eq!(
        request,
        handshake::HandshakeRequest {
            protocol: "messagepack".into(),
            version: 1
        }
    );
    assert_eq!(
        &buf[..],
        [0x02, 0x91, 0x06],
        "bytes after the handshake stay for the hub protocol"
    );
    assert_eq!(handshake::write_response(None).as_ref(), b"{}\x1e");
    assert_eq!(
        handshake::write_response(Some("The protocol 'foo' is not supported.")).as_ref(),
        b"{\"error\":\"The protocol 'foo' is not supported.\"}\x1e"
    );
    let err = |text: &str| handshake::parse_request(text.as_bytes()).unwrap_err().to_string();
    assert_eq!(
        err(r#"{"version":1}"#),
        r#"Missing required property 'protocol'. Message content: {"version":1}"#
    );
    assert_eq!(
        err(r#"{"protocol":"json"}"#),
        r#"Missing required property 'version'. Message content: {"protocol":"json"}"#
    );
    assert_eq!(
        err(r#"{"protocol":1,"version":1}"#),
        "Expected 'protocol' to be of type String."
    );
    assert_eq!(
        err(r#"{"protocol":"json","version":"1"}"#),
        "Expected 'version' to be of type Number."
    );
    assert_eq!(err("[]"), "Unexpected JSON Token Type 'Array'. Expected a JSON Object.");
    let mut big = BytesMut::from(&[b' '; 100][..]);
    assert!(handshake::read_request(&mut big, Some(50)).is_err());
}

#[test]
fn negotiate_versions_and_bodies() {
    assert_eq!(select_version(None, 0), Ok(0));
    assert_eq!(select_version(Some("1"), 0), Ok(1));
    assert_eq!(select_version(Some("7"), 0), Ok(1));
    assert_eq!(
        select_version(Some("x"), 0).unwrap_err().error,
        "The client requested a non-integer protocol version."
    );
    assert_eq!(
        select_version(Some("0"), 1).unwrap_err().error,
        "The client requested version '0', but the server does not support this version."
    );
    let body = br#"{"url":"http://x/hub","accessToken":"t"}"#;
    assert!(matches!(NegotiateBody::parse(body).unwrap(), NegotiateBody::Redirect(r) if r.url == "http://x/hub"));
    let body = br#"{"connectionId":"a","connectionToken":"b","negotiateVersion":1,"availableTransports":[]}"#;
    assert!(
        matches!(NegotiateBody::parse(body).unwrap(), NegotiateBody::Connection(c) if c.connection_token.as_deref() == Some("b"))
    );
}

fn raw_strategy(protocol: Protocol) -> impl Strategy<Value = RawValue> {
    prop_oneof![
        any::<i64>().prop_map(move |v| RawValue::encode(protocol, &v).unwrap()),
        ".{0,40}".prop_map(move |v| RawValue::encode(protocol, &v).unwrap()),
        proptest::collection::vec(any::<u16>(), 0..5).prop_map(move |v| RawValue::encode(protocol, &v).unwrap()),
        any::<bool>().prop_map(move |v| RawValue::encode(protocol, &v).unwrap()),
        Just(RawValue::encode(protocol, &()).unwrap()),
    ]
}

fn message_strategy(protocol: Protocol) -> impl Strategy<Value = HubMessage> {
    let id = "[a-z0-9]{1,8}";
    let headers = proptest::collection::hash_map("[a-zA-Z]{1,6}", ".{0,10}", 0..3);
    let invocation = (
        headers.clone(),
        proptest::option::of(id),
        "[A-Za-z]{1,12}",
        proptest::collection::vec(raw_strategy(protocol), 0..4),
        proptest::collection::vec(id, 0..3),
        any::<bool>(),
    )
        .prop_map(|(headers, invocation_id, target, arguments, stream_ids, streaming)| {
            if streaming {
                HubMessage::StreamInvocation(Invocation {
                    headers,
                    invocation_id: Some(invocation_id.unwrap_or_else(|| "s".into())),
                    target,
                    arguments,
                    stream_ids,
                })
            } else {
                HubMessage::Invocation(Invocation {
                    headers,
                    invocation_id,
                    target,
                    arguments,
                    stream_ids,
                })
            }
        });
    let result = prop_oneof![
        Just(CompletionResult::Void),
        raw_strategy(protocol).prop_map(CompletionResult::Value),
        ".{0,30}".prop_map(CompletionResult::Error),
    ];
    prop_oneof![
        invocation,
        (headers.clone(), id, raw_strategy(protocol)).prop_map(
            |(headers, invocation_id, item)| HubMessage::StreamItem(StreamItem {
                headers,
                invocation_id,
                item
            })
        ),
        (headers.clone(), id, result).prop_map(|(headers, invocation_id, result)| HubMessage::Completion(Completion {
            headers,
            invocation_id,
            result
        })),
        (headers, id).prop_map(|(headers, invocation_id)| HubMessage::CancelInvocation { headers, invocation_id }),
        Just(HubMessage::Ping),
        (proptest::option::of(".{0,20}"), any::<bool>())
            .prop_map(|(error, allow_reconnect)| HubMessage::Close(Close { error, allow_reconnect })),
        any::<u32>().prop_map(|s| HubMessage::Ack {
            sequence_id: u64::from(s)
        }),
        any::<u32>().prop_map(|s| HubMessage::Sequence {
            sequence_id: u64::from(s)
        }),
    ]
}

fn round_trip(protocol: Protocol, messages: &[HubMessage], chunk: usize) {
    let mut stream = Vec::new();
    for message in messages {
        protocol.write_message(&mut stream, message).unwrap();
    }
    // Feed the stream in chunks of arbitrary size, as a transport would.
    let mut buf = BytesMut::new();
    let mut parsed = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(record) = protocol.split_record(&mut buf, None).unwrap() {
            parsed.push(protocol.parse_record(record).unwrap().unwrap());
        }
    }
    assert!(buf.is_empty());
    assert_eq!(parsed, messages);
}

proptest! {
    #[test]
    fn json_round_trips(messages in proptest::collection::vec(message_strategy(Protocol::Json), 1..6), chunk in 1usize..64) {
        round_trip(Protocol::Json, &messages, chunk);
    }

    #[test]
    fn msgpack_round_trips(messages in proptest::collection::vec(message_strategy(Protocol::MessagePack), 1..6), chunk in 1usize..64) {
        round_trip(Protocol::MessagePack, &messages, chunk);
    }

    #[test]
    fn msgpack_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Protocol::MessagePack.parse_record(Bytes::from(bytes));
    }

    #[test]
    fn json_parse_never_panics(text in ".{0,64}") {
        let _ = Protocol::Json.parse_record(Bytes::from(text));
    }
}

#[test]
fn framing_message_type_of_written_records() {
    for protocol in Protocol::ALL {
        let text = protocol == Protocol::Json;
        let mut out = Vec::new();
        protocol
            .write_invocation(&mut out, false, None, "x", &(1,), &[])
            .unwrap();
        assert_eq!(framing::message_type(text, &out), Some(1));
        for (message, kind) in [(HubMessage::Ping, 6), (HubMessage::Ack { sequence_id: 300 }, 8)] {
            let out = written(protocol, &message);
            assert_eq!(framing::message_type(text, &out), Some(kind));
        }
    }
    assert_eq!(framing::message_type(true, &handshake::write_response(None)), None);
    assert!(framing::is_tracked(3) && !framing::is_tracked(6) && !framing::is_tracked(8));
}

#[test]
fn arguments_are_always_an_array() {
    let mut out = Vec::new();
    Protocol::Json
        .write_invocation(&mut out, false, None, "StreamCanceled", &(), &[])
        .unwrap();
    assert_eq!(out, b"{\"type\":1,\"target\":\"StreamCanceled\",\"arguments\":[]}\x1e");
    let mut out = Vec::new();
    Protocol::MessagePack
        .write_invocation(&mut out, false, None, "X", &(), &[])
        .unwrap();
    assert_eq!(out, framed_msgpack(&[0x96, 0x01, 0x80, 0xc0, 0xa1, b'X', 0x90, 0x90]));
    let mut out = Vec::new();
    Protocol::Json
        .write_invocation(&mut out, false, None, "X", &vec![1, 2], &[])
        .unwrap();
    assert_eq!(out, b"{\"type\":1,\"target\":\"X\",\"arguments\":[1,2]}\x1e");
}

#[test]
fn framing_framed_records_keep_their_framing() {
    // JSON: two records and a partial one.
    let mut buf = BytesMut::from(&b"{\"type\":6}\x1e{\"arguments\":[],\"type\":1}\x1e{\"ty"[..]);
    let first = framing::split_framed_record(Protocol::Json, &mut buf, None)
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"{\"type\":6}\x1e");
    let second = framing::split_framed_record(Protocol::Json, &mut buf, None)
        .unwrap()
        .unwrap();
    assert_eq!(
        framing::record_type(Protocol::Json, &second),
        Some(1),
        "type found when it comes last"
    );
    assert!(
        framing::split_framed_record(Protocol::Json, &mut buf, None)
            .unwrap()
            .is_none()
    );
    assert_eq!(&buf[..], b"{\"ty");
    assert_eq!(framing::record_type(Protocol::Json, b"{}\x1e"), None);
    assert_eq!(framing::record_type(Protocol::Json, b"not json\x1e"), None);

    // MessagePack: the VarInt prefix stays with the record; a short record waits.
    let ping = framed_msgpack(&[0x91, 0x06]);
    let ack = framed_msgpack(&[0x92, 0x08, 0x05]);
    let mut payload = ping.clone();
    payload.extend_from_slice(&ack);
    let records: Vec<Bytes> =
        framing::FramedRecords::new(Protocol::MessagePack, Bytes::from(payload.clone())).collect();
    assert_eq!(records, vec![Bytes::from(ping.clone()), Bytes::from(ack.clone())]);
    assert_eq!(framing::record_type(Protocol::MessagePack, &records[0]), Some(6));
    assert_eq!(framing::record_type(Protocol::MessagePack, &records[1]), Some(8));
    let mut short = BytesMut::from(&payload[..payload.len() - 1]);
    assert!(
        framing::split_framed_record(Protocol::MessagePack, &mut short, None)
            .unwrap()
            .is_some()
    );
    assert!(
        framing::split_framed_record(Protocol::MessagePack, &mut short, None)
            .unwrap()
            .is_none()
    );
    // A length over the limit fails before the record is complete.
    let mut huge = BytesMut::new();
    let mut prefix = Vec::new();
    write_varint(&mut prefix, 1 << 20);
    huge.extend_from_slice(&prefix);
    assert!(framing::split_framed_record(Protocol::MessagePack, &mut huge, Some(1024)).is_err());
}
