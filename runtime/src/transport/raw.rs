//! Raw connections: negotiate and the transports without the hub protocol, for apps that
//! speak their own bytes (like .NET's `ConnectionHandler`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::connection::inbound::Inbound;
use crate::connection::request::RequestInfo;
use crate::connection::{CloseReason, Connection};
#[cfg(feature = "relay")]
use crate::protocol::Protocol;
use crate::protocol::connection_core::{Closing, Output};

pub(crate) type RawHandler = Arc<dyn Fn(RawConnection) -> BoxFuture<'static, ()> + Send + Sync>;

/// One raw connection: receive the bytes the client sends, send bytes back.
///
/// Over WebSockets, what is sent goes out in frames of the kind (text or binary) the client
/// last sent.
pub struct RawConnection {
    conn: Arc<Connection>,
    request: RequestInfo,
    claims: Option<crate::Claims>,
    inbound: Inbound,
    fixed_format: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RawConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawConnection")
            .field("id", self.conn.id())
            .finish_non_exhaustive()
    }
}

impl RawConnection {
    pub(crate) fn new(conn: Arc<Connection>, inbound: Inbound, endpoint: &super::Endpoint) -> Self {
        let (request, claims) = conn.take_request().unwrap_or_default();
        // The disconnect timeout (without a transport between polls, or between the sockets
        // of a connection that reconnects statefully), and the largest record such a
        // connection may send; the rest of the core's settings are a hub connection's.
        let config = endpoint.configs.get(&endpoint.options, conn.transport(), |_| true);
        conn.core().start_raw(config);
        Self {
            conn,
            request,
            claims,
            inbound,
            fixed_format: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The connection's id.
    pub fn connection_id(&self) -> &str {
        self.conn.id()
    }

    /// The request that opened the transport (empty after `release_request`, feature `relay`).
    pub fn request(&self) -> &RequestInfo {
        &self.request
    }

    /// The claims of the bearer token the client presented, if valid (none after
    /// `release_request`, feature `relay`).
    pub fn claims(&self) -> Option<&crate::Claims> {
        self.claims.as_ref()
    }

    /// Frees the request's headers and query and the token's claims, for a handler that has
    /// read what it needs of them and keeps the connection a long time (a relay holding many
    /// idle clients).
    #[cfg(feature = "relay")]
    pub fn release_request(&mut self) {
        self.request = RequestInfo::default();
        self.claims = None;
    }

    /// Ends the connection after `timeout` without a transport (between two polls of long
    /// polling, or between the sockets of a connection that reconnects statefully), instead
    /// of the hub's `disconnect_timeout`: for a relay that applies the limit a client's token
    /// names (`asrs.s.ttl`).
    #[cfg(feature = "relay")]
    pub fn set_disconnect_timeout(&self, timeout: std::time::Duration) {
        self.conn.core().set_disconnect_timeout(timeout);
    }

    /// The transport the client uses.
    pub fn transport(&self) -> crate::TransportType {
        self.conn.transport()
    }

    /// Sends what follows in binary frames (`true`) or text frames (`false`) over
    /// WebSockets, instead of following the kind the client last sent.
    pub fn set_binary(&self, binary: bool) {
        self.conn.set_binary(binary);
        self.fixed_format.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The next bytes from the client; `None` once it has gone (closed, or without a
    /// transport for longer than the disconnect timeout).
    ///
    /// After `accept_stateful_reconnect` (feature `relay`), what is returned is whole records:
    /// the client's Ack and Sequence messages are handled here and not returned, and
    /// messages the client replays after a reconnect that were already returned are dropped.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let closing = self.conn.closing().clone();
        loop {
            loop {
                let output = self.conn.core().poll_output();
                match output {
                    None => break,
                    Some(Output::Received(bytes)) => return Some(bytes),
                    Some(Output::Transmit(frame)) => self.conn.send_frame(frame),
                    Some(Output::Acknowledged) => self.conn.notify_acknowledged(),
                    Some(Output::Close(closing)) => {
                        self.conn.close(match closing {
                            Closing::TransportClosed => CloseReason::transport_closed(),
                            _ => CloseReason::graceful(),
                        });
                        return None;
                    }
                    Some(_) => {}
                }
            }
            // Only long polling and connections that reconnect statefully are ever without a
            // transport while open.
            let may_detach = self.conn.transport() == crate::TransportType::LongPolling || self.conn.reconnects();
            tokio::select! {
                biased;
                _ = closing.cancelled() => return None,
                frame = self.inbound.next_frame() => {
                    let (bytes, binary) = frame?;
                    if !self.fixed_format.load(std::sync::atomic::Ordering::Relaxed) {
                        self.conn.set_binary(binary);
                    }
                    self.conn.core().handle_input_bytes(Instant::now(), bytes);
                }
                _ = tokio::time::sleep(Duration::from_secs(1)), if may_detach => {
                    self.conn.check_timers(Instant::now());
                }
            }
        }
    }

    /// Puts bytes back in front of what [`RawConnection::recv`] returns next, as if the client
    /// had just sent them: for bytes that came with a record the caller consumed itself (such
    /// as a handshake request). After [`RawConnection::accept_stateful_reconnect`] they are
    /// filtered like any others.
    #[cfg(feature = "relay")]
    pub fn unread(&mut self, bytes: &[u8]) {
        self.conn.core().unread(bytes);
    }

    /// Whether negotiate agreed that this connection may reconnect statefully: the client
    /// asked (`useStatefulReconnect=true`) and the endpoint allowed it (see
    /// [`SwitchboardBuilder::stateful_reconnect_filter`](crate::SwitchboardBuilder::stateful_reconnect_filter)).
    #[cfg(feature = "relay")]
    pub fn stateful_reconnect_offered(&self) -> bool {
        self.conn.transport() == crate::TransportType::WebSockets && self.conn.stateful_offered()
    }

    /// Makes this connection, which carries SignalR hub-protocol records of `protocol` (after
    /// a version 2 handshake the caller has handled), reconnect statefully as a hub
    /// connection does: it is kept when its WebSocket drops, the client may come back with the
    /// same id on a new socket until the disconnect timeout, and [`RawSender::reattached`]
    /// resolves each time it does. The tracked records sent to the client are numbered, kept
    /// until acknowledged and replayed after a Sequence on the new socket; the client's
    /// records are acknowledged, and its Ack, Sequence and replayed duplicates are handled
    /// by [`RawConnection::recv`] instead of returned. What is sent must be whole records
    /// from then on. Returns `false`, and changes
    /// nothing, when negotiate did not offer stateful reconnect.
    #[cfg(feature = "relay")]
    pub fn accept_stateful_reconnect(&self, protocol: Protocol) -> bool {
        self.stateful_reconnect_offered() && self.conn.core().accept_stateful_raw(protocol)
    }

    /// Sends bytes to the client (dropped if the connection has closed).
    pub fn send(&self, bytes: Bytes) {
        self.conn.send_frame(bytes);
    }

    /// Closes the connection (what was sent before still goes out).
    pub fn close(&self) {
        self.conn.close(CloseReason::quiet());
    }

    /// Names the hub protocol the bytes passed through speak: a client closed because it does
    /// not read its messages is then told why with a Close message in that protocol, as a hub
    /// connection is (the frames follow the protocol's format too).
    #[cfg(feature = "relay")]
    pub fn set_protocol(&self, protocol: Protocol) {
        self.conn.set_protocol(protocol);
        self.fixed_format.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// A handle that sends to and closes this connection from other tasks, while this one
    /// keeps receiving.
    pub fn sender(&self) -> RawSender {
        RawSender {
            conn: self.conn.clone(),
        }
    }
}

/// Sends to and closes one [`RawConnection`] from anywhere; cheap to clone.
#[derive(Clone)]
pub struct RawSender {
    conn: Arc<Connection>,
}

impl std::fmt::Debug for RawSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSender")
            .field("id", self.conn.id())
            .finish_non_exhaustive()
    }
}

impl RawSender {
    /// The connection's id.
    pub fn connection_id(&self) -> &str {
        self.conn.id()
    }

    /// Sends bytes to the client, as [`RawConnection::send`] does: without waiting, into the
    /// connection's bounded queue (a client whose queue is full is closed).
    pub fn send(&self, bytes: Bytes) {
        self.conn.send_frame(bytes);
    }

    /// Closes the connection: what was sent before still goes out, then the transport ends.
    pub fn close(&self) {
        self.conn.close(CloseReason::quiet());
    }

    /// Resolves once the client has come back on a new WebSocket since the last call (after
    /// [`RawConnection::accept_stateful_reconnect`]); never resolves otherwise. (On the
    /// sender, so that a task can wait for it while receiving.)
    #[cfg(feature = "relay")]
    pub async fn reattached(&self) {
        self.conn.reattached().await;
    }

    /// Whether the connection has started closing.
    pub fn is_closed(&self) -> bool {
        self.conn.closing().is_cancelled()
    }
}
