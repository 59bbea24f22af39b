//! The options of a client connection, and the states it goes through.

use std::time::Duration;

use crate::protocol::Protocol;

/// Options of a connection.
///
/// | option | default |
/// |---|---|
/// | `protocol` | [`Protocol::Json`] |
/// | `access_token` | none |
/// | `headers` | none |
/// | `skip_negotiation` | false |
/// | `reconnect_delays` | 0 s, 2 s, 10 s, 30 s (then give up), like the TypeScript client's `withAutomaticReconnect()` |
/// | `server_timeout` | 30 s |
/// | `keep_alive_interval` | 15 s |
/// | `handshake_timeout` | 15 s |
#[derive(Clone)]
pub struct ClientOptions {
    /// The hub protocol: JSON (WebSocket text frames) or MessagePack (binary frames).
    pub protocol: Protocol,
    /// A bearer token, sent as `Authorization: Bearer` on negotiate and as the
    /// `access_token` query parameter on the WebSocket request (as browsers do). A negotiate
    /// redirect that carries its own token replaces it until the next reconnect.
    pub access_token: Option<String>,
    /// Extra request headers, sent on negotiate and on the WebSocket upgrade request.
    pub headers: Vec<(String, String)>,
    /// Connect the WebSocket directly, without negotiate (the connection then has no
    /// connection id on the client).
    pub skip_negotiation: bool,
    /// Automatic reconnect: the delay before each attempt, one attempt per entry, after the
    /// connection was lost (the transport ended without the server closing it, or the server
    /// closed it with `allowReconnect`). `None` turns automatic reconnect off.
    pub reconnect_delays: Option<Vec<Duration>>,
    /// Close the connection when nothing was received from the server for this long.
    pub server_timeout: Duration,
    /// Send a Ping when nothing was sent for this long.
    pub keep_alive_interval: Duration,
    /// How long the server has to answer the handshake.
    pub handshake_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            protocol: Protocol::Json,
            access_token: None,
            headers: Vec::new(),
            skip_negotiation: false,
            reconnect_delays: Some([0, 2, 10, 30].into_iter().map(Duration::from_secs).collect()),
            server_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(15),
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The access token is a secret: only whether there is one is shown.
        f.debug_struct("ClientOptions")
            .field("protocol", &self.protocol)
            .field("access_token", &self.access_token.as_ref().map(|_| "<redacted>"))
            .field(
                "headers",
                &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("skip_negotiation", &self.skip_negotiation)
            .field("reconnect_delays", &self.reconnect_delays)
            .field("server_timeout", &self.server_timeout)
            .field("keep_alive_interval", &self.keep_alive_interval)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Not connected: never started, stopped, or closed for good.
    Disconnected,
    /// Starting: negotiating, opening the WebSocket, or waiting for the handshake.
    Connecting,
    /// Connected: invocations and sends go through.
    Connected,
    /// The connection was lost and is being re-established; invocations and sends fail.
    Reconnecting,
}
