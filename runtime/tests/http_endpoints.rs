//! The HTTP face: negotiate bodies and versions, status codes and texts, authorization, and
//! the rules tying transports to negotiated connections.

mod common;

use std::future::IntoFuture;
use std::time::Duration;

use axum::body::Body;
use common::*;
use http::{Method, Request, StatusCode};
use serde_json::{Map, Value, json};
use switchboard::transport::auth::sign_hs256;
use switchboard::{Hub, HubError, JwtBearer, Methods, Switchboard, TransportType};
use tower::ServiceExt;

struct Echo;

impl Hub for Echo {
    type Client = switchboard::Untyped;
    fn methods(m: &mut Methods<Self>) {
        m.method("Echo", |_, _, (s,): (String,)| async move { Ok::<_, HubError>(s) });
        m.method("User", |_, cx, ()| async move {
            Ok::<_, HubError>(cx.user_id().map(str::to_owned))
        });
    }
}

const SECRET: &[u8] = b"a test secret that is long enough";

fn app() -> Switchboard {
    Switchboard::builder()
        .authenticator(JwtBearer::hs256(SECRET))
        .hub("/echo", Echo)
        .hub_with("/secure", Echo, |o| o.require_authorization = true)
        .hub_with("/ws-only", Echo, |o| o.transports = vec![TransportType::WebSockets])
        .build()
        .unwrap()
}

async fn call(
    app: &Switchboard,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .http_handler()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn token(user: &str, lifetime: Duration) -> String {
    let mut claims = Map::new();
    claims.insert("nameid".into(), Value::from(user));
    sign_hs256(SECRET, claims, lifetime).unwrap()
}

#[tokio::test]
async fn negotiate_versions_and_body() {
    let app = app();
    let (status, headers, body) = call(&app, Method::POST, "/echo/negotiate?negotiateVersion=1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["negotiateVersion"], 1);
    assert_ne!(body["connectionId"], body["connectionToken"]);
    assert_eq!(body["connectionToken"].as_str().unwrap().len(), 22);
    assert_eq!(
        body["availableTransports"],
        json!([
            {"transport":"WebSockets","transferFormats":["Text","Binary"]},
            {"transport":"ServerSentEvents","transferFormats":["Text"]},
            {"transport":"LongPolling","transferFormats":["Text","Binary"]}
        ])
    );
    assert!(body.get("ProtocolVersion").is_none());
    let (_, _, ws_only) = call(&app, Method::POST, "/ws-only/negotiate?negotiateVersion=1", &[]).await;
    let ws_only: Value = serde_json::from_str(&ws_only).unwrap();
    assert_eq!(
        ws_only["availableTransports"],
        json!([{"transport":"WebSockets","transferFormats":["Text","Binary"]}])
    );

    let (_, _, body) = call(&app, Method::POST, "/echo/negotiate", &[]).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["negotiateVersion"], 0);
    assert!(body.get("connectionToken").is_none());

    let (_, _, body) = call(&app, Method::POST, "/echo/negotiate?negotiateVersion=5", &[]).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["negotiateVersion"], 1);
    let (status, _, body) = call(&app, Method::POST, "/echo/negotiate?negotiateVersion=x", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"error":"The client requested a non-integer protocol version."}"#
    );
    // Case-insensitive paths.
    let (status, _, _) = call(&app, Method::POST, "/ECHO/Negotiate?negotiateVersion=1", &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn http_status_codes_and_texts() {
    let app = app();
    let cases: Vec<(Method, &str, StatusCode, &str)> = vec![
        (Method::GET, "/echo/negotiate", StatusCode::METHOD_NOT_ALLOWED, ""),
        (Method::GET, "/nothing-here", StatusCode::NOT_FOUND, ""),
        (Method::GET, "/echo", StatusCode::BAD_REQUEST, "Connection ID required"),
        (Method::POST, "/echo", StatusCode::BAD_REQUEST, "Connection ID required"),
        (
            Method::POST,
            "/echo?id=unknown",
            StatusCode::NOT_FOUND,
            "No Connection with that ID",
        ),
        (
            Method::DELETE,
            "/echo?id=unknown",
            StatusCode::NOT_FOUND,
            "No Connection with that ID",
        ),
        (Method::PUT, "/echo", StatusCode::METHOD_NOT_ALLOWED, ""),
        (
            Method::GET,
            "/echo?id=x",
            StatusCode::NOT_FOUND,
            "No Connection with that ID",
        ),
        (
            Method::GET,
            "/ws-only?id=x",
            StatusCode::NOT_FOUND,
            "LongPolling transport not supported by this end point type",
        ),
    ];
    for (method, uri, status, body) in cases {
        let got = call(&app, method.clone(), uri, &[]).await;
        assert_eq!((got.0, got.2.as_str()), (status, body), "{method} {uri}");
    }
    let (status, _, body) = call(&app, Method::GET, "/ws-only?id=x", &[("accept", "text/event-stream")]).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::NOT_FOUND,
            "ServerSentEvents transport not supported by this end point type"
        )
    );
}

#[tokio::test]
async fn auth_required_hub_refuses_missing_bad_and_expired_tokens() {
    let app = app();
    let good = token("alice", Duration::from_secs(60));
    let expired = {
        let mut claims = Map::new();
        claims.insert("nameid".into(), Value::from("alice"));
        claims.insert("exp".into(), Value::from(1_000_000_000u64));
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    };
    let forged = sign_hs256(
        b"some other secret of enough length",
        Map::new(),
        Duration::from_secs(60),
    )
    .unwrap();
    for bad in [None, Some("not-a-token".to_owned()), Some(expired), Some(forged)] {
        let header = bad.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("authorization", h.as_str())).collect();
        let (status, _, body) = call(&app, Method::POST, "/secure/negotiate?negotiateVersion=1", &headers).await;
        assert_eq!((status, body.as_str()), (StatusCode::UNAUTHORIZED, ""), "token {bad:?}");
    }
    let header = format!("Bearer {good}");
    let (status, _, _) = call(
        &app,
        Method::POST,
        "/secure/negotiate?negotiateVersion=1",
        &[("authorization", &header)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(
        &app,
        Method::POST,
        &format!("/secure/negotiate?negotiateVersion=1&access_token={good}"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn auth_token_in_query_reaches_websocket_and_sets_user() {
    let app = app();
    let addr = serve(&app).await;
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/secure")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED)
        }
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let mut ws = connect_json(
        &addr,
        &format!("/secure?access_token={}", token("bob", Duration::from_secs(60))),
    )
    .await;
    assert_eq!(invoke(&mut ws, "1", "User", json!([])).await["result"], "bob");
    // Where a token is optional, an invalid one is ignored and the caller is anonymous.
    let mut ws = connect_json(&addr, "/echo?access_token=garbage").await;
    assert_eq!(invoke(&mut ws, "1", "User", json!([])).await["result"], Value::Null);
}

#[tokio::test]
async fn websocket_needs_a_negotiated_id_once() {
    let app = app();
    let addr = serve(&app).await;
    let (_, _, body) = call(&app, Method::POST, "/echo/negotiate?negotiateVersion=1", &[]).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    let token = body["connectionToken"].as_str().unwrap();
    // The public id is not the transport id.
    let by_public_id = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/echo?id={}",
        body["connectionId"].as_str().unwrap()
    ))
    .await;
    assert!(
        matches!(by_public_id, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == StatusCode::NOT_FOUND)
    );
    let mut ws = connect_json(&addr, &format!("/echo?id={token}")).await;
    assert_eq!(invoke(&mut ws, "1", "Echo", json!(["x"])).await["result"], "x");
    let second = tokio_tungstenite::connect_async(format!("ws://{addr}/echo?id={token}")).await;
    assert!(
        matches!(second, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == StatusCode::CONFLICT)
    );
    let (status, _, body) = call(&app, Method::POST, &format!("/echo?id={token}"), &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "POST requests are not allowed for WebSocket connections."
        )
    );
    let (status, _, body) = call(&app, Method::DELETE, &format!("/echo?id={token}"), &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "Cannot terminate this connection using the DELETE endpoint."
        )
    );
}

#[tokio::test]
async fn negotiated_connection_expires_without_transport() {
    let app = Switchboard::builder()
        .hub_with("/echo", Echo, |o| o.disconnect_timeout = Duration::from_millis(200))
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let (_, _, body) = call(&app, Method::POST, "/echo/negotiate?negotiateVersion=1", &[]).await;
    let token = serde_json::from_str::<Value>(&body).unwrap()["connectionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let late = tokio_tungstenite::connect_async(format!("ws://{addr}/echo?id={token}")).await;
    assert!(matches!(late, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == StatusCode::NOT_FOUND));
}

#[test]
fn options_and_paths_are_validated() {
    let error = |builder: switchboard::SwitchboardBuilder| builder.build().unwrap_err().to_string();
    assert_eq!(
        error(Switchboard::builder().hub("chat", Echo)),
        "invalid hub path 'chat': it must start with '/'"
    );
    assert_eq!(
        error(Switchboard::builder().hub("/chat", Echo).hub("/CHAT", Echo)),
        "two hubs are mapped at '/CHAT' (paths are matched ignoring case)"
    );
    assert_eq!(
        error(Switchboard::builder().hub_with("/chat", Echo, |o| o.keep_alive_interval = Duration::ZERO)),
        "hub '/chat': HubOptions.keep_alive_interval must be greater than zero."
    );
    assert_eq!(
        error(Switchboard::builder().hub_with("/chat", Echo, |o| o.client_timeout_interval = Duration::from_secs(1))),
        "hub '/chat': HubOptions.client_timeout_interval must not be shorter than keep_alive_interval (twice it is recommended)."
    );
    assert_eq!(
        error(Switchboard::builder().hub_with("/chat", Echo, |o| o.maximum_parallel_invocations_per_client = 0)),
        "hub '/chat': HubOptions.maximum_parallel_invocations_per_client must be at least 1."
    );
    assert_eq!(
        error(Switchboard::builder().hub_with("/chat", Echo, |o| o.transports.clear())),
        "hub '/chat': HubOptions.transports must name at least one transport."
    );
    assert_eq!(
        error(Switchboard::builder().hub_with("/chat", Echo, |o| o.require_authorization = true)),
        "hub '/chat' requires authorization, but no authenticator is configured"
    );
}

struct Twins;

impl Hub for Twins {
    type Client = switchboard::Untyped;
    fn methods(m: &mut Methods<Self>) {
        m.method("Send", |_, _, ()| async move { Ok::<_, HubError>(()) });
        m.method("send", |_, _, ()| async move { Ok::<_, HubError>(()) });
    }
}

#[test]
fn method_names_colliding_ignoring_case_are_refused() {
    assert_eq!(
        Switchboard::builder()
            .hub("/twins", Twins)
            .build()
            .unwrap_err()
            .to_string(),
        "hub '/twins': the hub method name 'send' collides with 'Send' (method names are matched ignoring case)"
    );
}

#[tokio::test]
async fn raw_connection_echoes_text_and_binary() {
    let app = Switchboard::builder()
        .connection_handler("/raw", |mut conn| async move {
            while let Some(bytes) = conn.recv().await {
                conn.send(bytes);
            }
        })
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let mut ws = open(&addr, "/raw").await;
    send_text(&mut ws, "hello").await;
    assert_eq!(next_event(&mut ws).await, Event::Text("hello".into()));
    send_binary(&mut ws, vec![0, 159, 255]).await;
    assert_eq!(next_event(&mut ws).await, Event::Binary(vec![0, 159, 255]));
}

#[tokio::test]
async fn negotiate_offers_stateful_reconnect_only_when_allowed_and_asked() {
    let app = Switchboard::builder()
        .hub("/plain", Echo)
        .hub_with("/stateful", Echo, |o| o.allow_stateful_reconnects = true)
        .build()
        .unwrap();
    let offered = |body: String| {
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .get("useStatefulReconnect")
            .cloned()
    };
    let ask = "negotiateVersion=1&useStatefulReconnect=true";
    assert_eq!(
        offered(
            call(&app, Method::POST, &format!("/stateful/negotiate?{ask}"), &[])
                .await
                .2
        ),
        Some(json!(true))
    );
    assert_eq!(
        offered(
            call(&app, Method::POST, &format!("/plain/negotiate?{ask}"), &[])
                .await
                .2
        ),
        None
    );
    let not_asked = call(&app, Method::POST, "/stateful/negotiate?negotiateVersion=1", &[])
        .await
        .2;
    assert_eq!(offered(not_asked), None, "never offered to a client that did not ask");
}

#[tokio::test]
async fn serve_closes_a_connection_whose_request_headers_take_too_long() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    assert_eq!(
        switchboard::REQUEST_HEADER_TIMEOUT,
        Duration::from_secs(30),
        "Kestrel's"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = switchboard::serve(listener, app().router()).request_header_timeout(Duration::from_secs(1));
    tokio::spawn(serving.into_future());
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    slow.write_all(b"POST /echo/negotiate HTTP/1.1\r\nHo").await.unwrap();
    // A header byte every 200 ms, never the end of the headers: the server must hang up.
    let mut buf = [0u8; 64];
    let closed = loop {
        tokio::select! {
            read = slow.read(&mut buf) => break read,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if slow.write_all(b"s").await.is_err() {
                    break Ok(0);
                }
                assert!(started.elapsed() < Duration::from_secs(8), "the connection was never closed");
            }
        }
    };
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // A whole request on a new connection is served.
    let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"POST /echo/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let n = ok.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}
