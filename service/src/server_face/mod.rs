//! The server face: app servers open WebSockets at `GET /server/?hub=HUB&cid=ID` with a
//! bearer token for `http://{host}/server/?hub={hub}`, send a `HandshakeRequest`, and from
//! then on exchange service-protocol records (VarInt-length-prefixed MessagePack arrays, in
//! binary frames) with the relay.
//!
//! Each connection is the service's end of a [`ServiceLink`] (handshake, keep-alive pings,
//! timeouts, write batching) under a thin shell: a reader (this task: frames into the link,
//! its messages handled by [`messages`]) and a writer (what the link batches from the
//! connection's bounded queue). Bad input, a record over the size limit or silence past the
//! timeout close that connection only, and with it the clients pinned to it.

mod forward;
mod messages;
pub(crate) mod remote;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use http::StatusCode;
use switchboard::protocol::service::HandshakeRequest;
use switchboard::protocol::service::link::{self, LinkConfig, LinkEvent, ServiceLink};
use switchboard::queue;
use switchboard::service::link_writer::LinkWriter;
use switchboard::transport::auth::bearer_header;
use tokio::sync::Notify;

use crate::auth::audiences;
use crate::state::Shared;
use crate::state::server_link::ServerLink;
use messages::ServerContext;

fn lock(link: &Mutex<ServiceLink>) -> MutexGuard<'_, ServiceLink> {
    link.lock().unwrap_or_else(|e| e.into_inner())
}

fn status(code: StatusCode) -> Response {
    let mut response = code.into_response();
    response
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("0"));
    response
}

/// `GET /server/?hub=…&cid=…`: checks the token, then upgrades.
pub(crate) async fn accept(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let host = parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok());
    let hub = query.get("hub").filter(|hub| !hub.is_empty());
    let (Some(host), Some(hub), Some(token)) = (host, hub, bearer_header(&parts.headers)) else {
        return status(StatusCode::UNAUTHORIZED);
    };
    let claims = match shared.keys.validate(token, &audiences(host, "server", hub)) {
        Ok(claims) => claims,
        Err(error) => {
            tracing::debug!(%hub, %error, "server connection refused");
            return status(StatusCode::UNAUTHORIZED);
        }
    };
    // The app server's name: its `X-ASRS-Server-Id` header, else its token's `nameid`.
    let server_id = parts
        .headers
        .get("x-asrs-server-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .or_else(|| claims.get("nameid").and_then(|v| v.as_str()))
        .map(str::to_owned);
    let hub = hub.to_lowercase();
    let cid = query.get("cid").cloned().filter(|cid| !cid.is_empty());
    let max_frame = shared.config.max_server_message_size.saturating_mul(4).max(1 << 20);
    // An OnDemand connection for another node of the cluster goes on to it.
    let elsewhere = shared.cluster.as_ref().and_then(|cluster| {
        let target = query.get("target").filter(|t| *t != &cluster.settings.node_id)?;
        if parts.headers.contains_key(forward::FORWARDED_BY) {
            return None;
        }
        cluster.peers().into_iter().find(|peer| &peer.id == target)
    });
    let upstream = match (&elsewhere, &shared.cluster) {
        (Some(peer), Some(cluster)) => {
            let path = parts.uri.path_and_query().map_or("/server/", |p| p.as_str());
            match forward::connect(
                &peer.advertise,
                path,
                &parts.headers,
                &cluster.settings.node_id,
                max_frame,
            )
            .await
            {
                Ok(upstream) => Some(upstream),
                Err(error) => {
                    tracing::debug!(%hub, node = %peer.id, %error, "cannot forward a server connection");
                    return status(StatusCode::BAD_GATEWAY);
                }
            }
        }
        _ => None,
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(upstream) = upstream {
        let stop = shared.shutdown.clone();
        let forwarded = shared.clone();
        return upgrade
            .read_buffer_size(link::READ_BUFFER_SIZE)
            .max_message_size(max_frame)
            .max_frame_size(max_frame)
            .on_upgrade(move |socket| async move {
                let stats = forwarded.cluster.as_ref().map(|c| &c.stats.forwarding);
                if let Some(stats) = stats {
                    stats.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                forward::pump(socket, upstream, stop).await;
                if let Some(stats) = stats {
                    stats.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
    }
    // tungstenite zero-fills as much of its read buffer as one read may use before every read:
    // at its 128 KiB default that costs more than the rest of the relay's work per message.
    upgrade
        .read_buffer_size(link::READ_BUFFER_SIZE)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| run(shared, socket, hub, cid, server_id))
}

async fn run(shared: Arc<Shared>, socket: WebSocket, hub_key: String, cid: Option<String>, server_id: Option<String>) {
    let (sink, mut stream) = socket.split();
    let config = &shared.config;
    let core = LinkConfig::new(
        config.handshake_timeout,
        config.server_keep_alive_interval,
        config.server_timeout,
    )
    .max_record_size(config.max_server_message_size);
    let core = Arc::new(Mutex::new(ServiceLink::service(core, Instant::now())));
    let (sender, outgoing) = queue::bytes_channel(link::QUEUE_CAPACITY, config.max_server_queued_bytes);
    let wake = Arc::new(Notify::new());
    let ended = tokio_util::sync::CancellationToken::new();
    let writer = LinkWriter {
        outgoing,
        link: core.clone(),
        wake: wake.clone(),
        ended: ended.clone(),
    };
    let close = Message::Close(Some(CloseFrame {
        code: 1000,
        reason: Utf8Bytes::from_static(""),
    }));
    let metrics = shared.clone();
    let writer = tokio::spawn(writer.run(sink, Message::Binary, Some(close), move |bytes| {
        metrics.metrics().server_sent(bytes)
    }));
    let mut sender = Some(sender);
    // Set once the handshake is accepted.
    let mut server: Option<(Arc<ServerContext>, String)> = None;
    'read: loop {
        let link_closed = async {
            match &server {
                Some((cx, _)) => cx.link.closed.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let frame = tokio::select! {
            biased;
            _ = ended.cancelled() => break,
            _ = link_closed => {
                lock(&core).close();
                break;
            }
            _ = shared.shutdown.cancelled() => {
                lock(&core).close();
                break;
            }
            frame = stream.next() => frame,
        };
        match frame {
            Some(Ok(Message::Binary(bytes))) => {
                shared.metrics().server_received(bytes.len());
                lock(&core).handle_input(Instant::now(), &bytes);
            }
            Some(Ok(Message::Text(_))) => {
                tracing::debug!(hub = %hub_key, "a text frame from an app server (records travel in binary frames); closing");
                lock(&core).close();
                break;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_)) | Err(_)) | None => {
                lock(&core).close();
                break;
            }
        }
        loop {
            let event = lock(&core).poll_event();
            // The link may have something to write (an echo), or take records now.
            wake.notify_one();
            match event {
                None => break,
                Some(LinkEvent::HandshakeRequested(request)) => {
                    let Some(sender) = sender.take() else { break 'read };
                    let link_id = shared.hubs.next_link_id();
                    let cid = cid.clone().unwrap_or_else(|| format!("server-{link_id}"));
                    let link = ServerLink::new(
                        link_id,
                        server_id.clone(),
                        request.connection_type != HandshakeRequest::WEAK_CONNECTION,
                        request.allow_stateful_reconnects,
                        request.migration_level != HandshakeRequest::MIGRATION_OFF,
                        sender,
                    );
                    // The response goes out first, before any client can be pinned to the
                    // connection.
                    lock(&core).accept(cid.clone());
                    let hub = shared.hubs.attach_server(&hub_key, link.clone());
                    tracing::debug!(hub = %hub_key, connection = %cid, "server connection open");
                    let cx = Arc::new(ServerContext {
                        shared: shared.clone(),
                        hub,
                        link,
                    });
                    server = Some((cx, cid));
                }
                Some(LinkEvent::Message(message)) => match &server {
                    Some((cx, _)) => messages::handle(cx, message).await,
                    None => break 'read,
                },
                Some(LinkEvent::Closed(_)) => break 'read,
                Some(_) => {}
            }
        }
    }
    ended.cancel();
    let error = lock(&core).error().cloned();
    match &error {
        None | Some(link::LinkError::Closed) => {}
        Some(error) => tracing::debug!(hub = %hub_key, %error, "server connection closing"),
    }
    if let Some((cx, cid)) = server {
        cx.link.closed.cancel();
        cx.hub.detach_server(&cx.link);
        shared.hubs.release(&cx.hub);
        drop(cx);
        let _ = writer.await;
        tracing::debug!(hub = %hub_key, connection = %cid, "server connection closed");
    } else {
        drop(sender);
        let _ = writer.await;
    }
}
