//! Golden records of the connection-level messages: handshakes, pings, access keys, and the
//! messages about one client connection (open, close, data, reconnect, flow control), plus the
//! service's errors and events.
//!
//! The bytes are written out by hand from the layouts of the reference protocol code
//! (`ServiceProtocol.cs`, `ServiceMessage.cs`): each comment gives the MessagePack structure,
//! the bytes follow it item by item. Every test checks both directions: the writer produces
//! exactly these bytes (framed), and the reader turns them back into the message.

use bytes::Bytes;

use super::{cat, golden};
use crate::protocol::service::*;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn golden_handshake_request() {
    // [1, 1, 1, "abc", 1, {}, true]
    let message = HandshakeRequest {
        version: 1,
        connection_type: 1,
        target: "abc".into(),
        migration_level: 1,
        allow_stateful_reconnects: true,
    };
    golden(
        ServiceMessage::HandshakeRequest(message),
        &cat(&[&[0x97, 0x01, 0x01, 0x01, 0xa3], b"abc", &[0x01, 0x80, 0xc3]]),
    );
    // A Default connection: [1, 1, 0, "", 0, {}, false]
    golden(
        ServiceMessage::HandshakeRequest(HandshakeRequest::new()),
        &[0x97, 0x01, 0x01, 0x00, 0xa0, 0x00, 0x80, 0xc2],
    );
}

#[test]
fn golden_handshake_response() {
    // [2, nil, {}, "sc1"]
    let message = HandshakeResponse {
        error_message: None,
        connection_id: Some("sc1".into()),
    };
    golden(
        ServiceMessage::HandshakeResponse(message),
        &cat(&[&[0x94, 0x02, 0xc0, 0x80, 0xa3], b"sc1"]),
    );
    // [2, "Version mismatch.", {}, nil]
    let message = HandshakeResponse {
        error_message: Some("Version mismatch.".into()),
        connection_id: None,
    };
    golden(
        ServiceMessage::HandshakeResponse(message),
        &cat(&[&[0x94, 0x02, 0xb1], b"Version mismatch.", &[0x80, 0xc0]]),
    );
}

#[test]
fn golden_ping() {
    // [3]
    golden(ServiceMessage::Ping(Ping::keep_alive()), &[0x91, 0x03]);
    // [3, "status", "1"]
    golden(
        ServiceMessage::Ping(Ping::status(true)),
        &cat(&[&[0x93, 0x03, 0xa6], b"status", &[0xa1], b"1"]),
    );
    // [3, "shutdown", "fin:2"]
    golden(
        ServiceMessage::Ping(Ping::shutdown(ShutdownMode::WaitForClientsClose)),
        &cat(&[&[0x93, 0x03, 0xa8], b"shutdown", &[0xa5], b"fin:2"]),
    );
}

#[test]
fn golden_open_connection() {
    // [4, "c1", {"sub": "u1", "role": "a", "role": "b"}, {"Asrs-Instance-Id": ["i1"]}, "a=1",
    //  {1: 888, 3: "json"}]
    let message = OpenConnection {
        connection_id: "c1".into(),
        claims: vec![
            ("sub".into(), "u1".into()),
            ("role".into(), "a".into()),
            ("role".into(), "b".into()),
        ],
        headers: vec![("Asrs-Instance-Id".into(), strings(&["i1"]))],
        query_string: Some("a=1".into()),
        tracing_id: Some(888),
        protocol: Some("json".into()),
    };
    let body = cat(&[
        &[0x96, 0x04, 0xa2],
        b"c1",
        &[0x83, 0xa3],
        b"sub",
        &[0xa2],
        b"u1",
        &[0xa4],
        b"role",
        &[0xa1],
        b"a",
        &[0xa4],
        b"role",
        &[0xa1],
        b"b",
        &[0x81, 0xb0],
        b"Asrs-Instance-Id",
        &[0x91, 0xa2],
        b"i1",
        &[0xa3],
        b"a=1",
        &[0x82, 0x01, 0xcd, 0x03, 0x78, 0x03, 0xa4],
        b"json",
    ]);
    golden(ServiceMessage::OpenConnection(message), &body);
}

#[test]
fn golden_close_connection() {
    // [5, "c1", "", {"Asrs-Migrate-To": ["s2"]}, {1: 123}]
    let message = CloseConnection {
        connection_id: "c1".into(),
        error_message: Some(String::new()),
        headers: vec![("Asrs-Migrate-To".into(), strings(&["s2"]))],
        tracing_id: Some(123),
    };
    let body = cat(&[
        &[0x95, 0x05, 0xa2],
        b"c1",
        &[0xa0, 0x81, 0xaf],
        b"Asrs-Migrate-To",
        &[0x91, 0xa2],
        b"s2",
        &[0x81, 0x01, 0x7b],
    ]);
    golden(ServiceMessage::CloseConnection(message), &body);
}

#[test]
fn golden_connection_data() {
    // [6, "c1", bin(01 02 03), {5: 2, 6: true}]
    let message = ConnectionData {
        connection_id: "c1".into(),
        payload: Bytes::from_static(&[1, 2, 3]),
        tracing_id: None,
        data_type: DataMessageType::Invocation,
        is_partial: true,
    };
    let body = cat(&[
        &[0x94, 0x06, 0xa2],
        b"c1",
        &[0xc4, 0x03, 0x01, 0x02, 0x03, 0x82, 0x05, 0x02, 0x06, 0xc3],
    ]);
    golden(ServiceMessage::ConnectionData(message), &body);
}

#[test]
fn golden_connection_data_long_payload_uses_bin16_and_a_two_byte_prefix() {
    // [6, "c1", bin16(300 × 0xab), {}]: the body is 309 bytes, so the VarInt prefix is
    // 0xb5 0x02 (309 = 0x35 + 2 × 128).
    let payload = vec![0xab; 300];
    let message = ServiceMessage::ConnectionData(ConnectionData {
        connection_id: "c1".into(),
        payload: Bytes::from(payload.clone()),
        ..ConnectionData::default()
    });
    let body = cat(&[&[0x94, 0x06, 0xa2], b"c1", &[0xc5, 0x01, 0x2c], &payload, &[0x80]]);
    assert_eq!(body.len(), 309);
    let mut out = Vec::new();
    write(&message, &mut out);
    assert_eq!(&out[..2], &[0xb5, 0x02]);
    golden(message, &body);
}

#[test]
fn golden_service_error() {
    // [15, str8("x" × 40)]: strings of 32 to 255 bytes take the str8 form.
    let text = "x".repeat(40);
    let message = ServiceError {
        error_message: Some(text.clone()),
    };
    golden(
        ServiceMessage::ServiceError(message),
        &cat(&[&[0x92, 0x0f, 0xd9, 40], text.as_bytes()]),
    );
}

#[test]
fn golden_service_event() {
    // [22, 3, "g1", 2, "Group g1 is empty.", {}]
    let message = ServiceEvent {
        object_type: ServiceEventObjectType::Group,
        id: Some("g1".into()),
        kind: ServiceEventKind::NotExisted,
        message: Some("Group g1 is empty.".into()),
    };
    let body = cat(&[
        &[0x96, 0x16, 0x03, 0xa2],
        b"g1",
        &[0x02, 0xb2],
        b"Group g1 is empty.",
        &[0x80],
    ]);
    golden(ServiceMessage::ServiceEvent(message), &body);
}

#[test]
fn golden_access_key_request() {
    // [28, "t", nil, {}]
    let message = AccessKeyRequest {
        token: Some("t".into()),
        kid: None,
    };
    golden(
        ServiceMessage::AccessKeyRequest(message),
        &cat(&[&[0x94, 0x1c, 0xa1], b"t", &[0xc0, 0x80]]),
    );
}

#[test]
fn golden_access_key_response() {
    // [29, "k1", "secret", nil, nil, {}]
    let message = AccessKeyResponse {
        kid: Some("k1".into()),
        access_key: Some("secret".into()),
        error_type: None,
        error_message: None,
    };
    let body = cat(&[&[0x96, 0x1d, 0xa2], b"k1", &[0xa6], b"secret", &[0xc0, 0xc0, 0x80]]);
    golden(ServiceMessage::AccessKeyResponse(message), &body);
}

#[test]
fn golden_connection_reconnect() {
    // [38, "c7", {}]
    let message = ConnectionReconnect {
        connection_id: "c7".into(),
    };
    golden(
        ServiceMessage::ConnectionReconnect(message),
        &cat(&[&[0x93, 0x26, 0xa2], b"c7", &[0x80]]),
    );
}

#[test]
fn golden_connection_flow_control() {
    // [39, "c1", int32 1, int32 2, {}]: both numbers in the fixed five-byte form.
    let message = ConnectionFlowControl {
        connection_id: "c1".into(),
        connection_type: FlowControlConnectionType::Client,
        operation: FlowControlOperation::PauseAck,
    };
    let body = cat(&[
        &[0x95, 0x27, 0xa2],
        b"c1",
        &[0xd2, 0x00, 0x00, 0x00, 0x01, 0xd2, 0x00, 0x00, 0x00, 0x02, 0x80],
    ]);
    golden(ServiceMessage::ConnectionFlowControl(message), &body);
}
