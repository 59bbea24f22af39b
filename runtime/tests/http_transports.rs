//! Server-Sent Events and long polling, request by request, through the real service.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, StatusCode};
use serde_json::Value;
use switchboard::{HttpHandler, Hub, HubError, Methods, Switchboard};
use tower::ServiceExt;

struct Echo;

impl Hub for Echo {
    type Client = switchboard::Untyped;
    fn methods(m: &mut Methods<Self>) {
        m.method("Echo", |_, _, (s,): (String,)| async move { Ok::<_, HubError>(s) });
        m.method("Transport", |_, cx, ()| async move {
            Ok::<_, HubError>(cx.transport().as_str())
        });
    }
}

fn app(configure: impl FnOnce(&mut switchboard::HubOptions) + 'static) -> HttpHandler {
    Switchboard::builder()
        .hub_with("/hub", Echo, configure)
        .build()
        .unwrap()
        .http_handler()
}

async fn request(
    service: &HttpHandler,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Response<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    service
        .clone()
        .oneshot(builder.body(Body::from(body.to_vec())).unwrap())
        .await
        .unwrap()
}

async fn read(response: http::Response<Body>) -> (StatusCode, http::HeaderMap, Bytes) {
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap(),
    )
}

async fn negotiate(service: &HttpHandler) -> String {
    let (_, _, body) = read(request(service, Method::POST, "/hub/negotiate?negotiateVersion=1", &[], b"").await).await;
    serde_json::from_slice::<Value>(&body).unwrap()["connectionToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn poll(service: &HttpHandler, token: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    read(request(service, Method::GET, &format!("/hub?id={token}"), &[], b"").await).await
}

async fn post(service: &HttpHandler, token: &str, body: &[u8]) -> StatusCode {
    request(service, Method::POST, &format!("/hub?id={token}"), &[], body)
        .await
        .status()
}

const HANDSHAKE: &[u8] = b"{\"protocol\":\"json\",\"version\":1}\x1e";

#[tokio::test]
async fn long_polling_first_poll_then_data_with_early_post() {
    let service = app(|_| {});
    let token = negotiate(&service).await;
    // The handshake may come before the first poll (as signalrcore sends it).
    assert_eq!(post(&service, &token, HANDSHAKE).await, StatusCode::OK);
    let (status, headers, body) = poll(&service, &token).await;
    assert_eq!(
        (status, body.len()),
        (StatusCode::OK, 0),
        "the first poll answers at once, empty"
    );
    assert_eq!(headers["cache-control"], "no-cache, no-store");
    assert_eq!(headers["pragma"], "no-cache");
    assert_eq!(headers["expires"], "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(poll(&service, &token).await.2, Bytes::from_static(b"{}\x1e"));
    let invocation = b"{\"type\":1,\"invocationId\":\"1\",\"target\":\"Transport\",\"arguments\":[]}\x1e";
    assert_eq!(post(&service, &token, invocation).await, StatusCode::OK);
    let (status, _, body) = poll(&service, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        Bytes::from_static(b"{\"type\":3,\"invocationId\":\"1\",\"result\":\"LongPolling\"}\x1e")
    );
}

#[tokio::test]
async fn long_polling_newer_poll_ends_the_waiting_one_and_timeout_answers_empty() {
    let service = app(|o| o.long_polling_timeout = Duration::from_millis(400));
    let token = negotiate(&service).await;
    assert_eq!(poll(&service, &token).await.0, StatusCode::OK);
    assert_eq!(post(&service, &token, HANDSHAKE).await, StatusCode::OK);
    assert_eq!(poll(&service, &token).await.2, Bytes::from_static(b"{}\x1e"));
    // Nothing to send: the poll times out with an empty 200.
    let started = std::time::Instant::now();
    let (status, _, body) = poll(&service, &token).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    assert!(started.elapsed() >= Duration::from_millis(350));

    let service = app(|_| {});
    let token = negotiate(&service).await;
    assert_eq!(poll(&service, &token).await.0, StatusCode::OK);
    let waiting = tokio::spawn({
        let (service, token) = (service.clone(), token.clone());
        async move { poll(&service, &token).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let newer = tokio::spawn({
        let (service, token) = (service.clone(), token.clone());
        async move { poll(&service, &token).await }
    });
    assert_eq!(
        waiting.await.unwrap().0,
        StatusCode::NO_CONTENT,
        "the older poll ends with 204"
    );
    assert_eq!(post(&service, &token, HANDSHAKE).await, StatusCode::OK);
    assert_eq!(
        newer.await.unwrap().2,
        Bytes::from_static(b"{}\x1e"),
        "the newer poll gets the data"
    );
}

#[tokio::test]
async fn long_polling_delete_ends_the_connection_and_releases_the_poll() {
    let service = app(|_| {});
    let token = negotiate(&service).await;
    assert_eq!(poll(&service, &token).await.0, StatusCode::OK);
    let waiting = tokio::spawn({
        let (service, token) = (service.clone(), token.clone());
        async move { poll(&service, &token).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _, body) = read(request(&service, Method::DELETE, &format!("/hub?id={token}"), &[], b"").await).await;
    assert_eq!((status, body.len()), (StatusCode::ACCEPTED, 0));
    assert_eq!(waiting.await.unwrap().0, StatusCode::NO_CONTENT);
    assert_eq!(post(&service, &token, HANDSHAKE).await, StatusCode::NOT_FOUND);
    assert_eq!(poll(&service, &token).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn long_polling_connection_nobody_polls_is_disposed() {
    let service = app(|o| o.disconnect_timeout = Duration::from_millis(1500));
    let token = negotiate(&service).await;
    assert_eq!(poll(&service, &token).await.0, StatusCode::OK);
    assert_eq!(post(&service, &token, HANDSHAKE).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // The connection ended; what was left goes to one last poll, then it is gone.
    let (status, _, _) = poll(&service, &token).await;
    assert!(matches!(status, StatusCode::OK | StatusCode::NO_CONTENT), "{status}");
    assert_eq!(poll(&service, &token).await.0, StatusCode::NO_CONTENT);
    assert_eq!(post(&service, &token, b"{\"type\":6}\x1e").await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn long_polling_carries_messagepack() {
    let service = app(|_| {});
    let token = negotiate(&service).await;
    assert_eq!(poll(&service, &token).await.0, StatusCode::OK);
    let mut body = b"{\"protocol\":\"messagepack\",\"version\":1}\x1e".to_vec();
    // [1, {}, "1", "Echo", ["z"]], binary on the same POST as the handshake.
    body.extend_from_slice(&[
        13, 0x95, 1, 0x80, 0xa1, b'1', 0xa4, b'E', b'c', b'h', b'o', 0x91, 0xa1, b'z',
    ]);
    assert_eq!(post(&service, &token, &body).await, StatusCode::OK);
    let mut received = Vec::new();
    while received.len() < 12 {
        received.extend_from_slice(&poll(&service, &token).await.2);
    }
    assert_eq!(
        received,
        [b"{}\x1e".as_slice(), &[8, 0x95, 3, 0x80, 0xa1, b'1', 3, 0xa1, b'z']].concat()
    );
}

#[tokio::test]
async fn transports_cannot_change_mid_connection() {
    let service = app(|_| {});
    let token = negotiate(&service).await;
    assert_eq!(poll(&service, &token).await.0, StatusCode::OK);
    let (status, _, body) = read(
        request(
            &service,
            Method::GET,
            &format!("/hub?id={token}"),
            &[("accept", "text/event-stream")],
            b"",
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::BAD_REQUEST, &b"Cannot change transports mid-connection"[..])
    );
}

#[tokio::test]
async fn server_sent_events_stream_and_post() {
    let service = app(|_| {});
    let token = negotiate(&service).await;
    let response = request(
        &service,
        Method::GET,
        &format!("/hub?id={token}"),
        &[("accept", "text/event-stream")],
        b"",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache,no-store");
    assert_eq!(response.headers()["content-encoding"], "identity");
    let mut events = response.into_body().into_data_stream();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    assert_eq!(next().await, Bytes::from_static(b":\r\n"), "a comment first, at once");
    assert_eq!(post(&service, &token, HANDSHAKE).await, StatusCode::OK);
    assert_eq!(next().await, Bytes::from_static(b"data: {}\x1e\r\n\r\n"));
    let invocation = b"{\"type\":1,\"invocationId\":\"1\",\"target\":\"Transport\",\"arguments\":[]}\x1e";
    assert_eq!(post(&service, &token, invocation).await, StatusCode::OK);
    assert_eq!(
        next().await,
        Bytes::from_static(b"data: {\"type\":3,\"invocationId\":\"1\",\"result\":\"ServerSentEvents\"}\x1e\r\n\r\n")
    );
    // A second event stream for the same connection is refused.
    let second = request(
        &service,
        Method::GET,
        &format!("/hub?id={token}"),
        &[("accept", "text/event-stream")],
        b"",
    )
    .await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    // The client leaves by closing the stream: the connection ends and POSTs find nothing.
    drop(events);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(post(&service, &token, b"{\"type\":6}\x1e").await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn server_sent_events_refuse_messagepack() {
    let service = app(|_| {});
    let token = negotiate(&service).await;
    let response = request(
        &service,
        Method::GET,
        &format!("/hub?id={token}"),
        &[("accept", "text/event-stream")],
        b"",
    )
    .await;
    let mut events = response.into_body().into_data_stream();
    assert_eq!(events.next().await.unwrap().unwrap(), Bytes::from_static(b":\r\n"));
    assert_eq!(
        post(&service, &token, b"{\"protocol\":\"messagepack\",\"version\":1}\x1e").await,
        StatusCode::OK
    );
    let error = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        error,
        Bytes::from_static(b"data: {\"error\":\"Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format.\"}\x1e\r\n\r\n")
    );
    // Then the stream ends.
    assert!(
        tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn post_limits_and_unknown_connections() {
    let service = app(|o| o.maximum_receive_message_size = Some(1024));
    let token = negotiate(&service).await;
    assert_eq!(poll(&service, &token).await.0, StatusCode::OK);
    assert_eq!(
        post(&service, &token, &vec![b'x'; 2 << 20]).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(post(&service, "nope", b"x").await, StatusCode::NOT_FOUND);
}
