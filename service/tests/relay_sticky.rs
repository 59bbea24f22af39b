//! Which app server a new client goes to: balanced across servers (not only across their
//! connections) without stickiness, the negotiating server when the token prefers or requires
//! it, and a clear refusal when a required server is gone.

mod common;

use common::*;
use futures_util::future::select_all;
use serde_json::{Value, json};
use switchboard::protocol::service::ServiceMessage;

/// The index of the server connection that is told of the next client.
async fn opened_on(servers: &mut [AppServer]) -> usize {
    let waits = servers.iter_mut().map(|server| Box::pin(server.recv()));
    let (message, index, _) = select_all(waits).await;
    assert!(
        matches!(message, ServiceMessage::OpenConnection(_)),
        "expected OpenConnection, got {message:?}"
    );
    // The client's handshake follows on the same connection.
    match servers[index].recv().await {
        ServiceMessage::ConnectionData(_) => {}
        other => panic!("expected the handshake, got {other:?}"),
    }
    index
}

fn sticky(server: &str, mode: &str) -> Value {
    json!({ "asrs.s.sn": server, "asrs.s.ssticky": mode })
}

/// Connects `count` clients with `claims`, returning how many reached each server connection
/// and the clients (kept open).
async fn spread(
    relay: &switchboard_service::Relay,
    servers: &mut [AppServer],
    count: usize,
    claims: Value,
) -> (Vec<usize>, Vec<Client>) {
    let mut counts = vec![0; servers.len()];
    let mut clients = Vec::new();
    for _ in 0..count {
        clients.push(Client::connect(relay, "chat", "json", claims.clone()).await);
        counts[opened_on(servers).await] += 1;
    }
    (counts, clients)
}

#[tokio::test]
async fn sticky_disabled_balances_clients_across_servers_not_connections() {
    let relay = relay().await;
    // Server A has two connections, server B one: 30 clients go 15 and 15, A's split 8 and 7.
    let mut servers = vec![
        AppServer::connect(&relay, "chat", "server-a").await,
        AppServer::connect(&relay, "chat", "server-a").await,
        AppServer::connect(&relay, "chat", "server-b").await,
    ];
    let (counts, _clients) = spread(&relay, &mut servers, 30, json!({})).await;
    assert_eq!(counts[0] + counts[1], 15, "server A's share: {counts:?}");
    assert_eq!(counts[2], 15, "server B's share: {counts:?}");
    assert!(
        counts[0].abs_diff(counts[1]) <= 1,
        "A's connections share evenly: {counts:?}"
    );
    // A sticky mode the relay does not know is no stickiness.
    let (counts, _more) = spread(&relay, &mut servers, 4, sticky("server-a", "Sometimes")).await;
    assert_eq!(counts[2], 2, "{counts:?}");
}

#[tokio::test]
async fn sticky_preferred_goes_to_the_negotiating_server_while_it_is_there() {
    let relay = relay().await;
    let mut servers = vec![
        AppServer::connect(&relay, "chat", "server-a").await,
        AppServer::connect(&relay, "chat", "server-b").await,
    ];
    let (counts, _to_b) = spread(&relay, &mut servers, 30, sticky("server-b", "Preferred")).await;
    assert_eq!(counts, [0, 30]);
    // Mode names ignore case, as the service reads them.
    let (counts, _also_b) = spread(&relay, &mut servers, 3, sticky("server-b", "preferred")).await;
    assert_eq!(counts, [0, 3]);
    // A server that is not connected: as without stickiness (A has none yet, so A first).
    let (counts, _elsewhere) = spread(&relay, &mut servers, 30, sticky("server-gone", "Preferred")).await;
    assert_eq!(counts, [30, 0], "the least loaded server takes them");
}

#[tokio::test]
async fn sticky_required_goes_only_to_its_server_and_fails_clearly_without_it() {
    let relay = relay().await;
    let mut servers = vec![
        AppServer::connect(&relay, "chat", "server-a").await,
        AppServer::connect(&relay, "chat", "server-b").await,
    ];
    let (counts, _to_a) = spread(&relay, &mut servers, 30, sticky("server-a", "Required")).await;
    assert_eq!(counts, [30, 0]);

    let mut refused = Client::connect(&relay, "chat", "json", sticky("server-gone", "Required")).await;
    assert_eq!(
        refused.next_text().await,
        "{\"error\":\"The server which the client is sticky to is not found.\"}\u{1e}"
    );
    refused.closed().await;

    // The server goes: its clients are closed, and new clients that require it are refused,
    // never routed to the other server.
    let a = servers.remove(0);
    drop(a);
    let mut refused = Client::connect(&relay, "chat", "json", sticky("server-a", "Required")).await;
    assert_eq!(
        refused.next_text().await,
        "{\"error\":\"The server which the client is sticky to is not found.\"}\u{1e}"
    );
    refused.closed().await;
    // And with no server of the hub at all.
    drop(servers);
    let mut refused = Client::connect(&relay, "chat", "json", sticky("server-b", "Required")).await;
    assert_eq!(
        refused.next_text().await,
        "{\"error\":\"The server which the client is sticky to is not found.\"}\u{1e}"
    );
    refused.closed().await;
}

#[tokio::test]
async fn servers_going_offline_take_no_new_clients() {
    use switchboard::protocol::service::Ping;
    let relay = relay().await;
    let mut servers = vec![
        AppServer::connect(&relay, "chat", "server-a").await,
        AppServer::connect(&relay, "chat", "server-b").await,
    ];
    // B says it is shutting down, waiting for its clients to close (fin:2): the relay says
    // finack and sends every new client to A, even one that prefers B.
    servers[1]
        .send(&ServiceMessage::Ping(Ping::shutdown(
            switchboard::protocol::service::ShutdownMode::WaitForClientsClose,
        )))
        .await;
    loop {
        match servers[1].recv_any().await {
            ServiceMessage::Ping(ping) if ping == Ping::fin_ack() => break,
            _ => continue,
        }
    }
    let (counts, _clients) = spread(&relay, &mut servers, 10, sticky("server-b", "Preferred")).await;
    assert_eq!(counts, [10, 0]);
}
