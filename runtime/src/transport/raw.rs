//! Raw connections: negotiate and the transports without the hub protocol, for apps that
//! speak their own bytes (like .NET's `ConnectionHandler`).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;

use super::Inbound;
use super::request::RequestInfo;
use crate::connection::stateful::Stateful;
use crate::connection::{CloseReason, Connection};
use crate::protocol::{Close, HubMessage, Protocol, framing};

/// Hub message types a raw connection that reconnects statefully handles itself.
const ACK: u8 = 8;
const SEQUENCE: u8 = 9;

/// Splits the whole records off `pending`, handles the client's Ack and Sequence messages,
/// drops tracked messages already received, and returns the rest, framing included.
fn take_records(
    pending: &mut BytesMut,
    stateful: &Stateful,
    protocol: Protocol,
    max_record: Option<usize>,
) -> Result<Bytes, String> {
    let mut kept = BytesMut::new();
    while let Some(record) = framing::split_framed_record(protocol, pending, max_record).map_err(|e| e.to_string())? {
        match framing::record_type(protocol, &record) {
            Some(ACK | SEQUENCE) => {
                let body = match protocol {
                    Protocol::Json => record.slice(..record.len() - 1),
                    Protocol::MessagePack => {
                        let prefix = framing::read_varint(&record).ok().flatten().map_or(0, |(_, used)| used);
                        record.slice(prefix..)
                    }
                };
                match protocol.parse_record(body) {
                    Ok(Some(HubMessage::Ack { sequence_id })) => stateful.on_ack(sequence_id),
                    Ok(Some(HubMessage::Sequence { sequence_id })) => stateful.on_sequence(sequence_id)?,
                    Ok(_) => {}
                    Err(error) => return Err(error.to_string()),
                }
            }
            Some(kind) if framing::is_tracked(kind) => {
                if stateful.accept() {
                    kept.extend_from_slice(&record);
                }
            }
            _ => kept.extend_from_slice(&record),
        }
    }
    Ok(kept.freeze())
}

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
    /// Bytes received and not returned yet: put back by [`RawConnection::unread`], or a
    /// partial record of a connection that reconnects statefully.
    pending: BytesMut,
    /// How long the connection may be without a transport (between polls, or between
    /// sockets of a connection that reconnects statefully) before it ends.
    disconnect_timeout: Duration,
    /// The largest record a connection that reconnects statefully may send.
    max_record: Option<usize>,
}

impl std::fmt::Debug for RawConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawConnection")
            .field("id", self.conn.id())
            .finish_non_exhaustive()
    }
}

impl RawConnection {
    pub(crate) fn new(conn: Arc<Connection>, inbound: Inbound, options: &crate::HubOptions) -> Self {
        let (request, claims) = conn.take_request().unwrap_or_default();
        Self {
            conn,
            request,
            claims,
            inbound,
            fixed_format: std::sync::atomic::AtomicBool::new(false),
            pending: BytesMut::new(),
            disconnect_timeout: options.disconnect_timeout,
            max_record: options.maximum_receive_message_size,
        }
    }

    /// The connection's id.
    pub fn connection_id(&self) -> &str {
        self.conn.id()
    }

    /// The request that opened the transport (empty after [`RawConnection::release_request`]).
    pub fn request(&self) -> &RequestInfo {
        &self.request
    }

    /// The claims of the bearer token the client presented, if valid (none after
    /// [`RawConnection::release_request`]).
    pub fn claims(&self) -> Option<&crate::Claims> {
        self.claims.as_ref()
    }

    /// Frees the request's headers and query and the token's claims, for a handler that has
    /// read what it needs of them and keeps the connection a long time (a relay holding many
    /// idle clients).
    pub fn release_request(&mut self) {
        self.request = RequestInfo::default();
        self.claims = None;
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
    /// After [`RawConnection::accept_stateful_reconnect`], what is returned is whole records:
    /// the client's Ack and Sequence messages are handled here and not returned, and
    /// messages the client replays after a reconnect that were already returned are dropped.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            let conn = self.conn.clone();
            let relayed = conn
                .stateful()
                .and_then(|s| s.raw_protocol().map(|protocol| (s, protocol)));
            match relayed {
                None if !self.pending.is_empty() => return Some(self.pending.split().freeze()),
                None => return self.recv_transport().await,
                Some((stateful, protocol)) => {
                    match take_records(&mut self.pending, stateful, protocol, self.max_record) {
                        Ok(kept) if !kept.is_empty() => return Some(kept),
                        Ok(_) => {
                            let bytes = self.recv_transport().await?;
                            self.pending.extend_from_slice(&bytes);
                        }
                        Err(error) => {
                            let mut close = Vec::new();
                            let message = HubMessage::Close(Close {
                                error: Some(format!("Connection closed with an error. {error}")),
                                allow_reconnect: false,
                            });
                            let _ = protocol.write_message(&mut close, &message);
                            conn.send_frame(Bytes::from(close));
                            conn.close(CloseReason::graceful());
                            return None;
                        }
                    }
                }
            }
        }
    }

    /// The next bytes the transport delivers.
    async fn recv_transport(&mut self) -> Option<Bytes> {
        let closing = self.conn.closing().clone();
        // Only long polling and connections that reconnect statefully are ever without a
        // transport while open.
        let may_detach = self.conn.transport() == crate::TransportType::LongPolling || self.conn.reconnects();
        loop {
            tokio::select! {
                biased;
                _ = closing.cancelled() => return None,
                frame = self.inbound.next_frame() => {
                    let (bytes, binary) = frame?;
                    if !self.fixed_format.load(std::sync::atomic::Ordering::Relaxed) {
                        self.conn.set_binary(binary);
                    }
                    return Some(bytes);
                }
                _ = tokio::time::sleep(Duration::from_secs(1)), if may_detach => {
                    let timeout = self.disconnect_timeout.as_millis() as u64;
                    if self.conn.transport_lost_ms().is_some_and(|ms| ms >= timeout) {
                        self.conn.close(CloseReason::transport_closed());
                        return None;
                    }
                }
            }
        }
    }

    /// Puts bytes back in front of what [`RawConnection::recv`] returns next, as if the client
    /// had just sent them: for bytes that came with a record the caller consumed itself (such
    /// as a handshake request). After [`RawConnection::accept_stateful_reconnect`] they are
    /// filtered like any others.
    pub fn unread(&mut self, bytes: &[u8]) {
        let rest = self.pending.split();
        self.pending.extend_from_slice(bytes);
        self.pending.extend_from_slice(&rest);
    }

    /// Whether negotiate agreed that this connection may reconnect statefully: the client
    /// asked (`useStatefulReconnect=true`) and the endpoint allowed it (see
    /// [`SwitchboardBuilder::stateful_reconnect_filter`](crate::SwitchboardBuilder::stateful_reconnect_filter)).
    pub fn stateful_reconnect_offered(&self) -> bool {
        self.conn.transport() == crate::TransportType::WebSockets && self.conn.stateful().is_some()
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
    pub fn accept_stateful_reconnect(&self, protocol: Protocol) -> bool {
        match self.conn.stateful() {
            Some(stateful) if self.stateful_reconnect_offered() => {
                stateful.activate_raw(protocol);
                true
            }
            _ => false,
        }
    }

    /// Sends bytes to the client (dropped if the connection has closed).
    pub fn send(&self, bytes: Bytes) {
        self.conn.send_frame(bytes);
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.conn.close(CloseReason::graceful());
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
        self.conn.close(CloseReason::graceful());
    }

    /// Resolves once the client has come back on a new WebSocket since the last call (after
    /// [`RawConnection::accept_stateful_reconnect`]); never resolves otherwise. (On the
    /// sender, so that a task can wait for it while receiving.)
    pub async fn reattached(&self) {
        match self.conn.stateful() {
            Some(stateful) => stateful.reattached().await,
            None => std::future::pending().await,
        }
    }

    /// Whether the connection has started closing.
    pub fn is_closed(&self) -> bool {
        self.conn.closing().is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(records: &[&str]) -> BytesMut {
        let mut out = BytesMut::new();
        for record in records {
            out.extend_from_slice(record.as_bytes());
            out.extend_from_slice(&[framing::RECORD_SEPARATOR]);
        }
        out
    }

    #[test]
    fn raw_stateful_records_acks_sequences_and_duplicates() {
        let stateful = Stateful::new(1000);
        stateful.activate_raw(Protocol::Json);
        let invocation = r#"{"arguments":[1],"target":"A","type":1}"#;
        let ping = r#"{"type":6}"#;

        // Tracked messages are passed on and counted; an Ack from the client is consumed; a
        // partial record waits for the rest.
        stateful.sent(&Bytes::from_static(b"{\"type\":1}\x1e"));
        let mut pending = json(&[invocation, r#"{"type":8,"sequenceId":1}"#, ping]);
        pending.extend_from_slice(b"{\"type\":1,\"tar");
        let kept = take_records(&mut pending, &stateful, Protocol::Json, None).unwrap();
        assert_eq!(&kept[..], json(&[invocation, ping]).as_ref());
        assert_eq!(&pending[..], b"{\"type\":1,\"tar");
        assert_eq!(stateful.replay().1.len(), 0, "the Ack released what was sent");
        assert_eq!(stateful.ack_due(), Some(1));

        // After a new socket: nothing tracked passes before the client's Sequence, and what
        // the client replays that was already passed on is dropped.
        pending.clear();
        stateful.reconnected();
        let second = r#"{"arguments":[2],"target":"A","type":1}"#;
        let mut pending = json(&[r#"{"type":9,"sequenceId":1}"#, invocation, second]);
        let kept = take_records(&mut pending, &stateful, Protocol::Json, None).unwrap();
        assert_eq!(
            &kept[..],
            json(&[second]).as_ref(),
            "the replayed first invocation is dropped"
        );

        // A Sequence past what was received ends the connection with the reference text.
        stateful.reconnected();
        let mut pending = json(&[r#"{"type":9,"sequenceId":10}"#]);
        let error = take_records(&mut pending, &stateful, Protocol::Json, None).unwrap_err();
        assert_eq!(error, crate::connection::stateful::SEQUENCE_TOO_LARGE);
    }

    #[test]
    fn raw_stateful_records_refuse_oversized_and_malformed_input() {
        let stateful = Stateful::new(1000);
        stateful.activate_raw(Protocol::MessagePack);
        let mut prefix = Vec::new();
        framing::write_varint(&mut prefix, 1 << 20);
        let mut pending = BytesMut::from(&prefix[..]);
        assert!(take_records(&mut pending, &stateful, Protocol::MessagePack, Some(32 * 1024)).is_err());
        // An Ack whose body is not a valid message is an error, not a panic.
        let mut pending = BytesMut::from(&[0x02, 0x92, 0x08][..]);
        assert!(take_records(&mut pending, &stateful, Protocol::MessagePack, None).is_err());
    }
}
