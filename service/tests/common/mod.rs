//! An in-process relay on a loopback port, an app server speaking the service protocol over a
//! real WebSocket (through the runtime's codec), SignalR clients speaking raw JSON records,
//! and a bare HTTP/1.1 client.
#![allow(dead_code)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use switchboard::protocol::framing::split_binary_record;
use switchboard::protocol::service::{self, HandshakeRequest, ServiceMessage};
use switchboard_service::{Config, Relay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEY: &str = "relay-test-access-key-0123456789";
pub const WAIT: Duration = Duration::from_secs(10);

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A relay on 127.0.0.1 with [`KEY`], adjusted by `adjust`.
pub async fn relay_with(adjust: impl FnOnce(&mut Config)) -> Relay {
    let mut config = Config::new(KEY).listen("127.0.0.1:0");
    adjust(&mut config);
    Relay::bind(config).await.expect("relay starts")
}

pub async fn relay() -> Relay {
    relay_with(|_| {}).await
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token signed with `key` by `algorithm` for `audience`, valid for `lifetime` seconds
/// (negative: already expired), carrying `claims` too.
pub fn token_with(key: &str, algorithm: Algorithm, audience: &str, lifetime: i64, claims: Value) -> String {
    let mut body = claims.as_object().cloned().unwrap_or_default();
    body.insert("aud".into(), json!(audience));
    body.insert("exp".into(), json!(now() + lifetime));
    body.insert("iat".into(), json!(now()));
    body.insert("nbf".into(), json!(now()));
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &body,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// A valid client token for `hub` with these claims.
pub fn client_token(hub: &str, claims: Value) -> String {
    let audience = format!("http://127.0.0.1/client/?hub={}", hub.to_lowercase());
    token_with(KEY, Algorithm::HS256, &audience, 3600, claims)
}

/// A valid server token for `hub`, naming the app server `server_id`.
pub fn server_token(hub: &str, server_id: &str) -> String {
    let audience = format!("http://127.0.0.1/server/?hub={}", hub.to_lowercase());
    token_with(KEY, Algorithm::HS256, &audience, 3600, json!({ "nameid": server_id }))
}

/// A WebSocket to the relay with an `Authorization: Bearer` header.
pub async fn ws_with_bearer(relay: &Relay, path: &str, token: &str) -> Result<Socket, u16> {
    let mut request = format!("ws://{}{path}", relay.local_addr())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(error) => panic!("websocket connect failed: {error}"),
    }
}

/// An app server's connection, speaking the service protocol.
pub struct AppServer {
    pub socket: Socket,
    buf: BytesMut,
}

impl AppServer {
    /// Connects to hub `hub` as app server `server_id`, completing the handshake.
    pub async fn connect(relay: &Relay, hub: &str, server_id: &str) -> AppServer {
        Self::connect_with(relay, hub, server_id, HandshakeRequest::new()).await
    }

    /// Connects as [`AppServer::connect`] does, with this handshake request.
    pub async fn connect_with(relay: &Relay, hub: &str, server_id: &str, handshake: HandshakeRequest) -> AppServer {
        let token = server_token(hub, server_id);
        let socket = ws_with_bearer(relay, &format!("/server/?hub={hub}&cid={server_id}-c"), &token)
            .await
            .expect("server connection accepted");
        let mut server = AppServer {
            socket,
            buf: BytesMut::new(),
        };
        server.send(&ServiceMessage::HandshakeRequest(handshake)).await;
        match server.recv().await {
            ServiceMessage::HandshakeResponse(response) => assert!(response.is_success(), "{response:?}"),
            other => panic!("expected a handshake response, got {other:?}"),
        }
        server
    }

    /// A server connection whose handshake is up to the test.
    pub fn wrap(socket: Socket) -> AppServer {
        AppServer {
            socket,
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, message: &ServiceMessage) {
        let mut out = Vec::new();
        service::write(message, &mut out);
        self.socket.send(Message::binary(out)).await.expect("send to relay");
    }

    /// The next message, pings included; panics if the socket closes.
    pub async fn recv_any(&mut self) -> ServiceMessage {
        self.try_recv_any().await.expect("relay closed the server connection")
    }

    /// The next message, or `None` once the relay closed the socket.
    pub async fn try_recv_any(&mut self) -> Option<ServiceMessage> {
        loop {
            if let Some(record) = split_binary_record(&mut self.buf, None).unwrap() {
                match service::parse(record).unwrap() {
                    Some(message) => return Some(message),
                    None => continue,
                }
            }
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("relay answered in time");
            match frame {
                Some(Ok(Message::Binary(bytes))) => self.buf.extend_from_slice(&bytes),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next message that is not a ping.
    pub async fn recv(&mut self) -> ServiceMessage {
        loop {
            match self.recv_any().await {
                ServiceMessage::Ping(_) => continue,
                other => return other,
            }
        }
    }

    /// Waits for the relay to close the connection (pings and other messages skipped).
    pub async fn closed(&mut self) {
        while self.try_recv_any().await.is_some() {}
    }
}

/// A SignalR client speaking raw records over a WebSocket.
pub struct Client {
    pub socket: Socket,
}

impl Client {
    /// Opens a WebSocket to `/client/?hub=HUB&access_token=…` (no negotiate) and sends a
    /// handshake for `protocol`. The handshake response comes from the app server.
    pub async fn connect(relay: &Relay, hub: &str, protocol: &str, claims: Value) -> Client {
        let mut client = Client::open(relay, hub, &client_token(hub, claims))
            .await
            .expect("client accepted");
        client
            .send_text(&format!("{{\"protocol\":\"{protocol}\",\"version\":1}}\u{1e}"))
            .await;
        client
    }

    pub async fn open(relay: &Relay, hub: &str, token: &str) -> Result<Client, u16> {
        let url = format!("ws://{}/client/?hub={hub}&access_token={token}", relay.local_addr());
        match tokio_tungstenite::connect_async(url).await {
            Ok((socket, _)) => Ok(Client { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(error) => panic!("websocket connect failed: {error}"),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.socket.send(Message::binary(bytes)).await.expect("send");
    }

    /// The next frame: `Ok((binary, bytes))`, or `Err(())` once closed.
    pub async fn next(&mut self) -> Result<(bool, Bytes), ()> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("relay answered in time");
            return match frame {
                Some(Ok(Message::Text(text))) => Ok((false, Bytes::copy_from_slice(text.as_bytes()))),
                Some(Ok(Message::Binary(bytes))) => Ok((true, bytes)),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Err(()),
                Some(Ok(_)) => continue,
            };
        }
    }

    pub async fn next_text(&mut self) -> String {
        match self.next().await {
            Ok((false, bytes)) => String::from_utf8(bytes.to_vec()).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Waits for the relay to close the connection.
    pub async fn closed(&mut self) {
        while self.next().await.is_ok() {}
    }

    /// Asserts nothing arrives for a short while.
    pub async fn nothing_for_a_while(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(300), self.socket.next()).await;
        assert!(next.is_err(), "expected nothing, got {next:?}");
    }
}

/// The OpenConnection the app server receives for a newly connected client, and the
/// handshake bytes that follow it.
pub async fn expect_open(server: &mut AppServer) -> (service::OpenConnection, Bytes) {
    let open = match server.recv().await {
        ServiceMessage::OpenConnection(open) => open,
        other => panic!("expected OpenConnection, got {other:?}"),
    };
    match server.recv().await {
        ServiceMessage::ConnectionData(data) => {
            assert_eq!(data.connection_id, open.connection_id);
            (open, data.payload)
        }
        other => panic!("expected ConnectionData, got {other:?}"),
    }
}

/// A client connected through `server` (the app answers its handshake with `{}`): its id.
pub async fn connect_through(
    relay: &Relay,
    server: &mut AppServer,
    hub: &str,
    protocol: &str,
    claims: Value,
) -> (Client, String) {
    let mut client = Client::connect(relay, hub, protocol, claims).await;
    let (open, _) = expect_open(server).await;
    data_to(server, &open.connection_id, b"{}\x1e").await;
    let (_, handshake) = client.next().await.expect("handshake response");
    assert_eq!(&handshake[..], b"{}\x1e");
    (client, open.connection_id)
}

/// Sends bytes to one client through the relay.
pub async fn data_to(server: &mut AppServer, connection_id: &str, payload: &[u8]) {
    server
        .send(&ServiceMessage::ConnectionData(service::ConnectionData {
            connection_id: connection_id.to_owned(),
            payload: Bytes::copy_from_slice(payload),
            ..Default::default()
        }))
        .await;
}

/// A payload map with a JSON and a MessagePack encoding.
pub fn payloads(json: &str, msgpack: &[u8]) -> service::Payloads {
    vec![
        ("json".to_owned(), Bytes::copy_from_slice(json.as_bytes())),
        ("messagepack".to_owned(), Bytes::copy_from_slice(msgpack)),
    ]
}

/// A plain HTTP/1.1 request (`Connection: close`): status, headers (lower-cased names) and
/// body.
pub async fn http(relay: &Relay, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    http_to(relay.local_addr(), method, path, headers, body).await
}

/// [`http`] to any address.
pub async fn http_to(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    HttpResponse::parse(&raw)
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn parse(raw: &[u8]) -> HttpResponse {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let mut body = raw[end + 4..].to_vec();
        if headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        HttpResponse { status, headers, body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 4 + size..];
    }
    out
}
