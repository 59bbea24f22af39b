//! One golden record per message type, written out by hand from the layouts of the reference
//! protocol code (`ServiceProtocol.cs`, `ServiceMessage.cs`): each comment gives the
//! MessagePack structure, the bytes follow it item by item. Every test checks both directions:
//! the writer produces exactly these bytes (framed), and the reader turns them back into the
//! message.

use bytes::Bytes;

use super::{cat, golden};
use crate::protocol::service::*;

fn payloads(items: &[(&str, &[u8])]) -> Payloads {
    items
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), Bytes::copy_from_slice(bytes)))
        .collect()
}

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
fn golden_multi_connection_data() {
    // [7, ["c1", "c2"], {"json": bin("{}"), "messagepack": bin(91 06)}, {1: 1234}]
    let message = MultiConnectionData {
        connection_ids: strings(&["c1", "c2"]),
        payloads: payloads(&[("json", b"{}"), ("messagepack", &[0x91, 0x06])]),
        tracing_id: Some(1234),
        filter: None,
    };
    let body = cat(&[
        &[0x94, 0x07, 0x92, 0xa2],
        b"c1",
        &[0xa2],
        b"c2",
        &[0x82, 0xa4],
        b"json",
        &[0xc4, 0x02],
        b"{}",
        &[0xab],
        b"messagepack",
        &[0xc4, 0x02, 0x91, 0x06, 0x81, 0x01, 0xcd, 0x04, 0xd2],
    ]);
    golden(ServiceMessage::MultiConnectionData(message), &body);
}

#[test]
fn golden_user_data() {
    // [8, "u1", {"json": bin(01)}, {4: "x"}]
    let message = UserData {
        user_id: "u1".into(),
        payloads: payloads(&[("json", &[0x01])]),
        tracing_id: None,
        filter: Some("x".into()),
    };
    let body = cat(&[
        &[0x94, 0x08, 0xa2],
        b"u1",
        &[0x81, 0xa4],
        b"json",
        &[0xc4, 0x01, 0x01, 0x81, 0x04, 0xa1],
        b"x",
    ]);
    golden(ServiceMessage::UserData(message), &body);
}

#[test]
fn golden_multi_user_data() {
    // [9, ["u1", "u2"], {}, {}]
    let message = MultiUserData {
        user_ids: strings(&["u1", "u2"]),
        ..MultiUserData::default()
    };
    let body = cat(&[&[0x94, 0x09, 0x92, 0xa2], b"u1", &[0xa2], b"u2", &[0x80, 0x80]]);
    golden(ServiceMessage::MultiUserData(message), &body);
}

#[test]
fn golden_broadcast_data() {
    // [10, ["c3"], {"messagepack": bin(07)}, {1: 70000}]
    let message = BroadcastData {
        excluded: strings(&["c3"]),
        payloads: payloads(&[("messagepack", &[0x07])]),
        tracing_id: Some(70_000),
        filter: None,
    };
    let body = cat(&[
        &[0x94, 0x0a, 0x91, 0xa2],
        b"c3",
        &[0x81, 0xab],
        b"messagepack",
        &[0xc4, 0x01, 0x07, 0x81, 0x01, 0xce, 0x00, 0x01, 0x11, 0x70],
    ]);
    golden(ServiceMessage::BroadcastData(message), &body);
}

#[test]
fn golden_join_group() {
    // [11, "c1", "g1", {1: 5}]
    let message = JoinGroup {
        connection_id: "c1".into(),
        group: "g1".into(),
        tracing_id: Some(5),
    };
    let body = cat(&[&[0x94, 0x0b, 0xa2], b"c1", &[0xa2], b"g1", &[0x81, 0x01, 0x05]]);
    golden(ServiceMessage::JoinGroup(message), &body);
}

#[test]
fn golden_leave_group() {
    // [12, "c1", nil, {}]
    let message = LeaveGroup {
        connection_id: "c1".into(),
        group: None,
        tracing_id: None,
    };
    golden(
        ServiceMessage::LeaveGroup(message),
        &cat(&[&[0x94, 0x0c, 0xa2], b"c1", &[0xc0, 0x80]]),
    );
}

#[test]
fn golden_group_broadcast_data() {
    // [13, "g1", ["c1"], {"json": bin("1")}, {}, ["u1"], "u2"]
    let message = GroupBroadcastData {
        group: "g1".into(),
        excluded: strings(&["c1"]),
        payloads: payloads(&[("json", b"1")]),
        excluded_users: strings(&["u1"]),
        caller_user_id: Some("u2".into()),
        ..GroupBroadcastData::default()
    };
    let body = cat(&[
        &[0x97, 0x0d, 0xa2],
        b"g1",
        &[0x91, 0xa2],
        b"c1",
        &[0x81, 0xa4],
        b"json",
        &[0xc4, 0x01],
        b"1",
        &[0x80, 0x91, 0xa2],
        b"u1",
        &[0xa2],
        b"u2",
    ]);
    golden(ServiceMessage::GroupBroadcastData(message), &body);
}

#[test]
fn golden_multi_group_broadcast_data() {
    // [14, ["g1", "g2"], {"json": bin()}, {4: "f"}]
    let message = MultiGroupBroadcastData {
        groups: strings(&["g1", "g2"]),
        payloads: payloads(&[("json", b"")]),
        tracing_id: None,
        filter: Some("f".into()),
    };
    let body = cat(&[
        &[0x94, 0x0e, 0x92, 0xa2],
        b"g1",
        &[0xa2],
        b"g2",
        &[0x81, 0xa4],
        b"json",
        &[0xc4, 0x00, 0x81, 0x04, 0xa1],
        b"f",
    ]);
    golden(ServiceMessage::MultiGroupBroadcastData(message), &body);
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
fn golden_user_join_group() {
    // [16, "u1", "g1", {2: 100}]
    let message = UserJoinGroup {
        user_id: "u1".into(),
        group: "g1".into(),
        ttl: Some(100),
        tracing_id: None,
    };
    let body = cat(&[&[0x94, 0x10, 0xa2], b"u1", &[0xa2], b"g1", &[0x81, 0x02, 0x64]]);
    golden(ServiceMessage::UserJoinGroup(message), &body);
}

#[test]
fn golden_user_leave_group() {
    // [17, "u1", nil, {1: 1}]: nil leaves every group.
    let message = UserLeaveGroup {
        user_id: "u1".into(),
        group: None,
        tracing_id: Some(1),
    };
    let body = cat(&[&[0x94, 0x11, 0xa2], b"u1", &[0xc0, 0x81, 0x01, 0x01]]);
    golden(ServiceMessage::UserLeaveGroup(message), &body);
}

#[test]
fn golden_join_group_with_ack() {
    // [18, "c1", "g1", 300, {}]
    let message = JoinGroupWithAck {
        connection_id: "c1".into(),
        group: "g1".into(),
        ack_id: 300,
        tracing_id: None,
    };
    let body = cat(&[&[0x95, 0x12, 0xa2], b"c1", &[0xa2], b"g1", &[0xcd, 0x01, 0x2c, 0x80]]);
    golden(ServiceMessage::JoinGroupWithAck(message), &body);
}

#[test]
fn golden_leave_group_with_ack() {
    // [19, "c1", "g1", 2, {1: 2}]
    let message = LeaveGroupWithAck {
        connection_id: "c1".into(),
        group: Some("g1".into()),
        ack_id: 2,
        tracing_id: Some(2),
    };
    let body = cat(&[&[0x95, 0x13, 0xa2], b"c1", &[0xa2], b"g1", &[0x02, 0x81, 0x01, 0x02]]);
    golden(ServiceMessage::LeaveGroupWithAck(message), &body);
}

#[test]
fn golden_ack() {
    // [20, 7, 2, "gone", {}, nil]
    let message = Ack {
        ack_id: 7,
        status: AckStatus::NotFound,
        message: Some("gone".into()),
        payload: None,
    };
    golden(
        ServiceMessage::Ack(message),
        &cat(&[&[0x96, 0x14, 0x07, 0x02, 0xa4], b"gone", &[0x80, 0xc0]]),
    );
    // [20, -1, 1, "", {}, bin(01 02 03)]
    let message = Ack {
        ack_id: -1,
        status: AckStatus::Ok,
        message: Some(String::new()),
        payload: Some(Bytes::from_static(&[1, 2, 3])),
    };
    golden(
        ServiceMessage::Ack(message),
        &[0x96, 0x14, 0xff, 0x01, 0xa0, 0x80, 0xc4, 0x03, 0x01, 0x02, 0x03],
    );
}

#[test]
fn golden_check_user_in_group_with_ack() {
    // [21, "u1", "g1", 3, {1: 1234}]
    let message = CheckUserInGroupWithAck {
        user_id: "u1".into(),
        group: "g1".into(),
        ack_id: 3,
        tracing_id: Some(1234),
    };
    let body = cat(&[
        &[0x95, 0x15, 0xa2],
        b"u1",
        &[0xa2],
        b"g1",
        &[0x03, 0x81, 0x01, 0xcd, 0x04, 0xd2],
    ]);
    golden(ServiceMessage::CheckUserInGroupWithAck(message), &body);
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
fn golden_check_group_existence_with_ack() {
    // [23, "g1", 0, {1: 3}]
    let message = CheckGroupExistenceWithAck {
        group: "g1".into(),
        ack_id: 0,
        tracing_id: Some(3),
    };
    let body = cat(&[&[0x94, 0x17, 0xa2], b"g1", &[0x00, 0x81, 0x01, 0x03]]);
    golden(ServiceMessage::CheckGroupExistenceWithAck(message), &body);
}

#[test]
fn golden_check_connection_existence_with_ack() {
    // [24, "c1", 1, {}]
    let message = CheckConnectionExistenceWithAck {
        connection_id: "c1".into(),
        ack_id: 1,
        tracing_id: None,
    };
    let body = cat(&[&[0x94, 0x18, 0xa2], b"c1", &[0x01, 0x80]]);
    golden(ServiceMessage::CheckConnectionExistenceWithAck(message), &body);
}

#[test]
fn golden_check_user_existence_with_ack() {
    // [25, "u1", 4, {1: 23}]
    let message = CheckUserExistenceWithAck {
        user_id: "u1".into(),
        ack_id: 4,
        tracing_id: Some(23),
    };
    let body = cat(&[&[0x94, 0x19, 0xa2], b"u1", &[0x04, 0x81, 0x01, 0x17]]);
    golden(ServiceMessage::CheckUserExistenceWithAck(message), &body);
}

#[test]
fn golden_user_join_group_with_ack() {
    // [26, "u1", "g1", 1, {1: 1234, 2: 666}]: members in key order.
    let message = UserJoinGroupWithAck {
        user_id: "u1".into(),
        group: "g1".into(),
        ack_id: 1,
        ttl: Some(666),
        tracing_id: Some(1234),
    };
    let body = cat(&[
        &[0x95, 0x1a, 0xa2],
        b"u1",
        &[0xa2],
        b"g1",
        &[0x01, 0x82, 0x01, 0xcd, 0x04, 0xd2, 0x02, 0xcd, 0x02, 0x9a],
    ]);
    golden(ServiceMessage::UserJoinGroupWithAck(message), &body);
}

#[test]
fn golden_user_leave_group_with_ack() {
    // [27, "u1", nil, 1, {}]
    let message = UserLeaveGroupWithAck {
        user_id: "u1".into(),
        group: None,
        ack_id: 1,
        tracing_id: None,
    };
    let body = cat(&[&[0x95, 0x1b, 0xa2], b"u1", &[0xc0, 0x01, 0x80]]);
    golden(ServiceMessage::UserLeaveGroupWithAck(message), &body);
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
fn golden_close_connection_with_ack() {
    // [30, "c1", "bye", 1, {}]
    let message = CloseConnectionWithAck {
        connection_id: "c1".into(),
        reason: Some("bye".into()),
        ack_id: 1,
        tracing_id: None,
    };
    let body = cat(&[&[0x95, 0x1e, 0xa2], b"c1", &[0xa3], b"bye", &[0x01, 0x80]]);
    golden(ServiceMessage::CloseConnectionWithAck(message), &body);
}

#[test]
fn golden_close_connections_with_ack() {
    // [31, nil, 1, ["c1"], {1: 1}]
    let message = CloseConnectionsWithAck {
        reason: None,
        ack_id: 1,
        excluded: strings(&["c1"]),
        tracing_id: Some(1),
    };
    let body = cat(&[&[0x95, 0x1f, 0xc0, 0x01, 0x91, 0xa2], b"c1", &[0x81, 0x01, 0x01]]);
    golden(ServiceMessage::CloseConnectionsWithAck(message), &body);
}

#[test]
fn golden_close_user_connections_with_ack() {
    // [32, "u1", "x", 2, [], {}]
    let message = CloseUserConnectionsWithAck {
        user_id: "u1".into(),
        reason: Some("x".into()),
        ack_id: 2,
        excluded: Vec::new(),
        tracing_id: None,
    };
    let body = cat(&[&[0x96, 0x20, 0xa2], b"u1", &[0xa1], b"x", &[0x02, 0x90, 0x80]]);
    golden(ServiceMessage::CloseUserConnectionsWithAck(message), &body);
}

#[test]
fn golden_close_group_connections_with_ack() {
    // [33, "g1", nil, 3, ["c1", "c2"], {1: 9}]
    let message = CloseGroupConnectionsWithAck {
        group: "g1".into(),
        reason: None,
        ack_id: 3,
        excluded: strings(&["c1", "c2"]),
        tracing_id: Some(9),
    };
    let body = cat(&[
        &[0x96, 0x21, 0xa2],
        b"g1",
        &[0xc0, 0x03, 0x92, 0xa2],
        b"c1",
        &[0xa2],
        b"c2",
        &[0x81, 0x01, 0x09],
    ]);
    golden(ServiceMessage::CloseGroupConnectionsWithAck(message), &body);
}

#[test]
fn golden_client_invocation() {
    // [34, "i1", "c1", "s1", {"json": bin("{}")}, {}]
    let message = ClientInvocation {
        invocation_id: "i1".into(),
        connection_id: "c1".into(),
        caller_server_id: "s1".into(),
        payloads: payloads(&[("json", b"{}")]),
        tracing_id: None,
    };
    let body = cat(&[
        &[0x96, 0x22, 0xa2],
        b"i1",
        &[0xa2],
        b"c1",
        &[0xa2],
        b"s1",
        &[0x81, 0xa4],
        b"json",
        &[0xc4, 0x02],
        b"{}",
        &[0x80],
    ]);
    golden(ServiceMessage::ClientInvocation(message), &body);
}

#[test]
fn golden_client_completion() {
    // [35, "i1", "c1", "s1", "json", bin("{}"), {3: "json"}]: the protocol goes in twice.
    let message = ClientCompletion {
        invocation_id: "i1".into(),
        connection_id: "c1".into(),
        caller_server_id: "s1".into(),
        protocol: Some("json".into()),
        payload: Bytes::from_static(b"{}"),
        tracing_id: None,
    };
    let body = cat(&[
        &[0x97, 0x23, 0xa2],
        b"i1",
        &[0xa2],
        b"c1",
        &[0xa2],
        b"s1",
        &[0xa4],
        b"json",
        &[0xc4, 0x02],
        b"{}",
        &[0x81, 0x03, 0xa4],
        b"json",
    ]);
    golden(ServiceMessage::ClientCompletion(message), &body);
}

#[test]
fn golden_error_completion() {
    // [36, "i1", "c1", "s1", "Client disconnected.", {1: 1}]
    let message = ErrorCompletion {
        invocation_id: "i1".into(),
        connection_id: "c1".into(),
        caller_server_id: "s1".into(),
        error: Some("Client disconnected.".into()),
        tracing_id: Some(1),
    };
    let body = cat(&[
        &[0x96, 0x24, 0xa2],
        b"i1",
        &[0xa2],
        b"c1",
        &[0xa2],
        b"s1",
        &[0xb4],
        b"Client disconnected.",
        &[0x81, 0x01, 0x01],
    ]);
    golden(ServiceMessage::ErrorCompletion(message), &body);
}

#[test]
fn golden_service_mapping() {
    // [37, "i1", "c1", "inst1", {}]
    let message = ServiceMapping {
        invocation_id: "i1".into(),
        connection_id: "c1".into(),
        instance_id: "inst1".into(),
    };
    let body = cat(&[&[0x95, 0x25, 0xa2], b"i1", &[0xa2], b"c1", &[0xa5], b"inst1", &[0x80]]);
    golden(ServiceMessage::ServiceMapping(message), &body);
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

#[test]
fn golden_group_member_query() {
    // [40, {}, "g1", 1, 100, "t"]: the extension map comes second here.
    let message = GroupMemberQuery {
        group: "g1".into(),
        ack_id: 1,
        max: 100,
        continuation_token: Some("t".into()),
        tracing_id: None,
    };
    let body = cat(&[&[0x96, 0x28, 0x80, 0xa2], b"g1", &[0x01, 0x64, 0xa1], b"t"]);
    golden(ServiceMessage::GroupMemberQuery(message), &body);
}

#[test]
fn golden_group_member_query_response_payload() {
    // [[["c1", "u1"], ["c2", nil]], "next"]
    let response = GroupMemberQueryResponse {
        members: vec![
            GroupMember {
                connection_id: "c1".into(),
                user_id: Some("u1".into()),
            },
            GroupMember {
                connection_id: "c2".into(),
                user_id: None,
            },
        ],
        continuation_token: Some("next".into()),
    };
    let bytes = cat(&[
        &[0x92, 0x92, 0x92, 0xa2],
        b"c1",
        &[0xa2],
        b"u1",
        &[0x92, 0xa2],
        b"c2",
        &[0xc0, 0xa4],
        b"next",
    ]);
    let mut out = Vec::new();
    response.encode(&mut out);
    assert_eq!(out, bytes);
    assert_eq!(GroupMemberQueryResponse::decode(Bytes::from(bytes)).unwrap(), response);
}
