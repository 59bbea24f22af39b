//! The long polling transport: the client GETs repeatedly for what the server has queued and
//! POSTs what it sends.
//!
//! - The first poll answers 200 with an empty body at once: it starts the connection.
//! - Later polls wait for data and return everything queued (200), or an empty 200 after
//!   the poll timeout (90 s), after which the client polls again.
//! - A newer poll ends the waiting one with 204, as does a DELETE; 204 otherwise means the
//!   connection has closed.
//! - A connection nobody polls for the disconnect timeout (15 s) ends.
//! - Responses are never cached. Bytes are sent as they are, so binary works.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};

use super::registry::{Attached, Claim};
use super::{AppState, Endpoint, empty, new_connection, outbound, posted_inbound, run_endpoint, text};
use crate::connection::CloseReason;
use crate::connection::claims::Claims;
use crate::options::TransportType;

/// How long a closed connection's last poll may still collect what was left for it.
const CLOSED_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn poll_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::EXPIRES,
        HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
    response
}

/// `GET {hub}?id=…` without an upgrade or `Accept: text/event-stream`.
pub(crate) async fn request(
    state: Arc<AppState>,
    endpoint: Arc<Endpoint>,
    parts: Parts,
    token: Option<String>,
    claims: Option<Claims>,
) -> Response {
    let Some(token) = token else {
        return text(StatusCode::BAD_REQUEST, "Connection ID required");
    };
    match endpoint.registry.claim(&token) {
        Claim::Unknown => text(StatusCode::NOT_FOUND, "No Connection with that ID"),
        Claim::Attached(attached) if attached.transport != TransportType::LongPolling => {
            text(StatusCode::BAD_REQUEST, "Cannot change transports mid-connection")
        }
        Claim::Attached(attached) => poll(&attached, endpoint.options().long_polling_timeout).await,
        Claim::Claimed { id, early, .. } => {
            let (conn, outbound) =
                new_connection(&state, &endpoint, &parts, claims, TransportType::LongPolling, id, false);
            let (posted, inbound) = posted_inbound(early);
            let attached = Attached::new(conn.clone(), TransportType::LongPolling, Some(posted), Some(outbound));
            endpoint.registry.attach(&token, attached);
            // Until the next poll arrives, no transport is attached.
            conn.transport_detached();
            tokio::spawn(async move {
                run_endpoint(&endpoint, conn.clone(), inbound, true).await;
                tokio::time::sleep(CLOSED_GRACE).await;
                endpoint.registry.remove(&token, &conn);
            });
            poll_response(StatusCode::OK, Bytes::new())
        }
    }
}

async fn poll(attached: &Attached, timeout: std::time::Duration) -> Response {
    let conn = &attached.conn;
    let (_, cancelled) = attached.begin_poll();
    conn.transport_attached();
    let response = async {
        let Some(queue) = &attached.outbound else {
            return poll_response(StatusCode::NO_CONTENT, Bytes::new());
        };
        // The previous poll, cancelled above, lets go of the queue.
        let mut queue = tokio::select! {
            queue = queue.lock() => queue,
            _ = cancelled.cancelled() => return poll_response(StatusCode::NO_CONTENT, Bytes::new()),
        };
        if attached.drained() {
            return poll_response(StatusCode::NO_CONTENT, Bytes::new());
        }
        tokio::select! {
            biased;
            _ = cancelled.cancelled() => poll_response(StatusCode::NO_CONTENT, Bytes::new()),
            batch = outbound::next_batch(&mut queue, conn) => match batch {
                Some(batch) => {
                    conn.mark_sent();
                    poll_response(StatusCode::OK, batch)
                }
                None => {
                    attached.mark_drained();
                    let rest = outbound::final_batch(&mut queue, conn);
                    let status = if rest.is_empty() { StatusCode::NO_CONTENT } else { StatusCode::OK };
                    poll_response(status, rest)
                }
            },
            _ = tokio::time::sleep(timeout) => poll_response(StatusCode::OK, Bytes::new()),
        }
    }
    .await;
    conn.transport_detached();
    response
}

/// `DELETE {hub}?id=…`: the client leaves a long polling connection.
pub(crate) fn delete(endpoint: &Endpoint, token: &str) -> Response {
    let Some(attached) = endpoint.registry.lookup(token) else {
        return text(StatusCode::NOT_FOUND, "No Connection with that ID");
    };
    if attached.transport != TransportType::LongPolling {
        return text(
            StatusCode::BAD_REQUEST,
            "Cannot terminate this connection using the DELETE endpoint.",
        );
    }
    attached.conn.close(CloseReason::transport_closed());
    attached.mark_drained();
    attached.cancel_poll();
    endpoint.registry.remove(token, &attached.conn);
    let mut response = empty(StatusCode::ACCEPTED);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
