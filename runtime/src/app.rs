//! Building an app: map hubs at paths, set options and authentication, get an axum `Router`
//! or a tower `Service`; starting it, and shutting it down.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::connection::claims::Claims;
use crate::connection::dispatcher::Dispatcher;
use crate::error::BuildError;
use crate::hub::endpoint::HubEndpoint;
use crate::hub::{Hub, HubHandle, HubShared, Methods};
use crate::lifetime::{LifetimeManager, LocalLifetimeManager};
use crate::options::{HubOptions, TransportType};
use crate::service::hub_endpoints::HubEndpoints;
use crate::service::lifetime::ServiceLifetimeManager;
use crate::service::{ConnectionString, ScaleError, ServiceEndpoint, ServiceOptions};
use crate::transport::auth::{self, Authenticator, UserContext, UserIdProvider};
use crate::transport::raw::{RawConnection, RawHandler};
use crate::transport::registry::Registry;
use crate::transport::{
    AppState, Endpoint, EndpointKind, HttpHandler, NegotiateRedirect, StatefulFilter, TransportFilter,
};

type EndpointFactory = Box<dyn FnOnce(&mut Hubs, HubOptions) -> Result<Endpoint, BuildError>>;
type SharedByType = HashMap<TypeId, Arc<HubShared>>;
type Configure = Box<dyn FnOnce(&mut HubOptions)>;

/// The hubs as they are built: what every connection of one hub type shares, and in service
/// mode each hub type's service state with the hub code its tunnelled clients run.
struct Hubs {
    shared: SharedByType,
    service: Option<ServiceContext>,
    service_hubs: HashMap<TypeId, Arc<HubEndpoints>>,
    tunnelled: Vec<Arc<HubEndpoints>>,
    /// Makes the lifetime manager of each self-hosted hub type, by the hub's name.
    lifetime_manager: Option<ManagerFactory>,
}

type ManagerFactory = Arc<dyn Fn(&str) -> Arc<dyn LifetimeManager> + Send + Sync>;

/// A built app: every mapped hub, ready to serve.
///
/// ```no_run
/// # use switchboard::{Hub, Methods, Switchboard};
/// # struct Chat;
/// # impl Hub for Chat { type Client = switchboard::Untyped; fn methods(_: &mut Methods<Self>) {} }
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let app = Switchboard::builder().hub("/chat", Chat).build()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
/// // axum::serve works too; this one also has Kestrel's request-header timeout.
/// switchboard::serve(listener, app.router()).await?;
/// # Ok(()) }
/// ```
pub struct Switchboard {
    state: Arc<AppState>,
    shared: SharedByType,
    /// Service mode: each hub type's endpoints.
    tunnelled: Vec<Arc<HubEndpoints>>,
    started: AtomicBool,
}

impl std::fmt::Debug for Switchboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switchboard")
            .field("hubs", &self.state.endpoints.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Switchboard {
    /// Starts building an app.
    pub fn builder() -> SwitchboardBuilder {
        SwitchboardBuilder::default()
    }

    /// An axum router serving the hubs; add the app's own routes (with any state) to it.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        axum::Router::new().fallback_service(self.http_handler())
    }

    /// The hubs as one tower `Service` answering HTTP requests (see [`HttpHandler`]).
    pub fn http_handler(&self) -> HttpHandler {
        HttpHandler::new(self.state.clone())
    }

    /// Starts what the app runs besides answering requests, and returns the handle that shuts
    /// it down. In service mode that is every hub's server connections to the service:
    /// until the app is started, negotiate tells clients the service is not connected yet.
    /// Self-hosted there is nothing to start, and starting is optional.
    ///
    /// Call it inside a Tokio runtime, once. Dropping the handle leaves the app running.
    ///
    /// ```no_run
    /// # use switchboard::{Hub, Methods, Switchboard};
    /// # struct Chat;
    /// # impl Hub for Chat { type Client = switchboard::Untyped; fn methods(_: &mut Methods<Self>) {} }
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let app = Switchboard::builder()
    ///     .with_service(switchboard::service::ServiceOptions::from_env())
    ///     .hub("/chat", Chat)
    ///     .build()?;
    /// let running = app.start()?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
    /// switchboard::serve(listener, app.router())
    ///     .with_graceful_shutdown(async { drop(tokio::signal::ctrl_c().await) })
    ///     .await?;
    /// running.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn start(&self) -> Result<AppHandle, BuildError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(BuildError::new("start the app inside a Tokio runtime"));
        }
        if self.started.swap(true, Ordering::AcqRel) {
            return Err(BuildError::new("the app is started already"));
        }
        for hub in &self.tunnelled {
            hub.start();
        }
        Ok(AppHandle {
            hubs: self.tunnelled.iter().cloned().collect(),
        })
    }

    /// A handle to reach the clients of hub type `H` from anywhere (`None` if no hub of that
    /// type is mapped).
    pub fn hub_handle<H: Hub>(&self) -> Option<HubHandle<H>> {
        self.shared
            .get(&TypeId::of::<H>())
            .map(|shared| HubHandle::new(shared.clone()))
    }
}

/// Configures an app; see [`Switchboard::builder`].
pub struct SwitchboardBuilder {
    defaults: HubOptions,
    endpoints: Vec<(String, EndpointFactory, Configure)>,
    errors: Vec<String>,
    authenticator: Option<Arc<dyn Authenticator>>,
    user_id_provider: UserIdProvider,
    transport_filter: Option<TransportFilter>,
    stateful_filter: Option<StatefulFilter>,
    negotiate_elsewhere: Option<crate::transport::NegotiateElsewhere>,
    service: Option<ServiceOptions>,
    lifetime_manager: Option<ManagerFactory>,
}

impl Default for SwitchboardBuilder {
    fn default() -> Self {
        Self {
            defaults: HubOptions::default(),
            endpoints: Vec::new(),
            errors: Vec::new(),
            authenticator: None,
            user_id_provider: Arc::new(auth::default_user_id),
            transport_filter: None,
            stateful_filter: None,
            negotiate_elsewhere: None,
            service: None,
            lifetime_manager: None,
        }
    }
}

impl std::fmt::Debug for SwitchboardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchboardBuilder")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

impl SwitchboardBuilder {
    /// Maps `hub` at `path` with the default options.
    pub fn hub<H: Hub>(self, path: &str, hub: H) -> Self {
        self.add(path, hub, None)
    }

    /// Maps `hub` at `path`, adjusting its options after the defaults are applied.
    pub fn hub_with<H: Hub>(self, path: &str, hub: H, configure: impl FnOnce(&mut HubOptions) + 'static) -> Self {
        self.add(path, hub, Some(Box::new(configure)))
    }

    /// Maps `hub` at the path its `#[hub("/path")]` attribute (`Hub::PATH`) names.
    pub fn mount<H: Hub>(mut self, hub: H) -> Self {
        match H::PATH {
            Some(path) => self.add(path, hub, None),
            None => {
                self.errors.push(format!(
                    "hub type `{}` has no path: map it with `.hub(path, hub)` or give it one with #[hub(\"/path\")]",
                    std::any::type_name::<H>()
                ));
                self
            }
        }
    }

    fn add<H: Hub>(mut self, path: &str, hub: H, configure: Option<Configure>) -> Self {
        // The hub's own options first, then the app's adjustments for this mapping.
        let configure: Configure = Box::new(move |options| {
            H::configure(options);
            if let Some(configure) = configure {
                configure(options);
            }
        });
        let path_owned = path.to_owned();
        let factory: EndpointFactory = Box::new(move |hubs, options| {
            let methods = Methods::<H>::collect().map_err(|errors| BuildError::new(errors.join("; ")))?;
            let type_id = TypeId::of::<H>();
            let Hubs {
                shared,
                service,
                service_hubs,
                tunnelled,
                lifetime_manager,
            } = hubs;
            let service_hub = service.as_ref().map(|context| {
                service_hubs
                    .entry(type_id)
                    .or_insert_with(|| context.hub(service_hub_name::<H>(), options.allow_stateful_reconnects))
                    .clone()
            });
            let shared = shared
                .entry(type_id)
                .or_insert_with(|| {
                    let manager: Arc<dyn LifetimeManager> = match (&service_hub, &*lifetime_manager) {
                        (None, Some(make)) => make(&service_hub_name::<H>()),
                        (None, None) => Arc::new(LocalLifetimeManager::default()),
                        (Some(hub), _) => Arc::new(ServiceLifetimeManager::new(hub.clone())),
                    };
                    Arc::new(HubShared {
                        manager,
                        client_result_timeout: options.client_result_timeout,
                    })
                })
                .clone();
            let dispatcher: Arc<dyn Dispatcher> = Arc::new(HubEndpoint {
                hub: Arc::new(hub),
                methods: Arc::new(methods),
                shared,
                options: options.clone(),
                configs: Default::default(),
            });
            // The service tunnels a hub type's clients to the first path it is mapped at.
            if let Some(hub) = &service_hub
                && !tunnelled.iter().any(|known| Arc::ptr_eq(known, hub))
            {
                hub.set_dispatcher(dispatcher.clone());
                tunnelled.push(hub.clone());
            }
            Ok(Endpoint {
                path: path_owned,
                kind: EndpointKind::Hub(dispatcher),
                options,
                registry: Registry::default(),
                configs: Default::default(),
                redirect: service_hub.map(|hub| hub as Arc<dyn NegotiateRedirect>),
            })
        });
        self.endpoints.push((path.to_owned(), factory, configure));
        self
    }

    /// Maps a raw connection handler at `path`: clients negotiate and connect as to a hub,
    /// but there is no handshake or hub protocol; `handler` gets the bytes and sends bytes.
    pub fn connection_handler<F, Fut>(mut self, path: &str, handler: F) -> Self
    where
        F: Fn(RawConnection) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let handler: RawHandler = Arc::new(move |conn| Box::pin(handler(conn)));
        let path_owned = path.to_owned();
        let factory: EndpointFactory = Box::new(move |_, options| {
            Ok(Endpoint {
                path: path_owned,
                kind: EndpointKind::Raw(handler),
                options,
                registry: Registry::default(),
                configs: Default::default(),
                redirect: None,
            })
        });
        self.endpoints.push((path.to_owned(), factory, Box::new(|_| {})));
        self
    }

    /// Puts each hub type's sends, groups and users behind a lifetime manager of the app's own
    /// (a backplane, for instance) instead of the in-process one: `make` is called once per
    /// hub type with the hub's name (its type's name, as `Chat`). Hub code does not change.
    /// Not with service mode, whose manager is the service's.
    pub fn lifetime_manager(mut self, make: impl Fn(&str) -> Arc<dyn LifetimeManager> + Send + Sync + 'static) -> Self {
        if self.service.is_some() {
            self.errors
                .push("service mode and a lifetime manager of the app's own exclude each other".into());
        }
        self.lifetime_manager = Some(Arc::new(make));
        self
    }

    /// Shares every self-hosted hub's connections with other app servers through Redis (see
    /// [`backplane`](crate::backplane)): sends, groups, users and client results reach
    /// connections on any server of the backplane. Not with service mode.
    #[cfg(feature = "redis")]
    pub fn with_redis_backplane(self, backplane: crate::backplane::RedisBackplane) -> Self {
        let client = match redis::Client::open(backplane.url.as_str()) {
            Ok(client) => client,
            Err(error) => {
                let mut this = self;
                // The URL is not repeated: it may carry a password.
                this.errors
                    .push(format!("the Redis backplane's URL is not valid: {}", error));
                return this;
            }
        };
        let server_name = backplane
            .server_name
            .clone()
            .unwrap_or_else(crate::service::default_server_name);
        let prefix = backplane.prefix.clone();
        self.lifetime_manager(move |hub| {
            Arc::new(crate::backplane::RedisLifetimeManager::new(
                client.clone(),
                prefix(hub),
                server_name.clone(),
            ))
        })
    }

    /// Runs every hub in service mode: a SignalR service (`switchboard-service`, or any
    /// service speaking the Azure SignalR server protocol) holds the clients; this app keeps
    /// server connections to it and only runs hub code. Hub code does not change. The server
    /// connections open when the app is started ([`Switchboard::start`]).
    pub fn with_service(mut self, options: ServiceOptions) -> Self {
        if self.lifetime_manager.is_some() {
            self.errors
                .push("service mode and a lifetime manager of the app's own exclude each other".into());
        }
        self.service = Some(options);
        self
    }

    /// Sets the options every hub starts from.
    pub fn hub_options(mut self, configure: impl FnOnce(&mut HubOptions)) -> Self {
        configure(&mut self.defaults);
        self
    }

    /// Validates bearer tokens (from the `Authorization` header or the `access_token` query
    /// parameter) with `authenticator`.
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// Decides which transports a client may use, from the claims of its token: transports
    /// refused are left out of its negotiate response and refused (as unsupported ones are)
    /// when it connects, so clients fall back to the next transport.
    pub fn transport_filter(
        mut self,
        filter: impl Fn(Option<&Claims>, TransportType) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.transport_filter = Some(Arc::new(filter));
        self
    }

    /// Decides, for each negotiate request that asks for stateful reconnect on an endpoint
    /// whose options allow it, whether to offer it (by default, always). A relay uses it to
    /// offer stateful reconnect only for hubs whose app servers can replay (feature `relay`).
    #[cfg(feature = "relay")]
    pub fn stateful_reconnect_filter(
        mut self,
        filter: impl Fn(&crate::RequestInfo) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.stateful_filter = Some(Arc::new(filter));
        self
    }

    /// Sends negotiate requests elsewhere when `elsewhere` gives a redirect (after the request's
    /// token was accepted): a relay node uses it to send new clients to a less loaded node of
    /// its cluster (feature `relay`).
    #[cfg(feature = "relay")]
    pub fn negotiate_elsewhere(
        mut self,
        elsewhere: impl Fn(&crate::RequestInfo) -> Option<crate::protocol::negotiate::NegotiateRedirect>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.negotiate_elsewhere = Some(Arc::new(elsewhere));
        self
    }

    /// Picks each connection's user id (by default, the token's name identifier claim).
    pub fn user_id_provider(
        mut self,
        provider: impl Fn(&UserContext<'_>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.user_id_provider = Arc::new(provider);
        self
    }

    /// Checks the configuration and builds the app.
    pub fn build(self) -> Result<Switchboard, BuildError> {
        if let Some(error) = self.errors.first() {
            return Err(BuildError::new(error.clone()));
        }
        let service = match self.service {
            None => None,
            Some(options) => {
                let endpoints = options.validate().map_err(|e| BuildError::new(e.to_string()))?;
                let server_id = match (&options.server_name, &options.server_name_provider) {
                    (Some(name), _) => name.clone(),
                    (None, Some(provider)) => {
                        let name = provider();
                        if !crate::service::is_server_name(&name) {
                            return Err(BuildError::new(
                                "the server name provider gave a name that is not 1 to 128 visible ASCII characters",
                            ));
                        }
                        name
                    }
                    (None, None) => crate::service::default_server_name(),
                };
                Some(ServiceContext {
                    options,
                    endpoints,
                    server_id,
                })
            }
        };
        let mut endpoints = HashMap::new();
        let mut hubs = Hubs {
            shared: SharedByType::new(),
            service,
            service_hubs: HashMap::new(),
            tunnelled: Vec::new(),
            lifetime_manager: self.lifetime_manager,
        };
        for (path, factory, configure) in self.endpoints {
            validate_path(&path)?;
            let mut options = self.defaults.clone();
            configure(&mut options);
            options
                .validate()
                .map_err(|e| BuildError::new(format!("hub '{path}': {e}")))?;
            if options.require_authorization && self.authenticator.is_none() {
                return Err(BuildError::new(format!(
                    "hub '{path}' requires authorization, but no authenticator is configured"
                )));
            }
            let endpoint = factory(&mut hubs, options).map_err(|e| BuildError::new(format!("hub '{path}': {e}")))?;
            let key = path.trim_end_matches('/').to_ascii_lowercase();
            if endpoints.insert(key, Arc::new(endpoint)).is_some() {
                return Err(BuildError::new(format!(
                    "two hubs are mapped at '{path}' (paths are matched ignoring case)"
                )));
            }
        }
        let state = AppState {
            endpoints,
            authenticator: self.authenticator,
            user_id_provider: self.user_id_provider,
            transport_filter: self.transport_filter,
            stateful_filter: self.stateful_filter,
            negotiate_elsewhere: self.negotiate_elsewhere,
        };
        Ok(Switchboard {
            state: Arc::new(state),
            shared: hubs.shared,
            tunnelled: hubs.tunnelled,
            started: AtomicBool::new(false),
        })
    }
}

/// A started app (see [`Switchboard::start`]): what it runs in the background, how its
/// service endpoints change while it runs, and how it stops. Clones share the app.
#[derive(Clone)]
pub struct AppHandle {
    hubs: Arc<[Arc<HubEndpoints>]>,
}

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppHandle")
            .field("service_hubs", &self.hubs.len())
            .finish()
    }
}

impl AppHandle {
    /// Resolves once every hub in service mode has a server connection up (at once when the
    /// app is self-hosted): from then on negotiate sends clients to the service instead of
    /// answering that it is not connected yet. Put a timeout around it: while the service
    /// cannot be reached it does not resolve.
    pub async fn connected(&self) {
        for hub in self.hubs.iter() {
            hub.until_connected().await;
        }
    }

    /// Adds a service endpoint to every hub while the app runs, as the Azure SDK scales out:
    /// its server connections open, and once the app servers it lists are those of the
    /// endpoints in service (asked every 5 s) it takes new clients. Resolves then, or when
    /// `ServiceScaleTimeout` passes (the endpoint then takes clients anyway, with a warning
    /// in the log). Messages reach its clients as soon as it is connected.
    pub async fn add_endpoint(&self, endpoint: ServiceEndpoint) -> Result<(), ScaleError> {
        self.in_service_mode()?;
        let results = futures_util::future::join_all(self.hubs.iter().map(|hub| hub.add(endpoint.clone()))).await;
        results.into_iter().collect()
    }

    /// Removes the service endpoint with `connection_string`'s address from every hub while
    /// the app runs: it takes no new clients at once, its server connections tell the
    /// service this app server goes (`fin:0`: the service closes the clients it tunnels
    /// here, which reconnect through another endpoint), and it is dropped when the service
    /// reports no clients of the hub or when `ServiceScaleTimeout` passes. Resolves then.
    /// The last primary endpoint cannot be removed.
    pub async fn remove_endpoint(&self, connection_string: &str) -> Result<(), ScaleError> {
        self.in_service_mode()?;
        let results = futures_util::future::join_all(self.hubs.iter().map(|hub| hub.remove(connection_string))).await;
        results.into_iter().collect()
    }

    /// Makes the endpoints those of `options` (its connection string and endpoints, read
    /// again from the configuration with [`ServiceOptions::from_env`], say): endpoints whose
    /// service address is new are added, those no longer there are removed, each as
    /// [`add_endpoint`](Self::add_endpoint) and [`remove_endpoint`](Self::remove_endpoint)
    /// do; an endpoint whose address stays keeps its type. Resolves when all are done.
    pub async fn set_endpoints(&self, options: &ServiceOptions) -> Result<(), ScaleError> {
        self.in_service_mode()?;
        let wanted = options.validate().map_err(ScaleError::Options)?;
        let current: Vec<(ServiceEndpoint, ConnectionString)> = self.hubs[0]
            .hubs()
            .iter()
            .filter(|hub| hub.phase() != crate::service::hub::Phase::Removing)
            .map(|hub| (hub.endpoint.clone(), hub.connection_string.clone()))
            .collect();
        let is_in = |list: &[(ServiceEndpoint, ConnectionString)], cs: &ConnectionString| {
            list.iter().any(|(_, known)| known.endpoint() == cs.endpoint())
        };
        // Additions first, so that clients of a removed endpoint find the new one.
        for (endpoint, connection_string) in &wanted {
            if !is_in(&current, connection_string) {
                self.add_endpoint(endpoint.clone()).await?;
            }
        }
        for (endpoint, connection_string) in &current {
            if !is_in(&wanted, connection_string) {
                self.remove_endpoint(endpoint.connection_string()).await?;
            }
        }
        Ok(())
    }

    fn in_service_mode(&self) -> Result<(), ScaleError> {
        if self.hubs.is_empty() {
            Err(ScaleError::NotRunning)
        } else {
            Ok(())
        }
    }

    /// Stops the app's background work and waits for it to end. In service mode each hub
    /// stops as [`ServiceOptions::graceful_shutdown`](crate::service::ServiceOptions::graceful_shutdown)
    /// says: `Off` closes every server connection at once (the service then closes the
    /// clients tunnelled through them, letting them reconnect); `WaitForClientsClose` and
    /// `MigrateClients` first tell the service the app server goes offline (it sends no new
    /// clients here; with `MigrateClients` it moves the current ones to another app server
    /// when it can) and serve the clients still here until they have gone or the timeout
    /// passes. No server connection is reopened. Connections the app holds itself
    /// (self-hosted) end with the HTTP server that serves them.
    pub async fn shutdown(self) {
        futures_util::future::join_all(self.hubs.iter().map(|hub| hub.shut_down())).await;
    }
}

fn validate_path(path: &str) -> Result<(), BuildError> {
    let bad = |why: &str| Err(BuildError::new(format!("invalid hub path '{path}': {why}")));
    if !path.starts_with('/') {
        return bad("it must start with '/'");
    }
    if path.trim_end_matches('/').is_empty() {
        return bad("a hub cannot be mapped at the root");
    }
    if path.contains(['?', '#', ' ']) || path.contains("//") {
        return bad("it must be a plain path without query, fragment, spaces or empty segments");
    }
    if path.trim_end_matches('/').to_ascii_lowercase().ends_with("/negotiate") {
        return bad("it must not end with '/negotiate'");
    }
    Ok(())
}

/// What service mode needs while hubs are built.
pub(crate) struct ServiceContext {
    options: ServiceOptions,
    endpoints: Vec<(ServiceEndpoint, ConnectionString)>,
    server_id: String,
}

impl ServiceContext {
    /// The service-mode state of a hub at every endpoint; its clients may reconnect
    /// statefully when the service options or the hub's own options allow it.
    fn hub(&self, name: String, allow_stateful_reconnects: bool) -> Arc<HubEndpoints> {
        let name = self.options.service_hub_name(&name);
        let mut options = self.options.clone();
        options.allow_stateful_reconnects |= allow_stateful_reconnects;
        HubEndpoints::new(name, options, self.server_id.clone(), &self.endpoints)
    }
}

/// A hub's name at the service: its type's name (`TestHub` → `testhub`), as .NET uses.
fn service_hub_name<H>() -> String {
    let full = std::any::type_name::<H>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_owned()
}
