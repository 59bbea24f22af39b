//! The server face: app servers open WebSockets at `GET /server/?hub=HUB&cid=ID` with a
//! bearer token for `http://{host}/server/?hub={hub}`, send a `HandshakeRequest`, and from
//! then on exchange service-protocol records (VarInt-length-prefixed MessagePack arrays, in
//! binary frames) with the relay.
//!
//! Each connection has a reader (this task: records in, handled by [`crate::dispatch`]) and a
//! writer (records out of the connection's bounded queue, several per flush, and a ping every
//! few seconds). Bad input, a record over the size limit or silence past the timeout close
//! that connection only, and with it the clients pinned to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use switchboard::protocol::framing::split_binary_record;
use switchboard::protocol::service::{self, HandshakeResponse, Ping, SERVICE_PROTOCOL_VERSION, ServiceMessage};
use tokio::sync::mpsc;

use crate::auth::{audiences, bearer};
use crate::dispatch::{self, ServerContext};
use crate::link::ServerLink;
use crate::relay::Shared;

/// Records queued for one server connection before senders wait.
const QUEUE_CAPACITY: usize = 1024;
/// Records joined into one flush at most.
const MAX_BATCH: usize = 256;
/// One write (a batch and its flush) taking longer than this closes the connection.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How much one read of a server connection takes at most (more reads follow for a larger
/// frame): a batch of records, without zero-filling a large buffer before every read.
const SERVER_READ_BUFFER: usize = 4 * 1024;

/// The connection type of HandshakeRequest that carries no clients.
const WEAK_CONNECTION: i32 = 2;

fn status(code: StatusCode) -> Response {
    let mut response = code.into_response();
    response
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("0"));
    response
}

/// `GET /server/?hub=…&cid=…`: checks the token, then upgrades.
pub(crate) async fn accept(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let host = parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok());
    let hub = query.get("hub").filter(|hub| !hub.is_empty());
    let (Some(host), Some(hub), Some(token)) = (host, hub, bearer(&parts.headers)) else {
        return status(StatusCode::UNAUTHORIZED);
    };
    let claims = match shared.keys.validate(token, &audiences(host, "server", hub)) {
        Ok(claims) => claims,
        Err(error) => {
            tracing::debug!(%hub, %error, "server connection refused");
            return status(StatusCode::UNAUTHORIZED);
        }
    };
    let server_id = claims
        .get("nameid")
        .and_then(|v| v.as_str())
        .or_else(|| parts.headers.get("x-asrs-server-id").and_then(|v| v.to_str().ok()))
        .map(str::to_owned);
    let hub = hub.to_lowercase();
    let cid = query.get("cid").cloned().filter(|cid| !cid.is_empty());
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let max_frame = shared.config.max_server_message_size.saturating_mul(4).max(1 << 20);
    // tungstenite zero-fills as much of its read buffer as one read may use before every read:
    // at its 128 KiB default that costs more than the rest of the relay's work per message.
    upgrade
        .read_buffer_size(SERVER_READ_BUFFER)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| run(shared, socket, hub, cid, server_id))
}

/// Reads records off a server connection's socket.
struct RecordReader {
    stream: SplitStream<WebSocket>,
    buf: BytesMut,
    max: usize,
}

impl RecordReader {
    /// The next message (records of unknown types are skipped); `Ok(None)` once the socket
    /// has closed.
    async fn next(&mut self, shared: &Shared) -> Result<Option<ServiceMessage>, String> {
        loop {
            if let Some(record) = split_binary_record(&mut self.buf, Some(self.max)).map_err(|e| e.to_string())? {
                shared.metrics().server_received(record.len());
                match service::parse(record).map_err(|e| e.to_string())? {
                    Some(message) => return Ok(Some(message)),
                    None => continue,
                }
            }
            match self.stream.next().await {
                Some(Ok(Message::Binary(bytes))) => self.buf.extend_from_slice(&bytes),
                Some(Ok(Message::Text(_))) => return Err("a text frame (records travel in binary frames)".to_owned()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(None),
            }
        }
    }
}

async fn run(shared: Arc<Shared>, socket: WebSocket, hub_key: String, cid: Option<String>, server_id: Option<String>) {
    let (mut sink, stream) = socket.split();
    let mut reader = RecordReader {
        stream,
        buf: BytesMut::new(),
        max: shared.config.max_server_message_size,
    };
    let handshake = tokio::select! {
        _ = shared.shutdown.cancelled() => None,
        handshake = tokio::time::timeout(shared.config.handshake_timeout, reader.next(&shared)) => match handshake {
            Ok(Ok(Some(ServiceMessage::HandshakeRequest(request)))) => Some(request),
            Ok(Ok(Some(_))) => {
                tracing::debug!(hub = %hub_key, "server connection did not start with a handshake");
                None
            }
            Ok(Ok(None)) => None,
            Ok(Err(error)) => {
                tracing::debug!(hub = %hub_key, %error, "bad server handshake");
                None
            }
            Err(_) => {
                tracing::debug!(hub = %hub_key, "server handshake timed out");
                None
            }
        },
    };
    let Some(request) = handshake else {
        close_socket(&mut sink).await;
        return;
    };
    if request.version != SERVICE_PROTOCOL_VERSION {
        let response = HandshakeResponse {
            error_message: Some(format!(
                "Protocol version {} is not supported; this service speaks version {SERVICE_PROTOCOL_VERSION}.",
                request.version
            )),
            connection_id: None,
        };
        let mut out = Vec::new();
        service::write(&ServiceMessage::HandshakeResponse(response), &mut out);
        let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Binary(Bytes::from(out)))).await;
        close_socket(&mut sink).await;
        return;
    }
    let link_id = shared.hubs.next_link_id();
    let cid = cid.unwrap_or_else(|| format!("server-{link_id}"));
    let carries_clients = request.connection_type != WEAK_CONNECTION;
    let (link, outbound) = ServerLink::new(
        link_id,
        server_id,
        carries_clients,
        request.allow_stateful_reconnects,
        QUEUE_CAPACITY,
        shared.metrics().clone(),
    );
    let response = HandshakeResponse {
        error_message: None,
        connection_id: Some(cid.clone()),
    };
    // First in the queue, before any client can be pinned to the connection.
    link.send(&ServiceMessage::HandshakeResponse(response)).await;
    let hub = shared.hubs.attach_server(&hub_key, link.clone());
    tracing::debug!(hub = %hub_key, connection = %cid, "server connection open");
    let writer = tokio::spawn(write(
        sink,
        outbound,
        link.clone(),
        shared.config.server_keep_alive_interval,
        shared.clone(),
    ));
    let cx = ServerContext {
        shared: shared.clone(),
        hub: hub.clone(),
        link: link.clone(),
    };
    loop {
        let next = tokio::select! {
            biased;
            _ = link.closed.cancelled() => break,
            _ = shared.shutdown.cancelled() => break,
            next = tokio::time::timeout(shared.config.server_timeout, reader.next(&shared)) => next,
        };
        match next {
            Ok(Ok(Some(message))) => dispatch::handle(&cx, message).await,
            Ok(Ok(None)) => break,
            Ok(Err(error)) => {
                tracing::debug!(hub = %hub_key, connection = %cid, %error, "bad input from app server; closing");
                break;
            }
            Err(_) => {
                tracing::debug!(hub = %hub_key, connection = %cid, "app server silent too long; closing");
                break;
            }
        }
    }
    link.closed.cancel();
    hub.detach_server(&link);
    shared.hubs.release(&hub);
    let _ = writer.await;
    tracing::debug!(hub = %hub_key, connection = %cid, "server connection closed");
}

/// Sends what is queued (several records per flush) and a keep-alive ping every
/// `keep_alive`, until the connection ends; then what is still queued, and a Close frame.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbound: mpsc::Receiver<Bytes>,
    link: Arc<ServerLink>,
    keep_alive: Duration,
    shared: Arc<Shared>,
) {
    let mut ping = Vec::new();
    service::write(&ServiceMessage::Ping(Ping::keep_alive()), &mut ping);
    let ping = Bytes::from(ping);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let batch = tokio::select! {
            biased;
            _ = link.closed.cancelled() => break,
            next = outbound.recv() => {
                let Some(first) = next else { break };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match outbound.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                batch
            }
            _ = ticks.tick() => {
                shared.metrics().server_sent(ping.len());
                vec![ping.clone()]
            }
        };
        if !send_batch(&mut sink, batch).await {
            link.closed.cancel();
            return;
        }
    }
    outbound.close();
    let mut rest = Vec::new();
    while let Ok(bytes) = outbound.try_recv() {
        rest.push(bytes);
    }
    if rest.is_empty() || send_batch(&mut sink, rest).await {
        close_socket(&mut sink).await;
    }
}

async fn send_batch(sink: &mut SplitSink<WebSocket, Message>, batch: Vec<Bytes>) -> bool {
    let sending = async {
        for record in batch {
            sink.feed(Message::Binary(record)).await?;
        }
        sink.flush().await
    };
    matches!(tokio::time::timeout(SEND_TIMEOUT, sending).await, Ok(Ok(())))
}

async fn close_socket(sink: &mut SplitSink<WebSocket, Message>) {
    let close = Message::Close(Some(CloseFrame {
        code: 1000,
        reason: Utf8Bytes::from_static(""),
    }));
    let _ = tokio::time::timeout(SEND_TIMEOUT, async {
        let _ = sink.send(close).await;
        sink.close().await
    })
    .await;
}
