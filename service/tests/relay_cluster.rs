//! A cluster node's settings and its life without Redis: a Redis URL that does not parse is
//! refused at start without being repeated; a node whose Redis cannot be reached still serves
//! the clients and app servers it holds, and says Redis is down. (Clusters of several nodes
//! on a real redis-server are tested with the official client in
//! `tests/conformance/test/relay-cluster.test.mjs`.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use switchboard::protocol::service::{BroadcastData, ServiceMessage};
use switchboard_service::{Config, Relay};

#[tokio::test]
async fn cluster_a_bad_redis_url_is_refused_without_repeating_it() {
    let mut config = Config::new(KEY).listen("127.0.0.1:0");
    config.redis = Some("http://user:cluster-secret@host/".to_owned());
    let error = Relay::bind(config)
        .await
        .expect_err("a URL Redis cannot read")
        .to_string();
    assert!(error.contains("Redis URL is not valid"), "{error}");
    assert!(!error.contains("cluster-secret"), "{error}");
}

#[tokio::test]
async fn cluster_a_node_without_redis_serves_what_it_holds() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay = relay_with(|config| {
        config.redis = Some(format!("redis://127.0.0.1:{port}/"));
        config.node_id = Some("lonely".to_owned());
        config.node_timeout = Duration::from_secs(1);
    })
    .await;
    assert_eq!(relay.node_id(), Some("lonely"));
    let mut server = AppServer::connect(&relay, "chat", "app1").await;
    let (mut client, _) = connect_through(&relay, &mut server, "chat", "json", json!({})).await;
    for round in 0..3 {
        let payload = format!("{{\"type\":1,\"target\":\"m\",\"arguments\":[{round}]}}\u{1e}");
        server
            .send(&ServiceMessage::BroadcastData(BroadcastData {
                payloads: vec![("json".to_owned(), payload.clone().into())],
                ..BroadcastData::default()
            }))
            .await;
        assert_eq!(client.next_text().await, payload, "a broadcast while Redis is away");
    }
    let health = http(&relay, "GET", "/api/health", &[], b"").await;
    let health: serde_json::Value = serde_json::from_str(&health.text()).unwrap();
    assert_eq!(health["node"], "lonely");
    assert_eq!(health["redis"], "down");
    assert_eq!(health["peers"], json!([]));
    let metrics = http(&relay, "GET", "/metrics", &[], b"").await.text();
    assert!(metrics.contains("switchboard_cluster_redis_up 0\n"), "{metrics}");
    assert!(metrics.contains("switchboard_cluster_peers 0\n"), "{metrics}");
    assert!(relay.cluster_peers().is_empty());
    relay.shutdown().await;
}
