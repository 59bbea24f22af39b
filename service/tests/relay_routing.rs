//! Clients pinned to app-server connections: OpenConnection, bytes both ways, closes from
//! either side, round robin, and what happens without an app server.

mod common;

use common::*;
use serde_json::json;
use switchboard::protocol::service::{CloseConnection, ServiceMessage};

#[tokio::test]
async fn routing_open_connection_and_bytes_both_ways() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    assert_eq!(relay.server_connection_count("chat"), 1);
    let claims = json!({"asrs.s.uid": "alice", "role": ["admin", "user"], "level": 3});
    let mut client = Client::connect(&relay, "Chat", "json", claims).await;
    let (open, handshake) = expect_open(&mut server).await;
    assert_eq!(
        &handshake[..],
        b"{\"protocol\":\"json\",\"version\":1}\x1e",
        "the handshake, unaltered"
    );
    assert_eq!(open.protocol.as_deref(), Some("json"));
    let claim = |name: &str| -> Vec<&str> {
        open.claims
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(claim("asrs.s.uid"), ["alice"]);
    assert_eq!(claim("role"), ["admin", "user"], "arrays become repeated claims");
    assert_eq!(claim("level"), ["3"], "numbers become text");
    assert_eq!(claim("aud"), ["http://127.0.0.1/client/?hub=chat"]);
    let query = open.query_string.as_deref().unwrap();
    assert_eq!(query, "?hub=Chat", "the query string, without the access token");
    let header = |name: &str| open.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
    assert_eq!(header("host").unwrap().1, [relay.local_addr().to_string()]);
    assert!(header("sec-websocket-key").is_some());
    assert!(header("authorization").is_none());

    // App → client, then client → app, byte for byte.
    data_to(&mut server, &open.connection_id, b"{}\x1e{\"type\":6}\x1e").await;
    assert_eq!(client.next_text().await, "{}\u{1e}{\"type\":6}\u{1e}");
    let invocation = "{\"type\":1,\"target\":\"Send\",\"arguments\":[\"hi ✓\"]}\u{1e}";
    client.send_text(invocation).await;
    match server.recv().await {
        ServiceMessage::ConnectionData(data) => {
            assert_eq!(data.connection_id, open.connection_id);
            assert_eq!(&data.payload[..], invocation.as_bytes());
        }
        other => panic!("expected ConnectionData, got {other:?}"),
    }
    assert_eq!(relay.client_count("chat"), 1);

    // The client leaves: the app server hears of it.
    client.socket.close(None).await.unwrap();
    match server.recv().await {
        ServiceMessage::CloseConnection(close) => assert_eq!(close.connection_id, open.connection_id),
        other => panic!("expected CloseConnection, got {other:?}"),
    }
}

#[tokio::test]
async fn routing_messagepack_client_gets_binary_frames() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let mut client = Client::connect(&relay, "chat", "messagepack", json!({})).await;
    let (open, _) = expect_open(&mut server).await;
    assert_eq!(open.protocol.as_deref(), Some("messagepack"));
    data_to(&mut server, &open.connection_id, b"{}\x1e").await;
    assert_eq!(
        client.next().await.unwrap(),
        (true, bytes::Bytes::from_static(b"{}\x1e"))
    );
    client.send_binary(vec![0x02, 0x91, 0x06]).await;
    match server.recv().await {
        ServiceMessage::ConnectionData(data) => assert_eq!(&data.payload[..], [0x02, 0x91, 0x06]),
        other => panic!("expected ConnectionData, got {other:?}"),
    }
}

#[tokio::test]
async fn routing_handshake_split_over_frames_is_forwarded_whole() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let mut client = Client::open(&relay, "chat", &client_token("chat", json!({})))
        .await
        .unwrap();
    client.send_text("{\"protocol\":\"js").await;
    client.send_text("on\",\"version\":1}\u{1e}{\"type\":6}\u{1e}").await;
    let (_, handshake) = expect_open(&mut server).await;
    assert_eq!(
        &handshake[..],
        b"{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":6}\x1e"
    );
}

#[tokio::test]
async fn routing_close_from_the_app_closes_the_client_only() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut first, first_id) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    let (mut second, second_id) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    server
        .send(&ServiceMessage::CloseConnection(CloseConnection {
            connection_id: first_id,
            ..Default::default()
        }))
        .await;
    first.closed().await;
    data_to(&mut server, &second_id, b"{\"type\":6}\x1e").await;
    assert_eq!(second.next_text().await, "{\"type\":6}\u{1e}");
    // No CloseConnection comes back for the connection the app closed itself.
    second.socket.close(None).await.unwrap();
    match server.recv().await {
        ServiceMessage::CloseConnection(close) => assert_eq!(close.connection_id, second_id),
        other => panic!("expected CloseConnection for the second client, got {other:?}"),
    }
}

#[tokio::test]
async fn routing_round_robin_over_server_connections() {
    let relay = relay().await;
    let mut a = AppServer::connect(&relay, "chat", "app1").await;
    let mut b = AppServer::connect(&relay, "chat", "app2").await;
    let _c1 = Client::connect(&relay, "chat", "json", json!({})).await;
    let (first, _) = expect_open(&mut a).await;
    let _c2 = Client::connect(&relay, "chat", "json", json!({})).await;
    let (second, _) = expect_open(&mut b).await;
    assert_ne!(first.connection_id, second.connection_id);
    let _c3 = Client::connect(&relay, "chat", "json", json!({})).await;
    expect_open(&mut a).await;
}

#[tokio::test]
async fn routing_hubs_are_separate() {
    let relay = relay().await;
    let mut chat = AppServer::connect(&relay, "chat", "app1").await;
    let mut other = AppServer::connect(&relay, "myapp_other", "app1").await;
    let _client = Client::connect(&relay, "myapp_other", "json", json!({})).await;
    expect_open(&mut other).await;
    let (_client2, _) = connect_through(&relay, &mut chat, "chat", "json", json!({})).await;
}

#[tokio::test]
async fn routing_without_an_app_server_the_client_is_refused() {
    let relay = relay().await;
    let mut client = Client::connect(&relay, "lonely", "json", json!({})).await;
    let refusal = client.next_text().await;
    assert!(refusal.starts_with("{\"error\":\"No app server"), "{refusal}");
    assert!(refusal.ends_with('\u{1e}'));
    client.closed().await;
}

#[tokio::test]
async fn routing_server_drop_closes_its_clients() {
    let relay = relay().await;
    let mut a = AppServer::connect(&relay, "chat", "app1").await;
    let mut b = AppServer::connect(&relay, "chat", "app2").await;
    let (mut on_a, _) = connect_through(&relay, &mut a, "chat", "json", json!({})).await;
    let (mut on_b, on_b_id) = connect_through(&relay, &mut b, "chat", "json", json!({})).await;
    a.socket.close(None).await.unwrap();
    // Its client hears why, in its protocol, and may reconnect (to another server).
    assert_eq!(
        on_a.next_text().await,
        "{\"type\":7,\"error\":\"ServerOffline\",\"allowReconnect\":true}\u{1e}"
    );
    on_a.closed().await;
    data_to(&mut b, &on_b_id, b"{\"type\":6}\x1e").await;
    assert_eq!(on_b.next_text().await, "{\"type\":6}\u{1e}");
    // New clients go to the connection that is left.
    let _late = Client::connect(&relay, "chat", "json", json!({})).await;
    expect_open(&mut b).await;
}

#[tokio::test]
async fn routing_client_limit_per_hub() {
    let relay = relay_with(|c| c.max_clients_per_hub = Some(1)).await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (_first, _) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    let mut second = Client::connect(&relay, "chat", "json", json!({})).await;
    assert!(second.next_text().await.starts_with("{\"error\":"));
    second.closed().await;
}

#[tokio::test]
async fn routing_transports_claim_is_enforced() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    // Long polling only (Server-Sent Events and long polling, as a string): negotiate offers
    // only those, and a WebSocket is refused as an unsupported transport.
    for (mask, offered) in [
        (json!(4), vec!["LongPolling"]),
        (json!("6"), vec!["ServerSentEvents", "LongPolling"]),
    ] {
        let token = client_token("chat", json!({"asrs.s.htt": mask}));
        let auth = format!("Bearer {token}");
        let response = http(
            &relay,
            "POST",
            "/client/negotiate?hub=chat",
            &[("Authorization", &auth)],
            b"",
        )
        .await;
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        let transports: Vec<&str> = body["availableTransports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["transport"].as_str().unwrap())
            .collect();
        assert_eq!(transports, offered);
        assert_eq!(Client::open(&relay, "chat", &token).await.err(), Some(404));
    }
    let (_allowed, _) = connect_through(&relay, &mut server, "chat", "json", json!({"asrs.s.htt": 5})).await;
}

#[tokio::test]
async fn routing_server_pings_are_answered() {
    use switchboard::protocol::service::{Ping, PingKind};
    let relay = relay_with(|c| c.server_keep_alive_interval = std::time::Duration::from_millis(200)).await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    server.send(&ServiceMessage::Ping(Ping::keep_alive())).await;
    server.send(&ServiceMessage::Ping(Ping::echo("42"))).await;
    let mut saw_keep_alive = false;
    loop {
        match server.recv_any().await {
            ServiceMessage::Ping(ping) if ping.kind() == PingKind::KeepAlive => saw_keep_alive = true,
            ServiceMessage::Ping(ping) if ping.kind() == PingKind::Echo("42") => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    while !saw_keep_alive {
        saw_keep_alive = matches!(server.recv_any().await, ServiceMessage::Ping(p) if p.messages.is_empty());
    }
    server.send(&ServiceMessage::Ping(Ping::status(true))).await;
    loop {
        match server.recv_any().await {
            ServiceMessage::Ping(ping) if ping.kind() == PingKind::KeepAlive => continue,
            ServiceMessage::Ping(ping) => match ping.kind() {
                PingKind::Status(status) => {
                    assert_eq!((status.active, status.server_count), (false, Some(1)));
                    break;
                }
                other => panic!("expected a status answer, got {other:?}"),
            },
            other => panic!("expected a ping, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn routing_a_crowded_server_connection_asks_for_another_once() {
    use switchboard::protocol::service::PingKind;
    let relay = relay_with(|c| c.clients_per_server_connection = 2).await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let mut clients = Vec::new();
    let mut targets = 0;
    for _ in 0..5 {
        clients.push(Client::connect(&relay, "chat", "json", json!({})).await);
        // What the relay sends on the server connection, up to the client's handshake.
        loop {
            match server.recv_any().await {
                ServiceMessage::Ping(ping) => {
                    if let PingKind::Target(target) = ping.kind() {
                        assert!(target.starts_with("switchboard-"), "names this relay: {target}");
                        targets += 1;
                    }
                }
                ServiceMessage::OpenConnection(_) => {}
                ServiceMessage::ConnectionData(_) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(targets, 1, "asked once, when the third client came");
}
