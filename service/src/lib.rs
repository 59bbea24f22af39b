//! The Switchboard relay: holds client connections and tunnels them to app servers over
//! multiplexed server connections, speaking the Azure SignalR Service server protocol.
//!
//! - Clients (any official SignalR client) negotiate and connect at `/client/?hub=HUB`, over
//!   WebSockets, Server-Sent Events or long polling, with a token an app server minted.
//! - App servers connect WebSockets at `/server/?hub=HUB&cid=ID` and speak the service
//!   protocol ([`switchboard::protocol::service`]): each client is pinned to one of its hub's
//!   server connections (`OpenConnection`, then its bytes as `ConnectionData`), and the app's
//!   broadcasts, group and user sends fan out here.
//! - `GET /api/health` and `GET /metrics` (Prometheus) watch it.
//!
//! Embed one, for tests or in a bigger program:
//!
//! ```no_run
//! # async fn run() -> Result<(), switchboard_service::Error> {
//! use switchboard_service::{Config, Relay};
//!
//! let relay = Relay::bind(Config::new("my-access-key").listen("127.0.0.1:0")).await?;
//! let connection_string = relay.connection_string();
//! // … point app servers at `connection_string`, clients at their app servers …
//! relay.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod auth;
mod client;
mod config;
mod dispatch;
mod hub;
mod hubs;
mod link;
mod metrics;
mod relay;
mod server;

pub use config::{Command, Config, HELP};
pub use relay::{Relay, ShutdownHandle};

/// Why the relay could not start.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<std::io::Error>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Config,
    Io,
}

impl Error {
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Config,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn io(message: impl Into<String>, source: std::io::Error) -> Self {
        Error {
            kind: ErrorKind::Io,
            message: message.into(),
            source: Some(source),
        }
    }

    /// Whether the settings are invalid (the command line, environment or config file).
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::Config
    }

    /// Whether an I/O operation failed (such as binding the listen address).
    pub fn is_io(&self) -> bool {
        self.kind == ErrorKind::Io
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}
