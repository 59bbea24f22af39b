//! One SignalR connection: its identity, what the connecting request carried, its bounded
//! outbound queue, and how it closes. Its protocol state (handshake, timers, stateful
//! reconnect) is the sans-IO [`ConnectionCore`], which this layer and the transports drive;
//! [`driver`] runs a hub connection's life: handshake, reading, dispatching, keep-alive and
//! timeouts.

pub(crate) mod claims;
pub(crate) mod dispatcher;
pub(crate) mod driver;
pub(crate) mod inbound;
pub(crate) mod invocations;
pub(crate) mod migration;
pub(crate) mod request;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::queue;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::options::{HubOptions, TransportType};
use crate::protocol::connection_core::{self, Closing, ConnectionCore};
use crate::protocol::{Protocol, TransferFormat};
use claims::Claims;
use request::RequestInfo;
use tokio::sync::Notify;

/// Why and how a connection closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseReason {
    /// The error for the Close message, if the connection closes because of one.
    pub error: Option<String>,
    /// The `allowReconnect` flag of the Close message.
    pub allow_reconnect: bool,
    /// Whether to send a Close message at all (not when the transport is already gone).
    pub send_close_message: bool,
    /// The error handed to `on_disconnected`, if any.
    pub disconnect_error: Option<crate::HubError>,
}

impl CloseReason {
    /// The client or the app ended the connection normally.
    pub fn graceful() -> Self {
        Self {
            error: None,
            allow_reconnect: false,
            send_close_message: true,
            disconnect_error: None,
        }
    }

    /// Ended normally by whoever speaks the hub protocol on a raw connection (it sends its own
    /// Close message, if any): what was queued goes out, with no Close message added.
    pub fn quiet() -> Self {
        Self {
            send_close_message: false,
            ..Self::graceful()
        }
    }

    /// The transport went away; nothing more can be sent.
    pub fn transport_closed() -> Self {
        Self {
            error: None,
            allow_reconnect: false,
            send_close_message: false,
            disconnect_error: None,
        }
    }

    /// The connection fails: the client is told `client_text`, the hub sees `error`.
    pub fn error(client_text: String, error: crate::HubError) -> Self {
        Self {
            error: Some(client_text),
            allow_reconnect: true,
            send_close_message: true,
            disconnect_error: Some(error),
        }
    }

    /// The reason for how the core decided the connection ends; error texts name the error
    /// when `detailed`.
    pub fn from_closing(closing: Closing, detailed: bool) -> Self {
        match closing {
            Closing::TransportClosed => Self::transport_closed(),
            Closing::Graceful { error } => {
                let mut reason = Self::graceful();
                reason.disconnect_error = error.map(crate::HubError::new);
                reason
            }
            Closing::Failed {
                exception_type,
                message,
                allow_reconnect,
            } => {
                let error = crate::HubError::exception(exception_type, message);
                let text = error.client_text("Connection closed with an error.", detailed);
                let mut reason = Self::error(text, error);
                reason.allow_reconnect = allow_reconnect;
                reason
            }
        }
    }
}

/// The core's settings of one endpoint's connections, made once per transport and shared by
/// every connection over it (a connection holds a pointer, not a copy).
#[derive(Default)]
pub(crate) struct CoreConfigs {
    made: Mutex<Vec<(TransportType, usize, Arc<connection_core::Config>)>>,
}

impl CoreConfigs {
    /// The settings for a connection of `options` over `transport`, which carries the
    /// formats `format_supported` accepts.
    pub(crate) fn get(
        &self,
        options: &HubOptions,
        transport: TransportType,
        format_supported: fn(TransferFormat) -> bool,
    ) -> Arc<connection_core::Config> {
        let formats = format_supported as usize;
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, config)) = made.iter().find(|(t, f, _)| *t == transport && *f == formats) {
            return config.clone();
        }
        let config = Arc::new(core_config(options, transport, format_supported));
        made.push((transport, formats, config.clone()));
        config
    }
}

/// The core's settings for a connection of `options` over `transport`.
fn core_config(
    options: &HubOptions,
    transport: TransportType,
    format_supported: fn(TransferFormat) -> bool,
) -> connection_core::Config {
    let mut config = connection_core::Config::default();
    config.handshake_timeout = options.handshake_timeout;
    // Long polling needs no keep-alive: every poll is one.
    config.keep_alive_interval = (transport != TransportType::LongPolling).then_some(options.keep_alive_interval);
    config.client_timeout = options.client_timeout_interval;
    config.disconnect_timeout = options.disconnect_timeout;
    config.max_message_size = options.maximum_receive_message_size;
    config.format_supported = format_supported;
    config.detailed_errors = options.enable_detailed_errors;
    config.set_supported_protocols(&options.supported_protocols);
    config
}

/// When a connection's transport last sent and received.
struct Activity {
    /// What the stamps count from.
    epoch: Instant,
    sent: Stamp,
    received: Stamp,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            sent: Stamp::default(),
            received: Stamp::default(),
        }
    }
}

/// An instant as nanoseconds after an epoch, plus one (zero: never stamped).
#[derive(Default)]
struct Stamp(AtomicU64);

impl Stamp {
    fn stamp(&self, epoch: Instant) {
        let nanos = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.0.store(nanos + 1, Ordering::Relaxed);
    }

    fn get(&self, epoch: Instant) -> Option<Instant> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(epoch + Duration::from_nanos(nanos - 1)),
        }
    }
}

/// What wakes the tasks of a connection that may reconnect statefully.
#[derive(Default)]
struct StatefulSignals {
    /// After each acknowledgement from the client (which may make room in the send buffer).
    acknowledged: Notify,
    /// Holds a permit after each new transport takes over, for whoever forwards the
    /// connection's bytes (a relay) to tell the peer that numbers them.
    reattached: Notify,
}

/// The shared state of one connection. The lifetime manager, hub contexts and the
/// transport hold it through an `Arc`.
pub(crate) struct Connection {
    id: Arc<str>,
    /// The protocol the handshake chose, as the core did (kept here for senders).
    protocol: OnceLock<Protocol>,
    /// Whether the transport should send binary frames (raw connections follow the client).
    binary: AtomicBool,
    user_id: Option<Arc<str>>,
    request: RequestInfo,
    claims: Option<Claims>,
    transport: TransportType,
    outbound: queue::Sender<Bytes>,
    closing: CancellationToken,
    close_reason: Mutex<Option<CloseReason>>,
    items: Mutex<http::Extensions>,
    /// The protocol state: handshake, timers, stateful reconnect's numbering and buffer.
    core: Mutex<ConnectionCore>,
    /// When the transport last sent and received, kept outside the core's lock: the
    /// transport's tasks stamp them on every frame, the core reads them when its timers are
    /// checked.
    activity: Activity,
    invocations: invocations::Invocations,
    /// Present when the client negotiated stateful reconnect and the hub allows it.
    stateful: Option<StatefulSignals>,
    /// Ends the current transport abruptly (a test hook for stateful reconnect).
    interrupt: Mutex<Option<CancellationToken>>,
    /// The request and claims, until taken (see [`ConnectionParts::hand_over_request`]).
    handed_over: Mutex<Option<Box<RequestAndClaims>>>,
    /// Set when the connection moved here from another app server, or is moving away.
    migration: Mutex<Option<Box<migration::Migration>>>,
    /// Moving away: the client's input has ended here, and the connection finishes what it
    /// was asked before it closes (without a Close message: the client lives on elsewhere).
    draining: AtomicBool,
}

/// The request that opened a connection and its token's claims.
type RequestAndClaims = (RequestInfo, Option<Claims>);

/// What a connection is created from.
pub(crate) struct ConnectionParts {
    pub id: Arc<str>,
    pub user_id: Option<Arc<str>>,
    pub request: RequestInfo,
    pub claims: Option<Claims>,
    /// The request and claims go to whoever takes them ([`Connection::take_request`]) instead
    /// of staying with the connection: a raw connection's handler, which may drop them.
    pub hand_over_request: bool,
    pub transport: TransportType,
    pub queue_capacity: usize,
    /// The outbound queue's bound in bytes.
    pub queue_bytes: usize,
    /// The send buffer limit, when the connection may reconnect statefully.
    pub stateful_buffer: Option<usize>,
}

impl Connection {
    /// Creates a connection and the receiving end of its outbound queue, which the
    /// transport drains.
    pub fn new(parts: ConnectionParts) -> (Arc<Self>, queue::Receiver<Bytes>) {
        let (outbound, receiver) = queue::bytes_channel(parts.queue_capacity, parts.queue_bytes);
        let created = Instant::now();
        let (request, claims, handed_over) = if parts.hand_over_request {
            (
                RequestInfo::default(),
                None,
                Some(Box::new((parts.request, parts.claims))),
            )
        } else {
            (parts.request, parts.claims, None)
        };
        let connection = Arc::new(Self {
            id: parts.id,
            protocol: OnceLock::new(),
            binary: AtomicBool::new(false),
            user_id: parts.user_id,
            request,
            claims,
            handed_over: Mutex::new(handed_over),
            transport: parts.transport,
            outbound,
            closing: CancellationToken::new(),
            close_reason: Mutex::new(None),
            items: Mutex::new(http::Extensions::new()),
            core: Mutex::new(ConnectionCore::new(created, parts.stateful_buffer)),
            activity: Activity::new(created),
            invocations: invocations::Invocations::default(),
            stateful: parts.stateful_buffer.map(|_| StatefulSignals::default()),
            interrupt: Mutex::new(None),
            migration: Mutex::new(None),
            draining: AtomicBool::new(false),
        });
        (connection, receiver)
    }

    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The hub protocol, once the handshake chose it.
    pub fn protocol(&self) -> Protocol {
        self.protocol.get().copied().unwrap_or(Protocol::Json)
    }

    /// The hub protocol, if the handshake has chosen one.
    pub fn protocol_chosen(&self) -> Option<Protocol> {
        self.protocol.get().copied()
    }

    pub(crate) fn set_protocol(&self, protocol: Protocol) {
        let _ = self.protocol.set(protocol);
        self.set_binary(protocol.transfer_format() == TransferFormat::Binary);
    }

    /// Whether frames to the client are binary rather than text.
    pub fn binary(&self) -> bool {
        self.binary.load(Ordering::Relaxed)
    }

    pub(crate) fn set_binary(&self, binary: bool) {
        self.binary.store(binary, Ordering::Relaxed);
    }

    pub fn user_id(&self) -> Option<&Arc<str>> {
        self.user_id.as_ref()
    }

    /// The request and claims kept for whoever takes them, once.
    pub(crate) fn take_request(&self) -> Option<RequestAndClaims> {
        self.handed_over
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|boxed| *boxed)
    }

    pub fn request(&self) -> &RequestInfo {
        &self.request
    }

    pub fn claims(&self) -> Option<&Claims> {
        self.claims.as_ref()
    }

    pub fn transport(&self) -> TransportType {
        self.transport
    }

    pub fn items(&self) -> &Mutex<http::Extensions> {
        &self.items
    }

    /// The protocol state, locked (briefly: never across an await).
    pub(crate) fn core(&self) -> MutexGuard<'_, ConnectionCore> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The transport received a frame from the client.
    pub(crate) fn mark_received(&self) {
        self.activity.received.stamp(self.activity.epoch);
    }

    /// The transport sent a frame to the client.
    pub(crate) fn mark_sent(&self) {
        self.activity.sent.stamp(self.activity.epoch);
    }

    /// Checks the core's timers at `now`, after telling it when the transport last sent and
    /// received. What they decide comes out of the core's outputs.
    pub(crate) fn check_timers(&self, now: Instant) {
        let epoch = self.activity.epoch;
        let mut core = self.core();
        if let Some(at) = self.activity.sent.get(epoch) {
            core.note_sent(at);
        }
        if let Some(at) = self.activity.received.get(epoch) {
            core.note_received(at);
        }
        core.handle_timeout(now);
    }

    /// A transport is attached (a poll is waiting, a socket is open).
    pub(crate) fn transport_attached(&self) {
        self.core().transport_attached();
    }

    /// No transport is attached until the next poll or reconnect.
    pub(crate) fn transport_detached(&self) {
        self.core().transport_detached(Instant::now());
    }

    /// Queues one framed message for the transport.
    ///
    /// The queue is bounded: when it is full the client is not reading fast enough, and the
    /// connection is closed with an error rather than buffering without limit. Messages to a
    /// closing connection are dropped.
    pub fn send_frame(&self, frame: Bytes) {
        if self.closing.is_cancelled() {
            return;
        }
        match self.outbound.try_send(frame) {
            Ok(()) => {}
            Err(queue::TrySendError::Full(_)) => {
                tracing::warn!(connection = %self.id, "outbound queue full; closing the connection");
                let text = "Connection closed with an error. The client did not read its messages fast enough: its outbound queue is full.";
                self.close(CloseReason::error(
                    text.to_owned(),
                    crate::HubError::exception("InvalidOperationException", "The outbound queue is full."),
                ));
            }
            Err(queue::TrySendError::Closed(_)) => {
                self.close(CloseReason::transport_closed());
            }
        }
    }

    /// Whether negotiate agreed that the connection may reconnect statefully.
    pub(crate) fn stateful_offered(&self) -> bool {
        self.stateful.is_some()
    }

    /// Whether the connection reconnects statefully (negotiated, and version 2 handshake).
    pub(crate) fn reconnects(&self) -> bool {
        self.core().reconnects()
    }

    /// Wakes senders waiting for room in the send buffer: the client acknowledged records.
    pub(crate) fn notify_acknowledged(&self) {
        if let Some(signals) = &self.stateful {
            signals.acknowledged.notify_waiters();
        }
    }

    /// Resolves after the next acknowledgement (which may make room).
    pub(crate) async fn acknowledged(&self) {
        match &self.stateful {
            Some(signals) => signals.acknowledged.notified().await,
            None => std::future::pending().await,
        }
    }

    /// A new transport took over: tracked messages wait for the client's Sequence, and
    /// [`Connection::reattached`] resolves.
    pub(crate) fn reconnected(&self) {
        if let Some(signals) = &self.stateful {
            self.core().reconnected();
            signals.reattached.notify_one();
        }
    }

    /// Resolves once a new transport has taken over since the last call; never without
    /// stateful reconnect.
    #[cfg(feature = "relay")]
    pub(crate) async fn reattached(&self) {
        match &self.stateful {
            Some(signals) => signals.reattached.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Registers the token that ends the current transport abruptly.
    pub(crate) fn set_interrupt(&self, token: CancellationToken) {
        *self.interrupt.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
    }

    /// Drops the current transport as a network failure would, without a close handshake.
    /// A connection that reconnects statefully waits for its client to come back; any other
    /// ends.
    pub fn interrupt_transport(&self) {
        match self.interrupt.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(token) => token.cancel(),
            None => self.close(CloseReason::transport_closed()),
        }
    }

    /// Where the connection moved from and to, if it moved or is moving.
    pub fn migration(&self) -> Option<migration::Migration> {
        self.migration
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            .cloned()
    }

    /// Records that the connection moved here (or is moving away).
    pub(crate) fn set_migration(&self, moved: migration::Migration) {
        *self.migration.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(moved));
    }

    /// The connection moves to another app server: once its input ends, it finishes the
    /// invocations under way and closes without telling the client.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the connection is moving away (see [`Connection::start_draining`]).
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Streams and client results in flight.
    pub(crate) fn invocations(&self) -> &invocations::Invocations {
        &self.invocations
    }

    /// Queues one framed message, waiting for room: for traffic the client asked for (stream
    /// items, results), so a fast producer slows down instead of overflowing the queue.
    /// Returns `false` once the connection is closing.
    pub async fn send_frame_wait(&self, frame: Bytes) -> bool {
        tokio::select! {
            biased;
            _ = self.closing.cancelled() => false,
            sent = self.outbound.send(frame) => sent.is_ok(),
        }
    }

    /// Queues a keep-alive frame if there is room; a full queue already has data to send.
    pub(crate) fn try_send_ping(&self, frame: Bytes) {
        let _ = self.outbound.try_send(frame);
    }

    /// Starts closing the connection. The first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        {
            let mut slot = self.close_reason.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Some(reason);
            }
        }
        self.closing.cancel();
    }

    /// Resolves once the connection starts closing.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}
