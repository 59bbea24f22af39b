//! Server connections: the WebSockets an app server keeps open to the service for one hub,
//! over which the service tunnels its clients (OpenConnection, ConnectionData,
//! CloseConnection) and the app server sends to clients, groups and users.
//!
//! Each connection handshakes, pings when idle for 5 s, gives up after 30 s without hearing
//! from the service, and reconnects with backoff (1, 2, 4 … 60 s, plus up to 1 s of jitter).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::hub::ServiceHub;
use super::options::GracefulShutdownMode;
use super::virtual_connection;
use crate::protocol::framing;
use crate::protocol::service::{self as wire, HandshakeRequest, Ping, PingKind, ServiceMessage};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
const KEEP_ALIVE: Duration = Duration::from_secs(5);
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// HandshakeRequest's connection type of a connection opened at the service's request.
const ON_DEMAND: i32 = 1;
/// HandshakeRequest's migration level when clients migrate on a graceful shutdown
/// ("ShutdownOnly").
const MIGRATE_ON_SHUTDOWN: i32 = 1;
/// How much one read of a server connection takes at most (more reads follow for a larger
/// frame).
const READ_BUFFER: usize = 4 * 1024;
/// Messages waiting to be written to one server connection.
const QUEUE: usize = 8192;

/// The delay before reconnect attempt `attempt` (0-based): 1, 2, 4 … 60 s, plus jitter.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.min(6);
    let mut jitter = [0u8; 2];
    let _ = getrandom::fill(&mut jitter);
    Duration::from_secs(base.min(60)) + Duration::from_millis(u64::from(u16::from_le_bytes(jitter)) % 1000)
}

/// Keeps server connection `slot` of `hub` open until the app stops.
pub(crate) async fn run(hub: Arc<ServiceHub>, slot: usize) {
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        match connect_once(&hub, slot, None).await {
            Ok(()) => tracing::debug!(hub = %hub.name, slot, "server connection ended"),
            Err(error) => tracing::warn!(hub = %hub.name, slot, %error, "server connection failed"),
        }
        if hub.stopping.is_cancelled() {
            return;
        }
        // A connection that lived a while starts the backoff over.
        if started.elapsed() > Duration::from_secs(60) {
            attempt = 0;
        }
        let delay = backoff(attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = hub.stopping.cancelled() => return,
        }
    }
}

fn encode(message: &ServiceMessage) -> Bytes {
    let mut out = Vec::new();
    wire::write(message, &mut out);
    Bytes::from(out)
}

/// Opens an OnDemand server connection for service instance `target` (asked for by a
/// `target` ping) in `slot`; it is not reopened once it ends.
/// (A boxed future: the connection may itself be asked for more.)
pub(crate) fn run_on_demand(hub: Arc<ServiceHub>, slot: usize, target: String) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        match connect_once(&hub, slot, Some(&target)).await {
            Ok(()) => tracing::debug!(hub = %hub.name, slot, %target, "on-demand server connection ended"),
            Err(error) => tracing::debug!(hub = %hub.name, slot, %target, %error, "on-demand server connection failed"),
        }
        hub.release_on_demand(slot);
    })
}

async fn connect_once(hub: &Arc<ServiceHub>, slot: usize, target: Option<&str>) -> Result<(), String> {
    let token = hub.server_token().map_err(|e| e.to_string())?;
    let url = hub.server_url(target);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad service URL: {e}"))?;
    let bearer = format!("Bearer {token}").parse().map_err(|_| "bad token".to_owned())?;
    request.headers_mut().insert("authorization", bearer);
    // tungstenite zero-fills as much of its read buffer as one read may use before every
    // read: its 128 KiB default would cost more than the rest of the work per message.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let (socket, _) = tokio::time::timeout(HANDSHAKE_TIMEOUT, connect)
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect failed: {e}"))?;
    let (mut sink, mut stream) = socket.split();

    let handshake = HandshakeRequest {
        allow_stateful_reconnects: hub.allow_stateful_reconnects,
        connection_type: if target.is_some() { ON_DEMAND } else { 0 },
        target: target.unwrap_or_default().to_owned(),
        // Clients may move to another app server when this one shuts down gracefully.
        migration_level: match hub.options.graceful_shutdown.mode {
            GracefulShutdownMode::MigrateClients => MIGRATE_ON_SHUTDOWN,
            _ => 0,
        },
        ..HandshakeRequest::new()
    };
    sink.send(Message::binary(encode(&ServiceMessage::HandshakeRequest(handshake))))
        .await
        .map_err(|e| format!("handshake write failed: {e}"))?;
    let mut buffer = BytesMut::new();
    let response = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        loop {
            if let Some(record) = framing::split_binary_record(&mut buffer, None).map_err(|e| e.to_string())? {
                if let Some(message) = wire::parse(record).map_err(|e| e.to_string())? {
                    return Ok::<_, String>(message);
                }
                continue;
            }
            match stream.next().await {
                Some(Ok(Message::Binary(bytes))) => buffer.extend_from_slice(&bytes),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("closed during the handshake".into()),
            }
        }
    })
    .await
    .map_err(|_| "handshake timed out".to_owned())??;
    match response {
        ServiceMessage::HandshakeResponse(response) if response.is_success() => {}
        ServiceMessage::HandshakeResponse(response) => {
            return Err(format!(
                "the service refused the handshake: {}",
                response.error_message.unwrap_or_default()
            ));
        }
        other => return Err(format!("expected a handshake response, got {other:?}")),
    }

    let (sender, mut outgoing) = mpsc::channel::<Bytes>(QUEUE);
    hub.attach(slot, sender.clone());
    tracing::debug!(hub = %hub.name, slot, "server connection up");
    let mut last_sent = Instant::now();
    let mut last_received = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            biased;
            _ = hub.stopping.cancelled() => break Ok(()),
            next = outgoing.recv() => {
                let Some(first) = next else { break Ok(()) };
                let mut batch = BytesMut::from(&first[..]);
                while batch.len() < 64 * 1024 {
                    match outgoing.try_recv() {
                        Ok(more) => batch.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if let Err(error) = sink.send(Message::binary(batch.freeze())).await {
                    break Err(format!("write failed: {error}"));
                }
                last_sent = Instant::now();
            }
            frame = stream.next() => {
                let bytes = match frame {
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    Some(Ok(Message::Close(_))) | None => break Ok(()),
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => break Err(format!("read failed: {error}")),
                };
                last_received = Instant::now();
                buffer.extend_from_slice(&bytes);
                if let Err(error) = drain(hub, slot, &mut buffer, &sender).await {
                    break Err(error);
                }
            }
            _ = ticker.tick() => {
                if last_received.elapsed() > RECEIVE_TIMEOUT {
                    break Err("nothing received from the service for 30 s".into());
                }
                if last_sent.elapsed() >= KEEP_ALIVE {
                    let _ = sender.try_send(encode(&ServiceMessage::Ping(Ping::keep_alive())));
                    last_sent = Instant::now();
                }
            }
        }
    };
    hub.detach(slot);
    virtual_connection::close_all(hub, slot);
    let _ = sink.close().await;
    outcome
}

/// Handles every complete record in `buffer`.
async fn drain(
    hub: &Arc<ServiceHub>,
    slot: usize,
    buffer: &mut BytesMut,
    sender: &mpsc::Sender<Bytes>,
) -> Result<(), String> {
    while let Some(record) = framing::split_binary_record(buffer, None).map_err(|e| e.to_string())? {
        let message = match wire::parse(record) {
            Ok(Some(message)) => message,
            Ok(None) => continue,
            Err(error) => return Err(format!("malformed message from the service: {error}")),
        };
        handle(hub, slot, message, sender).await;
    }
    Ok(())
}

async fn handle(hub: &Arc<ServiceHub>, slot: usize, message: ServiceMessage, sender: &mpsc::Sender<Bytes>) {
    match message {
        ServiceMessage::OpenConnection(open) => virtual_connection::open(hub, slot, open),
        ServiceMessage::ConnectionData(data) => virtual_connection::data(hub, &data.connection_id, data.payload).await,
        ServiceMessage::CloseConnection(close) => virtual_connection::closed_by_service(hub, &close.connection_id),
        // A client came back on a new socket after reconnecting statefully. The service numbers,
        // buffers and replays for it; only whole records ever reach the connection here, so no
        // partial record is left to drop.
        ServiceMessage::ConnectionReconnect(_) => {}
        ServiceMessage::Ack(ack) => hub.acks.complete(ack.ack_id, ack.status),
        ServiceMessage::Ping(ping) => match ping.kind() {
            PingKind::Echo(_) => {
                let _ = sender.try_send(encode(&ServiceMessage::Ping(ping)));
            }
            // The service asks for one more connection, to one of its instances.
            PingKind::Target(target) if !target.is_empty() => match hub.reserve_on_demand() {
                Some(new_slot) => {
                    tracing::debug!(hub = %hub.name, slot = new_slot, %target, "opening an on-demand server connection");
                    tokio::spawn(run_on_demand(hub.clone(), new_slot, target.to_owned()));
                }
                None => {
                    tracing::debug!(hub = %hub.name, %target, "at MaxHubServerConnectionCount; no on-demand connection")
                }
            },
            _ => {}
        },
        ServiceMessage::ServiceError(error) => {
            tracing::warn!(hub = %hub.name, slot, error = ?error.error_message, "the service reported an error");
        }
        other => {
            tracing::debug!(hub = %hub.name, slot, message = ?std::mem::discriminant(&other), "ignored a service message")
        }
    }
    hub.received.fetch_add(1, Ordering::Relaxed);
}

/// Encodes a message for a server connection's queue.
pub(crate) fn frame(message: &ServiceMessage) -> Bytes {
    encode(message)
}
