//! Tokens on both faces: any configured key, HS256 or HS512, unexpired, for the right
//! audience (host without port, face, hub lower-cased); else 401 with an empty body.

mod common;

use common::*;
use jsonwebtoken::Algorithm;
use serde_json::json;

const CLIENT_AUD: &str = "http://127.0.0.1/client/?hub=chat";
const SERVER_AUD: &str = "http://127.0.0.1/server/?hub=chat";

async fn negotiate(relay: &switchboard_service::Relay, token: Option<&str>, host: Option<&str>) -> HttpResponse {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    if let Some(host) = host {
        headers.push(("Host", host));
    }
    http(
        relay,
        "POST",
        "/client/negotiate?hub=Chat&asrs_request_id=x",
        &headers,
        b"",
    )
    .await
}

#[tokio::test]
async fn auth_client_negotiate_accepts_good_tokens() {
    let relay = relay_with(|c| c.access_keys = vec!["old-key".into(), KEY.into()]).await;
    for (key, algorithm) in [(KEY, Algorithm::HS256), ("old-key", Algorithm::HS512)] {
        let token = token_with(key, algorithm, CLIENT_AUD, 60, json!({"asrs.s.uid": "u"}));
        let response = negotiate(&relay, Some(&token), None).await;
        assert_eq!(response.status, 200, "{}", response.text());
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert!(body["connectionId"].is_string());
        let transports: Vec<&str> = body["availableTransports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["transport"].as_str().unwrap())
            .collect();
        assert_eq!(transports, ["WebSockets", "ServerSentEvents", "LongPolling"]);
    }
    // The audience ignores the port, whatever the Host header says.
    let token = token_with(
        KEY,
        Algorithm::HS256,
        "http://localhost/client/?hub=chat",
        60,
        json!({}),
    );
    assert_eq!(
        negotiate(&relay, Some(&token), Some("localhost:1234")).await.status,
        200
    );
}

#[tokio::test]
async fn auth_client_bad_tokens_get_401_with_empty_body() {
    let relay = relay().await;
    let cases = [
        ("no token", None),
        (
            "wrong key",
            Some(token_with("not-the-key", Algorithm::HS256, CLIENT_AUD, 60, json!({}))),
        ),
        (
            "expired",
            Some(token_with(KEY, Algorithm::HS256, CLIENT_AUD, -30, json!({}))),
        ),
        (
            "server audience",
            Some(token_with(KEY, Algorithm::HS256, SERVER_AUD, 60, json!({}))),
        ),
        (
            "other hub",
            Some(token_with(
                KEY,
                Algorithm::HS256,
                "http://127.0.0.1/client/?hub=other",
                60,
                json!({}),
            )),
        ),
        (
            "with port",
            Some(token_with(
                KEY,
                Algorithm::HS256,
                "http://127.0.0.1:80/client/?hub=chat",
                60,
                json!({}),
            )),
        ),
        ("garbage", Some("not.a.jwt".to_owned())),
        ("not valid for an hour yet", Some(not_yet_valid(CLIENT_AUD))),
    ];
    for (case, token) in &cases {
        let response = negotiate(&relay, token.as_deref(), None).await;
        assert_eq!(response.status, 401, "{case}");
        assert!(response.body.is_empty(), "{case}: {}", response.text());
    }
    // The audience names the host the request was addressed to.
    let token = token_with(KEY, Algorithm::HS256, CLIENT_AUD, 60, json!({}));
    assert_eq!(negotiate(&relay, Some(&token), Some("example.com")).await.status, 401);
    // The WebSocket itself (token in the query) is refused the same way.
    let wrong = token_with("not-the-key", Algorithm::HS256, CLIENT_AUD, 60, json!({}));
    assert_eq!(Client::open(&relay, "chat", &wrong).await.err(), Some(401));
    let expired = token_with(KEY, Algorithm::HS256, CLIENT_AUD, -30, json!({}));
    assert_eq!(Client::open(&relay, "chat", &expired).await.err(), Some(401));
}

#[tokio::test]
async fn auth_server_face_checks_its_token() {
    let relay = relay().await;
    let path = "/server/?hub=chat&cid=c1";
    let good = token_with(KEY, Algorithm::HS512, SERVER_AUD, 60, json!({"nameid": "app"}));
    assert!(ws_with_bearer(&relay, path, &good).await.is_ok());
    for (case, token) in [
        (
            "wrong key",
            token_with("nope", Algorithm::HS256, SERVER_AUD, 60, json!({})),
        ),
        ("expired", token_with(KEY, Algorithm::HS256, SERVER_AUD, -30, json!({}))),
        (
            "client audience",
            token_with(KEY, Algorithm::HS256, CLIENT_AUD, 60, json!({})),
        ),
        (
            "other hub",
            token_with(KEY, Algorithm::HS256, "http://127.0.0.1/server/?hub=x", 60, json!({})),
        ),
    ] {
        assert_eq!(ws_with_bearer(&relay, path, &token).await.err(), Some(401), "{case}");
    }
    let response = http(&relay, "GET", path, &[], b"").await;
    assert_eq!(response.status, 401);
    assert!(response.body.is_empty());
    // The token goes in the Authorization header only.
    let in_query = format!("/server/?hub=chat&cid=c1&access_token={good}");
    assert_eq!(http(&relay, "GET", &in_query, &[], b"").await.status, 401);
}

/// A token for `audience` whose `nbf` is an hour from now (past any clock skew).
fn not_yet_valid(audience: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = json!({"aud": audience, "nbf": now + 3600, "exp": now + 7200, "nameid": "app1"});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &body,
        &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn auth_a_server_token_not_valid_yet_is_refused() {
    let relay = relay().await;
    let refused = ws_with_bearer(&relay, "/server/?hub=chat", &not_yet_valid(SERVER_AUD)).await;
    assert_eq!(refused.err(), Some(401));
    assert!(
        ws_with_bearer(&relay, "/server/?hub=chat", &server_token("chat", "app1"))
            .await
            .is_ok()
    );
}
