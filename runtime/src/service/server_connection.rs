//! Server connections: the WebSockets an app server keeps open to the service for one hub,
//! over which the service tunnels its clients (OpenConnection, ConnectionData,
//! CloseConnection) and the app server sends to clients, groups and users.
//!
//! Each connection is the app server's end of a [`ServiceLink`] (handshake, keep-alive pings,
//! timeouts, write batching) under a thin shell: this task reads frames into the link and
//! hands its messages on, a writer task writes what the link batches from the connection's
//! queue. An ended connection reconnects with backoff (1, 2, 4 … 60 s, plus up to 1 s of
//! jitter).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

use super::hub::{Phase, ServiceHub};
use super::link_writer::LinkWriter;
use super::options::GracefulShutdownMode;
use super::virtual_connection;
use crate::connection::dispatcher::Dispatcher;
use crate::protocol::service::link::{self, LinkConfig, LinkEvent, ServiceLink};
use crate::protocol::service::{HandshakeRequest, Ping, PingKind, ServiceMessage, ShutdownMode};
use crate::queue;

/// The delay before reconnect attempt `attempt` (0-based): 1, 2, 4 … 60 s, plus jitter.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.min(6);
    let mut jitter = [0u8; 2];
    let _ = getrandom::fill(&mut jitter);
    Duration::from_secs(base.min(60)) + Duration::from_millis(u64::from(u16::from_le_bytes(jitter)) % 1000)
}

/// How often a server connection tells the service it goes offline before giving up, and how
/// long it waits for the acknowledgement each time (as the Azure SDK does).
const OFFLINE_TRIES: u32 = 24;
const OFFLINE_RETRY: Duration = Duration::from_secs(5);

/// The shutdown ping's mode for a graceful shutdown mode.
fn shutdown_mode(mode: GracefulShutdownMode) -> ShutdownMode {
    match mode {
        GracefulShutdownMode::Off => ShutdownMode::DropClients,
        GracefulShutdownMode::WaitForClientsClose => ShutdownMode::WaitForClientsClose,
        GracefulShutdownMode::MigrateClients => ShutdownMode::MigrateClients,
    }
}

/// One server connection's telling the service that the app server goes offline: the ping
/// is sent when the shutdown starts and again every [`OFFLINE_RETRY`] until the service
/// acknowledges it, at most [`OFFLINE_TRIES`] times.
#[derive(Default)]
struct OfflineNotice {
    tries: u32,
    next: Option<tokio::time::Instant>,
}

impl OfflineNotice {
    /// Whether the ping is still to be sent (or sent again).
    fn pending(&self, slot: usize, hub: &ServiceHub) -> bool {
        self.tries < OFFLINE_TRIES && !hub.is_offline_acknowledged(slot)
    }

    /// Resolves when the ping is due: once the shutdown starts, then at each retry.
    async fn due(&self, going_offline: &CancellationToken) {
        going_offline.cancelled().await;
        if let Some(next) = self.next {
            tokio::time::sleep_until(next).await;
        }
    }

    fn sent(&mut self) {
        self.tries += 1;
        self.next = Some(tokio::time::Instant::now() + OFFLINE_RETRY);
    }
}

/// Keeps server connection `slot` of `hub` open until the app stops.
pub(crate) async fn run(hub: Arc<ServiceHub>, dispatcher: Arc<dyn Dispatcher>, slot: usize) {
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        match connect_once(&hub, &dispatcher, slot, None).await {
            Ok(()) => tracing::debug!(hub = %hub.name, slot, "server connection ended"),
            Err(error) => tracing::warn!(hub = %hub.name, slot, %error, "server connection failed"),
        }
        // Going offline, a dropped connection is not reopened (the service would send it
        // clients); nor is one to an endpoint being removed.
        if hub.stopping.is_cancelled() || hub.going_offline.is_cancelled() || hub.phase() == Phase::Removing {
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

/// Opens an OnDemand server connection for service instance `target` (asked for by a
/// `target` ping) in `slot`; it is not reopened once it ends.
/// (A boxed future: the connection may itself be asked for more.)
pub(crate) fn run_on_demand(
    hub: Arc<ServiceHub>,
    dispatcher: Arc<dyn Dispatcher>,
    slot: usize,
    target: String,
) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        match connect_once(&hub, &dispatcher, slot, Some(&target)).await {
            Ok(()) => tracing::debug!(hub = %hub.name, slot, %target, "on-demand server connection ended"),
            Err(error) => tracing::debug!(hub = %hub.name, slot, %target, %error, "on-demand server connection failed"),
        }
        hub.release_on_demand(slot);
    })
}

fn lock(link: &Mutex<ServiceLink>) -> MutexGuard<'_, ServiceLink> {
    link.lock().unwrap_or_else(|e| e.into_inner())
}

async fn connect_once(
    hub: &Arc<ServiceHub>,
    dispatcher: &Arc<dyn Dispatcher>,
    slot: usize,
    target: Option<&str>,
) -> Result<(), String> {
    let token = hub.server_token().map_err(|e| e.to_string())?;
    let url = hub.server_url(target);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad service URL: {e}"))?;
    let bearer = format!("Bearer {token}").parse().map_err(|_| "bad token".to_owned())?;
    request.headers_mut().insert("authorization", bearer);
    // The server name travels as a header too (a token signed otherwise may not carry it).
    if let Ok(name) = hub.server_id.parse() {
        request.headers_mut().insert("x-asrs-server-id", name);
    }
    let config =
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(link::READ_BUFFER_SIZE);
    let connect = crate::tls::connect_websocket(request, Some(config));
    let (socket, _) = tokio::time::timeout(link::HANDSHAKE_TIMEOUT, connect)
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect failed: {e}"))?;
    let (sink, mut stream) = socket.split();

    let handshake = HandshakeRequest {
        allow_stateful_reconnects: hub.allow_stateful_reconnects,
        // A secondary endpoint's connections only send: the service routes no clients to them.
        connection_type: if target.is_some() {
            HandshakeRequest::ON_DEMAND_CONNECTION
        } else if hub.is_weak() {
            HandshakeRequest::WEAK_CONNECTION
        } else {
            HandshakeRequest::DEFAULT_CONNECTION
        },
        target: target.unwrap_or_default().to_owned(),
        // Clients may move to another app server when this one shuts down gracefully.
        migration_level: match hub.options.graceful_shutdown.mode {
            GracefulShutdownMode::MigrateClients => HandshakeRequest::MIGRATION_SHUTDOWN_ONLY,
            _ => HandshakeRequest::MIGRATION_OFF,
        },
        ..HandshakeRequest::new()
    };
    let link = Arc::new(Mutex::new(ServiceLink::app_server(
        handshake,
        LinkConfig::default(),
        Instant::now(),
    )));
    let (sender, outgoing) = queue::bytes_channel(link::QUEUE_CAPACITY, hub.options.max_server_connection_queued_bytes);
    let wake = Arc::new(Notify::new());
    let ended = CancellationToken::new();
    let writer = LinkWriter {
        outgoing,
        link: link.clone(),
        wake: wake.clone(),
        ended: ended.clone(),
    };
    // tungstenite sends the Close frame itself when the sink closes.
    let writer = tokio::spawn(writer.run(sink, Message::binary, None, |_| {}));
    let mut attached = false;
    let mut read_error = None;
    // Telling the service this server goes offline: how often it was told, and when next.
    let mut offline = OfflineNotice::default();
    'read: loop {
        let frame = tokio::select! {
            biased;
            _ = ended.cancelled() => break,
            _ = hub.stopping.cancelled() => {
                lock(&link).close();
                break;
            }
            _ = offline.due(&hub.going_offline), if attached && offline.pending(slot, hub) => {
                offline.sent();
                let fin = Ping::shutdown(shutdown_mode(hub.options.graceful_shutdown.mode));
                let _ = sender.try_send(link::frame(&ServiceMessage::Ping(fin)));
                wake.notify_one();
                continue;
            }
            frame = stream.next() => frame,
        };
        match frame {
            Some(Ok(Message::Binary(bytes))) => lock(&link).handle_input(Instant::now(), &bytes),
            Some(Ok(Message::Close(_))) | None => {
                lock(&link).close();
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                read_error = Some(format!("read failed: {error}"));
                lock(&link).close();
                break;
            }
        }
        loop {
            let event = lock(&link).poll_event();
            // The link may have something to write (an echo), or take records now.
            wake.notify_one();
            match event {
                None => break,
                Some(LinkEvent::Connected(_)) => {
                    hub.attach(slot, sender.clone());
                    attached = true;
                    tracing::debug!(hub = %hub.name, slot, "server connection up");
                }
                Some(LinkEvent::Message(message)) => handle(hub, dispatcher, slot, message).await,
                Some(LinkEvent::Closed(_)) => break 'read,
                Some(_) => {}
            }
        }
    }
    ended.cancel();
    let error = lock(&link).error().cloned();
    if attached {
        hub.detach(slot);
        virtual_connection::close_all(hub, slot);
    }
    drop(sender);
    let _ = writer.await;
    if let Some(read_error) = read_error {
        return Err(read_error);
    }
    match error {
        None | Some(link::LinkError::Closed) => Ok(()),
        Some(error) => Err(error.to_string()),
    }
}

async fn handle(hub: &Arc<ServiceHub>, dispatcher: &Arc<dyn Dispatcher>, slot: usize, message: ServiceMessage) {
    match message {
        ServiceMessage::OpenConnection(open) => virtual_connection::open(hub, dispatcher, slot, open),
        ServiceMessage::ConnectionData(data) => virtual_connection::data(hub, &data.connection_id, data.payload).await,
        ServiceMessage::CloseConnection(close) => virtual_connection::closed_by_service(hub, &close),
        // A client came back on a new socket after reconnecting statefully. The service numbers,
        // buffers and replays for it; only whole records ever reach the connection here, so no
        // partial record is left to drop.
        ServiceMessage::ConnectionReconnect(_) => {}
        ServiceMessage::Ack(ack) => hub.acks.complete(ack.ack_id, ack.status),
        // Echo pings are answered by the link; keep-alives only keep it open.
        ServiceMessage::Ping(ping) => match ping.kind() {
            // The service asks for one more connection, to one of its instances (never of a
            // secondary endpoint, which carries no clients).
            PingKind::Target(target) if !target.is_empty() && !hub.is_weak() => match hub.reserve_on_demand() {
                Some(new_slot) => {
                    tracing::debug!(hub = %hub.name, slot = new_slot, %target, "opening an on-demand server connection");
                    tokio::spawn(run_on_demand(
                        hub.clone(),
                        dispatcher.clone(),
                        new_slot,
                        target.to_owned(),
                    ));
                }
                None => {
                    tracing::debug!(hub = %hub.name, %target, "at MaxHubServerConnectionCount; no on-demand connection")
                }
            },
            PingKind::FinAck => hub.offline_acknowledged(slot),
            PingKind::Offline(instance) if !instance.is_empty() => virtual_connection::instance_offline(hub, instance),
            PingKind::Status(status) => hub.status_received(status),
            PingKind::Servers { servers, .. } => hub.servers_received(servers),
            _ => {}
        },
        // The service gives up on this connection: nothing more is written to it (its clients'
        // output stops; they are closed when it ends), but what it still sends is read.
        ServiceMessage::ServiceError(error) => {
            if let Some(message) = error.error_message.as_deref().filter(|m| !m.is_empty()) {
                tracing::warn!(hub = %hub.name, slot, error = %message, "the service reported an error; no more writes on this connection");
                hub.detach(slot);
            }
        }
        ServiceMessage::ServiceEvent(event) => match &hub.options.service_event_handler {
            Some(handler) => handler(&event),
            None => tracing::info!(hub = %hub.name, slot, ?event, "service event"),
        },
        other => {
            tracing::debug!(hub = %hub.name, slot, message = ?std::mem::discriminant(&other), "ignored a service message")
        }
    }
    hub.received.fetch_add(1, Ordering::Relaxed);
}
