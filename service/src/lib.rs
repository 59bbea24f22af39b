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
//!
//! # Modules
//!
//! From the top down; each imports only from those below it, so they form no circle:
//!
//! - `relay`: the running relay ([`Relay`]): the HTTP app assembled from both faces, bound to
//!   a listener until shut down.
//! - `client_face`: one task per client connection, tunnelling its bytes to the app server
//!   it is pinned to.
//! - `server_face`: the app servers' WebSockets at `/server` (the service link's shell), and
//!   in `server_face::messages` what the relay does with each message an app server sends.
//! - `state`: what both faces share: every hub, each hub's server connections, clients and
//!   memberships, and the relay-wide settings, keys and shutdown signal. It imports neither
//!   face.
//! - `cluster`: the relay cluster on Redis (`--redis`): the node registry, what nodes publish
//!   to one another, and queries across nodes. It knows nothing of hubs: the server face's
//!   `remote` module applies what other nodes send.
//! - `auth` (access tokens), `config` ([`Config`]), `metrics` (counters and `GET /metrics`)
//!   and `error` ([`Error`]) at the bottom.
#![deny(missing_docs)]

mod auth;
mod client_face;
mod cluster;
mod config;
mod error;
mod limits;
mod metrics;
mod record_boundary;
mod relay;
mod server_face;
mod state;

pub use config::{Command, Config, HELP};
pub use error::Error;
pub use limits::Limits;
pub use relay::{Relay, ShutdownHandle};
