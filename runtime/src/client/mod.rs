//! A Rust SignalR client (feature `client`): negotiate, WebSockets, the JSON and MessagePack
//! hub protocols, keep-alive, server timeout, automatic reconnect, streams both ways and
//! client results. The typed clients that `#[hub]` generates sit on it; it also talks to
//! any ASP.NET Core SignalR server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard::client::ClientError> {
//! use switchboard::client::{ClientOptions, HubConnection};
//!
//! let connection = HubConnection::new("http://127.0.0.1:5000/chat", ClientOptions::default())?;
//! connection.on("Receive", |(user, text): (String, String)| async move {
//!     println!("{user}: {text}");
//!     Ok::<_, String>(())
//! });
//! connection.start().await?;
//! let echoed: String = connection.invoke("Echo", ("hello",)).await?;
//! connection.send("Broadcast", ("me", echoed)).await?;
//! connection.stop().await;
//! # Ok(()) }
//! ```
//!
//! # What it speaks
//!
//! - **`http`/`ws`, and `https`/`wss` over TLS** (rustls; servers are trusted by the system's
//!   roots and those added with [`tls::add_trusted_roots`](crate::tls::add_trusted_roots)).
//! - **WebSockets only** (no Server-Sent Events or long polling): negotiate must offer
//!   WebSockets with the transfer format of the protocol (`Text` for JSON, `Binary` for
//!   MessagePack).
//! - **Negotiate** `POST {url}/negotiate?negotiateVersion=1` (the URL's query kept), over
//!   one HTTP/1.1 connection made for it with hyper's connection-level client; version 1
//!   uses the `connectionToken` as the WebSocket's `id`, version 0 the `connectionId`.
//!   Redirects (`{url, accessToken}`) are followed up to 100 times; an `error` body fails
//!   with its text; another status than 200 fails with an HTTP error carrying it.
//! - **Access tokens** go as `Authorization: Bearer` on negotiate and as the
//!   `access_token` query parameter on the WebSocket.
//! - Invocation ids are `"0"`, `"1"`, … shared with stream ids, as the TypeScript client
//!   numbers them. Stateful reconnect (Ack/Sequence) is not used: a reconnect is a new
//!   connection with a new connection id, and whatever was pending on the old one fails.

mod arguments;
mod connection;
mod driver;
mod endpoint;
mod error;
mod negotiate;
mod options;
mod stream;
mod transport;

pub use connection::HubConnection;
pub use error::ClientError;
pub use options::{ClientOptions, ConnectionState};
pub use stream::ClientStream;
