//! Lifetime managers: who is connected, who is in which group, and how a send reaches its
//! targets. This is the one seam where hosting modes differ; hub code is the same in all.
//!
//! A send is prepared once as an [`OutboundMessage`], which encodes itself at most once per
//! protocol; every target connection gets a clone of the same `Bytes`.

mod local;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::future::BoxFuture;

pub(crate) use local::{LocalLifetimeManager, invoke_found};

use crate::HubError;
use crate::connection::Connection;
use crate::protocol::membership::{Excluded, Recipients};
use crate::protocol::{CompletionResult, Protocol, ProtocolError};

type Encoder = Box<dyn Fn(Protocol, Option<&str>, &mut Vec<u8>) -> Result<(), ProtocolError> + Send + Sync>;

/// A message on its way to one or many connections, encoded lazily, once per protocol.
pub struct OutboundMessage {
    encode: Encoder,
    frames: [OnceLock<Result<Bytes, ProtocolError>>; 2],
}

impl OutboundMessage {
    /// An Invocation of `target` on clients, with `arguments` (a tuple or another value that
    /// serializes as a sequence), sent without an invocation id.
    pub fn invocation<A: crate::protocol::Arguments>(target: impl Into<String>, arguments: A) -> Arc<Self> {
        let target = target.into();
        Arc::new(Self {
            encode: Box::new(move |protocol, id, out| {
                protocol.write_invocation(out, false, id, &target, &arguments, &[])
            }),
            frames: [OnceLock::new(), OnceLock::new()],
        })
    }

    /// The framed bytes for `protocol`, encoded on first use.
    pub fn frame(&self, protocol: Protocol) -> Result<Bytes, HubError> {
        let slot = match protocol {
            Protocol::Json => &self.frames[0],
            Protocol::MessagePack => &self.frames[1],
        };
        slot.get_or_init(|| {
            let mut out = Vec::new();
            (self.encode)(protocol, None, &mut out).map(|()| Bytes::from(out))
        })
        .clone()
        .map_err(HubError::encode)
    }

    /// The framed bytes for `protocol` with an invocation id, for a call that expects the
    /// client's result (one recipient, so nothing is cached).
    pub(crate) fn frame_with_id(&self, protocol: Protocol, invocation_id: &str) -> Result<Bytes, HubError> {
        let mut out = Vec::new();
        (self.encode)(protocol, Some(invocation_id), &mut out).map_err(HubError::encode)?;
        Ok(Bytes::from(out))
    }
}

impl std::fmt::Debug for OutboundMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundMessage").finish_non_exhaustive()
    }
}

/// Which connections a send reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every connection of the hub.
    All,
    /// Every connection but these.
    AllExcept(Vec<String>),
    /// One connection.
    Connection(String),
    /// Several connections.
    Connections(Vec<String>),
    /// The members of a group.
    Group(String),
    /// The members of any of these groups, each once.
    Groups(Vec<String>),
    /// The members of a group but these connections.
    GroupExcept(String, Vec<String>),
    /// Every connection of a user.
    User(String),
    /// Every connection of any of these users.
    Users(Vec<String>),
}

impl Target {
    /// Whom the target addresses and whom it leaves out, as the
    /// [membership index](crate::protocol::membership) resolves them.
    pub fn recipients(&self) -> (Recipients<'_>, Excluded<'_>) {
        use std::slice::from_ref;
        match self {
            Target::All => (Recipients::All, Excluded::NONE),
            Target::AllExcept(excluded) => (Recipients::All, Excluded::connections(excluded)),
            Target::Connection(id) => (Recipients::Connections(from_ref(id)), Excluded::NONE),
            Target::Connections(ids) => (Recipients::Connections(ids), Excluded::NONE),
            Target::Group(group) => (Recipients::Groups(from_ref(group)), Excluded::NONE),
            Target::Groups(groups) => (Recipients::Groups(groups), Excluded::NONE),
            Target::GroupExcept(group, excluded) => {
                (Recipients::Groups(from_ref(group)), Excluded::connections(excluded))
            }
            Target::User(user) => (Recipients::Users(from_ref(user)), Excluded::NONE),
            Target::Users(users) => (Recipients::Users(users), Excluded::NONE),
        }
    }
}

/// Tracks connections and groups and delivers sends. One per hub type.
pub(crate) trait LifetimeManager: Send + Sync + 'static {
    fn on_connected(&self, conn: &Arc<Connection>);
    fn on_disconnected(&self, conn: &Arc<Connection>);
    /// Delivers `message`. `origin` is the connection whose hub call sends it, if any: a
    /// manager that can keep order with that connection's own traffic uses it.
    fn send(
        &self,
        target: Target,
        message: Arc<OutboundMessage>,
        origin: Option<&str>,
    ) -> BoxFuture<'_, Result<(), HubError>>;
    fn add_to_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>>;
    fn remove_from_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>>;
    /// The connection with this id, if it is connected here.
    fn connection(&self, connection_id: &str) -> Option<Arc<Connection>>;
    /// Invokes a client method on one connection and waits for its Completion.
    fn invoke(
        &self,
        connection_id: &str,
        message: Arc<OutboundMessage>,
        timeout: std::time::Duration,
    ) -> BoxFuture<'_, Result<CompletionResult, HubError>>;
}
