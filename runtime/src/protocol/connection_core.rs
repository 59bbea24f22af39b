//! One SignalR connection's state machine, sans-IO: the handshake and its timeout, reading
//! hub messages within the size limit, keep-alive pings, the client timeout, the
//! transport-loss (disconnect) timeout, stateful reconnect's Ack and Sequence and its replay
//! buffer, and the end of the connection.
//!
//! It owns no socket, no task and no clock. Its shell feeds it what arrives
//! ([`ConnectionCore::handle_input`]), tells it the time when a timer may be due
//! ([`ConnectionCore::handle_timeout`], at or after [`ConnectionCore::poll_timeout`]), and
//! carries out what it asks for ([`ConnectionCore::poll_output`]): bytes to send, messages to
//! dispatch, the close. Every instant is passed in, so tests drive it with a plain `Instant`
//! they advance.
//!
//! A connection is either a hub connection (handshake, then parsed hub messages) or a raw
//! one (bytes passed through; records filtered only when it reconnects statefully).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::handshake::{self, HANDSHAKE_CANCELED, UNEXPECTED_HANDSHAKE_ERROR};
use super::liveness::{self, Liveness};
use super::replay_buffer::ReplayBuffer;
use super::{Close, HubMessage, Protocol, ProtocolError, TransferFormat, framing};

/// The error of a client that stopped sending while the client timeout was armed.
pub(crate) const CLIENT_TIMEOUT: &str =
    "Client hasn't sent a message/ping within the configured ClientTimeoutInterval.";

/// What governs a connection's timers and input.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// How long the client has to send its handshake request.
    pub handshake_timeout: Duration,
    /// Send a ping after this long without sending anything; `None` for no pings (long
    /// polling, where every poll is one).
    pub keep_alive_interval: Option<Duration>,
    /// Close after this long without receiving anything, once the client has pinged.
    pub client_timeout: Duration,
    /// Close after this long without a transport (between polls, or between the sockets of a
    /// connection that reconnects statefully).
    pub disconnect_timeout: Duration,
    /// The largest record (and handshake request) accepted.
    pub max_message_size: Option<usize>,
    /// The hub protocols a handshake may choose, one bit per [`Protocol::ALL`] entry.
    supported: u8,
    /// The transfer formats the transport can carry.
    pub format_supported: fn(TransferFormat) -> bool,
    /// Whether error texts sent to the client name the error.
    pub detailed_errors: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(15),
            keep_alive_interval: Some(Duration::from_secs(15)),
            client_timeout: Duration::from_secs(30),
            disconnect_timeout: Duration::from_secs(5),
            max_message_size: None,
            supported: protocol_bits(&Protocol::ALL),
            format_supported: |_| true,
            detailed_errors: false,
        }
    }
}

fn protocol_bits(protocols: &[Protocol]) -> u8 {
    protocols.iter().fold(0, |bits, protocol| {
        bits | Protocol::ALL
            .iter()
            .position(|p| p == protocol)
            .map_or(0, |index| 1 << index)
    })
}

impl Config {
    /// Allows only these hub protocols.
    pub fn set_supported_protocols(&mut self, protocols: &[Protocol]) {
        self.supported = protocol_bits(protocols);
    }

    fn supports(&self, protocol: Protocol) -> bool {
        self.supported & protocol_bits(&[protocol]) != 0
    }
}

/// How the connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Closing {
    /// The transport is gone, the handshake failed, or the connection was without a
    /// transport too long: no Close message.
    TransportClosed,
    /// It ends normally (the client's Close message, with the error it carried, if any).
    Graceful {
        /// The error the client's Close message gave.
        error: Option<String>,
    },
    /// It fails with an error of the reference server's exception type.
    Failed {
        exception_type: &'static str,
        message: String,
        allow_reconnect: bool,
    },
}

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// Send these bytes to the client (through the connection's queue).
    Transmit(Bytes),
    /// Send this ping if the queue has room (a full queue already has data to send).
    KeepAlive(Bytes),
    /// The handshake chose this protocol; the handshake response follows.
    Opened(Protocol),
    /// A hub message to dispatch.
    Message(HubMessage),
    /// Bytes of a raw connection for its handler (whole records once it reconnects
    /// statefully).
    Received(Bytes),
    /// The client acknowledged sent records: senders waiting for room may go on.
    Acknowledged,
    /// The connection ends.
    Close(Closing),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Created; neither a hub nor a raw connection has started on it yet.
    Idle,
    /// Waiting for the client's handshake request until `deadline`.
    Handshake { deadline: Instant },
    /// The handshake chose a protocol: hub messages.
    Hub,
    /// A raw connection: bytes for a handler.
    Raw,
    /// Closed: nothing more is read.
    Closed,
}

/// One connection's state (see the module documentation).
#[derive(Debug)]
pub(crate) struct ConnectionCore {
    phase: Phase,
    /// Shared by the connections of one endpoint and transport.
    config: Arc<Config>,
    /// The protocol of the records: chosen by the handshake, or declared by a raw
    /// connection that reconnects statefully.
    protocol: Option<Protocol>,
    /// Bytes received and not handled yet.
    input: BytesMut,
    /// What the shell has to do, oldest first (a handful at most: each input or timeout adds
    /// a few, and the shell drains them before feeding more). Rare (the handshake, pings,
    /// acknowledgements, the end), so its allocation is let go once it is drained.
    outputs: VecDeque<Output>,
    /// Bytes of a raw connection passed on as they arrived, not yet taken.
    passed: Option<Bytes>,
    /// Keep-alive and the client timeout, which the client's first ping arms (old clients
    /// never ping).
    liveness: Liveness,
    /// When the transport went away, while none is attached.
    transport_lost: Option<Instant>,
    /// Present when negotiate agreed on stateful reconnect.
    replay: Option<Box<ReplayBuffer>>,
}

impl ConnectionCore {
    /// A connection created at `now`; `stateful_limit` is its send buffer limit when
    /// negotiate agreed that it may reconnect statefully.
    pub fn new(now: Instant, stateful_limit: Option<usize>) -> Self {
        // Until a start gives the connection its own settings.
        static DEFAULT: std::sync::OnceLock<Arc<Config>> = std::sync::OnceLock::new();
        let config = DEFAULT.get_or_init(|| Arc::new(Config::default())).clone();
        Self {
            phase: Phase::Idle,
            liveness: Liveness::new(now, config.keep_alive_interval, config.client_timeout, false),
            config,
            protocol: None,
            input: BytesMut::new(),
            outputs: VecDeque::new(),
            passed: None,
            transport_lost: None,
            replay: stateful_limit.map(|limit| Box::new(ReplayBuffer::new(limit))),
        }
    }

    /// Starts a hub connection: the handshake request is due by `now` plus the handshake
    /// timeout.
    pub fn start_hub(&mut self, now: Instant, config: impl Into<Arc<Config>>) {
        let config = config.into();
        let deadline = now + config.handshake_timeout;
        self.configure(config);
        self.phase = Phase::Handshake { deadline };
        self.read_handshake(now);
    }

    /// Starts a raw connection: what arrives is passed on as it is.
    pub fn start_raw(&mut self, config: impl Into<Arc<Config>>) {
        let config = config.into();
        self.configure(config);
        self.phase = Phase::Raw;
    }

    fn configure(&mut self, config: Arc<Config>) {
        self.liveness
            .configure(config.keep_alive_interval, config.client_timeout);
        self.config = config;
    }

    /// Changes this connection's disconnect timeout (its settings become its own).
    #[cfg_attr(not(feature = "relay"), allow(dead_code))]
    pub fn set_disconnect_timeout(&mut self, timeout: Duration) {
        if self.config.disconnect_timeout != timeout {
            let mut config = (*self.config).clone();
            config.disconnect_timeout = timeout;
            self.config = Arc::new(config);
        }
    }

    /// Makes a raw connection that carries hub-protocol records of `protocol` reconnect
    /// statefully. `false`, and nothing changes, when negotiate did not agree on it.
    #[cfg_attr(not(feature = "relay"), allow(dead_code))]
    pub fn accept_stateful_raw(&mut self, protocol: Protocol) -> bool {
        match &mut self.replay {
            Some(replay) => {
                replay.activate();
                self.protocol = Some(protocol);
                true
            }
            None => false,
        }
    }

    /// Bytes from the client, received at `now`.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.liveness.received(now);
        if self.phase == Phase::Closed {
            return;
        }
        self.input.extend_from_slice(bytes);
        if let Phase::Handshake { .. } = self.phase {
            self.read_handshake(now);
        }
    }

    /// Bytes from the client as the transport delivered them: a raw connection that passes
    /// bytes on as they are hands them over without a copy.
    pub fn handle_input_bytes(&mut self, now: Instant, bytes: Bytes) {
        if self.phase == Phase::Raw && self.input.is_empty() && self.passed.is_none() && !self.filters_records() {
            self.liveness.received(now);
            self.passed = Some(bytes);
        } else {
            self.handle_input(now, &bytes);
        }
    }

    /// Whether a raw connection splits its input into records (it reconnects statefully).
    fn filters_records(&self) -> bool {
        self.protocol.is_some() && self.reconnects()
    }

    /// Puts bytes back in front of the input, as if they had just arrived (a raw
    /// connection's handler consumed them itself).
    #[cfg_attr(not(feature = "relay"), allow(dead_code))]
    pub fn unread(&mut self, bytes: &[u8]) {
        let rest = self.input.split();
        self.input.extend_from_slice(bytes);
        self.input.extend_from_slice(&rest);
    }

    /// The client was heard from at `now` (a frame arrived, before its bytes are handled).
    pub fn note_received(&mut self, now: Instant) {
        self.liveness.received(now);
    }

    /// Something was sent to the client at `now`.
    pub fn note_sent(&mut self, now: Instant) {
        self.liveness.sent(now);
    }

    /// A transport is attached (a poll is waiting, a socket is open).
    pub fn transport_attached(&mut self) {
        self.transport_lost = None;
    }

    /// No transport is attached from `now` until the next poll or reconnect.
    pub fn transport_detached(&mut self, now: Instant) {
        self.transport_lost = Some(now);
    }

    /// The timers' checks at `now`: the handshake deadline; then the disconnect timeout,
    /// keep-alive and the client timeout. What they decide comes out of
    /// [`ConnectionCore::poll_output`].
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Handshake { deadline } if now >= deadline => self.refuse(HANDSHAKE_CANCELED.to_owned()),
            Phase::Hub | Phase::Raw => {
                if self
                    .transport_lost
                    .is_some_and(|lost| now.saturating_duration_since(lost) >= self.config.disconnect_timeout)
                {
                    self.close(Closing::TransportClosed);
                    return;
                }
                if self.phase == Phase::Raw {
                    return;
                }
                let due = self.liveness.due(now);
                if due.ping
                    && let Some(protocol) = self.protocol
                {
                    self.outputs.push_back(Output::KeepAlive(liveness::ping(protocol)));
                }
                if due.timed_out {
                    self.close(Closing::Failed {
                        exception_type: "OperationCanceledException",
                        message: CLIENT_TIMEOUT.to_owned(),
                        allow_reconnect: true,
                    });
                }
            }
            _ => {}
        }
    }

    /// The earliest instant a timer is due, if any is running: the shell calls
    /// [`ConnectionCore::handle_timeout`] at or after it (the server's shells check once a
    /// second, as the reference server does, so what is due is acted on at the next tick).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let lost = self.transport_lost.map(|lost| lost + self.config.disconnect_timeout);
        match self.phase {
            Phase::Handshake { deadline } => Some(deadline),
            Phase::Raw => lost,
            Phase::Hub => [lost, self.liveness.next_due()].into_iter().flatten().min(),
            Phase::Idle | Phase::Closed => None,
        }
    }

    /// The next thing for the shell to do, or `None` until more input or a timeout.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.pop_queued() {
            return Some(output);
        }
        if let Some(bytes) = self.passed.take() {
            return Some(Output::Received(bytes));
        }
        match self.phase {
            Phase::Hub => self.next_message(),
            Phase::Raw => self.next_raw(),
            _ => None,
        }
    }

    /// The next thing for the shell to do that is already decided (by the handshake or the
    /// timers), without reading further input.
    pub fn poll_queued(&mut self) -> Option<Output> {
        self.pop_queued()
    }

    /// The oldest decided output; the queue's allocation goes with its last entry.
    fn pop_queued(&mut self) -> Option<Output> {
        let output = self.outputs.pop_front()?;
        if self.outputs.is_empty() {
            self.outputs = VecDeque::new();
        }
        Some(output)
    }

    /// Whether the connection has closed (a Close output was given).
    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the connection reconnects statefully (negotiated, and a version 2 handshake
    /// or a raw connection that accepted it).
    pub fn reconnects(&self) -> bool {
        self.replay.as_ref().is_some_and(|replay| replay.is_active())
    }

    /// Whether the send buffer has room (always, without stateful reconnect); senders wait
    /// for acknowledgements otherwise.
    pub fn has_room(&self) -> bool {
        self.replay.as_ref().is_none_or(|replay| replay.has_room())
    }

    /// Numbers and keeps the tracked records of a payload about to be sent, when the
    /// connection reconnects statefully.
    pub fn record_sent(&mut self, payload: &Bytes) {
        if let (Some(replay), Some(protocol)) = (&mut self.replay, self.protocol)
            && replay.is_active()
        {
            replay.sent_records(protocol, payload);
        }
    }

    /// A new transport took over from a lost one: tracked messages wait for the client's
    /// Sequence.
    pub fn reconnected(&mut self) {
        if let Some(replay) = &mut self.replay {
            replay.reconnected();
        }
    }

    /// What a new transport sends first: Sequence and the records to replay.
    pub fn resume(&self) -> Option<Bytes> {
        let replay = self.replay.as_ref()?;
        Some(replay.resume(self.records_protocol()))
    }

    /// The Ack to send, if tracked messages arrived since the last one (sent about once a
    /// second by the writer of a connection that reconnects statefully).
    pub fn take_ack(&mut self) -> Option<Bytes> {
        let protocol = self.records_protocol();
        let sequence_id = self.replay.as_mut()?.ack_due()?;
        let mut out = Vec::new();
        let _ = protocol.write_message(&mut out, &HubMessage::Ack { sequence_id });
        Some(Bytes::from(out))
    }

    fn records_protocol(&self) -> Protocol {
        self.protocol.unwrap_or(Protocol::Json)
    }

    fn close(&mut self, closing: Closing) {
        self.phase = Phase::Closed;
        self.input = BytesMut::new();
        self.outputs.push_back(Output::Close(closing));
    }

    /// Refuses the handshake: the response with the error, then the end.
    fn refuse(&mut self, text: String) {
        self.outputs
            .push_back(Output::Transmit(handshake::write_response(Some(&text))));
        self.close(Closing::TransportClosed);
    }

    fn read_handshake(&mut self, now: Instant) {
        let request = match handshake::read_request(&mut self.input, self.config.max_message_size) {
            Ok(None) => return,
            Ok(Some(request)) => request,
            Err(ProtocolError::MessageTooLarge { .. }) => return self.refuse(HANDSHAKE_CANCELED.to_owned()),
            Err(error) => {
                let text = if self.config.detailed_errors {
                    format!("{UNEXPECTED_HANDSHAKE_ERROR} {}: {error}", error.exception_type())
                } else {
                    UNEXPECTED_HANDSHAKE_ERROR.to_owned()
                };
                return self.refuse(text);
            }
        };
        let protocol = match Protocol::from_name(&request.protocol) {
            Some(p) if self.config.supports(p) => p,
            _ => return self.refuse(format!("The protocol '{}' is not supported.", request.protocol)),
        };
        if request.version > protocol.version() {
            return self.refuse(format!(
                "The server does not support version {} of the '{}' protocol.",
                request.version,
                protocol.name()
            ));
        }
        if !(self.config.format_supported)(protocol.transfer_format()) {
            return self.refuse(format!(
                "Cannot use the '{}' protocol on the current transport. The transport does not support '{}' transfer format.",
                protocol.name(),
                protocol.transfer_format().as_str()
            ));
        }
        self.phase = Phase::Hub;
        self.protocol = Some(protocol);
        self.liveness.received(now);
        self.outputs.push_back(Output::Opened(protocol));
        self.outputs
            .push_back(Output::Transmit(handshake::write_response(None)));
        // Stateful reconnect needs version 2; an older client just does not get it.
        if request.version >= 2
            && let Some(replay) = &mut self.replay
        {
            replay.activate();
        }
    }

    fn fail(&mut self, error: ProtocolError) -> Option<Output> {
        self.close(Closing::Failed {
            exception_type: error.exception_type(),
            message: error.to_string(),
            allow_reconnect: true,
        });
        self.pop_queued()
    }

    /// The next hub message to dispatch; pings, Ack, Sequence, duplicates and the client's
    /// Close are handled here.
    fn next_message(&mut self) -> Option<Output> {
        let protocol = self.protocol?;
        loop {
            let message = match read_message(protocol, &mut self.input, self.config.max_message_size) {
                Ok(Some(message)) => message,
                Ok(None) => return None,
                Err(error) => return self.fail(error),
            };
            if framing::is_tracked(message.type_id())
                && let Some(replay) = &mut self.replay
                && !replay.accept()
            {
                // A duplicate replayed after a reconnect, or a message before the Sequence.
                continue;
            }
            match message {
                HubMessage::Ping => self.liveness.arm(),
                HubMessage::Ack { sequence_id } => {
                    if let Some(replay) = &mut self.replay {
                        replay.on_ack(sequence_id);
                        return Some(Output::Acknowledged);
                    }
                }
                HubMessage::Sequence { sequence_id } => {
                    if let Some(replay) = &mut self.replay
                        && let Err(text) = replay.on_sequence(sequence_id)
                    {
                        self.close(Closing::Failed {
                            exception_type: "InvalidOperationException",
                            message: text.to_owned(),
                            allow_reconnect: false,
                        });
                        return self.pop_queued();
                    }
                }
                HubMessage::Close(Close { error, .. }) => {
                    self.close(Closing::Graceful { error });
                    return self.pop_queued();
                }
                message => return Some(Output::Message(message)),
            }
        }
    }

    /// The next bytes of a raw connection for its handler.
    fn next_raw(&mut self) -> Option<Output> {
        let relayed = self.protocol.filter(|_| self.filters_records());
        let Some(protocol) = relayed else {
            return (!self.input.is_empty()).then(|| Output::Received(self.input.split().freeze()));
        };
        match self.take_records(protocol) {
            Ok((kept, acknowledged)) => {
                let received = (!kept.is_empty()).then_some(Output::Received(kept));
                match (acknowledged, received) {
                    (true, received) => {
                        self.outputs.extend(received);
                        Some(Output::Acknowledged)
                    }
                    (false, received) => received,
                }
            }
            Err(error) => {
                let mut close = Vec::new();
                let message = HubMessage::Close(Close {
                    error: Some(format!("Connection closed with an error. {error}")),
                    allow_reconnect: false,
                });
                let _ = protocol.write_message(&mut close, &message);
                self.outputs.push_back(Output::Transmit(Bytes::from(close)));
                self.close(Closing::Graceful { error: None });
                self.pop_queued()
            }
        }
    }

    /// Splits the whole records off the input, handles the client's Ack and Sequence
    /// messages, drops tracked messages already received, and returns the rest, framing
    /// included, and whether an Ack came.
    fn take_records(&mut self, protocol: Protocol) -> Result<(Bytes, bool), String> {
        const ACK: u8 = 8;
        const SEQUENCE: u8 = 9;
        let mut kept = BytesMut::new();
        let mut acknowledged = false;
        let Some(replay) = self.replay.as_mut() else {
            return Ok((self.input.split().freeze(), false));
        };
        while let Some(record) = framing::split_framed_record(protocol, &mut self.input, self.config.max_message_size)
            .map_err(|e| e.to_string())?
        {
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
                        Ok(Some(HubMessage::Ack { sequence_id })) => {
                            replay.on_ack(sequence_id);
                            acknowledged = true;
                        }
                        Ok(Some(HubMessage::Sequence { sequence_id })) => replay.on_sequence(sequence_id)?,
                        Ok(_) => {}
                        Err(error) => return Err(error.to_string()),
                    }
                }
                Some(kind) if framing::is_tracked(kind) => {
                    if replay.accept() {
                        kept.extend_from_slice(&record);
                    }
                }
                _ => kept.extend_from_slice(&record),
            }
        }
        Ok((kept.freeze(), acknowledged))
    }
}

/// Splits the next whole record of `protocol` off `input` (within `max_size`) and parses it;
/// records of message types this implementation does not know are skipped. `None` until a
/// whole record has arrived.
pub(crate) fn read_message(
    protocol: Protocol,
    input: &mut BytesMut,
    max_size: Option<usize>,
) -> Result<Option<HubMessage>, ProtocolError> {
    loop {
        let Some(record) = protocol.split_record(input, max_size)? else {
            return Ok(None);
        };
        if let Some(message) = protocol.parse_record(record)? {
            return Ok(Some(message));
        }
    }
}

#[cfg(test)]
#[path = "connection_core_tests.rs"]
mod tests;
