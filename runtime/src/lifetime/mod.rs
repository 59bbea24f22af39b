//! Lifetime managers: who is connected, who is in which group, and how a send reaches its
//! targets. This is the one seam where hosting modes differ; hub code is the same in all: it
//! talks to a [`LifetimeManager`], never to a mode.
//!
//! - [`LocalLifetimeManager`]: self-hosted, every connection of the hub lives in this
//!   process (the default).
//! - Service mode's manager (in [`crate::service`]): sends become service messages that the
//!   service fans out to the clients it holds.
//! - A backplane (one of a later release, or your own) implements the same trait over the
//!   public [`ConnectionHandle`], [`Target`] and [`OutboundMessage`], and is installed with
//!   [`SwitchboardBuilder::lifetime_manager`](crate::SwitchboardBuilder::lifetime_manager); the
//!   [membership index](crate::protocol::membership) does the bookkeeping of connections,
//!   groups and users for it.
//!
//! A send is prepared once as an [`OutboundMessage`], which encodes itself at most once per
//! protocol; every target connection gets a clone of the same `Bytes`.

mod handle;
mod local;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

pub use handle::ConnectionHandle;
pub use local::LocalLifetimeManager;

use crate::HubError;
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

/// What an existence check asks about ([`LifetimeManager::exists`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Presence {
    /// A connection with this id is connected to the hub.
    Connection(String),
    /// The user has at least one connection to the hub.
    User(String),
    /// The group has at least one member.
    Group(String),
}

/// Which connections a send reaches.
///
/// More kinds of target may come; a manager that matches on it needs a wildcard arm (or
/// resolves it with [`Target::recipients`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

/// Tracks the connections and groups of one hub and delivers its sends: the seam between hub
/// code and the hosting mode. One manager serves one hub type; hub contexts, [`HubHandle`]s
/// and the connections' lifecycle call it.
///
/// # Contract
///
/// - **Lifecycle.** [`on_connected`](Self::on_connected) is called once per connection after
///   its handshake, before the hub's `on_connected` hook runs and before any of its hub
///   calls; [`on_disconnected`](Self::on_disconnected) once when it has ended, before the
///   hub's `on_disconnected` hook. Both are synchronous and must not block: record, don't
///   wait. After `on_disconnected` the manager must hold no reference to the connection and
///   must forget its groups.
/// - **Encoding.** A send carries one [`OutboundMessage`] for all of its recipients. Take
///   each recipient's bytes from [`OutboundMessage::frame`] with that recipient's
///   [`ConnectionHandle::protocol`]: the message is encoded at most once per protocol, however
///   many connections it reaches. A manager that forwards a send elsewhere (a service, a
///   backplane) encodes it once per protocol the same way.
/// - **Delivery.** A send reaches each targeted connection at most once, even when it is
///   named twice or is in two of the targeted groups. Delivering never waits for a slow
///   client: [`ConnectionHandle::send_frame`] queues without waiting and closes a connection
///   whose bounded queue is full. The returned future resolves once the message has been
///   handed on (queued locally, or written to the service or backplane); an error is the
///   caller's.
/// - **Ordering.** Sends made one after another (each awaited) with the same `origin`
///   connection reach each recipient in that order, and after what that connection's earlier
///   calls sent. Sends without an origin are promised no order among themselves (the local
///   manager keeps it anyway; service mode spreads them over its server connections).
/// - **`origin`.** The id of the connection whose hub method (or hook) is sending, or `None`
///   for a send from outside any call ([`HubHandle`]). It is a routing hint, not a target: a
///   manager that has several paths to its recipients (service mode's server connections)
///   sends over the path the origin's own traffic takes, so that a reply to a call never
///   overtakes the call's own results.
/// - **Groups.** [`add_to_group`](Self::add_to_group) and
///   [`remove_from_group`](Self::remove_from_group) resolve once the change holds for every
///   later send. Adding or removing a connection the manager does not know is not an error
///   for the local manager (it does nothing); a remote one may report what its peer says.
///
/// # Implementing one
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// use futures_util::future::{BoxFuture, FutureExt};
/// use switchboard::HubError;
/// use switchboard::lifetime::{ConnectionHandle, LifetimeManager, OutboundMessage, Target};
/// use switchboard::protocol::membership::Membership;
///
/// /// Keeps its connections in the membership index and delivers sends itself.
/// #[derive(Default)]
/// struct MyManager {
///     members: Mutex<Membership<ConnectionHandle>>,
/// }
///
/// impl LifetimeManager for MyManager {
///     fn on_connected(&self, connection: &ConnectionHandle) {
///         let mut members = self.members.lock().unwrap();
///         members.add_connection(connection.id(), connection.user_id(), connection.clone());
///     }
///
///     fn on_disconnected(&self, connection: &ConnectionHandle) {
///         self.members.lock().unwrap().remove_connection(connection.id());
///     }
///
///     fn send(
///         &self,
///         target: Target,
///         message: Arc<OutboundMessage>,
///         _origin: Option<&str>,
///     ) -> BoxFuture<'_, Result<(), HubError>> {
///         let (recipients, excluded) = target.recipients();
///         let mut outcome = Ok(());
///         self.members.lock().unwrap().for_each(recipients, excluded, |_, connection| {
///             match message.frame(connection.protocol()) {
///                 Ok(frame) => connection.send_frame(frame),
///                 Err(error) => outcome = Err(error),
///             }
///         });
///         std::future::ready(outcome).boxed()
///     }
///
///     fn add_to_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
///         self.members.lock().unwrap().join_group(connection_id, group);
///         std::future::ready(Ok(())).boxed()
///     }
///
///     fn remove_from_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
///         self.members.lock().unwrap().leave_group(connection_id, group);
///         std::future::ready(Ok(())).boxed()
///     }
///
///     fn connection(&self, connection_id: &str) -> Option<ConnectionHandle> {
///         self.members.lock().unwrap().get(connection_id).cloned()
///     }
/// }
///
/// let manager: Arc<dyn LifetimeManager> = Arc::new(MyManager::default());
/// assert!(manager.connection("nobody").is_none());
/// ```
///
/// [`HubHandle`]: crate::HubHandle
pub trait LifetimeManager: Send + Sync + 'static {
    /// A connection of this process completed its handshake: start tracking it.
    fn on_connected(&self, connection: &ConnectionHandle);

    /// A connection of this process has ended: forget it and its group memberships.
    fn on_disconnected(&self, connection: &ConnectionHandle);

    /// Delivers `message` to the connections `target` names, each once. `origin` is the
    /// connection whose hub call sends it, if any (see the [contract](Self#contract)).
    fn send(
        &self,
        target: Target,
        message: Arc<OutboundMessage>,
        origin: Option<&str>,
    ) -> BoxFuture<'_, Result<(), HubError>>;

    /// Adds a connection to a group, for every later send.
    fn add_to_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>>;

    /// Removes a connection from a group, for every later send.
    fn remove_from_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>>;

    /// The connection with this id, if it is connected to this process.
    fn connection(&self, connection_id: &str) -> Option<ConnectionHandle>;

    /// Whether a connection, a user or a group exists wherever the manager reaches (a group
    /// exists while it has a member; a user while it has a connection).
    ///
    /// By default this knows the connections of this process ([`Self::connection`]) and
    /// fails with a `NotSupportedException` for users and groups; a manager that tracks them
    /// overrides it.
    fn exists(&self, what: Presence) -> BoxFuture<'_, Result<bool, HubError>> {
        let found = match &what {
            Presence::Connection(id) => Ok(self.connection(id).is_some()),
            _ => Err(HubError::exception(
                "NotSupportedException",
                "This lifetime manager cannot tell whether a user or a group exists.",
            )),
        };
        Box::pin(std::future::ready(found))
    }

    /// Invokes a client method on one connection and waits for its Completion, at most
    /// `timeout`.
    ///
    /// By default this reaches a connection of this process ([`Self::connection`], then
    /// [`ConnectionHandle::invoke`]) and fails with an `IOException` for any other; a manager
    /// that can reach clients elsewhere overrides it.
    fn invoke(
        &self,
        connection_id: &str,
        message: Arc<OutboundMessage>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<CompletionResult, HubError>> {
        let connection = self.connection(connection_id);
        let connection_id = connection_id.to_owned();
        Box::pin(async move {
            let connection = connection.ok_or_else(|| {
                HubError::exception("IOException", format!("Connection '{connection_id}' does not exist."))
            })?;
            connection.invoke(&message, timeout).await
        })
    }
}
