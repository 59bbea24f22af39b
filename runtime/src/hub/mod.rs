//! Hubs: the [`Hub`] trait, the caller's [`HubContext`], the out-of-hub [`HubHandle`], and
//! sending to clients.

mod clients;
pub(crate) mod endpoint;
pub(crate) mod methods;
mod stream;

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

pub(crate) use clients::ResultPolicy;
pub use clients::{ClientContract, ClientProxy, Clients, Groups, HubClients, SingleClientProxy, Untyped};
pub use methods::{BindError, Binder, HubArg, IntoHubResult, InvocationArgs, Methods};
pub use stream::HubStream;

use tokio_util::sync::CancellationToken;

use crate::HubError;
use crate::connection::claims::Claims;
use crate::connection::request::RequestInfo;
use crate::connection::{CloseReason, Connection};
use crate::lifetime::LifetimeManager;
use crate::lifetime::Presence;
use crate::options::TransportType;
use crate::protocol::Protocol;

/// A hub: methods that clients call, and hooks for connections coming and going.
///
/// One value of the hub type serves every connection (it holds the app's state); each call
/// gets the caller's [`HubContext`].
///
/// ```
/// use std::sync::Arc;
/// use switchboard::{Hub, HubContext, HubError, Methods};
///
/// struct Chat;
///
/// impl Hub for Chat {
///     type Client = switchboard::Untyped;
///     fn methods(methods: &mut Methods<Self>) {
///         methods.method("Send", |_hub: Arc<Chat>, cx: HubContext<Chat>, (name, text): (String, String)| async move {
///             cx.clients().all().send("Send", (name, text)).await
///         });
///         methods.method("Echo", |_hub, _cx, (text,): (String,)| async move { Ok::<_, HubError>(text) });
///     }
/// }
/// ```
pub trait Hub: Send + Sync + Sized + 'static {
    /// The client methods the hub calls: [`Untyped`] (by name), or the proxies of a
    /// `#[switchboard::client]` trait.
    type Client: ClientContract;

    /// Where [`SwitchboardBuilder::mount`](crate::SwitchboardBuilder::mount) maps the hub
    /// (the path of `#[hub("/path")]`).
    const PATH: Option<&'static str> = None;

    /// Adjusts the hub's options after the app's defaults (the options given in
    /// `#[hub(..)]`).
    fn configure(options: &mut crate::HubOptions) {
        let _ = options;
    }

    /// Registers the hub's methods.
    fn methods(methods: &mut Methods<Self>);

    /// Runs after a client's handshake, before any of its invocations. An error closes the
    /// connection (the client may not reconnect automatically).
    fn on_connected(self: Arc<Self>, cx: HubContext<Self>) -> impl Future<Output = Result<(), HubError>> + Send {
        let _ = cx;
        async { Ok(()) }
    }

    /// Runs once a connection has ended; `error` says why, when it ended with one.
    fn on_disconnected(
        self: Arc<Self>,
        cx: HubContext<Self>,
        error: Option<HubError>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (cx, error);
        async {}
    }
}

/// What every connection of one hub type shares.
pub(crate) struct HubShared {
    pub manager: Arc<dyn LifetimeManager>,
    /// How long client results are awaited by default.
    pub client_result_timeout: std::time::Duration,
}

/// Where a context was made, which decides what it may do.
#[derive(Clone)]
pub(crate) enum Scope {
    /// A hub method; the token is cancelled by CancelInvocation or the connection's end.
    Invocation {
        cancellation: CancellationToken,
        parallel: bool,
    },
    /// `on_connected`.
    Connecting,
    /// `on_disconnected`, or anything else tied to the connection.
    Connection,
}

/// The caller of a hub method or hook: who it is, what its request carried, and the way to
/// reach clients and groups.
pub struct HubContext<H> {
    conn: Arc<Connection>,
    shared: Arc<HubShared>,
    scope: Scope,
    hub: PhantomData<fn() -> H>,
}

impl<H> Clone for HubContext<H> {
    fn clone(&self) -> Self {
        Self {
            conn: self.conn.clone(),
            shared: self.shared.clone(),
            scope: self.scope.clone(),
            hub: PhantomData,
        }
    }
}

impl<H> std::fmt::Debug for HubContext<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubContext")
            .field("connection_id", &self.connection_id())
            .finish_non_exhaustive()
    }
}

impl<H> HubContext<H> {
    pub(crate) fn new(conn: Arc<Connection>, shared: Arc<HubShared>, scope: Scope) -> Self {
        Self {
            conn,
            shared,
            scope,
            hub: PhantomData,
        }
    }

    /// Cancelled when this invocation is cancelled (a streaming method whose client sent
    /// CancelInvocation) or the connection ends. Outside a hub method, cancelled when the
    /// connection ends.
    pub fn cancellation(&self) -> CancellationToken {
        match &self.scope {
            Scope::Invocation { cancellation, .. } => cancellation.clone(),
            Scope::Connecting | Scope::Connection => self.conn.closing().child_token(),
        }
    }

    /// The connection's id (what [`Clients::client`] takes).
    pub fn connection_id(&self) -> &str {
        self.conn.id()
    }

    /// Whether and from where the connection moved between app servers (service mode, when
    /// an app server shut down with `GracefulShutdownMode::MigrateClients`): on the new
    /// server from `on_connected` on, on the old one in `on_disconnected`. `None` for a
    /// connection that stayed where it started.
    pub fn migration(&self) -> Option<crate::Migration> {
        self.conn.migration()
    }

    /// The user id of the connection, from the user id provider.
    pub fn user_id(&self) -> Option<&str> {
        self.conn.user_id().map(|u| &**u)
    }

    /// The claims of the bearer token the connection presented, if it presented a valid one.
    pub fn claims(&self) -> Option<&Claims> {
        self.conn.claims()
    }

    /// The request that opened the connection's transport: headers, query and cookies.
    pub fn request(&self) -> &RequestInfo {
        self.conn.request()
    }

    /// The transport the connection uses.
    pub fn transport(&self) -> TransportType {
        self.conn.transport()
    }

    /// The hub protocol the connection chose.
    pub fn protocol(&self) -> Protocol {
        self.conn.protocol()
    }

    /// Stores a per-connection value (one per type), returning the previous one.
    pub fn insert_item<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.conn
            .items()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(value)
    }

    /// A per-connection value stored with [`HubContext::insert_item`].
    pub fn item<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.conn
            .items()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get::<T>()
            .cloned()
    }

    /// Closes the connection: the client gets a Close message without an error and does not
    /// reconnect automatically.
    pub fn abort(&self) {
        self.conn.close(CloseReason::graceful());
    }

    /// The clients of the hub, including the caller-relative targets.
    pub fn clients(&self) -> HubClients<H::Client>
    where
        H: Hub,
    {
        let results = match &self.scope {
            Scope::Invocation { parallel: false, .. } => ResultPolicy::SingleInvocation,
            Scope::Connecting => ResultPolicy::OnConnected,
            _ => ResultPolicy::Allowed(self.shared.client_result_timeout),
        };
        let origin = Some(self.conn.id().clone());
        HubClients::new(
            Clients::new(self.shared.manager.clone(), results, origin),
            self.conn.id().clone(),
        )
    }

    /// Group membership.
    pub fn groups(&self) -> Groups {
        Groups::new(self.shared.manager.clone())
    }

    /// A handle to the hub that outlives this call.
    pub fn handle(&self) -> HubHandle<H> {
        HubHandle::new(self.shared.clone())
    }
}

/// Reaches a hub's clients from anywhere in the app (like .NET's `IHubContext`).
pub struct HubHandle<H> {
    shared: Arc<HubShared>,
    hub: PhantomData<fn() -> H>,
}

impl<H> Clone for HubHandle<H> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            hub: PhantomData,
        }
    }
}

impl<H> std::fmt::Debug for HubHandle<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubHandle").finish_non_exhaustive()
    }
}

impl<H> HubHandle<H> {
    pub(crate) fn new(shared: Arc<HubShared>) -> Self {
        Self {
            shared,
            hub: PhantomData,
        }
    }

    /// The clients of the hub.
    pub fn clients(&self) -> Clients<H::Client>
    where
        H: Hub,
    {
        Clients::new(
            self.shared.manager.clone(),
            ResultPolicy::Allowed(self.shared.client_result_timeout),
            None,
        )
    }

    /// Group membership.
    pub fn groups(&self) -> Groups {
        Groups::new(self.shared.manager.clone())
    }

    /// Drops a connection's transport as a network failure would (no close handshake), for
    /// testing stateful reconnect: a connection that reconnects statefully waits for its
    /// client to come back; any other ends. Returns whether the connection was found.
    pub fn interrupt_transport(&self, connection_id: &str) -> bool {
        match self.shared.manager.connection(connection_id) {
            Some(handle) => {
                handle.connection().interrupt_transport();
                true
            }
            None => false,
        }
    }

    /// Whether a connection with this id is connected to the hub here.
    pub fn is_connected(&self, connection_id: &str) -> bool {
        self.shared.manager.connection(connection_id).is_some()
    }

    /// Whether a connection with this id is connected to the hub anywhere the hub's lifetime
    /// manager reaches (in service mode: at any of its service endpoints, asked with an ack).
    pub async fn connection_exists(&self, connection_id: &str) -> Result<bool, HubError> {
        self.shared
            .manager
            .exists(Presence::Connection(connection_id.to_owned()))
            .await
    }

    /// Whether the user has a connection to the hub (anywhere, as [`connection_exists`](Self::connection_exists)).
    pub async fn user_exists(&self, user_id: &str) -> Result<bool, HubError> {
        self.shared.manager.exists(Presence::User(user_id.to_owned())).await
    }

    /// Whether the group has a member (anywhere, as [`connection_exists`](Self::connection_exists)).
    pub async fn group_exists(&self, group: &str) -> Result<bool, HubError> {
        self.shared.manager.exists(Presence::Group(group.to_owned())).await
    }
}
