//! The WebSockets transport: the driver reads frames; a writer drains the connection's
//! outbound queue, coalescing everything queued into one frame and one flush.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use tokio::sync::mpsc;

use super::raw::RawConnection;
use super::{Endpoint, EndpointKind, Inbound};
use crate::connection::{Connection, driver};
use crate::protocol::{Close, HubMessage};

/// The most bytes coalesced into one frame.
const MAX_BATCH: usize = 64 * 1024;

pub(crate) async fn run(
    socket: WebSocket,
    conn: Arc<Connection>,
    outbound: mpsc::Receiver<Bytes>,
    endpoint: Arc<Endpoint>,
) {
    let send_timeout = endpoint.options.transport_send_timeout;
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write(sink, outbound, conn.clone(), send_timeout));
    let inbound = Inbound::WebSocket(stream);
    match &endpoint.kind {
        EndpointKind::Hub(dispatcher) => driver::run(conn.clone(), inbound, |_| true, dispatcher.clone()).await,
        EndpointKind::Raw(handler) => {
            handler(RawConnection::new(conn.clone(), inbound)).await;
            conn.close(crate::connection::CloseReason::graceful());
        }
    }
    conn.close(crate::connection::CloseReason::transport_closed());
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

/// Takes what is queued after `first`, up to the batch limit.
fn batch(first: Bytes, outbound: &mut mpsc::Receiver<Bytes>) -> Bytes {
    let Ok(next) = outbound.try_recv() else { return first };
    let mut joined = BytesMut::with_capacity(first.len() + next.len());
    joined.extend_from_slice(&first);
    joined.extend_from_slice(&next);
    while joined.len() < MAX_BATCH {
        match outbound.try_recv() {
            Ok(more) => joined.extend_from_slice(&more),
            Err(_) => break,
        }
    }
    joined.freeze()
}

async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbound: mpsc::Receiver<Bytes>,
    conn: Arc<Connection>,
    timeout: std::time::Duration,
) {
    let closing = conn.closing().clone();
    loop {
        let first = tokio::select! {
            biased;
            next = outbound.recv() => next,
            _ = closing.cancelled() => None,
        };
        let Some(first) = first else { break };
        let bytes = batch(first, &mut outbound);
        let Some(message) = frame(&conn, bytes) else { continue };
        if !send(&mut sink, message, timeout).await {
            conn.close(crate::connection::CloseReason::transport_closed());
            return;
        }
        conn.mark_sent();
    }
    // Closing: what was queued before goes out, then the Close message, then a normal close.
    let reason = conn
        .close_reason()
        .unwrap_or_else(crate::connection::CloseReason::transport_closed);
    outbound.close();
    let mut rest = Vec::new();
    while let Ok(bytes) = outbound.try_recv() {
        rest.extend_from_slice(&bytes);
    }
    if reason.send_close_message
        && let Some(protocol) = conn.protocol_chosen()
    {
        let close = HubMessage::Close(Close {
            error: reason.error.clone(),
            allow_reconnect: reason.allow_reconnect,
        });
        let _ = protocol.write_message(&mut rest, &close);
    }
    if !rest.is_empty()
        && let Some(message) = frame(&conn, Bytes::from(rest))
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
