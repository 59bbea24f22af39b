//! The WebSockets transport: the driver reads frames; a writer drains the connection's
//! outbound queue, coalescing everything queued into one frame and one flush.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use crate::queue;
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use http::StatusCode;
use http::request::Parts;

use super::registry::{Attached, Claim};
use super::{AppState, Endpoint, empty, new_connection, new_id, outbound, posted_inbound, run_endpoint, text};
use crate::connection::claims::Claims;
use crate::connection::inbound::{Inbound, NORMAL_CLOSURE, close_code_for};
use crate::connection::{CloseReason, Connection};
use crate::options::TransportType;
use tokio_util::sync::CancellationToken;

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
    let (id, stateful) = match &token {
        // Without an id the client skipped negotiation: the connection starts here.
        None => (new_id().into(), false),
        Some(token) => match endpoint.registry.claim(token) {
            Claim::Claimed { id, stateful, .. } => (id, stateful),
            // The same connection, back after its socket dropped.
            Claim::Attached(attached)
                if attached.transport == TransportType::WebSockets && attached.conn.reconnects() =>
            {
                let timeout = endpoint.options().transport_send_timeout;
                return configure(upgrade, &endpoint)
                    .on_upgrade(move |socket| run_reattachable(socket, attached, timeout, true));
            }
            Claim::Attached(attached) if attached.transport == TransportType::WebSockets => {
                return empty(StatusCode::CONFLICT);
            }
            Claim::Attached(_) => return text(StatusCode::BAD_REQUEST, "Cannot change transports mid-connection"),
            Claim::Unknown => return text(StatusCode::NOT_FOUND, "No Connection with that ID"),
        },
    };
    let (conn, outbound) = new_connection(
        &state,
        &endpoint,
        &parts,
        claims,
        TransportType::WebSockets,
        id,
        stateful,
    );
    let upgrade = configure(upgrade, &endpoint);
    if let (true, Some(token)) = (stateful, token.clone()) {
        // The connection outlives its sockets: bytes reach the driver through a channel, and
        // each socket's writer takes the queue in turn.
        let (posted, inbound) = posted_inbound(Vec::new());
        let attached = Attached::new(conn.clone(), TransportType::WebSockets, Some(posted), Some(outbound));
        endpoint.registry.attach(&token, attached.clone());
        let timeout = endpoint.options().transport_send_timeout;
        tokio::spawn(async move {
            run_endpoint(&endpoint, conn.clone(), inbound, true).await;
            endpoint.registry.remove(&token, &conn);
        });
        return upgrade.on_upgrade(move |socket| run_reattachable(socket, attached, timeout, false));
    }
    if let Some(token) = &token {
        endpoint.registry.attach(
            token,
            Attached::new(conn.clone(), TransportType::WebSockets, None, None),
        );
    }
    let failed = (endpoint.clone(), token.clone(), conn.clone());
    upgrade
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

/// Small buffers (idle connections stay cheap: the read buffer is allocated up front and grows
/// only when a larger frame arrives; the write buffer only fills while writing) and frame
/// limits of a few message sizes (a frame may carry several messages).
fn configure(upgrade: WebSocketUpgrade, endpoint: &Endpoint) -> WebSocketUpgrade {
    let max_frame = endpoint
        .options()
        .maximum_receive_message_size
        .map_or(64 << 20, |max| max.saturating_mul(4).max(1 << 20));
    upgrade
        .read_buffer_size(2 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
}

async fn run(socket: WebSocket, conn: Arc<Connection>, outbound: queue::Receiver<Bytes>, endpoint: &Endpoint) {
    let send_timeout = endpoint.options.transport_send_timeout;
    let (sink, stream) = socket.split();
    let close_code = Arc::new(AtomicU16::new(NORMAL_CLOSURE));
    let writer = tokio::spawn(write(sink, outbound, conn.clone(), send_timeout, close_code.clone()));
    run_endpoint(endpoint, conn, Inbound::WebSocket(stream, close_code), true).await;
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
    mut outbound: queue::Receiver<Bytes>,
    conn: Arc<Connection>,
    timeout: std::time::Duration,
    close_code: Arc<AtomicU16>,
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
    let _ = send(&mut sink, close_frame(&close_code), timeout).await;
    let _ = tokio::time::timeout(timeout, sink.close()).await;
}

/// The Close frame a socket ends with: normal, unless a broken frame from the client calls for
/// another code (see [`close_code_for`](crate::connection::inbound::close_code_for)).
fn close_frame(code: &AtomicU16) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.load(Ordering::Relaxed),
        reason: Utf8Bytes::from_static(""),
    }))
}

/// Runs one socket of a connection that reconnects statefully. The socket may drop and a
/// later one take over; the connection waits for it up to the disconnect timeout.
async fn run_reattachable(socket: WebSocket, attached: Arc<Attached>, timeout: std::time::Duration, reconnect: bool) {
    let conn = attached.conn.clone();
    let (generation, stop) = attached.begin_poll();
    conn.set_interrupt(stop.clone());
    conn.transport_attached();
    if reconnect {
        conn.reconnected();
    }
    let (mut sink, mut stream) = socket.split();
    let close_code = AtomicU16::new(NORMAL_CLOSURE);
    let done = stop.child_token();
    let reader = async {
        let Some(inbound) = attached.inbound.clone() else {
            return;
        };
        loop {
            let message = tokio::select! {
                biased;
                _ = done.cancelled() => break,
                message = stream.next() => message,
            };
            let bytes = match message {
                Some(Ok(Message::Text(text))) => Bytes::from(text),
                Some(Ok(Message::Binary(bytes))) => bytes,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Err(error)) => {
                    close_code.store(close_code_for(&error), Ordering::Relaxed);
                    break;
                }
                Some(Ok(Message::Close(_))) | None => break,
            };
            conn.mark_received();
            if inbound.send(bytes).await.is_err() {
                break;
            }
        }
        done.cancel();
    };
    let writer = async {
        write_reattachable(&mut sink, &attached, &done, timeout, reconnect, &close_code).await;
        done.cancel();
    };
    tokio::join!(reader, writer);
    if conn.closing().is_cancelled() || !attached.is_current(generation) {
        return;
    }
    if conn.reconnects() {
        // The network dropped (or the client left): wait for the client to reconnect.
        conn.transport_detached();
    } else {
        conn.close(CloseReason::transport_closed());
    }
}

async fn write_reattachable(
    sink: &mut SplitSink<WebSocket, Message>,
    attached: &Attached,
    done: &CancellationToken,
    timeout: std::time::Duration,
    reconnect: bool,
    close_code: &AtomicU16,
) {
    let conn = &attached.conn;
    let Some(queue) = &attached.outbound else { return };
    if !conn.stateful_offered() {
        return;
    }
    // The previous socket's writer lets go of the queue once it has stopped.
    let mut queue = tokio::select! {
        queue = queue.lock() => queue,
        _ = done.cancelled() => return,
    };
    // The core frames Sequence, Ack and the numbered records in the hub protocol of the
    // records: a hub connection's (chosen by its handshake, which may come after this socket
    // opened), or the one a raw connection relaying hub-protocol bytes was told (also once its
    // client's handshake was read).
    if reconnect {
        let resume = conn.core().resume();
        if let Some(resume) = resume
            && let Some(message) = frame(conn, resume)
            && !send(sink, message, timeout).await
        {
            return;
        }
    }
    let mut acks = tokio::time::interval(std::time::Duration::from_secs(1));
    acks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let room = conn.core().has_room();
        tokio::select! {
            biased;
            _ = done.cancelled() => return,
            _ = conn.closing().cancelled() => break,
            _ = acks.tick() => {
                let ack = conn.core().take_ack();
                if let Some(ack) = ack
                    && let Some(message) = frame(conn, ack)
                    && !send(sink, message, timeout).await
                {
                    return;
                }
            }
            // A full send buffer waits for the client's acknowledgements.
            _ = conn.acknowledged(), if !room => {}
            next = queue.recv(), if room => {
                let Some(first) = next else { break };
                let mut batch = Vec::with_capacity(first.len());
                // Each record is numbered on its own (a relayed payload may hold several).
                let add = |batch: &mut Vec<u8>, bytes: Bytes| {
                    conn.core().record_sent(&bytes);
                    batch.extend_from_slice(&bytes);
                };
                add(&mut batch, first);
                while batch.len() < outbound::MAX_BATCH && conn.core().has_room() {
                    match queue.try_recv() {
                        Ok(bytes) => add(&mut batch, bytes),
                        Err(_) => break,
                    }
                }
                let Some(message) = frame(conn, Bytes::from(batch)) else { continue };
                // What did not reach the client stays buffered for the next socket.
                if !send(sink, message, timeout).await {
                    return;
                }
                conn.mark_sent();
            }
        }
    }
    let rest = outbound::final_batch(&mut queue, conn);
    if !rest.is_empty()
        && let Some(message) = frame(conn, rest)
        && !send(sink, message, timeout).await
    {
        return;
    }
    let _ = send(sink, close_frame(close_code), timeout).await;
    let _ = tokio::time::timeout(timeout, sink.close()).await;
}
