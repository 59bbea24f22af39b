//! The Server-Sent Events transport: the server's half is one long `text/event-stream`
//! response; the client's half arrives by POST.
//!
//! The response starts with a comment line (`:\r\n`, which makes browsers fire `open`), and
//! every batch of queued bytes becomes one event: each line as `data: …\r\n`, then `\r\n`.
//! Nothing is buffered or compressed. Text only: MessagePack is refused at the handshake.

use std::sync::Arc;

use crate::queue;
use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::stream;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};

use super::registry::{Attached, Claim};
use super::{AppState, Endpoint, new_connection, outbound, posted_inbound, run_endpoint, text};
use crate::connection::claims::Claims;
use crate::connection::{CloseReason, Connection};
use crate::options::TransportType;

/// `GET {hub}?id=…` with `Accept: text/event-stream`.
pub(crate) fn request(
    state: Arc<AppState>,
    endpoint: Arc<Endpoint>,
    parts: Parts,
    token: Option<String>,
    claims: Option<Claims>,
) -> Response {
    let Some(token) = token else {
        return text(StatusCode::BAD_REQUEST, "Connection ID required");
    };
    let (id, early) = match endpoint.registry.claim(&token) {
        Claim::Claimed { id, early, .. } => (id, early),
        Claim::Attached(attached) if attached.transport == TransportType::ServerSentEvents => {
            return super::empty(StatusCode::CONFLICT);
        }
        Claim::Attached(_) => return text(StatusCode::BAD_REQUEST, "Cannot change transports mid-connection"),
        Claim::Unknown => return text(StatusCode::NOT_FOUND, "No Connection with that ID"),
    };
    let (conn, outbound) = new_connection(
        &state,
        &endpoint,
        &parts,
        claims,
        TransportType::ServerSentEvents,
        id,
        false,
    );
    let (posted, inbound) = posted_inbound(early);
    endpoint.registry.attach(
        &token,
        Attached::new(conn.clone(), TransportType::ServerSentEvents, Some(posted), None),
    );
    let running = conn.clone();
    tokio::spawn(async move {
        run_endpoint(&endpoint, running.clone(), inbound, false).await;
        endpoint.registry.remove(&token, &running);
    });
    response(conn, outbound)
}

/// Closes the connection when the response is dropped (the client went away).
struct CloseOnDrop(Arc<Connection>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close(CloseReason::transport_closed());
    }
}

enum Phase {
    Open,
    Streaming,
    Done,
}

fn response(conn: Arc<Connection>, outbound: queue::Receiver<Bytes>) -> Response {
    let state = (outbound, CloseOnDrop(conn), Phase::Open);
    let events = stream::unfold(state, |(mut outbound, guard, phase)| async move {
        let conn = &guard.0;
        match phase {
            Phase::Open => Some((
                Ok::<_, std::convert::Infallible>(Bytes::from_static(b":\r\n")),
                (outbound, guard, Phase::Streaming),
            )),
            Phase::Streaming => match outbound::next_batch(&mut outbound, conn).await {
                Some(batch) => {
                    conn.mark_sent();
                    Some((Ok(event(&batch)), (outbound, guard, Phase::Streaming)))
                }
                None => {
                    let rest = outbound::final_batch(&mut outbound, conn);
                    (!rest.is_empty()).then(|| (Ok(event(&rest)), (outbound, guard, Phase::Done)))
                }
            },
            Phase::Done => None,
        }
    });
    let mut response = Response::new(Body::from_stream(events));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache,no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("identity"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One event: every line of `bytes` as a `data:` line, then an empty line.
fn event(bytes: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(bytes.len() + 16);
    for line in bytes.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::event;

    #[test]
    fn sse_event_lines() {
        assert_eq!(&event(b"{}\x1e")[..], b"data: {}\x1e\r\n\r\n");
        assert_eq!(&event(b"a\nb\r\nc")[..], b"data: a\r\ndata: b\r\ndata: c\r\n\r\n");
    }
}
