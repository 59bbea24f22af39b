//! Sending to clients: targets (all, groups, users, connections…) as proxies with `send`, and
//! group membership.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::HubError;
use crate::lifetime::{LifetimeManager, OutboundMessage, Target};
use crate::protocol::{Arguments, CompletionResult, Protocol, RawValue};

/// The clients of a hub, to pick targets from. Inside a hub method, [`HubClients`] adds the
/// caller-relative targets.
pub struct Clients<C: ClientContract = Untyped> {
    manager: Arc<dyn LifetimeManager>,
    results: ResultPolicy,
    origin: Option<Arc<str>>,
    contract: PhantomData<fn() -> C>,
}

impl<C: ClientContract> Clone for Clients<C> {
    fn clone(&self) -> Self {
        Self {
            manager: self.manager.clone(),
            results: self.results,
            origin: self.origin.clone(),
            contract: PhantomData,
        }
    }
}

/// Some clients of a hub: send them an invocation of a client method.
#[derive(Clone)]
pub struct ClientProxy {
    manager: Arc<dyn LifetimeManager>,
    target: Target,
    /// The connection whose hub call sends, to keep order with its own messages.
    origin: Option<Arc<str>>,
}

impl ClientProxy {
    /// Invokes client method `method` with `arguments` (a tuple, or `()` for none) on every
    /// connection of the target, without waiting for an answer. The message is encoded once
    /// per protocol, whatever the number of connections.
    pub async fn send<A>(&self, method: &str, arguments: A) -> Result<(), HubError>
    where
        A: Arguments,
    {
        self.send_message(OutboundMessage::invocation(method, arguments)).await
    }

    /// Sends an already prepared message (see [`OutboundMessage`]).
    pub async fn send_message(&self, message: Arc<OutboundMessage>) -> Result<(), HubError> {
        self.manager
            .send(self.target.clone(), message, self.origin.as_deref())
            .await
    }

    /// The connections this proxy reaches.
    pub fn target(&self) -> &Target {
        &self.target
    }
}

/// One connection: send it an invocation, or invoke a client method and await its result.
#[derive(Clone)]
pub struct SingleClientProxy {
    proxy: ClientProxy,
    connection_id: String,
    results: ResultPolicy,
}

/// Whether client results may be awaited where the proxy was made.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ResultPolicy {
    Allowed(Duration),
    /// Inside a hub method with one invocation at a time: awaiting the client would hold
    /// the only slot its answer needs.
    SingleInvocation,
    /// Inside `on_connected`, before the client can answer anything.
    OnConnected,
}

impl SingleClientProxy {
    /// Invokes client method `method` with `arguments` without waiting for an answer.
    pub async fn send<A>(&self, method: &str, arguments: A) -> Result<(), HubError>
    where
        A: Arguments,
    {
        self.proxy.send(method, arguments).await
    }

    /// Invokes client method `method` and waits for the value it returns (a client result).
    ///
    /// Fails with the client's error, when the client has no handler (`Client didn't provide
    /// a result.`), when the connection ends (`IOException`), or after the timeout
    /// (`HubOptions::client_result_timeout`, or [`SingleClientProxy::timeout`]).
    pub async fn invoke<T, A>(&self, method: &str, arguments: A) -> Result<T, HubError>
    where
        T: DeserializeOwned,
        A: Arguments,
    {
        let timeout = match self.results {
            ResultPolicy::Allowed(timeout) => timeout,
            ResultPolicy::SingleInvocation => {
                return Err(HubError::exception(
                    "InvalidOperationException",
                    "Client results inside a Hub method requires HubOptions.MaximumParallelInvocationsPerClient to be greater than 1.",
                ));
            }
            ResultPolicy::OnConnected => {
                return Err(HubError::exception(
                    "InvalidOperationException",
                    "Client results inside OnConnectedAsync Hub methods are not allowed.",
                ));
            }
        };
        let message = OutboundMessage::invocation(method, arguments);
        let outcome = self.proxy.manager.invoke(&self.connection_id, message, timeout).await?;
        let decode = |raw: &RawValue| {
            raw.decode::<T>().map_err(|e| {
                HubError::exception(
                    "InvalidDataException",
                    format!("The client result could not be read: {e}"),
                )
            })
        };
        match outcome {
            CompletionResult::Value(raw) => decode(&raw),
            CompletionResult::Void => decode(&RawValue::new(Protocol::Json, bytes::Bytes::from_static(b"null"))),
            CompletionResult::Error(error) => Err(HubError::new(error)),
        }
    }

    /// The same proxy with another timeout for [`SingleClientProxy::invoke`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if let ResultPolicy::Allowed(_) = self.results {
            self.results = ResultPolicy::Allowed(timeout);
        }
        self
    }

    /// The connection this proxy reaches.
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }
}

impl std::fmt::Debug for SingleClientProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleClientProxy")
            .field("connection_id", &self.connection_id)
            .finish()
    }
}

impl std::fmt::Debug for ClientProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientProxy").field("target", &self.target).finish()
    }
}

fn owned(ids: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    ids.into_iter().map(Into::into).collect()
}

impl<C: ClientContract> Clients<C> {
    pub(crate) fn new(manager: Arc<dyn LifetimeManager>, results: ResultPolicy, origin: Option<Arc<str>>) -> Self {
        Self {
            manager,
            results,
            origin,
            contract: PhantomData,
        }
    }

    fn proxy(&self, target: Target) -> C::Multi {
        C::Multi::from(ClientProxy {
            origin: self.origin.clone(),
            manager: self.manager.clone(),
            target,
        })
    }

    /// Every connection.
    pub fn all(&self) -> C::Multi {
        self.proxy(Target::All)
    }

    /// Every connection but these.
    pub fn all_except(&self, excluded: impl IntoIterator<Item = impl Into<String>>) -> C::Multi {
        self.proxy(Target::AllExcept(owned(excluded)))
    }

    /// One connection (which can also answer with a client result).
    pub fn client(&self, connection_id: impl Into<String>) -> C::Single {
        let connection_id = connection_id.into();
        let proxy = ClientProxy {
            origin: self.origin.clone(),
            manager: self.manager.clone(),
            target: Target::Connection(connection_id.clone()),
        };
        C::Single::from(SingleClientProxy {
            proxy,
            connection_id,
            results: self.results,
        })
    }

    /// Several connections.
    pub fn clients(&self, connection_ids: impl IntoIterator<Item = impl Into<String>>) -> C::Multi {
        self.proxy(Target::Connections(owned(connection_ids)))
    }

    /// The members of a group.
    pub fn group(&self, group: impl Into<String>) -> C::Multi {
        self.proxy(Target::Group(group.into()))
    }

    /// The members of any of these groups, each reached once.
    pub fn groups(&self, groups: impl IntoIterator<Item = impl Into<String>>) -> C::Multi {
        self.proxy(Target::Groups(owned(groups)))
    }

    /// The members of a group but these connections.
    pub fn group_except(
        &self,
        group: impl Into<String>,
        excluded: impl IntoIterator<Item = impl Into<String>>,
    ) -> C::Multi {
        self.proxy(Target::GroupExcept(group.into(), owned(excluded)))
    }

    /// Every connection of a user.
    pub fn user(&self, user_id: impl Into<String>) -> C::Multi {
        self.proxy(Target::User(user_id.into()))
    }

    /// Every connection of any of these users.
    pub fn users(&self, user_ids: impl IntoIterator<Item = impl Into<String>>) -> C::Multi {
        self.proxy(Target::Users(owned(user_ids)))
    }
}

/// The clients as seen from inside a hub method: everything [`Clients`] has, plus the
/// targets relative to the caller.
pub struct HubClients<C: ClientContract = Untyped> {
    clients: Clients<C>,
    caller: Arc<str>,
}

impl<C: ClientContract> Clone for HubClients<C> {
    fn clone(&self) -> Self {
        Self {
            clients: self.clients.clone(),
            caller: self.caller.clone(),
        }
    }
}

impl<C: ClientContract> HubClients<C> {
    pub(crate) fn new(clients: Clients<C>, caller: Arc<str>) -> Self {
        Self { clients, caller }
    }

    /// The calling connection.
    pub fn caller(&self) -> C::Single {
        self.clients.client(&*self.caller)
    }

    /// Every connection but the caller.
    pub fn others(&self) -> C::Multi {
        self.clients.all_except([&*self.caller])
    }

    /// The members of a group but the caller.
    pub fn others_in_group(&self, group: impl Into<String>) -> C::Multi {
        self.clients.group_except(group, [&*self.caller])
    }
}

impl<C: ClientContract> std::ops::Deref for HubClients<C> {
    type Target = Clients<C>;

    fn deref(&self) -> &Clients<C> {
        &self.clients
    }
}

/// What a hub calls on its clients: proxies for multicast targets (fire-and-forget calls)
/// and for single connections (which can also return client results).
///
/// [`Untyped`] gives `send(method, args)` proxies; a `#[switchboard::client]` trait gives
/// proxies with one typed method per client method.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not describe a hub's client methods",
    label = "expected the proxy of a `#[switchboard::client]` trait, or `Untyped`",
    note = "`client = SomeTrait` in `#[hub(..)]` needs `#[switchboard::client]` on `trait SomeTrait`"
)]
pub trait ClientContract: Send + Sync + 'static {
    /// The proxy for targets that may be many connections.
    type Multi: From<ClientProxy> + Send + Sync;
    /// The proxy for one connection.
    type Single: From<SingleClientProxy> + Send + Sync;
}

/// Client methods called by name: `send(method, args)` and `invoke(method, args)`.
#[derive(Debug, Clone, Copy)]
pub enum Untyped {}

impl ClientContract for Untyped {
    type Multi = ClientProxy;
    type Single = SingleClientProxy;
}

/// Group membership of a hub's connections.
#[derive(Clone)]
pub struct Groups {
    manager: Arc<dyn LifetimeManager>,
}

impl Groups {
    pub(crate) fn new(manager: Arc<dyn LifetimeManager>) -> Self {
        Self { manager }
    }

    /// Adds a connection to a group (names are case-sensitive). Returns once done.
    pub async fn add(&self, connection_id: &str, group: &str) -> Result<(), HubError> {
        self.manager.add_to_group(connection_id, group).await
    }

    /// Removes a connection from a group. Returns once done.
    pub async fn remove(&self, connection_id: &str, group: &str) -> Result<(), HubError> {
        self.manager.remove_from_group(connection_id, group).await
    }
}
