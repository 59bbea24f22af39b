//! The WebSockets transport: the driver reads frames; a writer drains the connection's
//! outbound queue, coalescing everything queued into one frame and one flush.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use http::StatusCode;
use http::request::Parts;
use tokio::sync::mpsc;

use super::auth::Claims;
use super::registry::{Attached, Claim};
use super::{AppState, Endpoint, Inbound, empty, new_connection, new_id, outbound, run_endpoint, text};
use crate::connection::{CloseReason, Connection};
use crate::options::TransportType;

/// `GET {hub}[?id=…]` with a WebSocket upgrade.
pub(crate) async fn request(
    state: Arc<AppState>,
    endpoint: Arc<Endpoint>,
    mut parts: Parts,
    token: Option<String>,
    claims: Option<Claims>,
) -> Response {
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let id: Arc<str> = match &token {
        // Without an id the client skipped negotiation: the connection starts here.
        None => new_id().into(),
        Some(token) => match endpoint.registry.claim(token) {
            Claim::Claimed { id, .. } => id,
            Claim::Attached(attached) if attached.transport == TransportType::WebSockets => {
                return empty(StatusCode::CONFLICT);
            }
            Claim::Attached(_) => return text(StatusCode::BAD_REQUEST, "Cannot change transports mid-connection"),
            Claim::Unknown => return text(StatusCode::NOT_FOUND, "No Connection with that ID"),
        },
    };
    let (conn, outbound) = new_connection(&state, &endpoint, &parts, claims, TransportType::WebSockets, id);
    if let Some(token) = &token {
        endpoint.registry.attach(
            token,
            Attached::new(conn.clone(), TransportType::WebSockets, None, None),
        );
    }
    // A frame may carry several messages, so the frame limit is a few message sizes.
    let max_frame = endpoint
        .options()
        .maximum_receive_message_size
        .map_or(64 << 20, |max| max.saturating_mul(4).max(1 << 20));
    let failed = (endpoint.clone(), token.clone(), conn.clone());
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_failed_upgrade(move |error| {
            tracing::debug!(%error, "WebSocket upgrade failed");
            let (endpoint, token, conn) = failed;
            if let Some(token) = token {
                endpoint.registry.remove(&token, &conn);
            }
        })
        .on_upgrade(move |socket| async move {
            run(socket, conn.clone(), outbound, &endpoint).await;
            if let Some(token) = &token {
                endpoint.registry.remove(token, &conn);
            }
        })
}

async fn run(socket: WebSocket, conn: Arc<Connection>, outbound: mpsc::Receiver<Bytes>, endpoint: &Endpoint) {
    let send_timeout = endpoint.options.transport_send_timeout;
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write(sink, outbound, conn.clone(), send_timeout));
    run_endpoint(endpoint, conn, Inbound::WebSocket(stream), true).await;
    let _ = writer.await;
}

fn frame(conn: &Connection, bytes: Bytes) -> Option<Message> {
    // The handshake response goes out after the protocol is chosen, so a MessagePack
    // connection's frames are all binary; a refused handshake is text.
    if conn.binary() {
        Some(Message::Binary(bytes))
    } else {
        Utf8Bytes::try_from(bytes).ok().map(Message::Text)
    }
}

async fn send(sink: &mut SplitSink<WebSocket, Message>, message: Message, timeout: std::time::Duration) -> bool {
    matches!(tokio::time::timeout(timeout, sink.send(message)).await, Ok(Ok(())))
}

async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbound: mpsc::Receiver<Bytes>,
    conn: Arc<Connection>,
    timeout: std::time::Duration,
) {
    while let Some(bytes) = outbound::next_batch(&mut outbound, &conn).await {
        let Some(message) = frame(&conn, bytes) else { continue };
        if !send(&mut sink, message, timeout).await {
            conn.close(CloseReason::transport_closed());
            return;
        }
        conn.mark_sent();
    }
    let rest = outbound::final_batch(&mut outbound, &conn);
    if !rest.is_empty()
        && let Some(message) = frame(&conn, rest)
        && !send(&mut sink, message, timeout).await
    {
        return;
    }
    let close = Message::Close(Some(CloseFrame {
        code: 1000,
        reason: Utf8Bytes::from_static(""),
    }));
    let _ = send(&mut sink, close, timeout).await;
    let _ = tokio::time::timeout(timeout, sink.close()).await;
}
