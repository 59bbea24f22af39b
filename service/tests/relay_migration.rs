//! Moving clients between app servers at the relay: a server that shuts down with
//! `fin:1` has its movable clients switched, each at a record boundary of its input, to
//! another server (OpenConnection with `Asrs-Migrate-From` and the replayed handshake there,
//! CloseConnection with `Asrs-Migrate-To` to the old one); and the moves that go wrong.

mod common;

use common::*;
use serde_json::json;
use switchboard::protocol::service::{HandshakeRequest, Ping, ServiceMessage, ShutdownMode};

/// A server connection of `server_id` that lets the relay move its clients.
async fn movable(relay: &switchboard_service::Relay, server_id: &str) -> AppServer {
    let handshake = HandshakeRequest {
        migration_level: HandshakeRequest::MIGRATION_SHUTDOWN_ONLY,
        ..HandshakeRequest::new()
    };
    AppServer::connect_with(relay, "chat", server_id, handshake).await
}

fn header<'h>(headers: &'h [(String, Vec<String>)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

/// Sends fin:1 and waits for the finack.
async fn migrate_away(server: &mut AppServer) {
    server
        .send(&ServiceMessage::Ping(Ping::shutdown(ShutdownMode::MigrateClients)))
        .await;
    loop {
        if let ServiceMessage::Ping(ping) = server.recv_any().await
            && ping == Ping::fin_ack()
        {
            return;
        }
    }
}

async fn expect_data(server: &mut AppServer, id: &str) -> Vec<u8> {
    match server.recv().await {
        ServiceMessage::ConnectionData(data) => {
            assert_eq!(data.connection_id, id);
            data.payload.to_vec()
        }
        other => panic!("expected ConnectionData, got {other:?}"),
    }
}

#[tokio::test]
async fn migration_switches_at_a_record_boundary_and_keeps_the_old_servers_output() {
    let relay = relay().await;
    let mut a = movable(&relay, "server-a").await;
    let (mut client, id) = connect_through(&relay, &mut a, "chat", "json", json!({"asrs.s.uid": "ann"})).await;
    let mut b = movable(&relay, "server-b").await;
    // Half a record, then the move is asked for.
    client.send_text("{\"type\":1,\"target\":\"A\",").await;
    assert_eq!(expect_data(&mut a, &id).await, b"{\"type\":1,\"target\":\"A\",");
    migrate_away(&mut a).await;
    // The rest of that record goes to A, what follows to B.
    client
        .send_text("\"arguments\":[]}\u{1e}{\"type\":1,\"target\":\"B\",\"arguments\":[]}\u{1e}")
        .await;
    assert_eq!(expect_data(&mut a, &id).await, b"\"arguments\":[]}\x1e");
    let (open, handshake) = expect_open(&mut b).await;
    assert_eq!(open.connection_id, id, "the same connection id");
    assert_eq!(header(&open.headers, "Asrs-Migrate-From"), Some("server-a"));
    assert!(
        open.claims.iter().any(|(n, v)| n == "asrs.s.uid" && v == "ann"),
        "the claims move too"
    );
    assert_eq!(
        &handshake[..],
        b"{\"protocol\":\"json\",\"version\":1}\x1e",
        "the handshake, replayed"
    );
    assert_eq!(
        expect_data(&mut b, &id).await,
        b"{\"type\":1,\"target\":\"B\",\"arguments\":[]}\x1e"
    );
    match a.recv().await {
        ServiceMessage::CloseConnection(close) => {
            assert_eq!(close.connection_id, id);
            assert_eq!(header(&close.headers, "Asrs-Migrate-To"), Some("server-b"));
        }
        other => panic!("expected CloseConnection, got {other:?}"),
    }
    // A finishes: its last result reaches the client, and its CloseConnection closes nothing.
    data_to(
        &mut a,
        &id,
        b"{\"type\":3,\"invocationId\":\"1\",\"result\":\"from a\"}\x1e",
    )
    .await;
    a.send(&ServiceMessage::CloseConnection(
        switchboard::protocol::service::CloseConnection {
            connection_id: id.clone(),
            ..Default::default()
        },
    ))
    .await;
    assert_eq!(
        client.next_text().await,
        "{\"type\":3,\"invocationId\":\"1\",\"result\":\"from a\"}\u{1e}"
    );
    data_to(&mut b, &id, b"{\"type\":6}\x1e").await;
    assert_eq!(client.next_text().await, "{\"type\":6}\u{1e}");
    assert_eq!(relay.client_count("chat"), 1);
    // A goes; the client, now B's, stays.
    drop(a);
    client.send_text("{\"type\":6}\u{1e}").await;
    assert_eq!(expect_data(&mut b, &id).await, b"{\"type\":6}\x1e");
    assert_eq!(relay.client_count("chat"), 1);
}

#[tokio::test]
async fn migration_without_another_server_leaves_the_clients_in_place() {
    let relay = relay().await;
    let mut a = movable(&relay, "server-a").await;
    let (mut client, id) = connect_through(&relay, &mut a, "chat", "messagepack", json!({})).await;
    migrate_away(&mut a).await;
    client.send_binary(vec![0x02, 0x91, 0x06]).await;
    assert_eq!(expect_data(&mut a, &id).await, [0x02, 0x91, 0x06]);
}

#[tokio::test]
async fn migration_target_that_goes_away_mid_move_leaves_the_client_where_it_was() {
    let relay = relay().await;
    let mut a = movable(&relay, "server-a").await;
    let (mut client, id) = connect_through(&relay, &mut a, "chat", "messagepack", json!({})).await;
    let b = movable(&relay, "server-b").await;
    // A MessagePack record of 3 bytes, 1 sent so far: the move waits for the other 2.
    client.send_binary(vec![0x03, 0x93]).await;
    assert_eq!(expect_data(&mut a, &id).await, [0x03, 0x93]);
    migrate_away(&mut a).await;
    drop(b);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    client.send_binary(vec![0x01, 0x02, 0x02, 0x91, 0x06]).await;
    assert_eq!(expect_data(&mut a, &id).await, [0x01, 0x02]);
    assert_eq!(
        expect_data(&mut a, &id).await,
        [0x02, 0x91, 0x06],
        "no move: A keeps it"
    );
    data_to(&mut a, &id, &[0x02, 0x91, 0x06]).await;
    assert_eq!(client.next().await.unwrap().1.as_ref(), [0x02, 0x91, 0x06]);
    assert_eq!(relay.client_count("chat"), 1);
}

#[tokio::test]
async fn migration_of_a_client_that_leaves_mid_move_tells_only_its_old_server() {
    let relay = relay().await;
    let mut a = movable(&relay, "server-a").await;
    let (mut client, id) = connect_through(&relay, &mut a, "chat", "json", json!({})).await;
    let mut b = movable(&relay, "server-b").await;
    client.send_text("{\"type\":1,").await;
    assert_eq!(expect_data(&mut a, &id).await, b"{\"type\":1,");
    migrate_away(&mut a).await;
    client.socket.close(None).await.unwrap();
    match a.recv().await {
        ServiceMessage::CloseConnection(close) => {
            assert_eq!(close.connection_id, id);
            assert_eq!(header(&close.headers, "Asrs-Migrate-To"), None, "a plain close");
        }
        other => panic!("expected CloseConnection, got {other:?}"),
    }
    assert_eq!(relay.client_count("chat"), 0, "nothing left behind");
    // B never heard of it: the next thing B gets is the next client.
    let _next = Client::connect(&relay, "chat", "json", json!({})).await;
    let (open, _) = expect_open(&mut b).await;
    assert_ne!(open.connection_id, id);
}

#[tokio::test]
async fn a_fin_ack_from_an_app_server_changes_nothing() {
    let relay = relay().await;
    let mut a = movable(&relay, "server-a").await;
    a.send(&ServiceMessage::Ping(Ping::fin_ack())).await;
    let (mut client, id) = connect_through(&relay, &mut a, "chat", "json", json!({})).await;
    client.send_text("{\"type\":6}\u{1e}").await;
    assert_eq!(expect_data(&mut a, &id).await, b"{\"type\":6}\x1e");
}
