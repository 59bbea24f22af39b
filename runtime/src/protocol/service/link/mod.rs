//! One end of a *server connection* (the WebSocket between an app server and the service),
//! sans-IO: the handshake, keep-alive pings, the handshake and receive timeouts, the VarInt
//! framing of records and the batching of writes. The app server's SDK and the relay each
//! run it under a thin async shell that moves bytes and sleeps until [`ServiceLink::poll_timeout`].
//!
//! Time is passed in: nothing here reads a clock, so every path is tested without sockets or
//! sleeps.
//!
//! - The app server's end ([`ServiceLink::app_server`]) writes its [`HandshakeRequest`] first and
//!   waits for the [`HandshakeResponse`]; a refusal ends the link.
//! - The service's end ([`ServiceLink::service`]) waits for the request, refuses a protocol
//!   version it does not speak, and otherwise reports [`LinkEvent::HandshakeRequested`]; the
//!   shell answers with [`ServiceLink::accept`], whose response goes out before any record.
//!
//! Once open, either end pings when it has sent nothing for [`KEEP_ALIVE_INTERVAL`], answers
//! `echo` pings itself, and ends the link when it has received nothing for
//! [`RECEIVE_TIMEOUT`]. Records the shell queues go out several per write (one binary
//! frame), at most [`MAX_BATCH_RECORDS`] records and [`MAX_BATCH_BYTES`] bytes (a larger
//! record goes alone).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{HandshakeRequest, HandshakeResponse, Ping, PingKind, SERVICE_PROTOCOL_VERSION, ServiceMessage};
use crate::protocol::framing::split_binary_record;

/// How long an end waits for the handshake: the request on the service's end, the response
/// on the app server's (the Azure SDK's 15 s).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// An end that has sent nothing for this long sends a keep-alive ping (the Azure SDK pings
/// when its last send is more than 5 s old; the service about every 5 s).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// An end that has received nothing for this long ends the link (the Azure SDK's 30 s).
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// Records joined into one write at most.
pub const MAX_BATCH_RECORDS: usize = 256;
/// Bytes joined into one write at most (a single larger record is written alone).
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Records a shell queues for one link before its senders wait.
pub const QUEUE_CAPACITY: usize = 1024;
/// Bytes of records a shell queues for one link before its senders wait (a larger record
/// waits for the queue to empty, then goes alone): the default of the app server's
/// `ServiceOptions::max_server_connection_queued_bytes` and the relay's
/// `max_server_queued_bytes`.
pub const QUEUE_BYTES: usize = 8 << 20;
/// One write (a batch and its flush) taking longer than this ends the link (a shell's
/// setting: the core has no I/O).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How much one read of a server connection's socket takes at most (a shell's setting; more
/// reads follow for a larger frame): a batch of records, without zero-filling a large buffer
/// before every read (tungstenite's 128 KiB default would cost more than the rest of the
/// work per message).
pub const READ_BUFFER_SIZE: usize = 4 * 1024;
/// Replies the link writes itself (echoes) are dropped while this many records wait to be
/// written, so a peer flooding pings cannot grow the link's output.
const MAX_PENDING_RECORDS: usize = 4 * MAX_BATCH_RECORDS;

/// The timeouts and limits of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkConfig {
    /// See [`HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// See [`KEEP_ALIVE_INTERVAL`].
    pub keep_alive_interval: Duration,
    /// See [`RECEIVE_TIMEOUT`].
    pub receive_timeout: Duration,
    /// The largest record accepted from the peer (`None`: no limit).
    pub max_record_size: Option<usize>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            keep_alive_interval: KEEP_ALIVE_INTERVAL,
            receive_timeout: RECEIVE_TIMEOUT,
            max_record_size: None,
        }
    }
}

impl LinkConfig {
    /// These timeouts and no record size limit.
    pub fn new(handshake_timeout: Duration, keep_alive_interval: Duration, receive_timeout: Duration) -> Self {
        LinkConfig {
            handshake_timeout,
            keep_alive_interval,
            receive_timeout,
            max_record_size: None,
        }
    }

    /// Refuses records from the peer larger than `max` bytes.
    pub fn max_record_size(mut self, max: usize) -> Self {
        self.max_record_size = Some(max);
        self
    }
}

/// What the link reports to its shell, from [`ServiceLink::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// The app server's end: the service accepted the handshake.
    Connected(HandshakeResponse),
    /// The service's end: an app server asks to link, in a version this end speaks. Answer
    /// with [`ServiceLink::accept`].
    HandshakeRequested(HandshakeRequest),
    /// A message from the peer, after the handshake.
    Message(ServiceMessage),
    /// The link has ended; nothing follows. What is still to write (a refusal) can be
    /// written before the socket closes.
    Closed(LinkError),
}

/// Why a link ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkError {
    /// No handshake within the handshake timeout.
    HandshakeTimeout,
    /// The service refused the handshake, with this message.
    HandshakeRefused(String),
    /// The app server asked for a protocol version this end does not speak (it was told so).
    UnsupportedVersion(i32),
    /// The first message was not the handshake.
    NotAHandshake(u8),
    /// Nothing received within the receive timeout.
    ReceiveTimeout,
    /// Bytes that are not service-protocol records.
    Malformed(String),
    /// This end closed the link ([`ServiceLink::close`]).
    Closed,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::HandshakeTimeout => f.write_str("handshake timed out"),
            LinkError::HandshakeRefused(message) => write!(f, "the service refused the handshake: {message}"),
            LinkError::UnsupportedVersion(version) => write!(f, "unsupported protocol version {version}"),
            LinkError::NotAHandshake(kind) => write!(f, "expected a handshake, got a message of type {kind}"),
            LinkError::ReceiveTimeout => f.write_str("nothing received within the receive timeout"),
            LinkError::Malformed(error) => write!(f, "malformed input: {error}"),
            LinkError::Closed => f.write_str("closed"),
        }
    }
}

impl std::error::Error for LinkError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The service's end, before the request.
    AwaitingRequest,
    /// The service's end, between the request and [`ServiceLink::accept`].
    Accepting,
    /// The app server's end, before the response.
    AwaitingResponse,
    Open,
    /// Ended; the reason is still to be reported.
    Ending,
    Ended,
}

/// One end of a server connection. See the [module docs](self).
#[derive(Debug)]
pub struct ServiceLink {
    config: LinkConfig,
    state: State,
    error: Option<LinkError>,
    /// When the handshake must be complete.
    handshake_deadline: Instant,
    last_received: Instant,
    last_sent: Instant,
    input: BytesMut,
    /// Framed records waiting to be written, and their size.
    output: VecDeque<Bytes>,
    output_bytes: usize,
}

/// Frames `message` as one record (its VarInt length prefix, then the message), ready for a
/// link's queue.
pub fn frame(message: &ServiceMessage) -> Bytes {
    let mut out = Vec::new();
    super::write(message, &mut out);
    Bytes::from(out)
}

impl ServiceLink {
    fn new(config: LinkConfig, state: State, now: Instant) -> Self {
        ServiceLink {
            config,
            state,
            error: None,
            handshake_deadline: now + config.handshake_timeout,
            last_received: now,
            last_sent: now,
            input: BytesMut::new(),
            output: VecDeque::new(),
            output_bytes: 0,
        }
    }

    /// The app server's end, its `request` the first thing it writes.
    pub fn app_server(request: HandshakeRequest, config: LinkConfig, now: Instant) -> Self {
        let mut link = ServiceLink::new(config, State::AwaitingResponse, now);
        link.push(frame(&ServiceMessage::HandshakeRequest(request)));
        link
    }

    /// The service's end, waiting for the app server's request.
    pub fn service(config: LinkConfig, now: Instant) -> Self {
        ServiceLink::new(config, State::AwaitingRequest, now)
    }

    /// The service's end: accepts the requested link as `connection_id`. The response is
    /// written before any record queued after it.
    pub fn accept(&mut self, connection_id: impl Into<String>) {
        if self.state != State::Accepting {
            return;
        }
        let response = HandshakeResponse {
            error_message: None,
            connection_id: Some(connection_id.into()),
        };
        self.push(frame(&ServiceMessage::HandshakeResponse(response)));
        self.open();
    }

    /// Whether the handshake is done and the link not ended: records may be queued.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the link has ended (its [`LinkEvent::Closed`] may still be unpolled).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Ending | State::Ended)
    }

    /// Why the link ended, once it has.
    pub fn error(&self) -> Option<&LinkError> {
        self.error.as_ref()
    }

    /// Ends the link from this end. What is queued can still be written.
    pub fn close(&mut self) {
        self.end(LinkError::Closed);
    }

    fn end(&mut self, error: LinkError) {
        if !self.is_closed() {
            self.error = Some(error);
            self.state = State::Ending;
        }
    }

    fn open(&mut self) {
        self.state = State::Open;
        // The timers start when the handshake completes.
        self.last_received = self.last_received.max(self.last_sent);
    }

    fn push(&mut self, record: Bytes) {
        self.output_bytes += record.len();
        self.output.push_back(record);
    }

    /// Bytes from the peer, as they arrived (a record may span several calls).
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.is_closed() || bytes.is_empty() {
            return;
        }
        self.last_received = now;
        self.input.extend_from_slice(bytes);
    }

    /// The next thing to report: the handshake's outcome, a message, or the end. Records are
    /// parsed one per call, so the shell can hand each on before the next is read.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        loop {
            match self.state {
                State::Ending => {
                    self.state = State::Ended;
                    return Some(LinkEvent::Closed(self.error.clone().unwrap_or(LinkError::Closed)));
                }
                State::Ended | State::Accepting => return None,
                State::AwaitingRequest | State::AwaitingResponse | State::Open => {}
            }
            let record = match split_binary_record(&mut self.input, self.config.max_record_size) {
                Ok(Some(record)) => record,
                Ok(None) => return None,
                Err(error) => {
                    self.end(LinkError::Malformed(error.to_string()));
                    continue;
                }
            };
            let message = match super::parse(record) {
                Ok(Some(message)) => message,
                // Records of unknown types are skipped.
                Ok(None) => continue,
                Err(error) => {
                    self.end(LinkError::Malformed(error.to_string()));
                    continue;
                }
            };
            match (self.state, message) {
                (State::Open, ServiceMessage::Ping(ping)) if matches!(ping.kind(), PingKind::Echo(_)) => {
                    if self.output.len() < MAX_PENDING_RECORDS {
                        self.push(frame(&ServiceMessage::Ping(ping.clone())));
                    }
                    return Some(LinkEvent::Message(ServiceMessage::Ping(ping)));
                }
                (State::Open, message) => return Some(LinkEvent::Message(message)),
                (State::AwaitingRequest, ServiceMessage::HandshakeRequest(request)) => {
                    if request.version != SERVICE_PROTOCOL_VERSION {
                        let response = HandshakeResponse {
                            error_message: Some(format!(
                                "Protocol version {} is not supported; this service speaks version {SERVICE_PROTOCOL_VERSION}.",
                                request.version
                            )),
                            connection_id: None,
                        };
                        self.push(frame(&ServiceMessage::HandshakeResponse(response)));
                        self.end(LinkError::UnsupportedVersion(request.version));
                        continue;
                    }
                    self.state = State::Accepting;
                    return Some(LinkEvent::HandshakeRequested(request));
                }
                (State::AwaitingResponse, ServiceMessage::HandshakeResponse(response)) => {
                    if !response.is_success() {
                        self.end(LinkError::HandshakeRefused(response.error_message.unwrap_or_default()));
                        continue;
                    }
                    self.open();
                    return Some(LinkEvent::Connected(response));
                }
                (_, other) => {
                    self.end(LinkError::NotAHandshake(other.type_id()));
                    continue;
                }
            }
        }
    }

    /// When [`ServiceLink::handle_timeout`] should be called next (`None` once ended).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingRequest | State::AwaitingResponse | State::Accepting => Some(self.handshake_deadline),
            State::Open => Some(
                (self.last_sent + self.config.keep_alive_interval)
                    .min(self.last_received + self.config.receive_timeout),
            ),
            State::Ending | State::Ended => None,
        }
    }

    /// Time has passed: ends the link on a timeout, or queues a keep-alive ping.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::AwaitingRequest | State::AwaitingResponse | State::Accepting => {
                if now >= self.handshake_deadline {
                    self.end(LinkError::HandshakeTimeout);
                }
            }
            State::Open => {
                if now >= self.last_received + self.config.receive_timeout {
                    self.end(LinkError::ReceiveTimeout);
                } else if now >= self.last_sent + self.config.keep_alive_interval {
                    self.push(frame(&ServiceMessage::Ping(Ping::keep_alive())));
                    self.last_sent = now;
                }
            }
            State::Ending | State::Ended => {}
        }
    }

    /// Whether the link takes another record into the write being gathered: it is open and
    /// the pending records are under the batch bounds.
    pub fn wants_records(&self) -> bool {
        self.state == State::Open && self.output.len() < MAX_BATCH_RECORDS && self.output_bytes < MAX_BATCH_BYTES
    }

    /// Queues one framed record (see [`frame`]) from the shell's queue. Records queued before
    /// the handshake is done, or after the link ended, are dropped.
    pub fn queue_record(&mut self, record: Bytes) {
        if self.state == State::Open && !record.is_empty() {
            self.push(record);
        }
    }

    /// Encodes and queues one message.
    pub fn send(&mut self, message: &ServiceMessage) {
        self.queue_record(frame(message));
    }

    /// The next write: the pending records, joined, up to the batch bounds (`None`: nothing
    /// to write). Writing at `now` postpones the next keep-alive ping.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        let first = self.output.pop_front()?;
        let mut count = 1;
        let mut size = first.len();
        for next in &self.output {
            if count == MAX_BATCH_RECORDS || size + next.len() > MAX_BATCH_BYTES {
                break;
            }
            count += 1;
            size += next.len();
        }
        let batch = if count == 1 {
            first
        } else {
            let mut batch = BytesMut::with_capacity(size);
            batch.extend_from_slice(&first);
            for record in self.output.drain(..count - 1) {
                batch.extend_from_slice(&record);
            }
            batch.freeze()
        };
        self.output_bytes -= size;
        self.last_sent = self.last_sent.max(now);
        Some(batch)
    }
}

#[cfg(test)]
mod tests;
