//! A running relay: the HTTP app (the runtime's transports for clients at `/client`, the
//! server face at `/server`, health and metrics), served on a TCP listener until shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, header};
use switchboard::Switchboard;
use switchboard::protocol::service::{Ping, ServiceMessage};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{ClientAuthenticator, Keys, transport_allowed};
use crate::cluster::{Cluster, ClusterSettings, Node};
use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::server_face::remote::cluster_node;
use crate::state::Shared;
use crate::state::hubs::Hubs;
use crate::{client_face, server_face};

/// How long [`Relay::shutdown`] waits for connections to end before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A relay serving on a local address, until [`Relay::shutdown`] (or until dropped).
///
/// ```no_run
/// # async fn run() -> Result<(), switchboard_service::Error> {
/// let relay = switchboard_service::Relay::bind(switchboard_service::Config::new("key").listen("127.0.0.1:0")).await?;
/// println!("{}", relay.url()); // http://127.0.0.1:PORT
/// # Ok(()) }
/// ```
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
    /// What the cluster hands what other nodes send (only in a cluster).
    _node: Option<Arc<dyn Node>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Stops a [`Relay`] from anywhere; cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle").finish_non_exhaustive()
    }
}

impl ShutdownHandle {
    /// Stops accepting, closes every server connection and client connection.
    pub fn shutdown(&self) {
        self.shared.stop();
    }

    /// Resolves once the relay is shutting down.
    pub async fn stopped(&self) {
        self.shared.shutdown.cancelled().await;
    }
}

impl Relay {
    /// Validates `config`, listens on `config.listen` and starts serving (on the current
    /// tokio runtime). Port 0 picks a free port: see [`Relay::local_addr`].
    pub async fn bind(config: Config) -> Result<Relay, Error> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen.as_str())
            .await
            .map_err(|e| Error::io(format!("cannot listen on {}", config.listen), e))?;
        Relay::serve(listener, config)
    }

    /// Starts serving on a listener already bound (`config.listen` is not used).
    pub fn serve(listener: TcpListener, config: Config) -> Result<Relay, Error> {
        config.validate()?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the listen address", e))?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(
                switchboard::tls::server_config(std::path::Path::new(cert), std::path::Path::new(key))
                    .map_err(|e| Error::config(e.to_string()))?,
            ),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let config_limits = config.limits;
        let cluster = match &config.redis {
            Some(url) => {
                let node_id = config.node_id.clone().unwrap_or_else(random_node_id);
                let settings = ClusterSettings {
                    redis_url: url.clone(),
                    advertise: config.advertise.clone().unwrap_or_else(|| format!("{scheme}://{addr}")),
                    node_id,
                    node_timeout: config.node_timeout,
                    prefix: config.cluster_prefix.clone(),
                };
                Some(Cluster::new(settings).map_err(Error::config)?)
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            keys: Arc::new(Keys::new(&config.access_keys)),
            config,
            hubs: Hubs::new(Arc::new(Metrics::default())),
            shutdown: CancellationToken::new(),
            instance_id: cluster
                .as_ref()
                .map_or_else(|| format!("switchboard-{addr}"), |c| c.settings.node_id.clone()),
            cluster,
            admission: Arc::new(crate::limits::Admission::new(config_limits)),
        });
        let node = shared.cluster.as_ref().map(|cluster| {
            let node: Arc<dyn Node> = cluster_node(&shared);
            cluster.start(Arc::downgrade(&node), shared.shutdown.clone());
            tracing::info!(node = %cluster.settings.node_id, advertise = %cluster.settings.advertise, "joining the relay cluster");
            node
        });
        let app = app(shared.clone())?;
        let stop = shared.shutdown.clone();
        let header_timeout = shared.config.request_header_timeout;
        let mut serving = switchboard::serve(listener, app)
            .request_header_timeout(header_timeout)
            .with_graceful_shutdown(stop.cancelled_owned());
        if let Some(tls) = tls {
            serving = serving.tls(tls);
        }
        let task = tokio::spawn(async move {
            if let Err(error) = serving.await {
                tracing::error!(%error, "the relay stopped serving");
            }
        });
        Ok(Relay {
            addr,
            shared,
            task: Some(task),
            _node: node,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.shared.config.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// A connection string for app servers, with the first access key:
    /// `Endpoint=http://ADDR;AccessKey=KEY;Version=1.0;`.
    pub fn connection_string(&self) -> String {
        let key = self.shared.config.access_keys.first().map_or("", String::as_str);
        format!("Endpoint={};AccessKey={key};Version=1.0;", self.url())
    }

    /// How many clients hub `hub` (lower-cased, application prefix included) has now.
    pub fn client_count(&self, hub: &str) -> usize {
        self.shared
            .hubs
            .get(&hub.to_lowercase())
            .map_or(0, |hub| hub.counts().0)
    }

    /// How many app-server connections hub `hub` has now.
    pub fn server_connection_count(&self, hub: &str) -> usize {
        self.shared
            .hubs
            .get(&hub.to_lowercase())
            .map_or(0, |hub| hub.counts().1)
    }

    /// Asks every app server of hub `hub` (lower-cased, application prefix included) for one
    /// more server connection, as Azure SignalR Service does to rebalance: a `target` ping
    /// naming this relay, which the app server answers by opening an OnDemand connection
    /// unless it already holds its `MaxHubServerConnectionCount`. Returns how many app
    /// servers were asked.
    pub async fn request_server_connections(&self, hub: &str) -> usize {
        let Some(hub) = self.shared.hubs.get(&hub.to_lowercase()) else {
            return 0;
        };
        let ping = ServiceMessage::Ping(Ping::target(self.shared.instance_id.clone()));
        let mut asked = 0;
        for link in hub.one_link_per_server() {
            if link.send(&ping).await {
                asked += 1;
            }
        }
        asked
    }

    /// This relay's id in its cluster (`None` for a relay on its own).
    pub fn node_id(&self) -> Option<&str> {
        self.shared.cluster.as_ref().map(|c| c.settings.node_id.as_str())
    }

    /// The ids of the other live nodes of its cluster, sorted.
    pub fn cluster_peers(&self) -> Vec<String> {
        self.shared
            .cluster
            .as_ref()
            .map(|c| c.peers().into_iter().map(|p| p.id).collect())
            .unwrap_or_default()
    }

    /// A handle that stops the relay from elsewhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: self.shared.clone(),
        }
    }

    /// Stops accepting, closes every connection, and waits (a few seconds at most) for
    /// them to end.
    pub async fn shutdown(mut self) {
        self.shared.stop();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout_at(deadline, &mut task).await.is_err()
        {
            task.abort();
        }
        // WebSockets live on after their HTTP connection: wait for the hubs to let them go.
        let hubs = &self.shared.hubs;
        while hubs.all().iter().any(|hub| hub.counts() != (0, 0)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Resolves once the relay has stopped serving (after a [`ShutdownHandle::shutdown`]).
    pub async fn stopped(&mut self) {
        self.shared.shutdown.cancelled().await;
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

/// The whole HTTP app.
fn app(shared: Arc<Shared>) -> Result<Router, Error> {
    let config = &shared.config;
    let (max_message_size, handshake_timeout) = (config.max_message_size, config.handshake_timeout);
    let (queued_bytes, queued_messages) = (config.max_client_queued_bytes, config.max_client_queued_messages);
    let for_clients = shared.clone();
    let for_negotiate = shared.clone();
    let for_limits = shared.clone();
    let switchboard = Switchboard::builder()
        .hub_options(|options| {
            options.require_authorization = true;
            options.maximum_receive_message_size = Some(max_message_size);
            options.handshake_timeout = handshake_timeout;
            options.allow_stateful_reconnects = true;
            options.max_queued_bytes = queued_bytes;
            options.max_queued_messages = queued_messages;
        })
        .authenticator(ClientAuthenticator {
            keys: shared.keys.clone(),
            other_hosts: shared.cluster.clone().map(|cluster| {
                let hosts: Arc<dyn Fn() -> Vec<String> + Send + Sync> = Arc::new(move || cluster.peer_hosts());
                hosts
            }),
        })
        .transport_filter(|claims, transport| claims.is_none_or(|claims| transport_allowed(claims, transport)))
        .stateful_reconnect_filter(move |request| {
            request
                .query("hub")
                .and_then(|hub| for_negotiate.hubs.get(&hub.to_lowercase()))
                .is_some_and(|hub| hub.allows_stateful_reconnects())
        })
        .connection_handler("/client", move |raw| client_face::serve(for_clients.clone(), raw));
    let switchboard = match &shared.cluster {
        Some(_) if config.redirect_clients => {
            let for_redirects = shared.clone();
            switchboard.negotiate_elsewhere(move |request| client_face::redirect(&for_redirects, request))
        }
        _ => switchboard,
    };
    let switchboard = switchboard.build().map_err(|e| Error::config(e.to_string()))?;
    Ok(Router::new()
        .route("/server", get(server_face::accept))
        .route("/server/", get(server_face::accept))
        .route("/api/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(shared)
        .fallback_service(switchboard.http_handler())
        .layer(axum::middleware::from_fn_with_state(for_limits, admit))
        .layer(axum::middleware::from_fn(cors)))
}

/// The limits on clients, before the runtime sees the request: negotiate, and the requests
/// that open a client connection (a WebSocket upgrade, an event stream).
async fn admit(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let opening = if !path.starts_with("/client") {
        None
    } else if request.method() == http::Method::POST && path.trim_end_matches('/').ends_with("/negotiate") {
        Some(crate::limits::Opening::Negotiate)
    } else if request.method() == http::Method::GET
        && (request.headers().contains_key(header::UPGRADE)
            || request
                .headers()
                .get(header::ACCEPT)
                .is_some_and(|accept| accept.as_bytes().starts_with(b"text/event-stream")))
    {
        Some(crate::limits::Opening::Connect)
    } else {
        None
    };
    if let Some(opening) = opening {
        let address = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        if let Err(refusal) = shared.admission.admit(address, opening) {
            tracing::debug!(?address, ?refusal, "a client request refused by a limit");
            return refusal.into_response();
        }
    }
    next.run(request).await
}

/// Browsers reach the relay from the app's pages, another origin: every origin may call it
/// with credentials (the token, not cookies, is what authorizes), as Azure SignalR Service
/// allows by default. Preflights are answered here.
async fn cors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let preflight = request.method() == http::Method::OPTIONS && origin.is_some();
    let requested = request.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    let mut response = if preflight {
        let mut response = http::StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        if let Some(requested) = requested {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
        }
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        response
    } else {
        next.run(request).await
    };
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let body = match &shared.cluster {
        None => serde_json::json!({"status": "ok"}),
        Some(cluster) => serde_json::json!({
            "status": "ok",
            "node": cluster.settings.node_id,
            "redis": if cluster.redis_up() { "up" } else { "down" },
            "peers": cluster.peers().into_iter().map(|peer| serde_json::json!({
                "id": peer.id,
                "advertise": peer.advertise,
                "clients": peer.clients,
                "hubs": peer.hubs,
            })).collect::<Vec<_>>(),
        }),
    };
    let mut response = body.to_string().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut text = shared.metrics().render(&shared.hubs.snapshot());
    shared.admission.render_metrics(&mut text);
    if let Some(cluster) = &shared.cluster {
        cluster.render_metrics(&mut text);
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// A node id for a node not given one: `node-` and 12 random characters.
fn random_node_id() -> String {
    let id = switchboard::transport::new_id();
    format!("node-{}", &id[..12])
}
