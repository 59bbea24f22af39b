//! Health and metrics, the long polling and Server-Sent Events transports, and bad input.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::SinkExt;
use serde_json::json;
use switchboard::protocol::service::{ConnectionData, ServiceMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn http_health() {
    let relay = relay().await;
    let response = http(&relay, "GET", "/api/health", &[], b"").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), r#"{"status":"ok"}"#);
    assert_eq!(response.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn http_metrics_count_connections_and_traffic() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut client, id) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    client.send_text("{\"type\":6}\u{1e}").await;
    assert!(matches!(server.recv().await, ServiceMessage::ConnectionData(_)));
    data_to(&mut server, &id, b"{\"type\":6}\x1e").await;
    client.next_text().await;
    let response = http(&relay, "GET", "/metrics", &[], b"").await;
    assert_eq!(response.status, 200);
    assert!(response.header("content-type").unwrap().starts_with("text/plain"));
    let text = response.text();
    assert!(
        text.contains("switchboard_client_connections{hub=\"chat\",transport=\"WebSockets\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("switchboard_server_connections{hub=\"chat\"} 1\n"),
        "{text}"
    );
    let value = |name: &str| -> u64 {
        text.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from {text}"))
    };
    assert!(value("switchboard_messages_total{face=\"client\",direction=\"in\"}") >= 2);
    assert!(value("switchboard_messages_total{face=\"client\",direction=\"out\"}") >= 2);
    assert!(value("switchboard_bytes_total{face=\"server\",direction=\"in\"}") > 0);
    assert!(value("switchboard_bytes_total{face=\"server\",direction=\"out\"}") > 0);
    assert!(text.contains("# TYPE switchboard_messages_total counter"));
}

async fn negotiate_id(relay: &switchboard_service::Relay, token: &str) -> String {
    let auth = format!("Bearer {token}");
    let response = http(
        relay,
        "POST",
        "/client/negotiate?hub=chat",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(response.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    body["connectionId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn http_long_polling_client() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let token = client_token("chat", json!({"asrs.s.uid": "lp"}));
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str())];
    let id = negotiate_id(&relay, &token).await;
    let path = format!("/client/?hub=chat&id={id}");
    let first = http(&relay, "GET", &path, &headers, b"").await;
    assert_eq!(first.status, 200);
    let handshake = b"{\"protocol\":\"json\",\"version\":1}\x1e";
    assert_eq!(http(&relay, "POST", &path, &headers, handshake).await.status, 200);
    let (open, bytes) = expect_open(&mut server).await;
    assert_eq!(&bytes[..], handshake);
    assert_eq!(open.connection_id, id);
    data_to(&mut server, &id, b"{}\x1e").await;
    let poll = http(&relay, "GET", &path, &headers, b"").await;
    assert_eq!((poll.status, poll.body.as_slice()), (200, &b"{}\x1e"[..]));
    let metrics = http(&relay, "GET", "/metrics", &[], b"").await.text();
    assert!(metrics.contains("transport=\"LongPolling\"} 1"), "{metrics}");
    assert_eq!(http(&relay, "DELETE", &path, &headers, b"").await.status, 202);
    match server.recv().await {
        ServiceMessage::CloseConnection(close) => assert_eq!(close.connection_id, id),
        other => panic!("expected CloseConnection, got {other:?}"),
    }
}

/// Negotiates with `token` and opens the event stream: the connection id, its path, and the
/// socket the stream comes on.
async fn open_event_stream(relay: &switchboard_service::Relay, token: &str) -> (String, String, tokio::net::TcpStream) {
    let id = negotiate_id(relay, token).await;
    let path = format!("/client/?hub=chat&id={id}");
    let mut events = tokio::net::TcpStream::connect(relay.local_addr()).await.unwrap();
    let request = format!(
        "GET {path}&access_token={token} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        relay.local_addr()
    );
    events.write_all(request.as_bytes()).await.unwrap();
    (id, path, events)
}

#[tokio::test]
async fn http_server_sent_events_client() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let token = client_token("chat", json!({}));
    let (id, path, mut events) = open_event_stream(&relay, &token).await;
    let mut seen = Vec::new();
    let mut read_until = async |needle: &[u8]| {
        while !seen.windows(needle.len()).any(|w| w == needle) {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, events.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "event stream ended");
            seen.extend_from_slice(&chunk[..n]);
        }
    };
    read_until(b"text/event-stream").await;
    let auth = format!("Bearer {token}");
    let handshake = b"{\"protocol\":\"json\",\"version\":1}\x1e";
    let posted = http(&relay, "POST", &path, &[("Authorization", &auth)], handshake).await;
    assert_eq!(posted.status, 200);
    let (_, bytes) = expect_open(&mut server).await;
    assert_eq!(&bytes[..], handshake);
    data_to(&mut server, &id, b"{}\x1e").await;
    read_until(b"data: {}\x1e").await;
}

#[tokio::test]
async fn http_garbage_from_one_app_server_closes_only_its_connection() {
    let relay = relay().await;
    let mut bad = AppServer::connect(&relay, "chat", "bad").await;
    let mut good = AppServer::connect(&relay, "chat", "good").await;
    let (mut on_bad, _) = connect_through(&relay, &mut bad, "chat", "json", json!({})).await;
    let (mut on_good, good_id) = connect_through(&relay, &mut good, "chat", "json", json!({})).await;
    bad.socket
        .send(Message::binary(vec![0x06, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1]))
        .await
        .unwrap();
    bad.closed().await;
    on_bad.closed().await;
    data_to(&mut good, &good_id, b"{\"type\":6}\x1e").await;
    assert_eq!(on_good.next_text().await, "{\"type\":6}\u{1e}");
    assert_eq!(relay.server_connection_count("chat"), 1);

    // A text frame is not the protocol either.
    let mut texty = AppServer::connect(&relay, "chat", "texty").await;
    texty.socket.send(Message::text("hello")).await.unwrap();
    texty.closed().await;
    // Nor is anything but a handshake first.
    let mut rude = ws_with_bearer(&relay, "/server/?hub=chat&cid=x", &server_token("chat", "rude"))
        .await
        .unwrap();
    let mut out = Vec::new();
    switchboard::protocol::service::write(&ServiceMessage::ConnectionData(ConnectionData::default()), &mut out);
    rude.send(Message::binary(out)).await.unwrap();
    let mut rude = AppServer::wrap(rude);
    rude.closed().await;
    data_to(&mut good, &good_id, b"{\"type\":6}\x1e").await;
    assert_eq!(on_good.next_text().await, "{\"type\":6}\u{1e}");
}

#[tokio::test]
async fn http_oversized_record_closes_the_server_connection() {
    let relay = relay_with(|c| c.max_server_message_size = 1024).await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut client, id) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    server
        .send(&ServiceMessage::ConnectionData(ConnectionData {
            connection_id: id,
            payload: Bytes::from(vec![b'x'; 2000]),
            ..Default::default()
        }))
        .await;
    server.closed().await;
    client.closed().await;
}

#[tokio::test]
async fn http_oversized_client_handshake_closes_the_client() {
    let relay = relay_with(|c| c.max_message_size = 1024).await;
    let _server = AppServer::connect(&relay, "chat", "app1").await;
    let mut client = Client::open(&relay, "chat", &client_token("chat", json!({})))
        .await
        .unwrap();
    client.send_text(&"x".repeat(800)).await;
    client.send_text(&"x".repeat(800)).await;
    assert_eq!(
        client.next_text().await,
        "{\"error\":\"Handshake was canceled.\"}\u{1e}"
    );
    client.closed().await;
}

#[tokio::test]
async fn http_a_handshake_past_32_kib_is_refused_at_once() {
    // The relay's own limit is larger; a handshake is bounded as a self-hosted server bounds it.
    let relay = relay().await;
    let _server = AppServer::connect(&relay, "chat", "app1").await;
    let mut client = Client::open(&relay, "chat", &client_token("chat", json!({})))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    client.send_text(&"x".repeat(33 * 1024)).await;
    assert_eq!(
        client.next_text().await,
        "{\"error\":\"Handshake was canceled.\"}\u{1e}"
    );
    client.closed().await;
    assert!(started.elapsed() < Duration::from_secs(2), "refused at once");
}

#[tokio::test]
async fn http_a_client_without_a_handshake_is_told_when_it_times_out() {
    let relay = relay_with(|c| c.handshake_timeout = Duration::from_secs(1)).await;
    let _server = AppServer::connect(&relay, "chat", "app1").await;
    let mut client = Client::open(&relay, "chat", &client_token("chat", json!({})))
        .await
        .unwrap();
    assert_eq!(
        client.next_text().await,
        "{\"error\":\"Handshake was canceled.\"}\u{1e}"
    );
    client.closed().await;
}

#[tokio::test]
async fn http_server_handshake_version_is_checked() {
    use switchboard::protocol::service::HandshakeRequest;
    let relay = relay().await;
    let socket = ws_with_bearer(&relay, "/server/?hub=chat&cid=x", &server_token("chat", "old"))
        .await
        .unwrap();
    let mut server = AppServer::wrap(socket);
    let request = HandshakeRequest {
        version: 2,
        ..HandshakeRequest::new()
    };
    server.send(&ServiceMessage::HandshakeRequest(request)).await;
    match server.recv().await {
        ServiceMessage::HandshakeResponse(response) => assert!(!response.is_success()),
        other => panic!("expected a handshake response, got {other:?}"),
    }
    server.closed().await;
    assert_eq!(relay.server_connection_count("chat"), 0);
}

#[tokio::test]
async fn http_silent_app_server_times_out() {
    let relay = relay_with(|c| c.server_timeout = Duration::from_secs(1)).await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let started = std::time::Instant::now();
    server.closed().await;
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn http_shutdown_closes_everything() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut client, _) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    let addr = relay.local_addr();
    relay.shutdown().await;
    server.closed().await;
    client.closed().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn http_cors_lets_pages_of_other_origins_negotiate() {
    let relay = relay().await;
    let preflight = http(
        &relay,
        "OPTIONS",
        "/client/negotiate?hub=chat&negotiateVersion=1",
        &[
            ("origin", "http://127.0.0.1:5000"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization,x-signalr-user-agent"),
        ],
        b"",
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("http://127.0.0.1:5000")
    );
    assert_eq!(preflight.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("authorization,x-signalr-user-agent")
    );
    // The real request still needs its token, and carries the CORS headers either way.
    let refused = http(
        &relay,
        "POST",
        "/client/negotiate?hub=chat",
        &[("origin", "http://127.0.0.1:5000")],
        b"",
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("access-control-allow-origin"),
        Some("http://127.0.0.1:5000")
    );
    // Without an Origin header nothing is added.
    let plain = http(&relay, "GET", "/api/health", &[], b"").await;
    assert_eq!(plain.header("access-control-allow-origin"), None);
}

/// A long-polling client of `hub` whose token has these claims and lasts `lifetime` seconds,
/// handshake done: its poll path and headers.
async fn long_polling_client(
    relay: &switchboard_service::Relay,
    server: &mut AppServer,
    claims: serde_json::Value,
    lifetime: i64,
) -> (String, String, String) {
    let audience = "http://127.0.0.1/client/?hub=chat";
    let token = token_with(KEY, jsonwebtoken::Algorithm::HS256, audience, lifetime, claims);
    let auth = format!("Bearer {token}");
    let id = negotiate_id(relay, &token).await;
    let path = format!("/client/?hub=chat&id={id}");
    assert_eq!(
        http(relay, "GET", &path, &[("Authorization", &auth)], b"").await.status,
        200
    );
    let handshake = b"{\"protocol\":\"json\",\"version\":1}\x1e";
    assert_eq!(
        http(relay, "POST", &path, &[("Authorization", &auth)], handshake)
            .await
            .status,
        200
    );
    expect_open(server).await;
    data_to(server, &id, b"{}\x1e").await;
    let poll = http(relay, "GET", &path, &[("Authorization", &auth)], b"").await;
    assert_eq!((poll.status, poll.body.as_slice()), (200, &b"{}\x1e"[..]));
    (path, auth, id)
}

#[tokio::test]
async fn http_long_polling_ends_after_the_tokens_poll_interval() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    // asrs.s.ttl = 1: no poll for 1 s ends the connection (the hub's own limit is 5 s).
    let (path, auth, id) = long_polling_client(&relay, &mut server, json!({"asrs.s.ttl": "1"}), 3600).await;
    match tokio::time::timeout(Duration::from_secs(4), server.recv()).await {
        Ok(ServiceMessage::CloseConnection(close)) => assert_eq!(close.connection_id, id),
        other => panic!("expected CloseConnection within the poll interval, got {other:?}"),
    }
    let late = http(&relay, "GET", &path, &[("Authorization", &auth)], b"").await;
    assert!(
        matches!(late.status, 204 | 404) && late.body.is_empty(),
        "the connection is gone: {}",
        late.status
    );
    // An interval out of [1, 300] is ignored: the hub's limit stays.
    let (path, auth, _) = long_polling_client(&relay, &mut server, json!({"asrs.s.ttl": "0"}), 3600).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let poll = tokio::time::timeout(
        Duration::from_millis(300),
        http(&relay, "GET", &path, &[("Authorization", &auth)], b""),
    )
    .await;
    assert!(poll.is_err(), "still there: the poll waits for data");
}

#[tokio::test]
async fn http_an_expired_token_ends_long_polling() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    // A token that expires in 2 s: the waiting poll gets a Close, and the connection ends
    // (requests with the token are refused with 401 once its clock skew allowance passes).
    let (path, auth, id) = long_polling_client(&relay, &mut server, json!({}), 2).await;
    let poll = http(&relay, "GET", &path, &[("Authorization", &auth)], b"").await;
    assert_eq!(poll.status, 200);
    assert_eq!(
        poll.text(),
        "{\"type\":7,\"error\":\"Unauthorized: the access token expired. Negotiate again for a new one.\",\"allowReconnect\":true}\u{1e}"
    );
    match server.recv().await {
        ServiceMessage::CloseConnection(close) => assert_eq!(close.connection_id, id),
        other => panic!("expected CloseConnection, got {other:?}"),
    }
    let after = http(&relay, "GET", &path, &[("Authorization", &auth)], b"").await;
    assert!(
        matches!(after.status, 204 | 404) && after.body.is_empty(),
        "the connection is gone: {}",
        after.status
    );
}

#[tokio::test]
async fn http_an_expired_token_ends_an_event_stream() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let audience = "http://127.0.0.1/client/?hub=chat";
    let token = token_with(KEY, jsonwebtoken::Algorithm::HS256, audience, 2, json!({}));
    let (id, path, mut events) = open_event_stream(&relay, &token).await;
    let auth = format!("Bearer {token}");
    let handshake = b"{\"protocol\":\"json\",\"version\":1}\x1e";
    assert_eq!(
        http(&relay, "POST", &path, &[("Authorization", &auth)], handshake)
            .await
            .status,
        200
    );
    let (_, _) = expect_open(&mut server).await;
    data_to(&mut server, &id, b"{}\x1e").await;
    // The stream carries the handshake response, then the Close at expiry, then its body ends.
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let Ok(read) = tokio::time::timeout(WAIT, events.read(&mut chunk)).await else {
            panic!("the event stream did not end: {}", String::from_utf8_lossy(&seen));
        };
        let n = read.unwrap();
        seen.extend_from_slice(&chunk[..n]);
        // The end of the chunked body (the socket may stay open for another request).
        if n == 0 || seen.ends_with(b"\r\n0\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("data: {}\u{1e}"), "{text}");
    assert!(
        text.contains("data: {\"type\":7,\"error\":\"Unauthorized: the access token expired. Negotiate again for a new one.\",\"allowReconnect\":true}\u{1e}"),
        "{text}"
    );
    match server.recv().await {
        ServiceMessage::CloseConnection(close) => assert_eq!(close.connection_id, id),
        other => panic!("expected CloseConnection, got {other:?}"),
    }
}

/// `count` broadcasts from the app server of a JSON invocation of `m` with a string of `size`
/// bytes.
async fn broadcast_invocations(server: &mut AppServer, count: usize, size: usize) {
    let payload = format!(
        "{{\"type\":1,\"target\":\"m\",\"arguments\":[\"{}\"]}}\u{1e}",
        "x".repeat(size)
    );
    for _ in 0..count {
        server
            .send(&ServiceMessage::BroadcastData(
                switchboard::protocol::service::BroadcastData {
                    payloads: vec![("json".to_owned(), payload.clone().into())],
                    ..Default::default()
                },
            ))
            .await;
    }
}

#[tokio::test]
async fn http_a_client_that_does_not_read_is_told_why_it_is_closed() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut client, _) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    // Far more than the client's queue and the sockets' buffers hold, while it reads nothing.
    broadcast_invocations(&mut server, 8000, 2000).await;
    let mut last = String::new();
    while let Ok((_, bytes)) = client.next().await {
        last = String::from_utf8_lossy(&bytes).into_owned();
    }
    let close = last
        .rsplit('\u{1e}')
        .find(|record| !record.is_empty())
        .unwrap_or_default();
    assert_eq!(
        close,
        "{\"type\":7,\"error\":\"Connection closed with an error. The client did not read its messages fast enough: its outbound queue is full.\",\"allowReconnect\":true}"
    );
}

#[tokio::test]
async fn http_a_client_that_does_not_read_is_closed_past_its_queued_bytes() {
    let relay = relay().await;
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut client, _) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    // Far fewer messages than the client's queue may count (4,096), far more bytes than its
    // 4 MiB and the sockets' buffers hold, while it reads nothing.
    broadcast_invocations(&mut server, 600, 64 * 1024).await;
    let started = std::time::Instant::now();
    let mut last = String::new();
    let mut delivered = 0;
    while let Ok((_, bytes)) = client.next().await {
        last = String::from_utf8_lossy(&bytes).into_owned();
        delivered += last.matches("\"target\":\"m\"").count();
    }
    let close = last
        .rsplit('\u{1e}')
        .find(|record| !record.is_empty())
        .unwrap_or_default();
    assert!(
        delivered < 600,
        "only what was queued and buffered arrives ({delivered})"
    );
    assert_eq!(
        close,
        "{\"type\":7,\"error\":\"Connection closed with an error. The client did not read its messages fast enough: its outbound queue is full.\",\"allowReconnect\":true}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed at once, not at the send timeout"
    );
}

#[tokio::test]
async fn http_a_request_whose_headers_never_end_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let relay = relay_with(|c| c.request_header_timeout = Duration::from_secs(1)).await;
    let mut slow = tokio::net::TcpStream::connect(relay.local_addr()).await.unwrap();
    let started = std::time::Instant::now();
    slow.write_all(b"GET /api/health HTTP/1.1\r\nHo").await.unwrap();
    // One more byte now and then, never the end of the headers.
    let mut read = [0u8; 256];
    let trickle = async {
        loop {
            tokio::select! {
                n = slow.read(&mut read) => break n,
                _ = tokio::time::sleep(Duration::from_millis(300)) => {
                    if slow.write_all(b"s").await.is_err() {
                        break Ok(0);
                    }
                }
            }
        }
    };
    let ended = tokio::time::timeout(Duration::from_secs(8), trickle)
        .await
        .expect("the relay closes a connection whose headers never end");
    assert!(
        matches!(ended, Ok(0) | Err(_)),
        "the relay closed the connection: {ended:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // Requests that finish their headers are served as before.
    assert_eq!(http(&relay, "GET", "/api/health", &[], b"").await.status, 200);
}

#[tokio::test]
async fn http_limits_refuse_with_the_reason_and_count_it() {
    let relay = relay_with(|c| {
        c.limits.max_connections = Some(5);
        c.limits.max_connections_per_address = Some(1);
        c.limits.negotiates_per_address_per_second = Some(2);
    })
    .await;
    let _server = AppServer::connect(&relay, "chat", "app1").await;
    let token = client_token("chat", json!({}));
    let auth = format!("Bearer {token}");
    let negotiate = "/client/negotiate?hub=chat&negotiateVersion=1";
    // Two negotiates a second from this address; the third is refused, and says when to retry.
    for _ in 0..2 {
        assert_eq!(
            http(&relay, "POST", negotiate, &[("Authorization", &auth)], b"")
                .await
                .status,
            200
        );
    }
    let refused = http(&relay, "POST", negotiate, &[("Authorization", &auth)], b"").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.text(),
        "Too many negotiate requests from this address. Try again in a second."
    );
    assert!(
        refused
            .headers
            .iter()
            .any(|(name, value)| name.eq_ignore_ascii_case("retry-after") && value == "1")
    );
    // One connection per address: the second WebSocket from 127.0.0.1 is refused.
    let first = ws_with_bearer(&relay, "/client/?hub=chat", &token)
        .await
        .expect("the first connects");
    let deadline = std::time::Instant::now() + WAIT;
    let mut second = ws_with_bearer(&relay, "/client/?hub=chat", &token).await;
    while second.is_ok() && std::time::Instant::now() < deadline {
        // The first may not be counted yet: it is once its connection runs.
        tokio::time::sleep(Duration::from_millis(20)).await;
        second = ws_with_bearer(&relay, "/client/?hub=chat", &token).await;
    }
    assert_eq!(second.err(), Some(429));
    drop(first);
    let metrics = http(&relay, "GET", "/metrics", &[], b"").await.text();
    assert!(
        metrics.contains("switchboard_client_refusals_total{limit=\"negotiate_rate\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchboard_client_refusals_total{limit=\"address_connections\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchboard_client_refusals_total{limit=\"connections\"} 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn http_a_full_node_answers_503() {
    let relay = relay_with(|c| c.limits.max_connections = Some(1)).await;
    let _server = AppServer::connect(&relay, "chat", "app1").await;
    let token = client_token("chat", json!({}));
    let _first = ws_with_bearer(&relay, "/client/?hub=chat", &token)
        .await
        .expect("the first connects");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let refused = http(
            &relay,
            "POST",
            "/client/negotiate?hub=chat&negotiateVersion=1",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
        .await;
        if refused.status == 503 {
            assert_eq!(
                refused.text(),
                "The relay holds as many client connections as it may. Try again later."
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never refused: {}",
            refused.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ws_with_bearer(&relay, "/client/?hub=chat", &token).await.err(),
        Some(503)
    );
    // Other requests go on: health, metrics, app servers.
    assert_eq!(http(&relay, "GET", "/api/health", &[], b"").await.status, 200);
    let _another_server = AppServer::connect(&relay, "chat", "app2").await;
}
