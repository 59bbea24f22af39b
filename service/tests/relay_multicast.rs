//! Sends from app servers to many clients, and the memberships and checks the relay holds.

mod common;

use common::*;
use serde_json::json;
use switchboard::protocol::service::*;

const HELLO_JSON: &str = "{\"type\":1,\"target\":\"hello\",\"arguments\":[]}\u{1e}";
const HELLO_MSGPACK: &[u8] = &[0x0c, 0x96, 0x01, 0x80, 0xc0, 0xa5, b'h', b'e', b'l', b'l', b'o', 0x90];

fn hello() -> Payloads {
    payloads(HELLO_JSON, HELLO_MSGPACK)
}

async fn expect_ack(server: &mut AppServer, ack_id: i32, status: AckStatus) {
    match server.recv().await {
        ServiceMessage::Ack(ack) => assert_eq!((ack.ack_id, ack.status), (ack_id, status)),
        other => panic!("expected Ack {ack_id}, got {other:?}"),
    }
}

#[tokio::test]
async fn multicast_broadcast_picks_each_clients_protocol() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut json_client, json_id) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    let (mut msgpack_client, _) = connect_through(&relay, &mut server, "chat", "messagepack", json!({})).await;
    let (mut excluded, excluded_id) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    server
        .send(&ServiceMessage::BroadcastData(BroadcastData {
            excluded: vec![excluded_id],
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    assert_eq!(json_client.next_text().await, HELLO_JSON);
    let (binary, bytes) = msgpack_client.next().await.unwrap();
    assert!(binary);
    assert_eq!(&bytes[..], HELLO_MSGPACK);
    excluded.nothing_for_a_while().await;

    // A payload map without the client's protocol skips it.
    server
        .send(&ServiceMessage::BroadcastData(BroadcastData {
            payloads: vec![("messagepack".into(), bytes::Bytes::from_static(HELLO_MSGPACK))],
            ..Default::default()
        }))
        .await;
    assert_eq!(msgpack_client.next().await.unwrap().1, HELLO_MSGPACK);
    json_client.nothing_for_a_while().await;

    // Multicast to a list of connections.
    server
        .send(&ServiceMessage::MultiConnectionData(MultiConnectionData {
            connection_ids: vec![json_id.clone(), json_id, "nobody".into()],
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    assert_eq!(json_client.next_text().await, HELLO_JSON);
    json_client.nothing_for_a_while().await;
}

#[tokio::test]
async fn multicast_groups_join_send_leave() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut a, a_id) = connect_through(&relay, &mut server, "chat", "json", json!({"asrs.s.uid": "ann"})).await;
    let (mut b, b_id) = connect_through(&relay, &mut server, "chat", "json", json!({"asrs.s.uid": "bob"})).await;
    let (mut c, c_id) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    for (id, ack) in [(&a_id, 1), (&b_id, 2)] {
        server
            .send(&ServiceMessage::JoinGroupWithAck(JoinGroupWithAck {
                connection_id: id.clone(),
                group: "Room".into(),
                ack_id: ack,
                ..Default::default()
            }))
            .await;
        expect_ack(&mut server, ack, AckStatus::Ok).await;
    }
    server
        .send(&ServiceMessage::JoinGroup(JoinGroup {
            connection_id: c_id.clone(),
            group: "other".into(),
            ..Default::default()
        }))
        .await;
    server
        .send(&ServiceMessage::JoinGroupWithAck(JoinGroupWithAck {
            connection_id: "unknown".into(),
            group: "Room".into(),
            ack_id: 3,
            ..Default::default()
        }))
        .await;
    expect_ack(&mut server, 3, AckStatus::NotFound).await;

    server
        .send(&ServiceMessage::GroupBroadcastData(GroupBroadcastData {
            group: "Room".into(),
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    assert_eq!(a.next_text().await, HELLO_JSON);
    assert_eq!(b.next_text().await, HELLO_JSON);
    c.nothing_for_a_while().await;
    // Group names are case-sensitive.
    server
        .send(&ServiceMessage::GroupBroadcastData(GroupBroadcastData {
            group: "room".into(),
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    a.nothing_for_a_while().await;
    // Excluded connections and excluded users.
    server
        .send(&ServiceMessage::GroupBroadcastData(GroupBroadcastData {
            group: "Room".into(),
            excluded: vec![a_id.clone()],
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    assert_eq!(b.next_text().await, HELLO_JSON);
    server
        .send(&ServiceMessage::GroupBroadcastData(GroupBroadcastData {
            group: "Room".into(),
            excluded_users: vec!["bob".into()],
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    assert_eq!(a.next_text().await, HELLO_JSON);
    b.nothing_for_a_while().await;
    a.nothing_for_a_while().await;
    // Several groups: each member once.
    server
        .send(&ServiceMessage::JoinGroup(JoinGroup {
            connection_id: a_id.clone(),
            group: "other".into(),
            ..Default::default()
        }))
        .await;
    server
        .send(&ServiceMessage::MultiGroupBroadcastData(MultiGroupBroadcastData {
            groups: vec!["Room".into(), "other".into()],
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.next_text().await, HELLO_JSON);
    }
    a.nothing_for_a_while().await;
    // Existence checks.
    server
        .send(&ServiceMessage::CheckGroupExistenceWithAck(
            CheckGroupExistenceWithAck {
                group: "Room".into(),
                ack_id: 10,
                ..Default::default()
            },
        ))
        .await;
    expect_ack(&mut server, 10, AckStatus::Ok).await;
    server
        .send(&ServiceMessage::CheckUserInGroupWithAck(CheckUserInGroupWithAck {
            user_id: "bob".into(),
            group: "Room".into(),
            ack_id: 11,
            ..Default::default()
        }))
        .await;
    expect_ack(&mut server, 11, AckStatus::Ok).await;
    // Leave, with and without an ack.
    server
        .send(&ServiceMessage::LeaveGroupWithAck(LeaveGroupWithAck {
            connection_id: a_id,
            group: Some("Room".into()),
            ack_id: 12,
            ..Default::default()
        }))
        .await;
    expect_ack(&mut server, 12, AckStatus::Ok).await;
    server
        .send(&ServiceMessage::LeaveGroup(LeaveGroup {
            connection_id: b_id,
            group: Some("Room".into()),
            ..Default::default()
        }))
        .await;
    server
        .send(&ServiceMessage::CheckGroupExistenceWithAck(
            CheckGroupExistenceWithAck {
                group: "Room".into(),
                ack_id: 13,
                ..Default::default()
            },
        ))
        .await;
    expect_ack(&mut server, 13, AckStatus::NotFound).await;
    // A client that leaves is removed from its groups.
    c.socket.close(None).await.unwrap();
    assert!(matches!(server.recv().await, ServiceMessage::CloseConnection(_)));
    server
        .send(&ServiceMessage::CheckGroupExistenceWithAck(
            CheckGroupExistenceWithAck {
                group: "other".into(),
                ack_id: 14,
                ..Default::default()
            },
        ))
        .await;
    expect_ack(&mut server, 14, AckStatus::Ok).await;
    let _ = c_id;
}

#[tokio::test]
async fn multicast_users_and_user_groups() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let alice = json!({"asrs.s.uid": "alice"});
    let (mut alice1, _) = connect_through(&relay, &mut server, "chat", "json", alice.clone()).await;
    let (mut alice2, _) = connect_through(&relay, &mut server, "chat", "messagepack", alice.clone()).await;
    let (mut bob, _) = connect_through(&relay, &mut server, "chat", "json", json!({"asrs.s.uid": "bob"})).await;
    server
        .send(&ServiceMessage::UserData(UserData {
            user_id: "alice".into(),
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    assert_eq!(alice1.next_text().await, HELLO_JSON);
    assert_eq!(alice2.next().await.unwrap().1, HELLO_MSGPACK);
    bob.nothing_for_a_while().await;
    // User ids are case-sensitive; duplicates are sent once.
    server
        .send(&ServiceMessage::MultiUserData(MultiUserData {
            user_ids: vec!["bob".into(), "bob".into(), "Alice".into()],
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    assert_eq!(bob.next_text().await, HELLO_JSON);
    bob.nothing_for_a_while().await;
    alice1.nothing_for_a_while().await;

    // A user's group membership covers its present and future connections.
    server
        .send(&ServiceMessage::UserJoinGroupWithAck(UserJoinGroupWithAck {
            user_id: "alice".into(),
            group: "fans".into(),
            ack_id: 1,
            ..Default::default()
        }))
        .await;
    expect_ack(&mut server, 1, AckStatus::Ok).await;
    let (mut alice3, _) = connect_through(&relay, &mut server, "chat", "json", alice.clone()).await;
    server
        .send(&ServiceMessage::GroupBroadcastData(GroupBroadcastData {
            group: "fans".into(),
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    assert_eq!(alice1.next_text().await, HELLO_JSON);
    assert_eq!(alice2.next().await.unwrap().1, HELLO_MSGPACK);
    assert_eq!(alice3.next_text().await, HELLO_JSON);
    bob.nothing_for_a_while().await;
    for (user, ack, status) in [("alice", 2, AckStatus::Ok), ("bob", 3, AckStatus::NotFound)] {
        server
            .send(&ServiceMessage::CheckUserInGroupWithAck(CheckUserInGroupWithAck {
                user_id: user.into(),
                group: "fans".into(),
                ack_id: ack,
                ..Default::default()
            }))
            .await;
        expect_ack(&mut server, ack, status).await;
    }
    for (user, ack, status) in [("alice", 4, AckStatus::Ok), ("carol", 5, AckStatus::NotFound)] {
        server
            .send(&ServiceMessage::CheckUserExistenceWithAck(CheckUserExistenceWithAck {
                user_id: user.into(),
                ack_id: ack,
                ..Default::default()
            }))
            .await;
        expect_ack(&mut server, ack, status).await;
    }
    server
        .send(&ServiceMessage::UserLeaveGroup(UserLeaveGroup {
            user_id: "alice".into(),
            group: Some("fans".into()),
            ..Default::default()
        }))
        .await;
    server
        .send(&ServiceMessage::CheckUserInGroupWithAck(CheckUserInGroupWithAck {
            user_id: "alice".into(),
            group: "fans".into(),
            ack_id: 6,
            ..Default::default()
        }))
        .await;
    expect_ack(&mut server, 6, AckStatus::NotFound).await;

    // Closing a user's connections, with an ack; the app hears of each.
    server
        .send(&ServiceMessage::CloseUserConnectionsWithAck(
            CloseUserConnectionsWithAck {
                user_id: "alice".into(),
                ack_id: 7,
                ..Default::default()
            },
        ))
        .await;
    let mut closes = 0;
    loop {
        match server.recv().await {
            ServiceMessage::CloseConnection(_) => closes += 1,
            ServiceMessage::Ack(ack) => {
                assert_eq!((ack.ack_id, ack.status), (7, AckStatus::Ok));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(closes, 3);
    for client in [&mut alice1, &mut alice2, &mut alice3] {
        client.closed().await;
    }
    assert_eq!(relay.client_count("chat"), 1);
}

#[tokio::test]
async fn multicast_connection_checks_and_closes() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut a, a_id) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    let (mut b, b_id) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    for (id, ack, status) in [(&a_id, 1, AckStatus::Ok), (&"gone".to_owned(), 2, AckStatus::NotFound)] {
        server
            .send(&ServiceMessage::CheckConnectionExistenceWithAck(
                CheckConnectionExistenceWithAck {
                    connection_id: id.clone(),
                    ack_id: ack,
                    ..Default::default()
                },
            ))
            .await;
        expect_ack(&mut server, ack, status).await;
    }
    server
        .send(&ServiceMessage::CloseConnectionsWithAck(CloseConnectionsWithAck {
            excluded: vec![b_id.clone()],
            ack_id: 3,
            reason: Some("bye".into()),
            ..Default::default()
        }))
        .await;
    match server.recv().await {
        ServiceMessage::CloseConnection(close) => {
            assert_eq!(close.connection_id, a_id);
            assert_eq!(close.error_message.as_deref(), Some("bye"));
        }
        other => panic!("expected CloseConnection, got {other:?}"),
    }
    expect_ack(&mut server, 3, AckStatus::Ok).await;
    a.closed().await;
    data_to(&mut server, &b_id, b"{\"type\":6}\x1e").await;
    assert_eq!(b.next_text().await, "{\"type\":6}\u{1e}");
}

#[tokio::test]
async fn multicast_client_invocation_reaches_its_connection() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut client, id) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    server
        .send(&ServiceMessage::ClientInvocation(ClientInvocation {
            invocation_id: "1".into(),
            connection_id: id,
            caller_server_id: "app1".into(),
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    assert_eq!(client.next_text().await, HELLO_JSON);
    server
        .send(&ServiceMessage::ClientInvocation(ClientInvocation {
            invocation_id: "2".into(),
            connection_id: "gone".into(),
            caller_server_id: "app1".into(),
            payloads: hello(),
            ..Default::default()
        }))
        .await;
    match server.recv().await {
        ServiceMessage::ErrorCompletion(error) => assert_eq!(error.invocation_id, "2"),
        other => panic!("expected ErrorCompletion, got {other:?}"),
    }
}

#[tokio::test]
async fn multicast_client_invocation_across_app_servers() {
    let relay = relay().await;
    let mut owner = AppServer::connect(&relay, "chat", "owner").await;
    let (mut client, id) = connect_through(&relay, &mut owner, "chat", "json", json!({})).await;
    let mut caller = AppServer::connect(&relay, "chat", "caller").await;
    let invocation = ClientInvocation {
        invocation_id: "7".into(),
        connection_id: id.clone(),
        caller_server_id: "caller".into(),
        payloads: hello(),
        ..Default::default()
    };
    caller.send(&ServiceMessage::ClientInvocation(invocation.clone())).await;
    match owner.recv().await {
        ServiceMessage::ClientInvocation(routed) => assert_eq!(routed, invocation),
        other => panic!("expected the routed ClientInvocation, got {other:?}"),
    }
    match caller.recv().await {
        ServiceMessage::ServiceMapping(mapping) => assert_eq!(mapping.invocation_id, "7"),
        other => panic!("expected ServiceMapping, got {other:?}"),
    }
    assert_eq!(client.next_text().await, HELLO_JSON);
    let completion = ClientCompletion {
        invocation_id: "7".into(),
        connection_id: id,
        caller_server_id: "caller".into(),
        protocol: Some("json".into()),
        payload: bytes::Bytes::from_static(b"{\"type\":3,\"invocationId\":\"7\",\"result\":1}\x1e"),
        ..Default::default()
    };
    owner.send(&ServiceMessage::ClientCompletion(completion.clone())).await;
    match caller.recv().await {
        ServiceMessage::ClientCompletion(relayed) => assert_eq!(relayed, completion),
        other => panic!("expected ClientCompletion, got {other:?}"),
    }
}

#[tokio::test]
async fn multicast_user_group_membership_with_a_ttl_expires() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut alice, _) = connect_through(&relay, &mut server, "chat", "json", json!({"asrs.s.uid": "alice"})).await;
    server
        .send(&ServiceMessage::UserJoinGroupWithAck(UserJoinGroupWithAck {
            user_id: "alice".into(),
            group: "fans".into(),
            ack_id: 1,
            ttl: Some(1),
            ..Default::default()
        }))
        .await;
    expect_ack(&mut server, 1, AckStatus::Ok).await;
    let to_fans = ServiceMessage::GroupBroadcastData(GroupBroadcastData {
        group: "fans".into(),
        payloads: hello(),
        ..Default::default()
    });
    server.send(&to_fans).await;
    assert_eq!(alice.next_text().await, HELLO_JSON);

    // Once the TTL has passed, the user and its connections are out of the group.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    server.send(&to_fans).await;
    alice.nothing_for_a_while().await;
    server
        .send(&ServiceMessage::CheckUserInGroupWithAck(CheckUserInGroupWithAck {
            user_id: "alice".into(),
            group: "fans".into(),
            ack_id: 2,
            ..Default::default()
        }))
        .await;
    expect_ack(&mut server, 2, AckStatus::NotFound).await;
}
