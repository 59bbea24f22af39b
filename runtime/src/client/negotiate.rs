//! `POST {hub}/negotiate`: versions 0 and 1, redirects, and errors.
//!
//! The request goes over one plain HTTP/1.1 connection made for it, with hyper's
//! connection-level client (no pool: a client negotiates once per connect or reconnect), so
//! responses with `Content-Length` and chunked ones are both read correctly.

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, USER_AGENT};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

use super::endpoint::Endpoint;
use super::{ClientError, ClientOptions};
use crate::protocol::negotiate::NegotiateBody;

/// How many negotiate requests a start may make, following redirects.
const MAX_REDIRECTS: usize = 100;

/// How long one negotiate request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(100);

/// The largest negotiate response body read.
const MAX_BODY: usize = 1 << 20;

/// The `User-Agent` of the client's requests.
pub(crate) const CLIENT_USER_AGENT: &str = concat!("switchboard-client/", env!("CARGO_PKG_VERSION"));

const NEGOTIATE_FAILED: &str = "Failed to complete negotiation with the server";

/// Where and how to open the WebSocket, once negotiate is done.
#[derive(Debug)]
pub(crate) struct Negotiated {
    /// The hub URL to connect (the last redirect's, if any).
    pub endpoint: Endpoint,
    /// The public connection id.
    pub connection_id: String,
    /// The `id` of the transport request: the token (version 1) or the id (version 0).
    pub transport_id: String,
    /// The bearer token to present from now on (a redirect may replace it).
    pub access_token: Option<String>,
}

/// Negotiates, following redirects, and checks that WebSockets with the protocol's transfer
/// format is on offer.
pub(crate) async fn negotiate(start: &Endpoint, options: &ClientOptions) -> Result<Negotiated, ClientError> {
    let mut endpoint = start.clone();
    let mut token = options.access_token.clone();
    for _ in 0..MAX_REDIRECTS {
        let target = endpoint.negotiate_target();
        let (status, body) = tokio::time::timeout(
            HTTP_TIMEOUT,
            post(&endpoint, &target, token.as_deref(), &options.headers),
        )
        .await
        .map_err(|_| ClientError::timeout(format!("{NEGOTIATE_FAILED}: the request timed out.")))??;
        if status != http::StatusCode::OK {
            let text = match std::str::from_utf8(&body) {
                Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
                _ => status.canonical_reason().unwrap_or("").to_owned(),
            };
            let mut message = format!("{NEGOTIATE_FAILED}: {text}: Status code '{}'", status.as_u16());
            if status == http::StatusCode::NOT_FOUND {
                message.push_str(" Either this is not a SignalR endpoint or there is a proxy blocking the connection.");
            }
            return Err(ClientError::http(Some(status.as_u16()), message));
        }
        let parsed = NegotiateBody::parse(&body)
            .map_err(|e| ClientError::protocol(format!("{NEGOTIATE_FAILED}: unreadable response: {e}")))?;
        match parsed {
            NegotiateBody::Error(refused) => return Err(ClientError::http(None, refused.error)),
            NegotiateBody::Redirect(redirect) => {
                endpoint = Endpoint::parse(&redirect.url)?;
                if let Some(replacement) = redirect.access_token {
                    token = Some(replacement);
                }
            }
            NegotiateBody::Connection(connection) => {
                if connection.use_stateful_reconnect {
                    return Err(ClientError::protocol(
                        "Client didn't negotiate Stateful Reconnect but the server did.",
                    ));
                }
                let format = options.protocol.transfer_format().as_str();
                let offered = connection
                    .available_transports
                    .iter()
                    .any(|t| t.transport == "WebSockets" && t.transfer_formats.iter().any(|f| f == format));
                if !offered {
                    return Err(ClientError::protocol(
                        "None of the transports supported by the client are supported by the server.",
                    ));
                }
                let transport_id = match connection.connection_token {
                    Some(token) if connection.negotiate_version >= 1 => token,
                    _ => connection.connection_id.clone(),
                };
                return Ok(Negotiated {
                    endpoint,
                    connection_id: connection.connection_id,
                    transport_id,
                    access_token: token,
                });
            }
        }
    }
    Err(ClientError::http(None, "Negotiate redirection limit exceeded."))
}

/// Aborts the task driving an HTTP connection when the exchange is over.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One `POST` with an empty body: the status and the body of the response.
async fn post(
    endpoint: &Endpoint,
    target: &str,
    token: Option<&str>,
    headers: &[(String, String)],
) -> Result<(http::StatusCode, Bytes), ClientError> {
    let failed = |e: &dyn std::fmt::Display| ClientError::io(format!("{NEGOTIATE_FAILED}: {e}"));
    let stream = endpoint.connect().await.map_err(|e| failed(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(&e))?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let mut request = http::Request::post(target)
        .header(HOST, endpoint.authority())
        .header(USER_AGENT, CLIENT_USER_AGENT)
        .header(CONTENT_LENGTH, "0");
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| ClientError::config(format!("Invalid request: {e}")))?;
    let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| failed(&e))?
        .to_bytes();
    Ok((status, body))
}
