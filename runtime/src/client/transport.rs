//! The WebSocket under a connection: opening it (after negotiate), the handshake (the shell
//! of the connection's [`ClientCore`], which decides it), and the task that writes to it
//! (coalescing queued records, and telling the core when it sent).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use http::header::USER_AGENT;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use super::endpoint::Endpoint;
use super::negotiate::{CLIENT_USER_AGENT, negotiate};
use super::{ClientError, ClientOptions};
use crate::protocol::client_core::{self, ClientClosing, ClientConfig, ClientCore, ClientOutput};
use crate::protocol::{Close, HubMessage, Protocol};

/// The WebSocket of a connection.
pub(crate) type Socket = WebSocketStream<crate::tls::NetStream>;

/// How long opening the WebSocket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(100);

/// How long closing the WebSocket may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes of queued records written as one frame.
const MAX_BATCH: usize = 64 * 1024;

/// A WebSocket whose handshake is done.
pub(crate) struct Opened {
    pub socket: Socket,
    /// The connection's core, open; it holds what came after the handshake response.
    pub core: ClientCore,
    /// The public connection id (none without negotiate).
    pub connection_id: Option<String>,
}

/// Negotiates (unless skipped), opens the WebSocket and completes the handshake.
pub(crate) async fn open(endpoint: &Endpoint, options: &ClientOptions) -> Result<Opened, ClientError> {
    let (url, connection_id) = if options.skip_negotiation {
        (endpoint.websocket_url(None, options.access_token.as_deref()), None)
    } else {
        let negotiated = negotiate(endpoint, options).await?;
        let url = negotiated
            .endpoint
            .websocket_url(Some(&negotiated.transport_id), negotiated.access_token.as_deref());
        (url, Some(negotiated.connection_id))
    };
    let mut socket = connect(&url, options).await?;
    let core = handshake(&mut socket, options).await?;
    Ok(Opened {
        socket,
        core,
        connection_id,
    })
}

/// The instant the core is told, from tokio's clock (which tests may pause).
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Waits until `deadline`, or forever without one.
pub(crate) async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// How the core ended a connection: the server's Close message (its error and whether it
/// allows reconnecting), or the error the client reports for a failure.
pub(crate) fn outcome(closing: ClientClosing) -> Result<(Option<String>, bool), ClientError> {
    match closing {
        ClientClosing::Closed { error, allow_reconnect } => Ok((error, allow_reconnect)),
        ClientClosing::Refused(error) => Err(ClientError::handshake(error)),
        ClientClosing::HandshakeTimeout => Err(ClientError::timeout(client_core::HANDSHAKE_TIMEOUT)),
        ClientClosing::Invalid(error) => Err(error.into()),
        ClientClosing::ServerTimeout => Err(ClientError::timeout(client_core::SERVER_TIMEOUT)),
    }
}

fn closed_during_handshake() -> ClientError {
    ClientError::disconnected("The server closed the connection before the handshake completed.")
}

fn failed_to_start(error: impl std::fmt::Display) -> String {
    format!("Failed to start the transport 'WebSockets': {error}")
}

async fn connect(url: &str, options: &ClientOptions) -> Result<Socket, ClientError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| ClientError::config(failed_to_start(e)))?;
    let headers = request.headers_mut();
    headers.insert(USER_AGENT, HeaderValue::from_static(CLIENT_USER_AGENT));
    for (name, value) in &options.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ClientError::config(format!("Invalid header name '{name}': {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| ClientError::config(format!("Invalid value of header '{name}': {e}")))?;
        headers.insert(name, value);
    }
    let connecting = crate::tls::connect_websocket(request, None);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => Err(ClientError::timeout(failed_to_start("the upgrade timed out."))),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status();
            Err(ClientError::http(
                Some(status.as_u16()),
                failed_to_start(format_args!(
                    "{}: Status code '{}'",
                    status.canonical_reason().unwrap_or("Unexpected response"),
                    status.as_u16()
                )),
            ))
        }
        Ok(Err(e)) => Err(ClientError::io(failed_to_start(e))),
    }
}

/// The core's settings for a connection of `options`.
fn core_config(options: &ClientOptions) -> ClientConfig {
    ClientConfig {
        protocol: options.protocol,
        handshake_timeout: options.handshake_timeout,
        keep_alive_interval: options.keep_alive_interval,
        server_timeout: options.server_timeout,
        max_message_size: None,
    }
}

/// Sends the handshake request and reads the response, until the core accepts or refuses
/// it (or its timeout passes); returns the open core.
async fn handshake(socket: &mut Socket, options: &ClientOptions) -> Result<ClientCore, ClientError> {
    let mut core = ClientCore::new(now(), core_config(options));
    loop {
        while let Some(output) = core.poll_queued() {
            match output {
                ClientOutput::Handshake(request) => {
                    // Always a text frame, whatever the hub protocol, as the TypeScript
                    // client sends it.
                    let request = String::from_utf8_lossy(&request).into_owned();
                    socket
                        .send(Message::text(request))
                        .await
                        .map_err(|e| ClientError::io(format!("Failed to send the handshake: {e}")))?;
                }
                ClientOutput::Opened => return Ok(core),
                // (The core reads no Close message before the handshake is done.)
                ClientOutput::Close(closing) => {
                    return Err(outcome(closing).err().unwrap_or_else(closed_during_handshake));
                }
                ClientOutput::KeepAlive(_) | ClientOutput::Message(_) => {}
            }
        }
        let next = tokio::select! {
            next = socket.next() => next,
            () = sleep_until(core.poll_timeout()) => {
                core.handle_timeout(now());
                continue;
            }
        };
        match next {
            Some(Ok(Message::Text(text))) => core.handle_input(now(), text.as_bytes()),
            Some(Ok(Message::Binary(bytes))) => core.handle_input(now(), &bytes),
            Some(Ok(Message::Close(_))) | None => return Err(closed_during_handshake()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ClientError::io(format!("The handshake failed: {e}"))),
        }
    }
}

/// What the writer task is asked to do.
pub(crate) enum Outbound {
    /// Write framed records.
    Records(Bytes),
    /// Close gracefully: a Close message, then the WebSocket close handshake.
    Stop,
}

/// The framed records of one message, in `protocol`.
pub(crate) fn encode(protocol: Protocol, message: &HubMessage) -> Bytes {
    let mut out = Vec::new();
    // Messages the client builds (Ping, Close, CancelInvocation) always encode.
    let _ = protocol.write_message(&mut out, message);
    Bytes::from(out)
}

fn frame(protocol: Protocol, bytes: Bytes) -> Message {
    match protocol {
        // Records of the JSON protocol are always UTF-8.
        Protocol::Json => match Utf8Bytes::try_from(bytes.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::text(String::from_utf8_lossy(&bytes).into_owned()),
        },
        Protocol::MessagePack => Message::Binary(bytes),
    }
}

/// Writes queued records to the socket until asked to stop, until `shutdown`, or until a
/// write fails, and tells `core` when it sent (its keep-alive pings come through the queue).
/// Returns whether a write failed.
pub(crate) async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    mut queue: mpsc::Receiver<Outbound>,
    protocol: Protocol,
    core: Arc<Mutex<ClientCore>>,
    shutdown: CancellationToken,
) -> bool {
    loop {
        let first = tokio::select! {
            item = queue.recv() => item,
            () = shutdown.cancelled() => None,
        };
        let (batch, stop) = match first {
            None => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
                return false;
            }
            Some(Outbound::Stop) => (None, true),
            Some(Outbound::Records(records)) => coalesce(records, &mut queue),
        };
        if let Some(batch) = batch {
            if sink.send(frame(protocol, batch)).await.is_err() {
                return true;
            }
            core.lock().unwrap_or_else(|e| e.into_inner()).note_sent(now());
        }
        if stop {
            let close = encode(protocol, &HubMessage::Close(Close::default()));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                let _ = sink.send(frame(protocol, close)).await;
                let normal = CloseFrame {
                    code: CloseCode::Normal,
                    reason: Utf8Bytes::default(),
                };
                let _ = sink.send(Message::Close(Some(normal))).await;
                let _ = sink.close().await;
            })
            .await;
            return false;
        }
    }
}

/// Appends whatever else is queued (up to [`MAX_BATCH`] bytes) to `first`; says whether a
/// Stop came after them.
fn coalesce(first: Bytes, queue: &mut mpsc::Receiver<Outbound>) -> (Option<Bytes>, bool) {
    let mut batch: Option<Vec<u8>> = None;
    let mut stop = false;
    while batch.as_ref().map_or(first.len(), Vec::len) < MAX_BATCH {
        match queue.try_recv() {
            Ok(Outbound::Records(more)) => batch.get_or_insert_with(|| first.to_vec()).extend_from_slice(&more),
            Ok(Outbound::Stop) => {
                stop = true;
                break;
            }
            Err(_) => break,
        }
    }
    (Some(batch.map_or(first, Bytes::from)), stop)
}
