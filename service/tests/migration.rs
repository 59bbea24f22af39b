//! Client migration end to end with the typed Rust client: two app servers built with
//! `with_service` behind an in-process relay; the first shuts down through its app handle with
//! `MigrateClients`, and its clients move to the second with invocations in flight.

use std::time::Duration;

use switchboard::client::ClientOptions;
use switchboard::service::{GracefulShutdownMode, ServerStickyMode, ServiceOptions};
use switchboard::{AppHandle, HubContext, HubError, Switchboard};
use switchboard_service::{Config, Relay};

const KEY: &str = "a-relay-access-key-for-tests-0123456789";
const WAIT: Duration = Duration::from_secs(20);

/// What the hub asks its clients.
#[switchboard::client]
trait Asked {
    /// A number, answered by the client.
    async fn value(&self) -> i64;
}

/// A hub that says which app server it runs on.
struct Moves {
    name: String,
}

#[switchboard::hub("/moves", client = Asked)]
impl Moves {
    /// Asks the caller for a number (a client result).
    async fn ask(&self, cx: &HubContext<Self>) -> Result<i64, HubError> {
        cx.clients()
            .caller()
            .value()
            .await
            .map_err(|error| HubError::new(error.message().to_owned()))
    }

    async fn server(&self) -> String {
        self.name.clone()
    }

    /// Answers after `ms` milliseconds, with the server that started it.
    async fn slow(&self, ms: u64) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.name.clone()
    }

    /// Where the caller's connection came from, if it moved here.
    async fn moved_from(&self, cx: &HubContext<Self>) -> Option<String> {
        cx.migration().map(|moved| moved.from().to_owned())
    }

    async fn id(&self, cx: &HubContext<Self>) -> String {
        cx.connection_id().to_owned()
    }
}

async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// An app server named `name` through `relay`, with these service options; its URL and handle.
async fn app_server(relay: &Relay, name: &str, configure: impl FnOnce(&mut ServiceOptions)) -> (String, AppHandle) {
    let mut options = ServiceOptions {
        connection_string: Some(relay.connection_string()),
        server_name: Some(name.to_owned()),
        initial_hub_server_connection_count: 2,
        ..ServiceOptions::default()
    };
    configure(&mut options);
    let app = Switchboard::builder()
        .with_service(options)
        // A hub method may await a client result.
        .hub_options(|o| o.maximum_parallel_invocations_per_client = 2)
        .mount(Moves { name: name.to_owned() })
        .build()
        .expect("app builds");
    let running = app.start().expect("app starts");
    within("the server connections", running.connected()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router::<()>();
    tokio::spawn(async move { switchboard::serve(listener, router).await });
    (url, running)
}

/// A relay, `server-a` (clients prefer it; it shuts down with `MigrateClients`) and
/// `server-b`: the relay, A's URL, A's handle and B's.
async fn two_servers() -> (Relay, String, AppHandle, AppHandle) {
    let relay = Relay::bind(Config::new(KEY).listen("127.0.0.1:0"))
        .await
        .expect("relay starts");
    let (a_url, a) = app_server(&relay, "server-a", |o| {
        o.server_sticky_mode = ServerStickyMode::Preferred;
        o.graceful_shutdown.mode = GracefulShutdownMode::MigrateClients;
    })
    .await;
    let (_b_url, b) = app_server(&relay, "server-b", |_| {}).await;
    (relay, a_url, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_clients_moves_typed_clients_with_their_invocations_in_flight() {
    let (relay, a_url, a, _b) = two_servers().await;

    let mut clients = Vec::new();
    for protocol in [
        switchboard::protocol::Protocol::Json,
        switchboard::protocol::Protocol::MessagePack,
    ] {
        for _ in 0..10 {
            let options = ClientOptions {
                protocol,
                ..ClientOptions::default()
            };
            let client = within("connect", MovesHubClient::connect(&format!("{a_url}/moves"), options))
                .await
                .expect("connects");
            assert_eq!(client.server().await.unwrap(), "server-a");
            clients.push(client);
        }
    }
    let ids: Vec<String> = futures_util::future::join_all(clients.iter().map(|c| c.id()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // Each client has an invocation under way at A when A shuts down.
    let in_flight = futures_util::future::join_all(clients.iter().map(|c| c.slow(1500)));
    let shutdown = async {
        // Once the invocations have reached A.
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.shutdown().await;
    };
    let (answers, ()) = within("the invocations under way and A's shutdown", async {
        tokio::join!(in_flight, shutdown)
    })
    .await;
    for answer in answers {
        assert_eq!(
            answer.expect("an invocation under way completes across the move"),
            "server-a"
        );
    }

    for (client, id) in clients.iter().zip(&ids) {
        assert_eq!(client.server().await.unwrap(), "server-b");
        assert_eq!(client.moved_from().await.unwrap().as_deref(), Some("server-a"));
        assert_eq!(&client.id().await.unwrap(), id, "the connection id stays");
    }
    assert_eq!(relay.client_count("moves"), clients.len());
}

/// Answers `Value` slowly: after the connection has moved.
struct SlowAnswer;

impl Asked for SlowAnswer {
    async fn value(&self) -> i64 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        7
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_clients_fails_a_client_result_awaited_across_the_move_clearly() {
    let (_relay, a_url, a, _b) = two_servers().await;
    let client = within(
        "connect",
        MovesHubClient::connect_with_handler(&format!("{a_url}/moves"), ClientOptions::default(), SlowAnswer),
    )
    .await
    .expect("connects");
    let shutdown = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.shutdown().await;
    };
    let (asked, ()) = within("the question and A's shutdown", async {
        tokio::join!(client.ask(), shutdown)
    })
    .await;
    let error = asked.expect_err("the answer cannot reach the server that asked");
    assert!(
        error
            .to_string()
            .contains("The connection moved to another server before the client answered"),
        "{error}"
    );
    // The client goes on, on B.
    assert_eq!(client.server().await.unwrap(), "server-b");
}
