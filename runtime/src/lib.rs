//! Switchboard: SignalR-compatible real-time hubs for Rust.
//!
//! Map a [`Hub`] at a path, serve the [`Switchboard::router`] with axum, and point any
//! official SignalR client (JavaScript, .NET, Java, Python…) at it: the JSON and MessagePack
//! hub protocols, negotiate and the transports are SignalR's own.
#![deny(missing_docs)]

mod app;
#[cfg(feature = "redis")]
pub mod backplane;
#[cfg(feature = "client")]
pub mod client;
mod connection;
mod error;
pub mod hub;
pub mod jwt;
pub mod lifetime;
mod options;
pub mod protocol;
pub mod queue;
mod serve;
pub mod service;
pub mod tls;
pub mod transport;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

#[doc = include_str!("docs/client.md")]
pub use switchboard_macros::client;
#[doc = include_str!("docs/hub.md")]
pub use switchboard_macros::hub;

pub use app::{AppHandle, Switchboard, SwitchboardBuilder};
pub use connection::claims::Claims;
pub use connection::migration::Migration;
pub use connection::request::RequestInfo;
pub use error::{BuildError, HubError};
pub use hub::{
    ClientContract, ClientProxy, Clients, Groups, Hub, HubClients, HubContext, HubHandle, HubStream, Methods,
    SingleClientProxy, Untyped,
};
pub use lifetime::{OutboundMessage, Presence, Target};
pub use options::{HubOptions, TransportType};
pub use protocol::values;
pub use serve::{REQUEST_HEADER_TIMEOUT, Serve, serve};
pub use transport::HttpHandler;
pub use transport::auth::{Authenticator, JwtBearer};
