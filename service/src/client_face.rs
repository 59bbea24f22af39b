//! The client face: one task per client connection, which the runtime's transports (with
//! negotiate, WebSockets, Server-Sent Events and long polling) hand over as a raw connection
//! once its token is accepted.
//!
//! The task reads the client's SignalR handshake request to learn its hub protocol, pins the
//! client to one of the hub's server connections, announces it there (`OpenConnection`) and
//! then tunnels every byte from the client, the handshake first, as `ConnectionData`. What the
//! app server sends back reaches the client through the hubs ([`crate::state::hubs`]).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use switchboard::protocol::Protocol;
use switchboard::protocol::framing::RECORD_SEPARATOR;
use switchboard::protocol::handshake::HANDSHAKE_CANCELED;
use switchboard::protocol::service::{
    CloseConnection, ConnectionData, ConnectionReconnect, INSTANCE_ID, MIGRATE_FROM, MIGRATE_TO, OpenConnection, Ping,
    ServiceMessage,
};
use switchboard::transport::raw::RawConnection;
use switchboard::{RequestInfo, TransportType};

use crate::auth::{claim_pairs, transport_allowed};
use crate::record_boundary::RecordBoundary;
use crate::state::Shared;
use crate::state::hub::{Hub, NewClient, Refusal, SERVER_OFFLINE, Sticky, close_reconnectable};
use crate::state::hubs::Pinned;
use crate::state::mover::Mover;
use crate::state::server_link::ServerLink;

/// The largest handshake request the relay waits for: ASP.NET Core's default
/// `MaximumReceiveMessageSize` (32 KiB), which bounds a self-hosted server's handshake.
const MAX_HANDSHAKE_SIZE: usize = 32 * 1024;

/// The handshake error of a client whose token requires an app server that has no server
/// connection to the hub (the text Azure SignalR Service gives).
pub(crate) const STICKY_SERVER_GONE: &str = "The server which the client is sticky to is not found.";

/// A client pinned to a server connection and announced there.
struct Opened {
    hub: Arc<Hub>,
    link: Arc<ServerLink>,
    connection_id: String,
    stateful: bool,
    /// The hub protocol its handshake named, when the relay knows it.
    protocol: Option<Protocol>,
    /// When its token expires, for a transport whose requests carry the token again and
    /// again (Server-Sent Events, long polling): the connection ends then.
    expires: Option<tokio::time::Instant>,
    /// Present when the client's app server may have it moved to another one.
    movable: Option<Box<Movable>>,
}

/// What moving a client to another app server takes: the announcement and handshake to
/// replay there, and where the records of its input end.
struct Movable {
    mover: Arc<Mover>,
    open: OpenConnection,
    handshake: Bytes,
    records: RecordBoundary,
}

/// Serves one client connection until it ends.
pub(crate) async fn serve(shared: Arc<Shared>, mut raw: RawConnection) {
    // Counted against the limits until the connection ends.
    let _counted = shared
        .admission
        .connected(raw.request().remote_address().map(|address| address.ip()));
    // Boxed: what opening needs (claims, the handshake, the announcement) is gone by the time
    // the connection idles, and does not stay in this future's state.
    let Some(opened) = Box::pin(open(&shared, &mut raw)).await else {
        raw.close();
        return;
    };
    let Opened {
        hub,
        mut link,
        connection_id,
        stateful,
        protocol,
        expires,
        mut movable,
    } = opened;
    let events = raw.sender();
    let mut alive = true;
    // The server connection the client moves to, once asked, until its input is at a
    // record boundary.
    let mut moving: Option<Arc<ServerLink>> = None;
    // Only a client whose token expires holds a timer (boxed: most clients have none, and an
    // idle client's task should stay small).
    let mut expired = expires.map(|at| Box::pin(tokio::time::sleep_until(at)));
    while alive {
        let next = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => None,
            // Before any bytes of the new socket, which start with the client's Sequence.
            _ = events.reattached(), if stateful => {
                let reconnect = ConnectionReconnect {
                    connection_id: connection_id.clone(),
                };
                alive = link.send(&ServiceMessage::ConnectionReconnect(reconnect)).await;
                continue;
            }
            () = expiry(&mut expired) => {
                tracing::debug!(connection = %connection_id, "the client's access token expired");
                close_reconnectable(&events, protocol, TOKEN_EXPIRED);
                break;
            }
            target = requested(&movable, moving.is_none()) => {
                match &movable {
                    Some(m) if m.records.at_boundary() => {
                        link = Box::pin(switch(&hub, &connection_id, link, target, m)).await;
                    }
                    _ => moving = Some(target),
                }
                continue;
            }
            next = raw.recv() => next,
        };
        let Some(mut bytes) = next else { break };
        shared.metrics().client_received(bytes.len());
        if let Some(m) = &mut movable {
            let end = m.records.first_end(&bytes);
            if let (Some(end), Some(_)) = (end, &moving) {
                // What completes the record under way goes to the old server; the rest, and
                // everything after, to the new one.
                let head = bytes.split_to(end);
                alive = link.send(&data(&connection_id, head)).await;
                if let Some(target) = moving.take() {
                    link = Box::pin(switch(&hub, &connection_id, link, target, m)).await;
                }
                if bytes.is_empty() {
                    continue;
                }
            }
        }
        alive = link.send(&data(&connection_id, bytes)).await;
    }
    // Closed by the client (or the relay) rather than by the app: the app server it was last
    // announced to is told. When that server went away first, the client hears why.
    if hub.detach_client(&connection_id).is_some() {
        if !alive {
            close_reconnectable(&events, protocol, SERVER_OFFLINE);
        }
        let close = CloseConnection {
            connection_id,
            ..CloseConnection::default()
        };
        link.send(&ServiceMessage::CloseConnection(close)).await;
    }
    shared.hubs.release(&hub);
    raw.close();
}

/// The query parameter of a client that negotiate sent on to another node (its value that
/// node's id): it is not sent on again.
const REDIRECTED: &str = "asrs.sb.node";

/// Negotiate in a cluster: a new client goes on to the node with the fewest clients when that
/// is another one that has an app server for its hub, with the token it came with.
pub(crate) fn redirect(
    shared: &Shared,
    request: &RequestInfo,
) -> Option<switchboard::protocol::negotiate::NegotiateRedirect> {
    let cluster = shared.cluster.as_ref()?;
    // A client sent here by another node stays.
    if request.query(REDIRECTED).is_some() {
        return None;
    }
    let hub = request.query("hub")?.to_lowercase();
    let token = switchboard::transport::auth::bearer_header(request.headers())
        .or_else(|| request.query("access_token"))?
        .to_owned();
    let mine: usize = shared.hubs.all().iter().map(|hub| hub.counts().0).sum();
    let node = cluster.redirect_target(&hub, mine)?;
    let kept: Vec<&str> = request
        .query_string()
        .unwrap_or("")
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !pair.is_empty() && !matches!(name, "access_token" | "negotiateVersion" | "useStatefulReconnect")
        })
        .collect();
    tracing::debug!(%hub, node = %node.id, "negotiate sends a client to another node");
    Some(switchboard::protocol::negotiate::NegotiateRedirect {
        url: format!(
            "{}/client/?{}&{REDIRECTED}={}",
            node.advertise.trim_end_matches('/'),
            kept.join("&"),
            node.id
        ),
        access_token: Some(token),
    })
}

/// The Close message error of a Server-Sent Events or long-polling client whose access token
/// expired (its next request would be refused with 401, as Azure SignalR Service does).
pub(crate) const TOKEN_EXPIRED: &str = "Unauthorized: the access token expired. Negotiate again for a new one.";

/// Resolves when the timer fires (never without one).
async fn expiry(timer: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// When a client with these claims must go: at its token's `exp`, for the transports that
/// present the token with every request.
fn token_expiry(claims: &switchboard::Claims, transport: TransportType) -> Option<tokio::time::Instant> {
    if transport == TransportType::WebSockets {
        return None;
    }
    let exp = claims.get("exp").and_then(serde_json::Value::as_i64)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let left = u64::try_from(exp).ok()?.saturating_sub(now);
    Some(tokio::time::Instant::now() + std::time::Duration::from_secs(left))
}

/// The long-polling limit a token names (`asrs.s.ttl`, 1 to 300 seconds).
fn max_poll_interval(claims: &switchboard::Claims) -> Option<std::time::Duration> {
    let value = claims.get(switchboard::jwt::claims::MAX_POLL_INTERVAL)?;
    let seconds = match value {
        serde_json::Value::String(text) => text.trim().parse::<u64>().ok()?,
        other => other.as_u64()?,
    };
    (1..=300)
        .contains(&seconds)
        .then(|| std::time::Duration::from_secs(seconds))
}

/// The next move asked for the client, while `waiting` (never for a client that cannot move).
/// Boxed: only movable clients hold the wait.
fn requested(
    movable: &Option<Box<Movable>>,
    waiting: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Arc<ServerLink>> + Send + '_>> {
    match movable {
        Some(movable) if waiting => Box::pin(movable.mover.requested()),
        _ => Box::pin(std::future::pending()),
    }
}

/// Moves a client, at a record boundary of its input, from `old` to `target`: the new server
/// hears of it first (the announcement with `Asrs-Migrate-From`, then its handshake), then
/// the old one (a CloseConnection with `Asrs-Migrate-To`: it finishes what the client asked,
/// then says it is done). Returns the server connection the client's input goes to from
/// now on: the old one again when the new one went away meanwhile.
async fn switch(
    hub: &Hub,
    connection_id: &str,
    old: Arc<ServerLink>,
    target: Arc<ServerLink>,
    movable: &Movable,
) -> Arc<ServerLink> {
    let mut open = movable.open.clone();
    open.headers
        .push((MIGRATE_FROM.to_owned(), vec![old.server_id.clone().unwrap_or_default()]));
    let announced = target.send(&ServiceMessage::OpenConnection(open)).await
        && target.send(&data(connection_id, movable.handshake.clone())).await;
    if !announced {
        tracing::debug!(connection = %connection_id, "the server a client was moving to went away; it stays");
        hub.moved(connection_id, &old);
        return old;
    }
    hub.moved(connection_id, &target);
    let close = CloseConnection {
        connection_id: connection_id.to_owned(),
        headers: vec![(
            MIGRATE_TO.to_owned(),
            vec![target.server_id.clone().unwrap_or_default()],
        )],
        ..CloseConnection::default()
    };
    old.send(&ServiceMessage::CloseConnection(close)).await;
    target
}

/// Reads the client's handshake request, pins the client to one of its hub's server
/// connections and announces it there with the handshake; `None` if the client left or was
/// refused.
async fn open(shared: &Shared, raw: &mut RawConnection) -> Option<Opened> {
    // The authenticator let the connection in, so it has a hub and claims.
    let hub_key = raw.request().query("hub").map(str::to_lowercase)?;
    let claims = raw.claims()?;
    // The runtime refuses these already (see `transport_filter`); a second check costs nothing.
    if !transport_allowed(claims, raw.transport()) {
        tracing::debug!(hub = %hub_key, transport = raw.transport().as_str(), "transport not allowed by the token");
        return None;
    }
    let user = claims.get(switchboard::jwt::claims::USER_ID).and_then(claim_as_text);
    let expires = token_expiry(claims, raw.transport());
    // Long polling: the connection ends when the next poll does not come within the token's
    // limit (Azure's MaxPollIntervalInSeconds), else within the hub's disconnect timeout.
    if raw.transport() == TransportType::LongPolling
        && let Some(limit) = max_poll_interval(claims)
    {
        raw.set_disconnect_timeout(limit);
    }
    let text = |name: &str| claims.get(name).and_then(|v| v.as_str());
    let sticky = Sticky::from_claims(
        text(switchboard::jwt::claims::SERVER_NAME),
        text(switchboard::jwt::claims::SERVER_STICKY),
    );
    let claims = claim_pairs(&claims.0);
    let mut handshake = read_handshake(shared, raw).await?;
    let (protocol, version) = handshake_request(&handshake);
    let hub_protocol = protocol.as_deref().and_then(Protocol::from_name);
    match hub_protocol {
        Some(hub_protocol) => raw.set_protocol(hub_protocol),
        None => raw.set_binary(protocol.as_deref().is_some_and(is_binary_protocol)),
    }
    let connection_id = raw.connection_id().to_owned();
    let client = NewClient {
        sender: raw.sender(),
        protocol: protocol.clone(),
        user,
        transport: raw.transport(),
        sticky,
    };
    let max_clients = shared.config.max_clients_per_hub;
    let Pinned { hub, link, mover } = match shared.hubs.attach_client(&hub_key, &connection_id, client, max_clients) {
        Ok(pinned) => pinned,
        Err(refusal) => {
            tracing::debug!(hub = %hub_key, ?refusal, "client refused");
            raw.send(handshake_error(match refusal {
                Refusal::NoServer => "No app server is connected to this hub; try again later.",
                Refusal::Full => "The hub has reached its limit of client connections.",
                Refusal::StickyServerGone => STICKY_SERVER_GONE,
            }));
            return None;
        }
    };
    // A connection with many clients: its app server is asked for another one (to this relay).
    if link.wants_company(shared.config.clients_per_server_connection) {
        let ping = ServiceMessage::Ping(Ping::target(shared.instance_id.clone()));
        tracing::debug!(hub = %hub_key, "asking an app server for another server connection");
        link.send(&ping).await;
    }
    let mut headers = forwarded_headers(raw.request());
    // Which relay holds the client: when it goes, the app server drops the clients it held.
    headers.push((INSTANCE_ID.to_owned(), vec![shared.instance_id.clone()]));
    let open = OpenConnection {
        connection_id: connection_id.clone(),
        claims,
        headers,
        query_string: Some(forwarded_query(raw.request())),
        tracing_id: None,
        protocol,
    };
    // Stateful reconnect (handshake version 2, offered at negotiate): the connection outlives
    // its sockets here; the runtime numbers, acknowledges and replays the records on this side
    // and the client's own replay is deduplicated before it reaches the app server, which is
    // told of each new socket (ConnectionReconnect) as Azure SignalR Service does.
    // Nothing more is read of the request or the token: an idle client should not hold them.
    raw.release_request();
    let stateful = version >= 2
        && link.stateful_reconnects
        && hub_protocol.is_some_and(|protocol| raw.accept_stateful_reconnect(protocol));
    if stateful {
        // What came with the handshake request is numbered like what follows.
        let end = handshake
            .iter()
            .position(|b| *b == RECORD_SEPARATOR)
            .map_or(handshake.len(), |end| end + 1);
        raw.unread(&handshake[end..]);
        handshake = handshake.slice(..end);
    }
    // A client that may move keeps what announcing it elsewhere takes, and follows its records.
    let request_end = handshake
        .iter()
        .position(|b| *b == RECORD_SEPARATOR)
        .map_or(handshake.len(), |end| end + 1);
    let movable = match (mover, hub_protocol) {
        (Some(mover), Some(protocol)) => {
            let mut records = RecordBoundary::new(protocol);
            records.first_end(&handshake[request_end..]);
            Some(Box::new(Movable {
                mover,
                open: open.clone(),
                handshake: handshake.slice(..request_end),
                records,
            }))
        }
        _ => None,
    };
    let announced =
        link.send(&ServiceMessage::OpenConnection(open)).await && link.send(&data(&connection_id, handshake)).await;
    if !announced {
        // The server connection ended meanwhile: the client was pinned to it and goes too.
        hub.detach_client(&connection_id);
        shared.hubs.release(&hub);
        return None;
    }
    Some(Opened {
        hub,
        link,
        connection_id,
        stateful,
        protocol: hub_protocol,
        expires,
        movable,
    })
}

fn data(connection_id: &str, payload: Bytes) -> ServiceMessage {
    ServiceMessage::ConnectionData(ConnectionData {
        connection_id: connection_id.to_owned(),
        payload,
        ..ConnectionData::default()
    })
}

/// The client's bytes up to and including its handshake request record (and whatever came
/// with it), or `None` if it left, took too long, or sent too much without a record end.
async fn read_handshake(shared: &Shared, raw: &mut RawConnection) -> Option<Bytes> {
    let deadline = tokio::time::Instant::now() + shared.config.handshake_timeout;
    let limit = shared.config.max_message_size.min(MAX_HANDSHAKE_SIZE);
    let mut buf = BytesMut::new();
    loop {
        let chunk = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return None,
            chunk = tokio::time::timeout_at(deadline, raw.recv()) => match chunk {
                Ok(chunk) => chunk?,
                Err(_) => {
                    tracing::debug!("no client handshake in time");
                    raw.send(handshake_error(HANDSHAKE_CANCELED));
                    return None;
                }
            },
        };
        shared.metrics().client_received(chunk.len());
        if buf.is_empty() && chunk.contains(&RECORD_SEPARATOR) {
            return Some(chunk);
        }
        buf.extend_from_slice(&chunk);
        if buf.contains(&RECORD_SEPARATOR) {
            return Some(buf.freeze());
        }
        if buf.len() > limit {
            // As a self-hosted server does once a handshake outgrows its message limit.
            tracing::debug!("client handshake too large");
            raw.send(handshake_error(HANDSHAKE_CANCELED));
            return None;
        }
    }
}

/// The `protocol` (lower-cased) and `version` of the handshake request record at the front
/// of `bytes`, read by the runtime's handshake parser. A request it refuses gives no protocol
/// and version 0: the relay forwards it all the same, and the app server refuses it with the
/// reference server's text.
fn handshake_request(bytes: &[u8]) -> (Option<String>, u64) {
    let request = bytes
        .iter()
        .position(|b| *b == RECORD_SEPARATOR)
        .and_then(|end| switchboard::protocol::handshake::parse_request(&bytes[..end]).ok());
    match request {
        Some(request) => (
            Some(request.protocol.to_ascii_lowercase()),
            u64::try_from(request.version).unwrap_or(0),
        ),
        None => (None, 0),
    }
}

/// Hub protocols whose messages are binary (sent in binary WebSocket frames).
fn is_binary_protocol(protocol: &str) -> bool {
    matches!(protocol, "messagepack" | "blazorpack")
}

/// A handshake response refusing the connection, which SignalR clients show to the user.
fn handshake_error(text: &str) -> Bytes {
    switchboard::protocol::handshake::write_response(Some(text))
}

fn claim_as_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The client request's headers, by name, but `Authorization` (the relay's own token).
fn forwarded_headers(request: &RequestInfo) -> Vec<(String, Vec<String>)> {
    let headers = request.headers();
    headers
        .keys()
        .filter(|name| *name != http::header::AUTHORIZATION)
        .map(|name| {
            let values = headers
                .get_all(name)
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .collect();
            (name.as_str().to_owned(), values)
        })
        .collect()
}

/// The client request's query string with its leading `?`, but `access_token` (the relay's
/// own token).
fn forwarded_query(request: &RequestInfo) -> String {
    let kept: Vec<&str> = request
        .query_string()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("access_token"))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_handshake_protocol() {
        assert_eq!(
            handshake_request(b"{\"protocol\":\"json\",\"version\":1}\x1e"),
            (Some("json".to_owned()), 1)
        );
        assert_eq!(
            handshake_request(b"{\"protocol\":\"MessagePack\",\"version\":2}\x1e\x05"),
            (Some("messagepack".to_owned()), 2)
        );
        // What the runtime's parser refuses is the app server's to refuse.
        assert_eq!(handshake_request(b"{\"version\":1}\x1e"), (None, 0));
        assert_eq!(handshake_request(b"{\"protocol\":\"json\"}\x1e"), (None, 0));
        assert_eq!(
            handshake_request(b"{\"protocol\":\"json\",\"version\":-1}\x1e"),
            (Some("json".to_owned()), 0)
        );
        assert_eq!(handshake_request(b"not json\x1e"), (None, 0));
        assert_eq!(handshake_request(b"{\"protocol\":\"json\"}"), (None, 0));
        assert!(is_binary_protocol("messagepack") && !is_binary_protocol("json"));
    }

    #[test]
    fn client_handshake_error_is_a_record() {
        assert_eq!(&handshake_error("no")[..], b"{\"error\":\"no\"}\x1e");
    }
}
