//! The HTTP face of hubs: negotiate, the transports, and routing, as a tower `Service`
//! ([`HttpHandler`]) that also serves as an axum fallback.
//!
//! For a hub mapped at `/chat`:
//!
//! | request | answer |
//! |---|---|
//! | `POST /chat/negotiate[?negotiateVersion=1]` | a new connection id (and token) and the transports |
//! | `GET /chat[?id=<token>]` + WebSocket upgrade | the WebSockets transport; without `id`, a connection is made on the spot (skip negotiation) |
//! | anything else on `/chat` | the reference server's status codes and texts |
//!
//! Paths are matched ignoring case, as ASP.NET Core does.

pub mod auth;
mod long_polling;
pub(crate) mod outbound;
pub mod raw;
pub(crate) mod registry;
mod sse;
mod websocket;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::queue;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::request::Parts;
use http::{HeaderValue, Method, Request, StatusCode, header};

use self::auth::{Authenticator, UserContext, UserIdProvider};
use self::registry::{Registry, SendTarget};
use crate::connection::claims::Claims;
use crate::connection::dispatcher::Dispatcher;
use crate::connection::inbound::Inbound;
use crate::connection::request::{RequestInfo, parse_query};
use crate::connection::{CloseReason, Connection, ConnectionParts, driver};
use crate::options::{HubOptions, TransportType};
use crate::protocol::TransferFormat;
use crate::protocol::negotiate::{self, AvailableTransport, NegotiateResponse};

/// What serves an endpoint's connections.
pub(crate) enum EndpointKind {
    /// A hub: handshake, hub protocol, dispatch.
    Hub(Arc<dyn Dispatcher>),
    /// A raw connection handler: bytes in, bytes out.
    Raw(raw::RawHandler),
}

/// One hub (or raw connection handler) mapped at one path.
pub(crate) struct Endpoint {
    pub path: String,
    pub kind: EndpointKind,
    pub options: HubOptions,
    pub registry: Registry,
    /// The connection core's settings of its raw connections, by transport.
    pub configs: crate::connection::CoreConfigs,
    /// Set when the endpoint's clients connect elsewhere (service mode): negotiate answers
    /// with where to go instead of a connection of this app.
    pub redirect: Option<Arc<dyn NegotiateRedirect>>,
}

/// Answers negotiate for an endpoint whose clients are held elsewhere: the body that sends
/// the client there, or the status and text of why it cannot go yet.
pub(crate) trait NegotiateRedirect: Send + Sync {
    fn redirect(
        &self,
        options: &HubOptions,
        request: &RequestInfo,
        claims: Option<&Claims>,
        user_id: Option<String>,
        hub_path: &str,
    ) -> Result<Vec<u8>, RedirectError>;
}

/// Why a redirect could not be made, with the status code and text to answer.
#[derive(Debug)]
pub(crate) struct RedirectError {
    pub status: u16,
    pub text: String,
}

impl Endpoint {
    fn options(&self) -> &HubOptions {
        &self.options
    }
}

/// Everything the HTTP face needs, shared by all requests.
pub(crate) struct AppState {
    pub endpoints: HashMap<String, Arc<Endpoint>>,
    pub authenticator: Option<Arc<dyn Authenticator>>,
    pub user_id_provider: UserIdProvider,
    pub transport_filter: Option<TransportFilter>,
    pub stateful_filter: Option<StatefulFilter>,
    pub negotiate_elsewhere: Option<NegotiateElsewhere>,
}

/// Sends some negotiate requests elsewhere (a relay node to another node of its cluster).
pub(crate) type NegotiateElsewhere =
    Arc<dyn Fn(&RequestInfo) -> Option<crate::protocol::negotiate::NegotiateRedirect> + Send + Sync>;

/// Which transports a client may use, from its token's claims.
pub(crate) type TransportFilter = Arc<dyn Fn(Option<&Claims>, TransportType) -> bool + Send + Sync>;

/// Whether to offer stateful reconnect to a negotiate request that asks for it.
pub(crate) type StatefulFilter = Arc<dyn Fn(&RequestInfo) -> bool + Send + Sync>;

impl AppState {
    /// Whether the endpoint offers `transport` to a client with these claims.
    fn offers(&self, endpoint: &Endpoint, claims: Option<&Claims>, transport: TransportType) -> bool {
        endpoint.options().transports.contains(&transport)
            && self
                .transport_filter
                .as_ref()
                .is_none_or(|allows| allows(claims, transport))
    }
}

/// Answers the HTTP requests of every mapped hub (negotiate and the transports): a tower
/// `Service` for `Request<axum::body::Body>`.
///
/// Requests for paths that are not hubs get 404, so the handler can be an axum router's
/// fallback (which is what [`Switchboard::router`](crate::Switchboard::router) does).
#[derive(Clone)]
pub struct HttpHandler {
    state: Arc<AppState>,
}

impl std::fmt::Debug for HttpHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHandler")
            .field("hubs", &self.state.endpoints.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl HttpHandler {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl tower::Service<Request<Body>> for HttpHandler {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move { Ok(handle(state, request).await) })
    }
}

enum Route {
    Negotiate(Arc<Endpoint>),
    Connection(Arc<Endpoint>),
}

fn route(state: &AppState, path: &str) -> Option<Route> {
    let path = path.trim_end_matches('/').to_ascii_lowercase();
    if let Some(endpoint) = state.endpoints.get(&path) {
        return Some(Route::Connection(endpoint.clone()));
    }
    let hub = path.strip_suffix("/negotiate")?;
    state
        .endpoints
        .get(hub)
        .map(|endpoint| Route::Negotiate(endpoint.clone()))
}

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn empty(status: StatusCode) -> Response {
    let mut response = status.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

fn json(body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn handle(state: Arc<AppState>, request: Request<Body>) -> Response {
    let Some(route) = route(&state, request.uri().path()) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let (parts, body) = request.into_parts();
    let endpoint = match &route {
        Route::Negotiate(e) | Route::Connection(e) => e.clone(),
    };
    // Authorization applies to every request of the endpoint, negotiate included.
    let Ok(claims) = authenticate(&state, &endpoint, &parts) else {
        return empty(StatusCode::UNAUTHORIZED);
    };
    match route {
        Route::Negotiate(_) if parts.method == Method::POST => negotiate(&state, &endpoint, &parts, claims.as_ref()),
        Route::Negotiate(_) => empty(StatusCode::METHOD_NOT_ALLOWED),
        Route::Connection(_) => connect(state, endpoint, parts, body, claims).await,
    }
}

/// The claims of the request's token; `Err` when the endpoint needs a valid token and the
/// request has none.
fn authenticate(state: &AppState, endpoint: &Endpoint, parts: &Parts) -> Result<Option<Claims>, ()> {
    let claims = match (auth::bearer_token(parts), &state.authenticator) {
        (Some(token), Some(authenticator)) => {
            match authenticator.authenticate(&token, &RequestInfo::from_parts(parts)) {
                Ok(claims) => Some(claims),
                Err(error) => {
                    tracing::debug!(path = %endpoint.path, %error, "bearer token refused");
                    None
                }
            }
        }
        _ => None,
    };
    if endpoint.options().require_authorization && claims.is_none() {
        return Err(());
    }
    Ok(claims)
}

/// A new random id: 16 bytes, base64url without padding (22 characters), as connection ids
/// and tokens are made (a relay names its cluster nodes with one too).
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS random source is unavailable: fall back to a time-and-counter id, which is
        // unique but guessable, and say so.
        tracing::error!("the operating system's random source failed; connection ids are not secret");
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        bytes[..8].copy_from_slice(&t.to_le_bytes());
        bytes[8..].copy_from_slice(&n.to_le_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn transfer_formats(transport: TransportType) -> &'static [TransferFormat] {
    match transport {
        TransportType::WebSockets | TransportType::LongPolling => &[TransferFormat::Text, TransferFormat::Binary],
        TransportType::ServerSentEvents => &[TransferFormat::Text],
    }
}

fn query_value(parts: &Parts, name: &str) -> Option<String> {
    parse_query(parts.uri.query()?)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn negotiate(state: &AppState, endpoint: &Endpoint, parts: &Parts, claims: Option<&Claims>) -> Response {
    if let Some(redirect) = &endpoint.redirect {
        let request = RequestInfo::from_parts(parts);
        let user_id = (state.user_id_provider)(&UserContext {
            claims,
            request: &request,
        });
        return match redirect.redirect(endpoint.options(), &request, claims, user_id, &endpoint.path) {
            Ok(body) => json(body),
            Err(error) => {
                let mut response = (
                    StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    error.text,
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                response
            }
        };
    }
    if let Some(elsewhere) = &state.negotiate_elsewhere
        && let Some(redirect) = elsewhere(&RequestInfo::from_parts(parts))
    {
        return json(serde_json::to_vec(&redirect).unwrap_or_default());
    }
    let version = match negotiate::select_version(query_value(parts, "negotiateVersion").as_deref(), 0) {
        Ok(version) => version,
        Err(error) => return json(serde_json::to_vec(&error).unwrap_or_default()),
    };
    let options = endpoint.options();
    // Only when the hub allows it and the client asked: the client fails when told about
    // stateful reconnect without having asked.
    let stateful = options.allow_stateful_reconnects
        && version > 0
        && query_value(parts, "useStatefulReconnect").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        && state
            .stateful_filter
            .as_ref()
            .is_none_or(|offer| offer(&RequestInfo::from_parts(parts)));
    let connection_id = new_id();
    let connection_token = if version > 0 { Some(new_id()) } else { None };
    let token = connection_token.clone().unwrap_or_else(|| connection_id.clone());
    endpoint.registry.insert_pending(
        token,
        connection_id.clone().into(),
        options.disconnect_timeout,
        stateful,
    );
    let body = NegotiateResponse {
        connection_id,
        connection_token,
        negotiate_version: version,
        available_transports: options
            .transports
            .iter()
            .filter(|t| state.offers(endpoint, claims, **t))
            .map(|t| AvailableTransport::new(t.as_str(), transfer_formats(*t)))
            .collect(),
        use_stateful_reconnect: stateful,
    };
    json(serde_json::to_vec(&body).unwrap_or_default())
}

fn is_websocket_request(parts: &Parts) -> bool {
    parts.method == Method::CONNECT
        || parts
            .headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

fn not_supported(transport: TransportType) -> Response {
    let body = match transport {
        TransportType::WebSockets => "WebSockets transport not supported by this end point type",
        TransportType::ServerSentEvents => "ServerSentEvents transport not supported by this end point type",
        TransportType::LongPolling => "LongPolling transport not supported by this end point type",
    };
    text(StatusCode::NOT_FOUND, body)
}

/// What a request to a hub path (not negotiate) asks for.
fn transport_of(parts: &Parts) -> TransportType {
    if is_websocket_request(parts) {
        return TransportType::WebSockets;
    }
    let accepts_events = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if accepts_events {
        TransportType::ServerSentEvents
    } else {
        TransportType::LongPolling
    }
}

async fn connect(
    state: Arc<AppState>,
    endpoint: Arc<Endpoint>,
    parts: Parts,
    body: Body,
    claims: Option<Claims>,
) -> Response {
    let token = query_value(&parts, "id");
    match parts.method {
        Method::GET | Method::CONNECT => {
            let transport = transport_of(&parts);
            if !state.offers(&endpoint, claims.as_ref(), transport) {
                return not_supported(transport);
            }
            match transport {
                TransportType::WebSockets => websocket::request(state, endpoint, parts, token, claims).await,
                _ if token.is_none() => text(StatusCode::BAD_REQUEST, "Connection ID required"),
                TransportType::ServerSentEvents => sse::request(state, endpoint, parts, token, claims),
                TransportType::LongPolling => long_polling::request(state, endpoint, parts, token, claims).await,
            }
        }
        Method::POST => match token {
            None => text(StatusCode::BAD_REQUEST, "Connection ID required"),
            Some(token) => send(&endpoint, &token, body).await,
        },
        Method::DELETE => match token {
            None => text(StatusCode::BAD_REQUEST, "Connection ID required"),
            Some(token) => long_polling::delete(&endpoint, &token),
        },
        _ => empty(StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// `POST {hub}?id=…`: bytes from the client, for Server-Sent Events and long polling.
async fn send(endpoint: &Endpoint, token: &str, body: Body) -> Response {
    let limit = endpoint
        .options()
        .maximum_receive_message_size
        .map_or(64 << 20, |max| max.saturating_mul(4).max(1 << 20));
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return empty(StatusCode::PAYLOAD_TOO_LARGE);
    };
    match endpoint.registry.send_target(token, &bytes) {
        SendTarget::Unknown => text(StatusCode::NOT_FOUND, "No Connection with that ID"),
        SendTarget::TooLarge => empty(StatusCode::PAYLOAD_TOO_LARGE),
        SendTarget::Buffered => empty(StatusCode::OK),
        SendTarget::Attached(attached) => match &attached.inbound {
            _ if attached.transport == TransportType::WebSockets => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST requests are not allowed for WebSocket connections.",
            ),
            None => empty(StatusCode::OK),
            Some(_) if bytes.is_empty() => empty(StatusCode::OK),
            Some(inbound) => match inbound.send(bytes).await {
                Ok(()) => empty(StatusCode::OK),
                Err(_) => text(StatusCode::NOT_FOUND, "No Connection with that ID"),
            },
        },
    }
}

/// Creates the connection a transport request opens.
fn new_connection(
    state: &AppState,
    endpoint: &Endpoint,
    parts: &Parts,
    claims: Option<Claims>,
    transport: TransportType,
    id: Arc<str>,
    stateful: bool,
) -> (Arc<Connection>, queue::Receiver<Bytes>) {
    let request = RequestInfo::from_parts(parts);
    let user_id = (state.user_id_provider)(&UserContext {
        claims: claims.as_ref(),
        request: &request,
    });
    Connection::new(ConnectionParts {
        id,
        user_id: user_id.map(Into::into),
        request,
        claims,
        transport,
        hand_over_request: matches!(endpoint.kind, EndpointKind::Raw(_)),
        queue_capacity: endpoint.options().max_queued_messages,
        queue_bytes: endpoint.options().max_queued_bytes,
        stateful_buffer: stateful.then_some(endpoint.options().stateful_reconnect_buffer_size),
    })
}

/// A channel for bytes that arrive by POST, starting with what came before the transport.
fn posted_inbound(early: Vec<Bytes>) -> (queue::Sender<Bytes>, Inbound) {
    let (sender, receiver) = queue::channel(16 + early.len());
    for bytes in early {
        // The channel has room for every early chunk.
        let _ = sender.try_send(bytes);
    }
    (sender, Inbound::Channel(receiver))
}

/// Runs the hub (or raw handler) of an endpoint on a connection until it ends.
pub(crate) async fn run_endpoint(endpoint: &Endpoint, conn: Arc<Connection>, inbound: Inbound, binary_transport: bool) {
    match &endpoint.kind {
        EndpointKind::Hub(dispatcher) => {
            let formats: fn(TransferFormat) -> bool = if binary_transport {
                |_| true
            } else {
                |format| format == TransferFormat::Text
            };
            // Boxed: this future's state would otherwise hold the driver's arguments and the
            // driver's own state side by side, for the whole life of the connection.
            Box::pin(driver::run(conn.clone(), inbound, formats, dispatcher.clone())).await;
        }
        EndpointKind::Raw(handler) => {
            handler(raw::RawConnection::new(conn.clone(), inbound, endpoint)).await;
            conn.close(CloseReason::graceful());
        }
    }
    conn.close(CloseReason::transport_closed());
}
