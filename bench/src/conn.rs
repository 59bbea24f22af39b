//! Opening connections: source-address spreading, SignalR negotiate (following a service-mode
//! redirect), the WebSocket upgrade with small buffers, and the SignalR handshake or the
//! Engine.IO / Socket.IO opening (`0{…}` open packet, `40` connect, `40{"sid":…}` ack).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::proto::{self, Frame, Incoming, Mode};

/// A client WebSocket over plain TCP.
pub type Ws = WebSocketStream<TcpStream>;

/// Number of loopback source addresses connections are spread over (127.0.0.2 … 127.0.0.9).
pub const SOURCE_ADDRESSES: usize = 8;

/// The source address for the `index`-th connection: 127.0.0.2 … 127.0.0.9 in turn.
pub fn source_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (index % SOURCE_ADDRESSES) as u8)
}

/// WebSocket settings used on both sides of every benchmark connection: 4 KiB read and write
/// buffers instead of tungstenite's 128 KiB default read buffer.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// A parsed `http://` or `ws://` URL (no TLS, no user info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `host:port` as written.
    pub authority: String,
    /// Path (starting with `/`).
    pub path: String,
    /// Query without the `?`, possibly empty.
    pub query: String,
}

impl Url {
    /// Parses `http://host:port/path?query` (also `ws://`).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| format!("unsupported URL (http:// or ws:// only): {url}"))?;
        let (authority, path_query) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path_query, ""),
        };
        Ok(Self {
            authority: authority.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
        })
    }

    /// Adds `key=value` to the query.
    pub fn with_param(mut self, key: &str, value: &str) -> Self {
        if !self.query.is_empty() {
            self.query.push('&');
        }
        self.query.push_str(key);
        self.query.push('=');
        self.query.push_str(value);
        self
    }

    /// The negotiate URL of this endpoint (`…/negotiate?…&negotiateVersion=1`).
    pub fn negotiate(&self) -> Self {
        let mut path = self.path.trim_end_matches('/').to_owned();
        path.push_str("/negotiate");
        Self {
            authority: self.authority.clone(),
            path,
            query: self.query.clone(),
        }
        .with_param("negotiateVersion", "1")
    }

    /// Path and query as sent in a request line.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    /// The URL with another scheme.
    pub fn to_string_with(&self, scheme: &str) -> String {
        format!("{scheme}://{}{}", self.authority, self.target())
    }

    /// Resolves the authority to a socket address.
    pub async fn socket_addr(&self) -> Result<SocketAddr, String> {
        tokio::net::lookup_host(&self.authority)
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", self.authority))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| format!("no IPv4 address for {}", self.authority))
    }
}

/// Opens a TCP connection from `source` (bound before connecting) to `dest`.
pub async fn tcp_connect(source: Ipv4Addr, dest: SocketAddr) -> Result<TcpStream, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::new(source.into(), 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = socket
        .connect(dest)
        .await
        .map_err(|e| format!("connect {source} -> {dest}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    Ok(stream)
}

/// Sends an HTTP/1.1 `POST` without a body and returns the status and body.
/// Uses `Connection: close`, so the server closes first (its side keeps the TIME_WAIT).
pub async fn http_post(source: Ipv4Addr, url: &Url, bearer: Option<&str>) -> Result<(u16, Vec<u8>), String> {
    let mut stream = tcp_connect(source, url.socket_addr().await?).await?;
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n",
        url.target(),
        url.authority
    );
    if let Some(token) = bearer {
        request.push_str("Authorization: Bearer ");
        request.push_str(token);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("negotiate write: {e}"))?;
    let mut response = Vec::with_capacity(1024);
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("negotiate read: {e}"))?;
    parse_http_response(&response)
}

fn parse_http_response(response: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("truncated HTTP response")?;
    let head = String::from_utf8_lossy(&response[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let body = &response[head_end + 4..];
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked")
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(rest.get(..size).ok_or("truncated chunk")?);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
    Ok((status, out))
}

/// Negotiates with a SignalR endpoint, following redirects (`{url, accessToken}`, as a hub in
/// service mode answers), and returns the WebSocket URL to open.
pub async fn negotiate(source: Ipv4Addr, endpoint: &str) -> Result<String, String> {
    let mut url = Url::parse(endpoint)?;
    let mut token: Option<String> = None;
    for _ in 0..5 {
        let (status, body) = http_post(source, &url.negotiate(), token.as_deref()).await?;
        if status != 200 {
            return Err(format!(
                "negotiate {}: HTTP {status}: {}",
                url.negotiate().target(),
                String::from_utf8_lossy(&body)
            ));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("negotiate answer is not JSON: {e}"))?;
        if let Some(error) = json.get("error").and_then(|e| e.as_str()) {
            return Err(format!("negotiate error: {error}"));
        }
        if let Some(redirect) = json.get("url").and_then(|u| u.as_str()) {
            url = Url::parse(redirect)?;
            token = json.get("accessToken").and_then(|t| t.as_str()).map(str::to_owned);
            continue;
        }
        let id = json
            .get("connectionToken")
            .or_else(|| json.get("connectionId"))
            .and_then(|t| t.as_str())
            .ok_or("negotiate answer without connectionToken")?;
        let mut ws = url.with_param("id", id);
        if let Some(token) = &token {
            ws = ws.with_param("access_token", token);
        }
        return Ok(ws.to_string_with("ws"));
    }
    Err("too many negotiate redirects".into())
}

/// The Engine.IO v4 WebSocket URL of a Socket.IO server at `endpoint` (its path is ignored):
/// `ws://host:port/socket.io/?EIO=4&transport=websocket`.
pub fn socketio_url(endpoint: &str) -> Result<String, String> {
    let url = Url::parse(endpoint)?;
    Ok(Url {
        authority: url.authority,
        path: "/socket.io/".into(),
        query: "EIO=4&transport=websocket".into(),
    }
    .to_string_with("ws"))
}

/// Reads the next text or binary message, skipping control frames, within 15 s.
async fn next_data(ws: &mut Ws, what: &str) -> Result<Message, String> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .map_err(|_| format!("no {what} in 15 s"))?
            .ok_or_else(|| format!("closed before the {what}"))?
            .map_err(|e| format!("{what} read: {e}"))?;
        match msg {
            Message::Text(_) | Message::Binary(_) => return Ok(msg),
            Message::Close(c) => return Err(format!("closed before the {what}: {c:?}")),
            _ => {}
        }
    }
}

/// The Socket.IO opening on a fresh Engine.IO WebSocket: the server's open packet `0{"sid":…}`,
/// the client's connect `40` to the main namespace, the server's ack `40{"sid":…}`.
async fn socketio_open(ws: &mut Ws) -> Result<(), String> {
    let open = next_data(ws, "Engine.IO open packet").await?;
    let open = open.to_text().map_err(|_| "binary Engine.IO open packet".to_owned())?;
    if !open.starts_with("0{") || !open.contains("\"sid\"") {
        return Err(format!("expected an Engine.IO open packet, got {open:.80}"));
    }
    ws.send(Message::text("40"))
        .await
        .map_err(|e| format!("Socket.IO connect send: {e}"))?;
    loop {
        let msg = next_data(ws, "Socket.IO connect ack").await?;
        let text = msg
            .to_text()
            .map_err(|_| "binary frame before the connect ack".to_owned())?;
        if text.starts_with("40") {
            return Ok(());
        }
        if text == "2" {
            ws.send(Message::text("3")).await.map_err(|e| format!("pong: {e}"))?;
            continue;
        }
        if text.starts_with("44") || text.starts_with("41") || text == "1" {
            return Err(format!("Socket.IO connect refused: {text:.200}"));
        }
    }
}

/// Opens the `index`-th connection to `endpoint` in `mode`: negotiate (SignalR modes),
/// WebSocket upgrade from source address [`source_ip`]`(index)`, SignalR handshake or Socket.IO
/// opening. Returns the socket and any messages that arrived together with the handshake response.
pub async fn connect(endpoint: &str, mode: Mode, index: usize) -> Result<(Ws, Vec<Incoming>), String> {
    let source = source_ip(index);
    let ws_url = match mode {
        Mode::Raw => Url::parse(endpoint)?.to_string_with("ws"),
        Mode::SocketIo => socketio_url(endpoint)?,
        Mode::Json | Mode::MsgPack => negotiate(source, endpoint).await?,
    };
    let url = Url::parse(&ws_url)?;
    let stream = tcp_connect(source, url.socket_addr().await?).await?;
    // close with a reset: no TIME_WAIT left on the client's ports after thousands of connections
    stream.set_zero_linger().map_err(|e| format!("linger: {e}"))?;
    let request = ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
        .await
        .map_err(|e| format!("WebSocket upgrade to {}: {e}", url.path))?;
    let mut early = Vec::new();
    if mode == Mode::SocketIo {
        socketio_open(&mut ws).await?;
    }
    if let Some(handshake) = mode.handshake() {
        ws.send(Message::text(handshake))
            .await
            .map_err(|e| format!("handshake send: {e}"))?;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
                .await
                .map_err(|_| "no handshake response in 15 s".to_owned())?
                .ok_or("closed during handshake")?
                .map_err(|e| format!("handshake read: {e}"))?;
            let data: &[u8] = match &msg {
                Message::Text(t) => t.as_bytes(),
                Message::Binary(b) => b,
                Message::Close(c) => return Err(format!("closed during handshake: {c:?}")),
                _ => continue,
            };
            let rest = proto::handshake_response(data)?;
            if !rest.is_empty() {
                decode_into(mode, rest, matches!(msg, Message::Text(_)), &mut early)?;
            }
            break;
        }
    }
    Ok((ws, early))
}

fn decode_into(mode: Mode, data: &[u8], text: bool, out: &mut Vec<Incoming>) -> Result<(), String> {
    match (mode, text) {
        (Mode::Raw, _) => {
            out.push(proto::decode_raw(data)?);
            Ok(())
        }
        (Mode::Json, _) | (Mode::MsgPack, true) => proto::decode_json(data, out),
        (Mode::MsgPack, false) => proto::decode_msgpack(data, out),
        (Mode::SocketIo, true) => {
            out.push(proto::decode_socketio(data)?);
            Ok(())
        }
        (Mode::SocketIo, false) => Err("unexpected binary frame in Socket.IO mode".into()),
    }
}

/// Decodes one received WebSocket message into `out`. Control frames yield nothing
/// (tungstenite answers pings itself); a close frame yields [`Incoming::Close`].
pub fn decode(mode: Mode, msg: &Message, out: &mut Vec<Incoming>) -> Result<(), String> {
    match msg {
        Message::Text(t) => decode_into(mode, t.as_bytes(), true, out),
        Message::Binary(b) => decode_into(mode, b, false, out),
        Message::Close(c) => {
            out.push(Incoming::Close(c.as_ref().map(|c| format!("{} {}", c.code, c.reason))));
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Turns an encoded frame into a WebSocket message.
pub fn message(frame: Frame) -> Message {
    match frame {
        Frame::Text(t) => Message::text(t),
        Frame::Binary(b) => Message::binary(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:5/client/?hub=chathub&asrs.op=%2Fchathub").unwrap();
        assert_eq!(
            u.negotiate().target(),
            "/client/negotiate?hub=chathub&asrs.op=%2Fchathub&negotiateVersion=1"
        );
        let u = Url::parse("http://127.0.0.1:5/chathub").unwrap();
        assert_eq!(u.negotiate().target(), "/chathub/negotiate?negotiateVersion=1");
        assert_eq!(
            u.with_param("id", "x").to_string_with("ws"),
            "ws://127.0.0.1:5/chathub?id=x"
        );
        assert_eq!(source_ip(0), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_ip(7), Ipv4Addr::new(127, 0, 0, 9));
        assert_eq!(source_ip(8), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(
            socketio_url("http://127.0.0.1:5/").unwrap(),
            "ws://127.0.0.1:5/socket.io/?EIO=4&transport=websocket"
        );
    }

    #[test]
    fn http_responses() {
        let (s, b) = parse_http_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"{}"[..]));
        let (s, b) = parse_http_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((s, b.as_slice()), (404, &b"abcd"[..]));
    }
}
