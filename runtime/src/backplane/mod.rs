//! Scale-out for self-hosted hubs (feature `redis`): several app servers share each hub's
//! connections through Redis pub/sub, as ASP.NET Core's `AddStackExchangeRedis` does, on its
//! channels and with its message envelope byte for byte ([`envelope`]), so a Switchboard
//! server and an ASP.NET Core server can share one backplane while an app moves over.
//!
//! ```no_run
//! # use switchboard::{Hub, Methods, Switchboard};
//! # struct Chat;
//! # impl Hub for Chat { type Client = switchboard::Untyped; fn methods(_: &mut Methods<Self>) {} }
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use switchboard::backplane::RedisBackplane;
//!
//! let app = Switchboard::builder()
//!     // The channels ASP.NET Core uses for its hub `MyApp.Hubs.Chat`.
//!     .with_redis_backplane(RedisBackplane::new("redis://127.0.0.1:6379/").channel_prefix(|hub| format!("MyApp.Hubs.{hub}")))
//!     .hub("/chat", Chat)
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! What crosses servers: sends to all, groups, users and connections; group changes for a
//! connection on another server (acknowledged by that server; 30 s without an ack fails
//! with `TaskCanceledException`, as in ASP.NET Core); client results from a connection on
//! another server. Like ASP.NET Core's, the backplane keeps nothing: while Redis is away
//! sends fail and what is published is lost; subscriptions are made again when it is back.
//! A send to several groups or users is published once per group or user (a connection in
//! two of them gets it twice, as with ASP.NET Core).

mod channels;
pub mod envelope;
mod redis_manager;

use std::sync::Arc;

pub(crate) use redis_manager::RedisLifetimeManager;

type PrefixFn = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The Redis backplane's settings ([`SwitchboardBuilder::with_redis_backplane`](crate::SwitchboardBuilder::with_redis_backplane)).
#[derive(Clone)]
pub struct RedisBackplane {
    pub(crate) url: String,
    pub(crate) server_name: Option<String>,
    pub(crate) prefix: PrefixFn,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisBackplane")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl RedisBackplane {
    /// A backplane on the Redis at `url` (`redis://[user:password@]host:port/[db]`, or
    /// `redis+unix:///path`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            server_name: None,
            prefix: Arc::new(str::to_owned),
        }
    }

    /// The channels' prefix for each hub, given the hub's name (its type's name, as `Chat`).
    /// By default the name itself; to share channels with an ASP.NET Core server, give the
    /// .NET hub's full type name (and any `ChannelPrefix` before it).
    pub fn channel_prefix(mut self, prefix: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.prefix = Arc::new(prefix);
        self
    }

    /// This server's name on the backplane (its ack and result channels). Default:
    /// `{hostname}_{random}`, different for each app.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }
}
