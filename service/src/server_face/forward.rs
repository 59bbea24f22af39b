//! App-server connections for another node of the cluster. An app server asked by a
//! `["target", nodeId]` ping opens an OnDemand connection to the endpoint it knows, with
//! `&target=nodeId`, as the Azure SDK does; when that lands on another node, that node
//! forwards the WebSocket to the target node's advertised address, frame by frame, for as
//! long as it lasts. The target node sees the app server's own request (its `Host`, token and
//! server id), so the token is checked there as on any server connection.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use tokio_tungstenite::tungstenite::{self, handshake::client::generate_key, protocol::WebSocketConfig};
use tokio_util::sync::CancellationToken;

/// The header a forwarded connection carries (the forwarding node's id): a node never
/// forwards it again.
pub(crate) const FORWARDED_BY: &str = "x-switchboard-forwarded-by";

type Upstream = tokio_tungstenite::WebSocketStream<switchboard::tls::NetStream>;

/// Opens the connection to the target node: `advertise` is its base URL, `path_and_query`
/// the app server's request target, `headers` its request headers.
pub(crate) async fn connect(
    advertise: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    forwarded_by: &str,
    max_frame: usize,
) -> Result<Upstream, String> {
    let base = advertise.trim_end_matches('/');
    let url = match base.split_once("://") {
        Some(("http", rest)) => format!("ws://{rest}{path_and_query}"),
        Some(("https", rest)) => format!("wss://{rest}{path_and_query}"),
        _ => return Err(format!("the node's address {base} is not an http URL")),
    };
    let mut request = http::Request::builder()
        .method("GET")
        .uri(url.as_str())
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", generate_key())
        .header(FORWARDED_BY, forwarded_by);
    for name in [
        http::header::HOST,
        http::header::AUTHORIZATION,
        http::header::USER_AGENT,
    ] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    for name in ["x-asrs-server-id", "asrs-user-agent"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    let request = request.body(()).map_err(|e| e.to_string())?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame));
    let connect = switchboard::tls::connect_websocket(request, Some(config));
    match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok((upstream, _))) => Ok(upstream),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("the node did not answer in time".to_owned()),
    }
}

/// Carries frames both ways until either side closes (or the relay stops).
pub(crate) async fn pump(socket: WebSocket, upstream: Upstream, stop: CancellationToken) {
    let (mut down_sink, mut down) = socket.split();
    let (mut up_sink, mut up) = upstream.split();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            frame = down.next() => {
                let frame = match frame {
                    Some(Ok(Message::Binary(bytes))) => tungstenite::Message::Binary(bytes),
                    Some(Ok(Message::Text(text))) => tungstenite::Message::text(text.as_str()),
                    // Each side answers its own pings.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                if up_sink.send(frame).await.is_err() {
                    break;
                }
            }
            frame = up.next() => {
                let frame = match frame {
                    Some(Ok(tungstenite::Message::Binary(bytes))) => Message::Binary(bytes),
                    Some(Ok(tungstenite::Message::Text(text))) => Message::Text(Utf8Bytes::from(text.as_str())),
                    Some(Ok(tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) | tungstenite::Message::Frame(_))) => continue,
                    Some(Ok(tungstenite::Message::Close(_)) | Err(_)) | None => break,
                };
                if down_sink.send(frame).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = up_sink.send(tungstenite::Message::Close(None)).await;
    let _ = down_sink
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: Utf8Bytes::from_static(""),
        })))
        .await;
}
