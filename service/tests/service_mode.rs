//! Service mode end to end: app servers built with `with_service`, a relay in-process, and
//! clients that negotiate with an app server and are redirected to the relay.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use switchboard::client::{ClientOptions, HubConnection};
use switchboard::service::ServiceOptions;
use switchboard::{HubContext, HubError, Switchboard};
use switchboard_service::{Config, Relay};
use tokio::sync::mpsc;

const KEY: &str = "a-relay-access-key-for-tests-0123456789";
const WAIT: Duration = Duration::from_secs(10);

#[switchboard::client]
trait Listener {
    async fn said(&self, text: String);
}

/// A hub that counts the clients it served.
#[derive(Default)]
struct Room {
    served: Arc<AtomicUsize>,
}

#[switchboard::hub("/room", client = Listener)]
impl Room {
    async fn echo(&self, text: String) -> String {
        self.served.fetch_add(1, Ordering::SeqCst);
        text
    }

    async fn say(&self, cx: &HubContext<Self>, text: String) -> Result<(), HubError> {
        cx.clients().all().said(text).await
    }

    async fn join(&self, cx: &HubContext<Self>, group: String) -> Result<(), HubError> {
        cx.groups().add(cx.connection_id(), &group).await
    }

    async fn say_to(&self, cx: &HubContext<Self>, group: String, text: String) -> Result<(), HubError> {
        cx.clients().group(group).said(text).await
    }

    async fn claim(&self, cx: &HubContext<Self>, name: String) -> Option<String> {
        cx.claims().and_then(|c| c.get_str(&name)).map(str::to_owned)
    }

    async fn whoami(&self, cx: &HubContext<Self>) -> Option<String> {
        cx.user_id().map(str::to_owned)
    }

    /// Whether a `connection`, `user` or `group` of that name exists at the service.
    async fn exists(&self, cx: &HubContext<Self>, kind: String, name: String) -> Result<bool, HubError> {
        let handle = cx.handle();
        match kind.as_str() {
            "connection" => handle.connection_exists(&name).await,
            "user" => handle.user_exists(&name).await,
            _ => handle.group_exists(&name).await,
        }
    }
}

async fn relay() -> Relay {
    Relay::bind(Config::new(KEY).listen("127.0.0.1:0"))
        .await
        .expect("relay starts")
}

/// Builds and serves an app in service mode; returns its base URL.
async fn app_server(connection_string: &str, configure: impl FnOnce(&mut ServiceOptions), hub: Room) -> String {
    let mut options = ServiceOptions {
        connection_string: Some(connection_string.to_owned()),
        ..ServiceOptions::default()
    };
    configure(&mut options);
    app_server_with(options, hub).await.0
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A client whose `Said` calls land in a channel.
async fn listener(url: &str) -> (HubConnection, mpsc::UnboundedReceiver<String>) {
    let connection = HubConnection::new(url, ClientOptions::default()).unwrap();
    let (sender, receiver) = mpsc::unbounded_channel();
    connection.on("Said", move |(text,): (String,)| {
        let sender = sender.clone();
        async move {
            let _ = sender.send(text);
            Ok::<(), String>(())
        }
    });
    tokio::time::timeout(WAIT, connection.start())
        .await
        .expect("connects in time")
        .expect("connects");
    (connection, receiver)
}

async fn next(receiver: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .expect("a message in time")
        .expect("a message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_calls_broadcasts_groups_and_users_through_the_relay() {
    let relay = relay().await;
    let app = app_server(&relay.connection_string(), |_| {}, Room::default()).await;
    until("the app's server connections are up", || {
        relay.server_connection_count("room") == 5
    })
    .await;

    let (alice, mut alice_inbox) = listener(&format!("{app}/room?user=alice")).await;
    let (bob, mut bob_inbox) = listener(&format!("{app}/room?user=bob")).await;
    assert_eq!(alice.invoke::<String>("Echo", ("héllo",)).await.unwrap(), "héllo");
    assert_eq!(
        alice.invoke::<Option<String>>("Whoami", ()).await.unwrap().as_deref(),
        Some("alice")
    );
    until("both clients are at the relay", || relay.client_count("room") == 2).await;

    bob.invoke::<()>("Say", ("to everyone",)).await.unwrap();
    assert_eq!(next(&mut alice_inbox).await, "to everyone");
    assert_eq!(next(&mut bob_inbox).await, "to everyone");

    bob.invoke::<()>("Join", ("g",)).await.unwrap();
    alice.invoke::<()>("SayTo", ("g", "members only")).await.unwrap();
    alice.invoke::<()>("Say", ("sentinel",)).await.unwrap();
    assert_eq!(next(&mut bob_inbox).await, "members only");
    assert_eq!(next(&mut bob_inbox).await, "sentinel");
    assert_eq!(next(&mut alice_inbox).await, "sentinel", "alice is not in the group");

    let error = alice.invoke::<String>("Nope", ()).await.unwrap_err();
    assert_eq!(
        error.message(),
        "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist."
    );
    alice.stop().await;
    bob.stop().await;
    until("the relay forgot the clients", || relay.client_count("room") == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_application_names_isolate_apps() {
    let relay = relay().await;
    let shop = app_server(
        &relay.connection_string(),
        |o| o.application_name = Some("Shop".into()),
        Room::default(),
    )
    .await;
    let blog = app_server(
        &relay.connection_string(),
        |o| o.application_name = Some("Blog".into()),
        Room::default(),
    )
    .await;
    until("both apps are connected", || {
        relay.server_connection_count("shop_room") == 5 && relay.server_connection_count("blog_room") == 5
    })
    .await;
    let (shopper, mut shopper_inbox) = listener(&format!("{shop}/room")).await;
    let (reader, mut reader_inbox) = listener(&format!("{blog}/room")).await;
    reader.invoke::<()>("Say", ("blog news",)).await.unwrap();
    shopper.invoke::<()>("Say", ("shop news",)).await.unwrap();
    assert_eq!(next(&mut reader_inbox).await, "blog news");
    assert_eq!(
        next(&mut shopper_inbox).await,
        "shop news",
        "no cross-talk: the blog's news never reached the shop"
    );
    assert_eq!(relay.client_count("shop_room"), 1);
    assert_eq!(relay.client_count("blog_room"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_clients_spread_over_two_app_servers() {
    let relay = relay().await;
    let (first, second) = (Room::default(), Room::default());
    let (first_served, second_served) = (first.served.clone(), second.served.clone());
    let one = app_server(&relay.connection_string(), |_| {}, first).await;
    let _two = app_server(&relay.connection_string(), |_| {}, second).await;
    until("ten server connections", || relay.server_connection_count("room") == 10).await;
    let mut clients = Vec::new();
    for _ in 0..12 {
        let (client, _) = listener(&format!("{one}/room")).await;
        client.invoke::<String>("Echo", ("x",)).await.unwrap();
        clients.push(client);
    }
    let (a, b) = (
        first_served.load(Ordering::SeqCst),
        second_served.load(Ordering::SeqCst),
    );
    assert_eq!(a + b, 12);
    assert!(a > 0 && b > 0, "clients were spread over both app servers: {a} and {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_honours_the_initial_connection_count() {
    let relay = relay().await;
    let _app = app_server(
        &relay.connection_string(),
        |o| o.initial_hub_server_connection_count = 3,
        Room::default(),
    )
    .await;
    until("three server connections", || {
        relay.server_connection_count("room") == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(relay.server_connection_count("room"), 3, "no more than asked for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_survives_a_relay_restart() {
    let first = relay().await;
    let addr = first.local_addr();
    let app = app_server(
        &first.connection_string(),
        |o| o.initial_hub_server_connection_count = 2,
        Room::default(),
    )
    .await;
    until("connected to the first relay", || {
        first.server_connection_count("room") == 2
    })
    .await;
    first.shutdown().await;
    // Negotiate tells clients the service is not connected while it is down.
    let refused = HubConnection::connect(
        &format!("{app}/room"),
        ClientOptions {
            reconnect_delays: None,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("Azure SignalR Service is not connected yet"),
        "{refused}"
    );
    let second = Relay::bind(Config::new(KEY).listen(addr.to_string()))
        .await
        .expect("the relay starts again");
    // Server connections come back with their backoff (1 s, then 2 s…).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while second.server_connection_count("room") < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server connections did not return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (client, _) = listener(&format!("{app}/room")).await;
    assert_eq!(client.invoke::<String>("Echo", ("back",)).await.unwrap(), "back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_refuses_a_wrong_key() {
    let relay = relay().await;
    let wrong = relay
        .connection_string()
        .replace(KEY, "some-other-key-that-the-relay-does-not-know");
    let app = app_server(&wrong, |_| {}, Room::default()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        relay.server_connection_count("room"),
        0,
        "server connections with a wrong key are refused"
    );
    let refused = HubConnection::connect(
        &format!("{app}/room"),
        ClientOptions {
            reconnect_delays: None,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("not connected yet"), "{refused}");
}

#[tokio::test]
async fn service_mode_option_and_connection_string_errors() {
    let error = |options: ServiceOptions| {
        Switchboard::builder()
            .with_service(options)
            .mount(Room::default())
            .build()
            .unwrap_err()
            .to_string()
    };
    assert_eq!(error(ServiceOptions::default()), "No connection string was specified.");
    assert_eq!(
        error(ServiceOptions {
            connection_string: Some("Endpoint=http://x;Version=1.0".into()),
            ..Default::default()
        }),
        "accesskey is required."
    );
    assert_eq!(
        error(ServiceOptions {
            connection_string: Some(format!("Endpoint=http://x;AccessKey={KEY}")),
            initial_hub_server_connection_count: 3,
            max_hub_server_connection_count: Some(2),
            ..Default::default()
        }),
        "Property 'MaxHubServerConnectionCount' value should be >= 3."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_opens_on_demand_connections_up_to_the_maximum() {
    let relay = relay().await;
    let app = app_server(
        &relay.connection_string(),
        |o| {
            o.initial_hub_server_connection_count = 2;
            o.max_hub_server_connection_count = Some(4);
        },
        Room::default(),
    )
    .await;
    until("two server connections", || relay.server_connection_count("room") == 2).await;
    for expected in [3, 4] {
        assert_eq!(
            relay.request_server_connections("room").await,
            1,
            "one app server asked"
        );
        until(&format!("{expected} server connections"), || {
            relay.server_connection_count("room") == expected
        })
        .await;
    }
    // At the maximum the app server declines.
    assert_eq!(relay.request_server_connections("room").await, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        relay.server_connection_count("room"),
        4,
        "never more than MaxHubServerConnectionCount"
    );
    // On-demand connections carry clients like the others: the relay pins clients to the
    // four connections in turn, and every client works.
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (client, _) = listener(&format!("{app}/room")).await;
        assert_eq!(client.invoke::<String>("Echo", ("hi",)).await.unwrap(), "hi");
        clients.push(client);
    }
    assert_eq!(relay.client_count("room"), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_without_a_maximum_opens_every_on_demand_connection_asked_for() {
    let relay = relay().await;
    let _app = app_server(
        &relay.connection_string(),
        |o| o.initial_hub_server_connection_count = 1,
        Room::default(),
    )
    .await;
    until("one server connection", || relay.server_connection_count("room") == 1).await;
    for _ in 0..3 {
        relay.request_server_connections("room").await;
    }
    until("four server connections", || relay.server_connection_count("room") == 4).await;
    assert_eq!(
        relay.request_server_connections("nohub").await,
        0,
        "no app server for an unknown hub"
    );
}

/// Accepts one server connection on `listener` as a service would and returns its request
/// path and query and the first record it sends (its HandshakeRequest).
// tungstenite's header callback returns its own (large) error type.
#[allow(clippy::result_large_err)]
async fn first_handshake(
    listener: tokio::net::TcpListener,
) -> (String, switchboard::protocol::service::HandshakeRequest) {
    use futures_util::StreamExt;
    use switchboard::protocol::service::ServiceMessage;
    let (stream, _) = listener.accept().await.unwrap();
    let mut uri = String::new();
    let mut socket = tokio_tungstenite::accept_hdr_async(
        stream,
        |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
         response: tokio_tungstenite::tungstenite::handshake::server::Response| {
            uri = request.uri().to_string();
            Ok(response)
        },
    )
    .await
    .unwrap();
    let frame = tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("a handshake in time")
        .unwrap()
        .unwrap();
    let mut buf = bytes::BytesMut::from(&frame.into_data()[..]);
    let record = switchboard::protocol::framing::split_binary_record(&mut buf, None)
        .unwrap()
        .expect("one whole record");
    match switchboard::protocol::service::parse(record).unwrap() {
        Some(ServiceMessage::HandshakeRequest(request)) => (uri, request),
        other => panic!("expected a HandshakeRequest, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_handshake_carries_migration_and_stateful_reconnect() {
    use switchboard::service::{GracefulShutdown, GracefulShutdownMode};
    for (mode, stateful, level) in [
        (GracefulShutdownMode::MigrateClients, true, 1),
        (GracefulShutdownMode::WaitForClientsClose, false, 0),
        (GracefulShutdownMode::Off, false, 0),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let _app = app_server(
            &format!("Endpoint={endpoint};AccessKey={KEY};Version=1.0;"),
            |o| {
                o.initial_hub_server_connection_count = 1;
                o.allow_stateful_reconnects = stateful;
                o.graceful_shutdown = GracefulShutdown {
                    mode,
                    ..GracefulShutdown::default()
                };
            },
            Room::default(),
        )
        .await;
        let (uri, handshake) = first_handshake(listener).await;
        assert!(uri.starts_with("/server/?hub=room&cid="), "{uri}");
        assert!(!uri.contains("target="), "a Default connection names no target: {uri}");
        assert_eq!(handshake.connection_type, 0, "Default");
        assert_eq!(handshake.target, "");
        assert_eq!(handshake.migration_level, level, "{mode:?}");
        assert_eq!(handshake.allow_stateful_reconnects, stateful);
    }
}

#[test]
fn service_mode_build_has_no_side_effects_and_start_needs_a_runtime() {
    // Built outside any runtime: nothing starts, nothing is spawned.
    let app = Switchboard::builder()
        .with_service(ServiceOptions {
            connection_string: Some(format!("Endpoint=http://127.0.0.1:9;AccessKey={KEY};Version=1.0;")),
            ..ServiceOptions::default()
        })
        .mount(Room::default())
        .build()
        .expect("builds outside a runtime");
    assert_eq!(
        app.start().unwrap_err().to_string(),
        "start the app inside a Tokio runtime"
    );
    // Self-hosted, there is nothing to wait for.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let self_hosted = Switchboard::builder().mount(Room::default()).build().unwrap();
    runtime.block_on(async {
        let running = self_hosted.start().expect("starts");
        tokio::time::timeout(Duration::from_millis(100), running.connected())
            .await
            .expect("connected at once when self-hosted");
        running.shutdown().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_server_connections_open_on_start_and_close_on_shutdown() {
    let relay = relay().await;
    let app = Switchboard::builder()
        .with_service(ServiceOptions {
            connection_string: Some(relay.connection_string()),
            initial_hub_server_connection_count: 2,
            ..ServiceOptions::default()
        })
        .mount(Room::default())
        .build()
        .expect("app builds");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        relay.server_connection_count("room"),
        0,
        "build() opened server connections"
    );
    let running = app.start().expect("app starts");
    assert_eq!(app.start().unwrap_err().to_string(), "the app is started already");
    tokio::time::timeout(WAIT, running.connected())
        .await
        .expect("a server connection is up in time");
    assert!(relay.server_connection_count("room") >= 1);
    until("the server connections are up", || {
        relay.server_connection_count("room") == 2
    })
    .await;
    tokio::time::timeout(WAIT, running.shutdown())
        .await
        .expect("shuts down in time");
    until("the server connections are gone", || {
        relay.server_connection_count("room") == 0
    })
    .await;
    // None is reopened.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(relay.server_connection_count("room"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_service_events_reach_the_handler_and_a_service_error_stops_writes() {
    use futures_util::{SinkExt, StreamExt};
    use switchboard::protocol::service::{
        HandshakeResponse, ServiceError, ServiceEvent, ServiceEventKind, ServiceEventObjectType, ServiceMessage,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (events, mut seen) = mpsc::unbounded_channel();
    let app = app_server(
        &format!("Endpoint={endpoint};AccessKey={KEY};Version=1.0;"),
        |o| {
            o.initial_hub_server_connection_count = 1;
            o.service_event_handler = Some(Arc::new(move |event: &switchboard::service::ServiceEvent| {
                let _ = events.send(event.clone());
            }));
        },
        Room::default(),
    )
    .await;
    // This test is the service: it accepts the server connection and answers its handshake.
    let (stream, _) = listener.accept().await.unwrap();
    let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
    let _handshake = tokio::time::timeout(WAIT, socket.next()).await.unwrap();
    let send = |message: ServiceMessage| {
        let mut out = Vec::new();
        switchboard::protocol::service::write(&message, &mut out);
        tokio_tungstenite::tungstenite::Message::binary(out)
    };
    socket
        .send(send(ServiceMessage::HandshakeResponse(HandshakeResponse::default())))
        .await
        .unwrap();
    let negotiate = || async {
        let response = reqwest_lite(&format!("{app}/room/negotiate?negotiateVersion=1")).await;
        response.0
    };
    let mut status = 0;
    for _ in 0..100 {
        status = negotiate().await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "negotiate redirects once the server connection is up");
    let event = ServiceEvent {
        object_type: ServiceEventObjectType::Group,
        id: Some("g1".into()),
        kind: ServiceEventKind::NotExisted,
        message: Some("no such group".into()),
    };
    socket
        .send(send(ServiceMessage::ServiceEvent(event.clone())))
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap();
    assert_eq!(got, event);
    // An empty ServiceError means nothing; one with a message stops writes on the connection.
    socket
        .send(send(ServiceMessage::ServiceError(ServiceError {
            error_message: Some(String::new()),
        })))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(negotiate().await, 200);
    socket
        .send(send(ServiceMessage::ServiceError(ServiceError {
            error_message: Some("the service is reloading".into()),
        })))
        .await
        .unwrap();
    let mut status = 200;
    for _ in 0..100 {
        status = negotiate().await;
        if status != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status, 500,
        "no server connection to write to: negotiate says it is not connected"
    );
}

/// `POST url` over a plain socket: the status and body.
async fn reqwest_lite(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_crowded_connections_grow_on_their_own_up_to_the_maximum() {
    let relay = Relay::bind(
        Config {
            clients_per_server_connection: 2,
            ..Config::new(KEY)
        }
        .listen("127.0.0.1:0"),
    )
    .await
    .expect("relay starts");
    let app = app_server(
        &relay.connection_string(),
        |o| {
            o.initial_hub_server_connection_count = 1;
            o.max_hub_server_connection_count = Some(3);
        },
        Room::default(),
    )
    .await;
    until("one server connection", || relay.server_connection_count("room") == 1).await;
    let mut clients = Vec::new();
    for _ in 0..12 {
        let (client, _) = listener(&format!("{app}/room")).await;
        assert_eq!(client.invoke::<String>("Echo", ("hi",)).await.unwrap(), "hi");
        clients.push(client);
    }
    // Each connection past two clients asked for another; the app stopped at its maximum.
    until("three server connections", || {
        relay.server_connection_count("room") == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        relay.server_connection_count("room"),
        3,
        "never more than MaxHubServerConnectionCount"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_hs512_claims_provider_transport_detector_and_stateful_reconnect_end_to_end() {
    use switchboard::TransportType;
    use switchboard::service::AccessTokenAlgorithm;
    let relay = relay().await;
    let app = app_server(
        &relay.connection_string(),
        |o| {
            o.access_token_algorithm = AccessTokenAlgorithm::HS512;
            o.allow_stateful_reconnects = true;
            o.claims_provider = Some(Arc::new(|request: &switchboard::RequestInfo| {
                vec![("tier".to_owned(), request.query("tier").unwrap_or("none").to_owned())]
            }));
        },
        Room::default(),
    )
    .await;
    until("the server connections", || relay.server_connection_count("room") == 5).await;
    // HS512 tokens and the provider's claims, through the typed path a client takes.
    let (client, _) = listener(&format!("{app}/room?tier=gold")).await;
    assert_eq!(
        client
            .invoke::<Option<String>>("Claim", ("tier",))
            .await
            .unwrap()
            .as_deref(),
        Some("gold")
    );
    // The redirect's token offers stateful reconnect at the relay.
    let (status, body) = reqwest_lite(&format!("{app}/room/negotiate?negotiateVersion=1")).await;
    assert_eq!(status, 200, "{body}");
    let redirect: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = redirect["accessToken"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        jsonwebtoken::Algorithm::HS512,
        "signed with HS512"
    );
    let relay_negotiate = relay_post(
        &relay,
        "/client/negotiate?hub=room&negotiateVersion=1&useStatefulReconnect=true",
        token,
    )
    .await;
    assert_eq!(
        relay_negotiate["useStatefulReconnect"],
        serde_json::Value::Bool(true),
        "{relay_negotiate}"
    );

    // A transport detector: only long polling is offered to these clients.
    let relay = self::relay().await;
    let app = app_server(
        &relay.connection_string(),
        |o| {
            o.transport_type_detector = Some(Arc::new(|_: &switchboard::RequestInfo| {
                vec![TransportType::LongPolling]
            }));
        },
        Room::default(),
    )
    .await;
    until("the server connections", || relay.server_connection_count("room") == 5).await;
    let (_, body) = reqwest_lite(&format!("{app}/room/negotiate?negotiateVersion=1")).await;
    let redirect: serde_json::Value = serde_json::from_str(&body).unwrap();
    let offered = relay_post(
        &relay,
        "/client/negotiate?hub=room&negotiateVersion=1",
        redirect["accessToken"].as_str().unwrap(),
    )
    .await;
    let transports: Vec<&str> = offered["availableTransports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["transport"].as_str().unwrap())
        .collect();
    assert_eq!(transports, ["LongPolling"]);
}

/// `POST path` at the relay with a bearer token: the JSON body.
async fn relay_post(relay: &Relay, path: &str, token: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = relay.local_addr();
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Builds and serves an app in service mode with `options` (user ids from the `user` query
/// parameter); returns its base URL and handle.
async fn app_server_with(options: ServiceOptions, hub: Room) -> (String, switchboard::AppHandle) {
    let app = Switchboard::builder()
        .with_service(options)
        .user_id_provider(|user| user.request.query("user").map(str::to_owned))
        .mount(hub)
        .build()
        .expect("app builds");
    let running = app.start().expect("app starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router::<()>();
    tokio::spawn(async move {
        let _ = switchboard::serve(listener, router).await;
    });
    (url, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_endpoints_follow_the_configuration_read_again() {
    let (east, backup, west) = (relay().await, relay().await, relay().await);
    let entries = |list: &[(&str, &Relay)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(key, relay)| {
                (
                    format!("Azure__SignalR__ConnectionString__{key}"),
                    relay.connection_string(),
                )
            })
            .chain([("Azure:SignalR:ServiceScaleTimeoutInSeconds".to_owned(), "3".to_owned())])
            .collect()
    };
    let (app, running) = app_server_with(
        ServiceOptions::from_entries(&entries(&[("east__primary", &east)])),
        Room::default(),
    )
    .await;
    tokio::time::timeout(WAIT, running.connected())
        .await
        .expect("connected");
    // Another app whose primary endpoint is the relay this one will add as secondary.
    let (other, _other_running) = app_server_with(
        ServiceOptions::from_entries(&entries(&[("local", &backup)])),
        Room::default(),
    )
    .await;
    let (on_east, mut east_inbox) = listener(&format!("{app}/room")).await;
    let (on_backup, mut backup_inbox) = listener(&format!("{other}/room?user=bob")).await;
    on_backup.invoke::<()>("Join", ("bobs",)).await.unwrap();
    let exists = |kind: &'static str, name: String| {
        let on_east = &on_east;
        async move { on_east.invoke::<bool>("Exists", (kind, name)).await.unwrap() }
    };
    let bob_id = on_backup.connection_id().expect("connected");
    assert!(!exists("user", "bob".into()).await, "bob's relay is not this app's yet");

    // Read again with a secondary endpoint: weak connections, no clients, but every send.
    // (The other app is at that relay too, so its server list never matches east's: the add
    // waits out the scale timeout, as the Azure SDK's does.)
    running
        .set_endpoints(&ServiceOptions::from_entries(&entries(&[
            ("east__primary", &east),
            ("backup__secondary", &backup),
        ])))
        .await
        .expect("the secondary is added");
    until("the weak connections are up", || relay_count(&backup) == 10).await;
    for _ in 0..5 {
        let (client, _) = listener(&format!("{app}/room")).await;
        client.stop().await;
    }
    assert_eq!(
        backup.client_count("room"),
        1,
        "only the other app's client is on the secondary"
    );
    on_east.invoke::<()>("Say", ("everywhere",)).await.unwrap();
    assert_eq!(next(&mut east_inbox).await, "everywhere");
    assert_eq!(
        next(&mut backup_inbox).await,
        "everywhere",
        "a secondary receives what the app sends"
    );
    // Existence checks ask every endpoint: only the secondary knows bob.
    assert!(exists("user", "bob".into()).await);
    assert!(exists("group", "bobs".into()).await);
    assert!(exists("connection", bob_id.clone()).await);
    assert!(!exists("user", "nobody".into()).await);
    assert!(!exists("group", "nobody".into()).await);
    assert!(!exists("connection", "nobody".into()).await);

    // Read again without east, with west: west is added, then east removed (its client is
    // closed there and negotiates again to west).
    running
        .set_endpoints(&ServiceOptions::from_entries(&entries(&[
            ("west__primary", &west),
            ("backup__secondary", &backup),
        ])))
        .await
        .expect("west added, east removed");
    until("east is left", || {
        east.server_connection_count("room") == 0 && east.client_count("room") == 0
    })
    .await;
    let (on_west, mut west_inbox) = listener(&format!("{app}/room")).await;
    assert!(west.client_count("room") >= 1);
    on_west.invoke::<()>("Say", ("from west",)).await.unwrap();
    assert_eq!(next(&mut west_inbox).await, "from west");
    assert_eq!(next(&mut backup_inbox).await, "from west");

    // No primary left: refused with the SDK's text, nothing changed.
    let refused = running
        .set_endpoints(&ServiceOptions::from_entries(&entries(&[(
            "backup__secondary",
            &backup,
        )])))
        .await
        .unwrap_err();
    assert_eq!(refused.to_string(), "No primary endpoint defined.");
    assert_eq!(west.server_connection_count("room"), 5);
    running.shutdown().await;
}

/// Server connections of hub `room` at a relay: the other app's five and this one's.
fn relay_count(relay: &Relay) -> usize {
    relay.server_connection_count("room")
}
