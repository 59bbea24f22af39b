//! The conformance server's hubs and routes (see `docs/CONFORMANCE.md`): the
//! surface of the app behind the official TypeScript client's functional tests, plus hubs
//! for groups, users and broadcast. The binary serves it; tests can use it in-process and
//! reach the hubs' generated typed clients.

pub mod chat_hub;
pub mod test_hub;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use switchboard::transport::auth::sign_hs256;
use switchboard::{AppHandle, HubError, HubHandle, JwtBearer, Switchboard, TransportType};

use chat_hub::{ChatHub, Stats};
use test_hub::TestHub;

/// What the routes share.
#[derive(Clone)]
pub struct AppState {
    secret: Arc<Vec<u8>>,
    stats: Arc<Stats>,
    redirects: Arc<AtomicU64>,
    test_hub: Arc<std::sync::OnceLock<HubHandle<TestHub>>>,
    /// The started app, for changing its service endpoints.
    running: Arc<std::sync::OnceLock<AppHandle>>,
    /// This app server's name: `--server-name`, else `{hostname}_{random}`.
    server_name: Arc<str>,
}

fn token_for(state: &AppState, user: &str, lifetime: Duration) -> Response {
    let mut claims = Map::new();
    claims.insert("nameid".into(), Value::from(user));
    match sign_hs256(&state.secret, claims, lifetime) {
        Ok(token) => token.into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn generate_token(State(state): State<AppState>) -> Response {
    token_for(&state, "testuser", Duration::from_secs(5))
}

async fn generate_token_for(State(state): State<AppState>, Path(user): Path<String>) -> Response {
    token_for(&state, &user, Duration::from_secs(60))
}

/// Asks a TestHub connection's client method `Result` for an int: the body is the int, or
/// the error's text.
async fn client_result(State(state): State<AppState>, Path(connection_id): Path<String>) -> Response {
    let Some(hub) = state.test_hub.get() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "TestHub is not mapped").into_response();
    };
    match hub.clients().client(connection_id).result().await {
        Ok(value) => value.to_string().into_response(),
        Err(error) => error.message().to_owned().into_response(),
    }
}

/// `GET /exists/{connection|user|group}/{name}`: whether TestHub has it (across app servers
/// and, through a relay cluster, across its nodes): `true` or `false`.
async fn exists(State(state): State<AppState>, Path((what, name)): Path<(String, String)>) -> Response {
    let Some(hub) = state.test_hub.get() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "TestHub is not mapped").into_response();
    };
    let found = match what.as_str() {
        "connection" => hub.connection_exists(&name).await,
        "user" => hub.user_exists(&name).await,
        "group" => hub.group_exists(&name).await,
        _ => return (StatusCode::NOT_FOUND, "connection, user or group").into_response(),
    };
    match found {
        Ok(found) => found.to_string().into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.message().to_owned()).into_response(),
    }
}

/// `POST /groups/{group}/{connection_id}`: the app server adds a TestHub connection (on any
/// app server) to a group; 200 once acknowledged, 500 with the error otherwise.
async fn add_to_group(State(state): State<AppState>, Path((group, connection_id)): Path<(String, String)>) -> Response {
    let Some(hub) = state.test_hub.get() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "TestHub is not mapped").into_response();
    };
    match hub.groups().add(&connection_id, &group).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.message().to_owned()).into_response(),
    }
}

/// Drops a TestHub connection's transport as a network failure would; the connection
/// survives when it reconnects statefully (a test hook, not part of the reference app).
async fn drop_transport(State(state): State<AppState>, Path(connection_id): Path<String>) -> Response {
    match state.test_hub.get() {
        Some(hub) if hub.interrupt_transport(&connection_id) => StatusCode::OK.into_response(),
        _ => (StatusCode::NOT_FOUND, "No Connection with that ID").into_response(),
    }
}

/// `POST /endpoints` with `{"action":"add"|"remove","connectionString":…,"type":"primary"|"secondary","name":…}`:
/// adds or removes a service endpoint while the server runs; answers once the endpoint takes
/// clients (add) or is dropped (remove), 400 with the reason otherwise.
async fn change_endpoints(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Change {
        action: String,
        connection_string: String,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        name: String,
    }
    let bad = |text: String| (StatusCode::BAD_REQUEST, text).into_response();
    let change: Change = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(error) => return bad(format!("invalid body: {error}")),
    };
    let Some(running) = state.running.get() else {
        return bad("the server is not started".into());
    };
    let kind = match change.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("primary") => switchboard::service::EndpointType::Primary,
        Some("secondary") => switchboard::service::EndpointType::Secondary,
        Some(other) => return bad(format!("unknown endpoint type '{other}'")),
    };
    let done = match change.action.as_str() {
        "add" => {
            let endpoint = switchboard::service::ServiceEndpoint::new(change.connection_string, kind, change.name);
            running.add_endpoint(endpoint).await
        }
        "remove" => running.remove_endpoint(&change.connection_string).await,
        other => return bad(format!("unknown action '{other}'")),
    };
    match done {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => bad(error.to_string()),
    }
}

async fn stats(State(state): State<AppState>) -> Response {
    axum::Json(json!({
        "connected": state.stats.connected.load(Ordering::Relaxed),
        "disconnected": state.stats.disconnected.load(Ordering::Relaxed),
        "migratedIn": state.stats.migrated_in.load(Ordering::Relaxed),
        "migratedOut": state.stats.migrated_out.load(Ordering::Relaxed),
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
struct RedirectQuery {
    #[serde(rename = "baseUrl")]
    base_url: Option<String>,
}

async fn redirect(State(state): State<AppState>, Query(query): Query<RedirectQuery>) -> Response {
    let n = state.redirects.fetch_add(1, Ordering::Relaxed) + 1;
    let base = query.base_url.unwrap_or_default();
    axum::Json(json!({ "url": format!("{base}/testHub?numRedirects={n}") })).into_response()
}

/// Every negotiate also sets two cookies and an expired one, as the reference app does.
async fn negotiate_cookies(request: Request<axum::body::Body>, next: Next) -> Response {
    let is_negotiate = request.uri().path().to_ascii_lowercase().contains("/negotiate");
    let mut response = next.run(request).await;
    if is_negotiate {
        let headers = response.headers_mut();
        for cookie in [
            "testCookie=testValue; Path=/",
            "testCookie2=testValue2; Path=/",
            "expiredCookie=doesntmatter; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        ] {
            headers.append(header::SET_COOKIE, HeaderValue::from_static(cookie));
        }
    }
    response
}

/// The whole app: hubs and routes, started (call it inside a Tokio runtime).
pub fn build(state: &AppState) -> Result<(axum::Router, AppHandle), switchboard::BuildError> {
    build_with(state, None)
}

/// The whole app, in service mode when `service` is given, started (call it inside a Tokio
/// runtime): the router to serve, and the handle that shuts the app down.
pub fn build_with(
    state: &AppState,
    service: Option<switchboard::service::ServiceOptions>,
) -> Result<(axum::Router, AppHandle), switchboard::BuildError> {
    build_app(state, service, None)
}

/// As [`build_with`], self-hosted hubs sharing their connections through the Redis at
/// `redis` when given (the backplane; this server's name is its name there).
pub fn build_app(
    state: &AppState,
    service: Option<switchboard::service::ServiceOptions>,
    redis: Option<String>,
) -> Result<(axum::Router, AppHandle), switchboard::BuildError> {
    let mut builder = Switchboard::builder();
    if let Some(mut options) = service {
        options.server_name.get_or_insert_with(|| state.server_name.to_string());
        builder = builder.with_service(options);
    }
    if let Some(url) = redis {
        let backplane = switchboard::backplane::RedisBackplane::new(url).server_name(state.server_name.to_string());
        builder = builder.with_redis_backplane(backplane);
    }
    let test_hub = || TestHub {
        server_name: state.server_name.clone(),
    };
    let app = builder
        .authenticator(JwtBearer::hs256(&state.secret))
        .user_id_provider(|user| {
            user.claims
                .and_then(|c| c.name_identifier())
                .map(str::to_owned)
                .or_else(|| user.request.query("user").map(str::to_owned))
        })
        .hub_with("/testhub", test_hub(), |o| o.allow_stateful_reconnects = true)
        .hub_with("/testhub-nowebsockets", test_hub(), |o| {
            o.transports = vec![TransportType::ServerSentEvents, TransportType::LongPolling];
        })
        .hub_with("/authorizedhub", test_hub::AuthorizedHub, |o| {
            o.require_authorization = true
        })
        .hub(
            "/chathub",
            ChatHub {
                stats: state.stats.clone(),
                server_name: state.server_name.clone(),
            },
        )
        .connection_handler("/echo", |mut conn| async move {
            while let Some(bytes) = conn.recv().await {
                conn.send(bytes);
            }
        })
        .build()?;
    if let Some(handle) = app.hub_handle::<TestHub>() {
        let _ = state.test_hub.set(handle);
    }
    let running = app.start()?;
    let _ = state.running.set(running.clone());
    let router = app
        .router()
        .route("/generateJwtToken", get(generate_token))
        .route("/generateJwtToken/{user}", get(generate_token_for))
        .route("/stats", get(stats))
        .route("/clientresult/{connection_id}", get(client_result))
        .route("/droptransport/{connection_id}", get(drop_transport))
        .route("/exists/{what}/{name}", get(exists))
        .route("/groups/{group}/{connection_id}", post(add_to_group))
        .route("/redirect/negotiate", post(redirect))
        .route("/endpoints", post(change_endpoints))
        .layer(middleware::from_fn(negotiate_cookies))
        .with_state(state.clone());
    Ok((router, running))
}

impl AppState {
    /// Fresh state with a random token-signing secret, for the app server named `name`.
    pub fn with_server_name(name: &str) -> Self {
        Self {
            server_name: Arc::from(name),
            ..Self::new()
        }
    }

    /// Fresh state with a random token-signing secret, for an app server named
    /// `{hostname}_{random}`.
    pub fn new() -> Self {
        let mut secret = vec![0u8; 32];
        if getrandom::fill(&mut secret).is_err() {
            // Without the OS random source the secret is only unique, not secret: fine for a
            // test server on loopback.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            secret = nanos.to_le_bytes().repeat(2);
        }
        Self {
            secret: Arc::new(secret),
            stats: Arc::new(Stats::default()),
            redirects: Arc::new(AtomicU64::new(0)),
            test_hub: Arc::new(std::sync::OnceLock::new()),
            running: Arc::new(std::sync::OnceLock::new()),
            server_name: Arc::from(switchboard::service::default_server_name()),
        }
    }
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

/// Fails like a .NET `InvalidOperationException`.
pub(crate) fn invalid_operation(message: String) -> HubError {
    HubError::exception("InvalidOperationException", message)
}
