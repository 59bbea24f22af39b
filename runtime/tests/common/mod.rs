//! A real server on a loopback port and a raw WebSocket client that speaks the hub protocol
//! byte by byte, for tests that need exact control over what goes on the wire.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard::Switchboard;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(10);

/// Serves `app` on 127.0.0.1 and returns `host:port`. The server stops with the test's
/// runtime.
pub async fn serve(app: &Switchboard) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let router = app.router::<()>();
    tokio::spawn(async move {
        let _ = switchboard::serve(listener, router).await;
    });
    addr.to_string()
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `ws://{addr}{path}` (no negotiate).
pub async fn open(addr: &str, path: &str) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .expect("websocket connect");
    socket
}

/// Opens a WebSocket and completes a JSON handshake.
pub async fn connect_json(addr: &str, path: &str) -> Socket {
    let mut socket = open(addr, path).await;
    send_text(&mut socket, "{\"protocol\":\"json\",\"version\":1}\u{1e}").await;
    assert_eq!(
        next_text(&mut socket).await,
        "{}\u{1e}",
        "handshake response comes first"
    );
    socket
}

pub async fn send_text(socket: &mut Socket, text: &str) {
    socket.send(Message::text(text)).await.expect("send");
}

pub async fn send_binary(socket: &mut Socket, bytes: Vec<u8>) {
    socket.send(Message::binary(bytes)).await.expect("send");
}

/// What the server did next.
#[derive(Debug, PartialEq)]
pub enum Event {
    Text(String),
    Binary(Vec<u8>),
    Closed(Option<u16>),
}

pub async fn next_event(socket: &mut Socket) -> Event {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("server answered in time");
        return match message {
            Some(Ok(Message::Text(t))) => Event::Text(t.to_string()),
            Some(Ok(Message::Binary(b))) => Event::Binary(b.to_vec()),
            Some(Ok(Message::Close(frame))) => Event::Closed(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => Event::Closed(None),
        };
    }
}

pub async fn next_text(socket: &mut Socket) -> String {
    match next_event(socket).await {
        Event::Text(t) => t,
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next text message that is not a Ping, split into records.
pub async fn next_records(socket: &mut Socket) -> Vec<serde_json::Value> {
    loop {
        let text = next_text(socket).await;
        let records: Vec<serde_json::Value> = text
            .split('\u{1e}')
            .filter(|r| !r.is_empty())
            .map(|r| serde_json::from_str(r).expect("valid JSON record"))
            .filter(|v: &serde_json::Value| v["type"] != 6)
            .collect();
        if !records.is_empty() {
            return records;
        }
    }
}

pub async fn next_record(socket: &mut Socket) -> serde_json::Value {
    let mut records = next_records(socket).await;
    assert_eq!(records.len(), 1, "one record: {records:?}");
    records.remove(0)
}

/// Invokes `target` with JSON `arguments` and returns the Completion.
pub async fn invoke(socket: &mut Socket, id: &str, target: &str, arguments: serde_json::Value) -> serde_json::Value {
    let message = serde_json::json!({"type": 1, "invocationId": id, "target": target, "arguments": arguments});
    send_text(socket, &format!("{message}\u{1e}")).await;
    next_record(socket).await
}

/// Expects a Close message and then a normal WebSocket close.
pub async fn expect_close(socket: &mut Socket) -> serde_json::Value {
    let close = next_record(socket).await;
    assert_eq!(close["type"], 7, "a Close message: {close}");
    assert_eq!(next_event(socket).await, Event::Closed(Some(1000)));
    close
}
