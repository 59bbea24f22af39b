//! Per-hub options, with the reference server's defaults.

use std::time::Duration;

use crate::error::BuildError;
use crate::protocol::Protocol;

/// A transport a hub endpoint can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportType {
    /// WebSockets (full duplex).
    WebSockets,
    /// Server-Sent Events for receiving, HTTP POST for sending.
    ServerSentEvents,
    /// Long polling for receiving, HTTP POST for sending.
    LongPolling,
}

impl TransportType {
    /// The transport's name on the wire (`WebSockets`, `ServerSentEvents`, `LongPolling`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransportType::WebSockets => "WebSockets",
            TransportType::ServerSentEvents => "ServerSentEvents",
            TransportType::LongPolling => "LongPolling",
        }
    }
}

/// Options of one hub endpoint.
///
/// | option | default |
/// |---|---|
/// | `enable_detailed_errors` | false |
/// | `maximum_receive_message_size` | 32 KiB (`None`: unlimited) |
/// | `keep_alive_interval` | 15 s |
/// | `client_timeout_interval` | 30 s |
/// | `handshake_timeout` | 15 s |
/// | `maximum_parallel_invocations_per_client` | 1 |
/// | `stream_buffer_capacity` | 10 |
/// | `client_result_timeout` | 30 s |
/// | `supported_protocols` | JSON and MessagePack |
/// | `transports` | every transport the runtime implements |
/// | `max_queued_messages` | 4096 messages waiting for one connection's transport |
/// | `max_queued_bytes` | 4 MiB of messages waiting for one connection's transport |
/// | `transport_send_timeout` | 10 s for one write to the transport |
/// | `disconnect_timeout` | 15 s to attach a transport after negotiate, or between polls |
/// | `long_polling_timeout` | 90 s a poll waits for data |
/// | `require_authorization` | false |
/// | `allow_stateful_reconnects` | false |
/// | `stateful_reconnect_buffer_size` | 100,000 bytes |
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Show the type and message of internal errors to clients.
    pub enable_detailed_errors: bool,
    /// The largest hub message (and handshake) a client may send, in bytes.
    pub maximum_receive_message_size: Option<usize>,
    /// Send a Ping after this long without sending anything.
    pub keep_alive_interval: Duration,
    /// Close a connection that sent nothing for this long (armed by its first Ping).
    pub client_timeout_interval: Duration,
    /// How long a client has to complete the handshake.
    pub handshake_timeout: Duration,
    /// How many non-streaming invocations of one client may run at once; more wait.
    pub maximum_parallel_invocations_per_client: usize,
    /// Items buffered per client-to-server stream.
    pub stream_buffer_capacity: usize,
    /// How long a client result is awaited before the call fails (per hub type: the first
    /// endpoint of the type sets it).
    pub client_result_timeout: Duration,
    /// The hub protocols clients may choose.
    pub supported_protocols: Vec<Protocol>,
    /// The transports offered, in the order clients should try them.
    pub transports: Vec<TransportType>,
    /// The bound of a connection's outbound queue, in messages. A connection whose queue
    /// is full when another message is sent to it is closed with an error: a client that
    /// does not read cannot make the server hold unbounded memory.
    pub max_queued_messages: usize,
    /// The bound of a connection's outbound queue, in bytes, with the same outcome as
    /// [`max_queued_messages`](Self::max_queued_messages): a message that would take the
    /// queued bytes past it closes the connection. A single message larger than this still
    /// goes when nothing else is queued. Stream items and results wait for room instead.
    pub max_queued_bytes: usize,
    /// A single write to a transport that takes longer than this closes the connection.
    pub transport_send_timeout: Duration,
    /// How long a negotiated connection waits for its transport, and how long a connection
    /// may be without one (between long polls) before it ends.
    pub disconnect_timeout: Duration,
    /// How long a long poll waits for data before answering empty.
    pub long_polling_timeout: Duration,
    /// Refuse requests without a valid bearer token (401 with an empty body).
    pub require_authorization: bool,
    /// Let clients that ask for it reconnect a dropped WebSocket to the same connection,
    /// with no message lost or repeated.
    pub allow_stateful_reconnects: bool,
    /// The bytes of unacknowledged messages kept for replay per connection; when full, the
    /// connection stops sending until the client acknowledges.
    pub stateful_reconnect_buffer_size: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            enable_detailed_errors: false,
            maximum_receive_message_size: Some(32 * 1024),
            keep_alive_interval: Duration::from_secs(15),
            client_timeout_interval: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            maximum_parallel_invocations_per_client: 1,
            stream_buffer_capacity: 10,
            client_result_timeout: Duration::from_secs(30),
            supported_protocols: Protocol::ALL.to_vec(),
            transports: vec![
                TransportType::WebSockets,
                TransportType::ServerSentEvents,
                TransportType::LongPolling,
            ],
            max_queued_messages: 4096,
            max_queued_bytes: 4 << 20,
            transport_send_timeout: Duration::from_secs(10),
            disconnect_timeout: Duration::from_secs(15),
            long_polling_timeout: Duration::from_secs(90),
            require_authorization: false,
            allow_stateful_reconnects: false,
            stateful_reconnect_buffer_size: 100_000,
        }
    }
}

impl HubOptions {
    /// Checks the options, naming the first bad one.
    pub fn validate(&self) -> Result<(), BuildError> {
        let positive = [
            ("keep_alive_interval", self.keep_alive_interval),
            ("client_timeout_interval", self.client_timeout_interval),
            ("handshake_timeout", self.handshake_timeout),
            ("transport_send_timeout", self.transport_send_timeout),
            ("disconnect_timeout", self.disconnect_timeout),
            ("long_polling_timeout", self.long_polling_timeout),
            ("client_result_timeout", self.client_result_timeout),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(BuildError::new(format!("HubOptions.{name} must be greater than zero.")));
            }
        }
        if self.maximum_parallel_invocations_per_client == 0 {
            return Err(BuildError::new(
                "HubOptions.maximum_parallel_invocations_per_client must be at least 1.",
            ));
        }
        if self.stream_buffer_capacity == 0 {
            return Err(BuildError::new("HubOptions.stream_buffer_capacity must be at least 1."));
        }
        if self.stateful_reconnect_buffer_size == 0 {
            return Err(BuildError::new(
                "HubOptions.stateful_reconnect_buffer_size must be at least 1.",
            ));
        }
        if self.max_queued_messages == 0 {
            return Err(BuildError::new("HubOptions.max_queued_messages must be at least 1."));
        }
        if self.max_queued_bytes == 0 {
            return Err(BuildError::new("HubOptions.max_queued_bytes must be at least 1."));
        }
        if self.maximum_receive_message_size == Some(0) {
            return Err(BuildError::new(
                "HubOptions.maximum_receive_message_size must be greater than zero, or None for no limit.",
            ));
        }
        if self.supported_protocols.is_empty() {
            return Err(BuildError::new(
                "HubOptions.supported_protocols must name at least one protocol.",
            ));
        }
        if self.transports.is_empty() {
            return Err(BuildError::new(
                "HubOptions.transports must name at least one transport.",
            ));
        }
        if self.client_timeout_interval < self.keep_alive_interval {
            return Err(BuildError::new(
                "HubOptions.client_timeout_interval must not be shorter than keep_alive_interval (twice it is recommended).",
            ));
        }
        Ok(())
    }
}
