//! The service protocol codec: golden bytes for every message type (in `golden_*`), round
//! trips, the layouts older peers send, the reference reader's tolerance of unknown items,
//! and malformed input that must fail cleanly.

mod golden_connection;
mod golden_data;
mod golden_groups;
mod malformed;

use bytes::{Bytes, BytesMut};

use super::*;
use crate::protocol::framing::split_binary_record;

/// Concatenates byte pieces (MessagePack headers and the raw text of strings).
pub(super) fn cat(pieces: &[&[u8]]) -> Vec<u8> {
    pieces.concat()
}

pub(super) fn written(message: &ServiceMessage) -> Vec<u8> {
    let mut out = Vec::new();
    write(message, &mut out);
    out
}

pub(super) fn parse_body(body: &[u8]) -> Result<Option<ServiceMessage>, ProtocolError> {
    parse(Bytes::copy_from_slice(body))
}

fn parsed(body: &[u8]) -> ServiceMessage {
    parse_body(body).unwrap().expect("a known message type")
}

pub(super) fn error_text(body: &[u8]) -> String {
    parse_body(body).expect_err("malformed input").to_string()
}

/// The message writes as exactly `body` behind its VarInt prefix, and `body` parses back to it.
pub(super) fn golden(message: ServiceMessage, body: &[u8]) {
    let mut framed = Vec::new();
    crate::protocol::framing::write_varint(&mut framed, body.len());
    framed.extend_from_slice(body);
    assert_eq!(written(&message), framed, "written bytes of {message:?}");
    assert_eq!(parsed(body), message, "parsed bytes");
}

/// Writes, splits the framed bytes back into a record and parses it.
pub(super) fn round_trip(message: &ServiceMessage) -> ServiceMessage {
    let mut buf = BytesMut::from(&written(message)[..]);
    let record = split_binary_record(&mut buf, None).unwrap().expect("a whole record");
    assert!(buf.is_empty(), "exactly one record");
    parse(record).unwrap().expect("a known message type")
}

fn payloads() -> Payloads {
    vec![
        ("json".into(), Bytes::from_static(b"{\"type\":1}\x1e")),
        ("messagepack".into(), Bytes::from_static(&[0x02, 0x91, 0x06])),
    ]
}

fn ids(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// One message of every type, with every optional field set.
pub(super) fn every_message() -> Vec<ServiceMessage> {
    let t = Some(u64::MAX);
    let s = |v: &str| Some(v.to_owned());
    vec![
        ServiceMessage::HandshakeRequest(HandshakeRequest {
            version: 1,
            connection_type: 2,
            target: "t".into(),
            migration_level: 1,
            allow_stateful_reconnects: true,
        }),
        ServiceMessage::HandshakeResponse(HandshakeResponse {
            error_message: s("e"),
            connection_id: s("id"),
        }),
        ServiceMessage::Ping(Ping::servers(638_000_000_000_000_000, &["a", "b"])),
        ServiceMessage::OpenConnection(OpenConnection {
            connection_id: "c".into(),
            claims: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            headers: vec![("h".into(), ids(&["1", "2"])), ("e".into(), Vec::new())],
            query_string: s("?q=1"),
            tracing_id: t,
            protocol: s("messagepack"),
        }),
        ServiceMessage::CloseConnection(CloseConnection {
            connection_id: "c".into(),
            error_message: s("bye"),
            headers: vec![("Asrs-Migrate-To".into(), ids(&["s"]))],
            tracing_id: t,
        }),
        ServiceMessage::ConnectionData(ConnectionData {
            connection_id: "c".into(),
            payload: Bytes::from_static(b"x"),
            tracing_id: t,
            data_type: DataMessageType::Unrecognized(-7),
            is_partial: true,
        }),
        ServiceMessage::MultiConnectionData(MultiConnectionData {
            connection_ids: ids(&["a", "b"]),
            payloads: payloads(),
            tracing_id: t,
            filter: s("f"),
        }),
        ServiceMessage::UserData(UserData {
            user_id: "u".into(),
            payloads: payloads(),
            tracing_id: t,
            filter: s("f"),
        }),
        ServiceMessage::MultiUserData(MultiUserData {
            user_ids: ids(&["u", "v"]),
            payloads: payloads(),
            tracing_id: t,
            filter: s("f"),
        }),
        ServiceMessage::BroadcastData(BroadcastData {
            excluded: ids(&["a"]),
            payloads: payloads(),
            tracing_id: t,
            filter: s("f"),
        }),
        ServiceMessage::JoinGroup(JoinGroup {
            connection_id: "c".into(),
            group: "g".into(),
            tracing_id: t,
        }),
        ServiceMessage::LeaveGroup(LeaveGroup {
            connection_id: "c".into(),
            group: s("g"),
            tracing_id: t,
        }),
        ServiceMessage::GroupBroadcastData(GroupBroadcastData {
            group: "g".into(),
            excluded: ids(&["a"]),
            payloads: payloads(),
            tracing_id: t,
            filter: s("f"),
            excluded_users: ids(&["u"]),
            caller_user_id: s("me"),
        }),
        ServiceMessage::MultiGroupBroadcastData(MultiGroupBroadcastData {
            groups: ids(&["g", "h"]),
            payloads: payloads(),
            tracing_id: t,
            filter: s("f"),
        }),
        ServiceMessage::ServiceError(ServiceError { error_message: s("no") }),
        ServiceMessage::UserJoinGroup(UserJoinGroup {
            user_id: "u".into(),
            group: "g".into(),
            ttl: Some(i32::MAX),
            tracing_id: t,
        }),
        ServiceMessage::UserLeaveGroup(UserLeaveGroup {
            user_id: "u".into(),
            group: s("g"),
            tracing_id: t,
        }),
        ServiceMessage::JoinGroupWithAck(JoinGroupWithAck {
            connection_id: "c".into(),
            group: "g".into(),
            ack_id: i32::MAX,
            tracing_id: t,
        }),
        ServiceMessage::LeaveGroupWithAck(LeaveGroupWithAck {
            connection_id: "c".into(),
            group: s("g"),
            ack_id: i32::MIN,
            tracing_id: t,
        }),
        ServiceMessage::Ack(Ack {
            ack_id: 1,
            status: AckStatus::Other(100),
            message: s("m"),
            payload: Some(Bytes::from_static(&[0x90])),
        }),
        ServiceMessage::CheckUserInGroupWithAck(CheckUserInGroupWithAck {
            user_id: "u".into(),
            group: "g".into(),
            ack_id: 1,
            tracing_id: t,
        }),
        ServiceMessage::ServiceEvent(ServiceEvent {
            object_type: ServiceEventObjectType::Other(9),
            id: s("i"),
            kind: ServiceEventKind::BufferFull,
            message: s("m"),
        }),
        ServiceMessage::CheckGroupExistenceWithAck(CheckGroupExistenceWithAck {
            group: "g".into(),
            ack_id: 1,
            tracing_id: t,
        }),
        ServiceMessage::CheckConnectionExistenceWithAck(CheckConnectionExistenceWithAck {
            connection_id: "c".into(),
            ack_id: 1,
            tracing_id: t,
        }),
        ServiceMessage::CheckUserExistenceWithAck(CheckUserExistenceWithAck {
            user_id: "u".into(),
            ack_id: 1,
            tracing_id: t,
        }),
        ServiceMessage::UserJoinGroupWithAck(UserJoinGroupWithAck {
            user_id: "u".into(),
            group: "g".into(),
            ack_id: 1,
            ttl: Some(-1),
            tracing_id: t,
        }),
        ServiceMessage::UserLeaveGroupWithAck(UserLeaveGroupWithAck {
            user_id: "u".into(),
            group: s("g"),
            ack_id: 1,
            tracing_id: t,
        }),
        ServiceMessage::AccessKeyRequest(AccessKeyRequest {
            token: s("t"),
            kid: s("k"),
        }),
        ServiceMessage::AccessKeyResponse(AccessKeyResponse {
            kid: s("k"),
            access_key: s("a"),
            error_type: s("E"),
            error_message: s("m"),
        }),
        ServiceMessage::CloseConnectionWithAck(CloseConnectionWithAck {
            connection_id: "c".into(),
            reason: s("r"),
            ack_id: 1,
            tracing_id: t,
        }),
        ServiceMessage::CloseConnectionsWithAck(CloseConnectionsWithAck {
            reason: s("r"),
            ack_id: 1,
            excluded: ids(&["a", "b"]),
            tracing_id: t,
        }),
        ServiceMessage::CloseUserConnectionsWithAck(CloseUserConnectionsWithAck {
            user_id: "u".into(),
            reason: s("r"),
            ack_id: 1,
            excluded: ids(&["a"]),
            tracing_id: t,
        }),
        ServiceMessage::CloseGroupConnectionsWithAck(CloseGroupConnectionsWithAck {
            group: "g".into(),
            reason: s("r"),
            ack_id: 1,
            excluded: ids(&["a"]),
            tracing_id: t,
        }),
        ServiceMessage::ClientInvocation(ClientInvocation {
            invocation_id: "i".into(),
            connection_id: "c".into(),
            caller_server_id: "s".into(),
            payloads: payloads(),
            tracing_id: t,
        }),
        ServiceMessage::ClientCompletion(ClientCompletion {
            invocation_id: "i".into(),
            connection_id: "c".into(),
            caller_server_id: "s".into(),
            protocol: s("messagepack"),
            payload: Bytes::from_static(&[0x95, 0x03, 0x80]),
            tracing_id: t,
        }),
        ServiceMessage::ErrorCompletion(ErrorCompletion {
            invocation_id: "i".into(),
            connection_id: "c".into(),
            caller_server_id: "s".into(),
            error: s("e"),
            tracing_id: t,
        }),
        ServiceMessage::ServiceMapping(ServiceMapping {
            invocation_id: "i".into(),
            connection_id: "c".into(),
            instance_id: "n".into(),
        }),
        ServiceMessage::ConnectionReconnect(ConnectionReconnect {
            connection_id: "c".into(),
        }),
        ServiceMessage::ConnectionFlowControl(ConnectionFlowControl {
            connection_id: "c".into(),
            connection_type: FlowControlConnectionType::Server,
            operation: FlowControlOperation::Offline,
        }),
        ServiceMessage::GroupMemberQuery(GroupMemberQuery {
            group: "g".into(),
            ack_id: 1,
            max: 10,
            continuation_token: s("t"),
            tracing_id: t,
        }),
    ]
}

#[test]
fn roundtrip_every_message_type_with_every_field() {
    let messages = every_message();
    let mut types: Vec<u8> = messages.iter().map(ServiceMessage::type_id).collect();
    types.dedup();
    assert_eq!(types, (1..=40).collect::<Vec<u8>>(), "one message per type, in order");
    for message in &messages {
        assert_eq!(&round_trip(message), message);
    }
}

#[test]
fn roundtrip_defaults_of_every_message_type() {
    for message in every_message() {
        let default = match message {
            ServiceMessage::OpenConnection(_) => ServiceMessage::OpenConnection(OpenConnection::default()),
            ServiceMessage::ConnectionData(_) => ServiceMessage::ConnectionData(ConnectionData::default()),
            ServiceMessage::GroupBroadcastData(_) => ServiceMessage::GroupBroadcastData(GroupBroadcastData::default()),
            ServiceMessage::Ack(_) => ServiceMessage::Ack(Ack::default()),
            ServiceMessage::ClientCompletion(_) => ServiceMessage::ClientCompletion(ClientCompletion::default()),
            other => other,
        };
        assert_eq!(round_trip(&default), default);
    }
}

#[test]
fn roundtrip_several_records_in_one_buffer() {
    let messages = every_message();
    let mut buf = BytesMut::new();
    for message in &messages {
        buf.extend_from_slice(&written(message));
    }
    for message in &messages {
        let record = split_binary_record(&mut buf, None).unwrap().unwrap();
        assert_eq!(&parse(record).unwrap().unwrap(), message);
    }
    assert!(buf.is_empty());
}

#[test]
fn read_payloads_are_slices_of_the_record() {
    let framed = written(&every_message()[5]);
    let record = Bytes::from(framed).slice(1..);
    let range = record.as_ptr() as usize..record.as_ptr() as usize + record.len();
    let Some(ServiceMessage::ConnectionData(data)) = parse(record.clone()).unwrap() else {
        panic!("ConnectionData expected");
    };
    assert!(range.contains(&(data.payload.as_ptr() as usize)));
}

#[test]
fn read_old_layouts_without_optional_items() {
    // [1, 1]: the first handshake request, version only.
    assert_eq!(
        parsed(&[0x92, 0x01, 0x01]),
        ServiceMessage::HandshakeRequest(HandshakeRequest::new())
    );
    // [2, ""]: success without an extension map or a connection id.
    let ServiceMessage::HandshakeResponse(response) = parsed(&[0x92, 0x02, 0xa0]) else {
        panic!("HandshakeResponse expected");
    };
    assert!(response.is_success());
    // [4, "c1", {"a": "b"}]: OpenConnection before headers and query strings.
    let open = parsed(&cat(&[&[0x93, 0x04, 0xa2], b"c1", &[0x81, 0xa1, b'a', 0xa1, b'b']]));
    let expected = OpenConnection {
        connection_id: "c1".into(),
        claims: vec![("a".into(), "b".into())],
        ..OpenConnection::default()
    };
    assert_eq!(open, ServiceMessage::OpenConnection(expected));
    // [5, "c1", nil]
    let close = parsed(&cat(&[&[0x93, 0x05, 0xa2], b"c1", &[0xc0]]));
    let expected = CloseConnection {
        connection_id: "c1".into(),
        ..CloseConnection::default()
    };
    assert_eq!(close, ServiceMessage::CloseConnection(expected));
    // [13, "g1", [], {}]: GroupBroadcastData before extension maps.
    let group = parsed(&cat(&[&[0x94, 0x0d, 0xa2], b"g1", &[0x90, 0x80]]));
    let expected = GroupBroadcastData {
        group: "g1".into(),
        ..GroupBroadcastData::default()
    };
    assert_eq!(group, ServiceMessage::GroupBroadcastData(expected));
    // [20, 1, 100, ""]: an Ack without extension map or payload, with an unknown status.
    let ack = parsed(&[0x94, 0x14, 0x01, 0x64, 0xa0]);
    let expected = Ack {
        ack_id: 1,
        status: AckStatus::Other(100),
        message: Some(String::new()),
        payload: None,
    };
    assert_eq!(ack, ServiceMessage::Ack(expected));
}

#[test]
fn read_skips_unknown_items_and_extension_keys() {
    // [11, "c1", "g1", {2: 100, 1: 7, 99: [1, {"a": nil}]}, "extra", [1, 2]] with a
    // byte after the array: TTL is not a JoinGroup member, key 99 is unknown, trailing items
    // and bytes are ignored.
    let body = cat(&[
        &[0x96, 0x0b, 0xa2],
        b"c1",
        &[0xa2],
        b"g1",
        &[0x83, 0x02, 0x64, 0x01, 0x07, 0x63, 0x92, 0x01, 0x81, 0xa1, b'a', 0xc0],
        &[0xa5],
        b"extra",
        &[0x92, 0x01, 0x02, 0xff],
    ]);
    let expected = JoinGroup {
        connection_id: "c1".into(),
        group: "g1".into(),
        tracing_id: Some(7),
    };
    assert_eq!(parsed(&body), ServiceMessage::JoinGroup(expected));
    // [6, "c1", bin(), {7: 1.5 (f64), 5: 3}]
    let body = cat(&[
        &[0x94, 0x06, 0xa2],
        b"c1",
        &[0xc4, 0x00, 0x82, 0x07, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x05, 0x03],
    ]);
    let ServiceMessage::ConnectionData(data) = parsed(&body) else {
        panic!("ConnectionData expected");
    };
    assert_eq!(data.data_type, DataMessageType::Other);
}

#[test]
fn read_accepts_any_integer_encoding_and_nil_payloads() {
    // [24, "c1", int64 5, {1: uint64 max}]
    let body = cat(&[
        &[0x94, 0x18, 0xa2],
        b"c1",
        &[0xd3, 0, 0, 0, 0, 0, 0, 0, 5],
        &[0x81, 0x01, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ]);
    let expected = CheckConnectionExistenceWithAck {
        connection_id: "c1".into(),
        ack_id: 5,
        tracing_id: Some(u64::MAX),
    };
    assert_eq!(parsed(&body), ServiceMessage::CheckConnectionExistenceWithAck(expected));
    // [6, "c1", nil]: a nil payload reads as empty, as ReadBytes does.
    let ServiceMessage::ConnectionData(data) = parsed(&cat(&[&[0x93, 0x06, 0xa2], b"c1", &[0xc0]])) else {
        panic!("ConnectionData expected");
    };
    assert!(data.payload.is_empty());
}

#[test]
fn read_unknown_message_types_are_skipped() {
    assert_eq!(parse_body(&[0x91, 0x63]).unwrap(), None, "type 99");
    assert_eq!(
        parse_body(&[0x93, 0x29, 0xa1, b'x', 0x80]).unwrap(),
        None,
        "type 41, RefreshAuth"
    );
    assert_eq!(parse_body(&[0x91, 0xff]).unwrap(), None, "type -1");
    assert_eq!(parse_body(&[0x91, 0xcd, 0x01, 0x00]).unwrap(), None, "type 256");
}

#[test]
fn writer_integers_use_the_smallest_form() {
    let ack = |ack_id: i32| {
        let body = &written(&ServiceMessage::Ack(Ack {
            ack_id,
            ..Ack::default()
        }))[3..];
        // status 1, message nil, {}, payload nil
        body[..body.len() - 4].to_vec()
    };
    assert_eq!(ack(127), [0x7f]);
    assert_eq!(ack(128), [0xcc, 0x80]);
    assert_eq!(ack(65_536), [0xce, 0x00, 0x01, 0x00, 0x00]);
    assert_eq!(ack(-32), [0xe0]);
    assert_eq!(ack(-33), [0xd0, 0xdf]);
    assert_eq!(ack(-1000), [0xd1, 0xfc, 0x18]);
    assert_eq!(ack(i32::MIN), [0xd2, 0x80, 0x00, 0x00, 0x00]);
}

#[test]
fn ping_kinds_and_values() {
    let status = ServiceStatus {
        active: true,
        client_count: Some(5),
        server_count: None,
        capacity: Some(1000),
    };
    let ping = Ping::service_status(status);
    assert_eq!(
        ping.messages,
        ids(&["status", "1", "clientcount", "5", "capacity", "1000"])
    );
    assert_eq!(ping.kind(), PingKind::Status(status));
    assert_eq!(ping.value("capacity"), Some("1000"));
    assert_eq!(ping.value("1"), None, "values are not keys");
    assert_eq!(Ping::keep_alive().kind(), PingKind::KeepAlive);
    assert_eq!(
        Ping::keep_alive_with_counts(3, 1).messages,
        ids(&["#clientInHub", "3", "#client", "1"])
    );
    assert_eq!(Ping::keep_alive_with_counts(3, 1).kind(), PingKind::KeepAlive);
    assert_eq!(Ping::target("i1").kind(), PingKind::Target("i1"));
    assert_eq!(
        Ping::shutdown(ShutdownMode::MigrateClients).kind(),
        PingKind::Shutdown(ShutdownMode::MigrateClients)
    );
    assert_eq!(
        Ping::shutdown(ShutdownMode::DropClients).messages,
        ids(&["shutdown", "fin:0"])
    );
    assert_eq!(Ping::fin_ack().kind(), PingKind::FinAck);
    assert_eq!(Ping::offline("i2").kind(), PingKind::Offline("i2"));
    assert_eq!(Ping::servers_request().kind(), PingKind::ServersRequest);
    assert_eq!(
        Ping::servers(42, &["s1", "s2"]).kind(),
        PingKind::Servers {
            updated_ticks: 42,
            servers: "s1;s2"
        }
    );
    assert_eq!(Ping::new(["servers", "nonsense"]).kind(), PingKind::Unknown);
    assert_eq!(Ping::echo("e").kind(), PingKind::Echo("e"));
    assert_eq!(Ping::message_logs(true).kind(), PingKind::MessageLogs(true));
    assert_eq!(Ping::message_logs(false).messages, ids(&["d-m", "0"]));
    assert_eq!(Ping::new(["what"]).kind(), PingKind::Unknown);
}

#[test]
fn ping_nil_items_read_as_empty_strings() {
    assert_eq!(
        parsed(&cat(&[&[0x93, 0x03, 0xa4], b"echo", &[0xc0]])),
        ServiceMessage::Ping(Ping::new(["echo", ""]))
    );
}
