//! Golden records of group membership, acks, existence checks, close-connections commands
//! and the group member query.
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
