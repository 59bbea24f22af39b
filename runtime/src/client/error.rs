//! The one error type of the client.

use std::fmt;

/// An error of the client.
///
/// Ask what kind it is with the `is_*()` queries; [`message`](ClientError::message) gives the
/// text without any prefix (for a hub error, exactly the `error` of the server's Completion).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientError {
    kind: Kind,
    message: String,
    prefix: Option<&'static str>,
    status: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hub,
    Disconnected,
    Timeout,
    Protocol,
    Http,
    Io,
    Config,
}

impl ClientError {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            prefix: None,
            status: None,
        }
    }

    /// The server's Completion error.
    pub(crate) fn hub(message: impl Into<String>) -> Self {
        Self::new(Kind::Hub, message)
    }

    pub(crate) fn disconnected(message: impl Into<String>) -> Self {
        Self::new(Kind::Disconnected, message)
    }

    /// The server's Close message carried an error.
    pub(crate) fn server_closed(message: impl Into<String>) -> Self {
        Self {
            prefix: Some("Server returned an error on close: "),
            ..Self::new(Kind::Disconnected, message)
        }
    }

    pub(crate) fn timeout(message: impl Into<String>) -> Self {
        Self::new(Kind::Timeout, message)
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::new(Kind::Protocol, message)
    }

    /// The server refused the handshake.
    pub(crate) fn handshake(message: impl Into<String>) -> Self {
        Self {
            prefix: Some("Server returned handshake error: "),
            ..Self::new(Kind::Protocol, message)
        }
    }

    pub(crate) fn http(status: Option<u16>, message: impl Into<String>) -> Self {
        Self {
            status,
            ..Self::new(Kind::Http, message)
        }
    }

    pub(crate) fn io(message: impl fmt::Display) -> Self {
        Self::new(Kind::Io, message.to_string())
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(Kind::Config, message)
    }

    pub(crate) fn not_connected() -> Self {
        Self::disconnected("Cannot send data if the connection is not in the 'Connected' State.")
    }

    pub(crate) fn connection_closed() -> Self {
        Self::disconnected("Invocation canceled due to the underlying connection being closed.")
    }

    /// The text of the error, without prefix: for a hub error, exactly the server's text.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the server completed the invocation with an error (its Completion's `error`).
    pub fn is_hub_error(&self) -> bool {
        self.kind == Kind::Hub
    }

    /// Whether the connection is not connected, or was lost or closed while the operation
    /// waited (including a Close message with an error from the server).
    pub fn is_disconnected(&self) -> bool {
        self.kind == Kind::Disconnected
    }

    /// Whether something took too long: the handshake, or the server was silent for longer
    /// than the server timeout.
    pub fn is_timeout(&self) -> bool {
        self.kind == Kind::Timeout
    }

    /// Whether the server sent something that breaks the protocol, refused the handshake, or
    /// a value could not be encoded or decoded.
    pub fn is_protocol(&self) -> bool {
        self.kind == Kind::Protocol
    }

    /// Whether an HTTP request failed: negotiate or the WebSocket upgrade answered with an
    /// error status (see [`status`](ClientError::status)), or negotiate answered with an
    /// `error` (then `status()` is `None` and [`message`](ClientError::message) is its text).
    pub fn is_http(&self) -> bool {
        self.kind == Kind::Http
    }

    /// The HTTP status of a failed request, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Whether the network failed: the server could not be reached, or a socket broke while
    /// connecting.
    pub fn is_io(&self) -> bool {
        self.kind == Kind::Io
    }

    /// Whether the URL or the options are not usable (for example an `ftp://` URL, or a
    /// header that is not valid HTTP).
    pub fn is_config(&self) -> bool {
        self.kind == Kind::Config
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(prefix) = self.prefix {
            f.write_str(prefix)?;
        }
        f.write_str(&self.message)
    }
}

impl fmt::Debug for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClientError");
        d.field("kind", &self.kind).field("message", &self.to_string());
        if let Some(status) = self.status {
            d.field("status", &status);
        }
        d.finish()
    }
}

impl std::error::Error for ClientError {}

impl From<crate::protocol::ProtocolError> for ClientError {
    fn from(error: crate::protocol::ProtocolError) -> Self {
        ClientError::protocol(error.to_string())
    }
}
