//! The client side of one SignalR connection, sans-IO: the handshake request and the
//! server's response within the handshake timeout, reading hub messages within the size
//! limit, keep-alive pings (one due at once, then after the keep-alive interval without
//! sends),
//! the server timeout, and the server's Close.
//!
//! The counterpart of the server's [`ConnectionCore`](super::connection_core::ConnectionCore),
//! and driven the same way: its shell feeds it what arrives ([`ClientCore::handle_input`]),
//! tells it the time when a timer may be due ([`ClientCore::handle_timeout`], at or after
//! [`ClientCore::poll_timeout`]), and carries out what it asks for
//! ([`ClientCore::poll_output`]). Both read records with
//! [`read_message`](super::connection_core::read_message) and keep time with [`Liveness`];
//! the handshake is [`handshake`](super::handshake)'s. Stateful reconnect is not spoken: the
//! handshake asks for version 1.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::connection_core::read_message;
use super::handshake::{self, HandshakeRequest};
use super::liveness::{self, Liveness};
use super::{Close, HubMessage, Protocol, ProtocolError};

/// The error of a server that did not answer the handshake within the handshake timeout.
pub(crate) const HANDSHAKE_TIMEOUT: &str = "The server did not answer the handshake in time.";

/// The error of a server that sent nothing for the server timeout.
pub(crate) const SERVER_TIMEOUT: &str = "Server timeout elapsed without receiving a message from the server.";

/// What governs a client connection.
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    /// The hub protocol the handshake asks for.
    pub protocol: Protocol,
    /// How long the server has to answer the handshake.
    pub handshake_timeout: Duration,
    /// Send a ping after this long without sending anything.
    pub keep_alive_interval: Duration,
    /// Give up after this long without receiving anything.
    pub server_timeout: Duration,
    /// The largest record (and handshake response) accepted; `None` for no limit.
    pub max_message_size: Option<usize>,
}

/// How a client connection ends, as the core sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClientClosing {
    /// The server refused the handshake with this error.
    Refused(String),
    /// The server did not answer the handshake in time ([`HANDSHAKE_TIMEOUT`]).
    HandshakeTimeout,
    /// What the server sent breaks the protocol (the handshake response or a record).
    Invalid(ProtocolError),
    /// The server sent nothing for the server timeout ([`SERVER_TIMEOUT`]).
    ServerTimeout,
    /// The server's Close message.
    Closed {
        /// The error it carried, if any.
        error: Option<String>,
        /// Whether it allows the client to reconnect.
        allow_reconnect: bool,
    },
}

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClientOutput {
    /// Send the handshake request (as a text frame, whatever the hub protocol).
    Handshake(Bytes),
    /// The server accepted the handshake: hub messages follow (whatever came after the
    /// response is already in the core).
    Opened,
    /// Send this ping if the queue has room (a full queue already has data to send). The
    /// first is due as soon as the handshake is done.
    KeepAlive(Bytes),
    /// A message from the server (pings and its Close are the core's).
    Message(HubMessage),
    /// The connection ends.
    Close(ClientClosing),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the server's handshake response until `deadline`.
    Handshake { deadline: Instant },
    /// The handshake is done: hub messages.
    Open,
    /// Closed: nothing more is read.
    Closed,
}

/// One client connection's state (see the module documentation).
#[derive(Debug)]
pub(crate) struct ClientCore {
    phase: Phase,
    config: ClientConfig,
    /// Bytes received and not handled yet.
    input: BytesMut,
    /// What the shell has to do, oldest first (a few at most: each input or timeout adds one
    /// or two, and the shell drains them before feeding more).
    outputs: VecDeque<ClientOutput>,
    /// Keep-alive and the server timeout, which runs from the start.
    liveness: Liveness,
}

impl ClientCore {
    /// A connection whose transport opened at `now`: its first output is the handshake
    /// request, whose response is due by `now` plus the handshake timeout.
    pub fn new(now: Instant, config: ClientConfig) -> Self {
        let request = handshake::write_request(&HandshakeRequest {
            protocol: config.protocol.name().to_owned(),
            version: 1,
        });
        Self {
            phase: Phase::Handshake {
                deadline: now + config.handshake_timeout,
            },
            liveness: Liveness::new(now, Some(config.keep_alive_interval), config.server_timeout, true),
            config,
            input: BytesMut::new(),
            outputs: VecDeque::from([ClientOutput::Handshake(request)]),
        }
    }

    /// The hub protocol of the connection.
    pub fn protocol(&self) -> Protocol {
        self.config.protocol
    }

    /// Bytes from the server, received at `now`.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.liveness.received(now);
        if self.phase == Phase::Closed {
            return;
        }
        self.input.extend_from_slice(bytes);
        if let Phase::Handshake { .. } = self.phase {
            self.read_response(now);
        }
    }

    /// The server was heard from at `now` (any frame, data or not).
    pub fn note_received(&mut self, now: Instant) {
        self.liveness.received(now);
    }

    /// Something was sent to the server at `now`.
    pub fn note_sent(&mut self, now: Instant) {
        self.liveness.sent(now);
    }

    /// The timers' checks at `now`: the handshake deadline; then keep-alive and the server
    /// timeout. What they decide comes out of [`ClientCore::poll_output`].
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Handshake { deadline } if now >= deadline => self.close(ClientClosing::HandshakeTimeout),
            Phase::Open => {
                let due = self.liveness.due(now);
                if due.ping {
                    self.ping(now);
                }
                if due.timed_out {
                    self.close(ClientClosing::ServerTimeout);
                }
            }
            _ => {}
        }
    }

    /// The earliest instant a timer is due, if any is running: the shell calls
    /// [`ClientCore::handle_timeout`] at or after it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Handshake { deadline } => Some(deadline),
            Phase::Open => self.liveness.next_due(),
            Phase::Closed => None,
        }
    }

    /// The next thing for the shell to do, or `None` until more input or a timeout.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        if self.phase != Phase::Open {
            return None;
        }
        loop {
            match read_message(self.config.protocol, &mut self.input, self.config.max_message_size) {
                Ok(None) => return None,
                Err(error) => {
                    self.close(ClientClosing::Invalid(error));
                    return self.outputs.pop_front();
                }
                // A ping only proves the server is there, which its arrival already noted.
                Ok(Some(HubMessage::Ping)) => {}
                Ok(Some(HubMessage::Close(Close { error, allow_reconnect }))) => {
                    self.close(ClientClosing::Closed { error, allow_reconnect });
                    return self.outputs.pop_front();
                }
                Ok(Some(message)) => return Some(ClientOutput::Message(message)),
            }
        }
    }

    /// The next thing for the shell to do that is already decided (by the handshake or the
    /// timers), without reading further input.
    pub fn poll_queued(&mut self) -> Option<ClientOutput> {
        self.outputs.pop_front()
    }

    /// Whether the connection has closed (a Close output was given).
    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Queues a ping, which counts as sent: the next is due an interval later, whether or
    /// not the shell's queue had room for this one.
    fn ping(&mut self, now: Instant) {
        self.outputs
            .push_back(ClientOutput::KeepAlive(liveness::ping(self.config.protocol)));
        self.liveness.sent(now);
    }

    fn close(&mut self, closing: ClientClosing) {
        self.phase = Phase::Closed;
        self.input = BytesMut::new();
        self.outputs.push_back(ClientOutput::Close(closing));
    }

    fn read_response(&mut self, now: Instant) {
        match handshake::read_response(&mut self.input, self.config.max_message_size) {
            Ok(None) => {}
            Ok(Some(response)) => match response.error {
                Some(error) => self.close(ClientClosing::Refused(error)),
                None => {
                    self.phase = Phase::Open;
                    self.liveness.received(now);
                    self.outputs.push_back(ClientOutput::Opened);
                    // A ping at once (at the shell's next timer check, unless something is
                    // sent first) arms the server's client timeout.
                    self.liveness.ping_at(now);
                }
            },
            Err(error) => self.close(ClientClosing::Invalid(error)),
        }
    }
}

#[cfg(test)]
#[path = "client_core_tests.rs"]
mod tests;
