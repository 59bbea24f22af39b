//! The Rust client against the real server, in-process: negotiate, both protocols, errors,
//! streams both ways, client results, authentication, redirects, reconnect and timeouts.
#![cfg(feature = "client")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::routing::post;
use common::{WAIT, serve};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Map, Value, json};
use switchboard::client::{ClientOptions, ConnectionState, HubConnection};
use switchboard::protocol::Protocol;
use switchboard::transport::auth::sign_hs256;
use switchboard::values::Binary;
use switchboard::{Hub, HubContext, HubError, HubStream, JwtBearer, Methods, Switchboard, Untyped};
use tokio::sync::mpsc;

#[derive(Default)]
struct TestHub {
    cancelled: Arc<AtomicBool>,
}

type Cx = HubContext<TestHub>;

impl Hub for TestHub {
    type Client = Untyped;

    fn methods(m: &mut Methods<Self>) {
        m.method("Echo", |_, _, (s,): (String,)| async move { Ok::<_, HubError>(s) });
        m.method(
            "Add",
            |_, _, (a, b): (i64, i64)| async move { Ok::<_, HubError>(a + b) },
        );
        m.method("Bytes", |_, _, (b,): (Binary,)| async move { Ok::<_, HubError>(b) });
        m.method("Nothing", |_, _, ()| async move { Ok::<_, HubError>(()) });
        m.method("Me", |_, cx: Cx, ()| async move {
            Ok::<_, HubError>(cx.connection_id().to_owned())
        });
        m.method("User", |_, cx: Cx, ()| async move {
            Ok::<_, HubError>(cx.user_id().map(str::to_owned))
        });
        m.method("Fail", |_, _, (text,): (String,)| async move {
            Err::<(), _>(HubError::new(text))
        });
        m.method("Crash", |_, _, ()| async move {
            Err::<(), _>(HubError::exception("InvalidOperationException", "secret"))
        });
        m.method("Sleep", |_, _, ()| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, HubError>(())
        });
        m.method("SendBack", |_, cx: Cx, (text,): (String,)| async move {
            cx.clients().caller().send("Message", (text, 42)).await
        });
        m.method("Join", |_, cx: Cx, (group,): (String,)| async move {
            cx.groups().add(cx.connection_id(), &group).await
        });
        m.method("Leave", |_, cx: Cx, ()| async move {
            cx.abort();
            Ok::<_, HubError>(())
        });
        m.method("AskCaller", |_, cx: Cx, (question,): (String,)| async move {
            cx.clients().caller().invoke::<String, _>("Ask", (question,)).await
        });
        m.stream("Count", |_, _, (n,): (u32,)| async move {
            Ok::<_, HubError>(stream::iter(1..=n))
        });
        m.stream("Forever", |hub: Arc<TestHub>, cx: Cx, ()| async move {
            let cancelled = cx.cancellation();
            let flag = hub.cancelled.clone();
            tokio::spawn(async move {
                cancelled.cancelled().await;
                flag.store(true, Ordering::SeqCst);
            });
            Ok::<_, HubError>(stream::pending::<u32>())
        });
        m.method(
            "Concat",
            |_, _, (prefix, parts): (String, HubStream<String>)| async move {
                let parts: Vec<String> = parts.try_collect().await?;
                Ok::<_, HubError>(format!("{prefix}{}", parts.concat()))
            },
        );
    }

    async fn on_connected(self: Arc<Self>, cx: Cx) -> Result<(), HubError> {
        cx.clients().caller().send("Welcome", ("hello",)).await
    }
}

const SECRET: &[u8] = b"a test secret that is long enough";

struct Server {
    addr: String,
    app: Switchboard,
    cancelled: Arc<AtomicBool>,
}

async fn server_with(configure: impl Fn(&mut switchboard::HubOptions) + Clone + 'static) -> Server {
    let hub = TestHub::default();
    let cancelled = hub.cancelled.clone();
    let secure = configure.clone();
    let app = Switchboard::builder()
        .authenticator(JwtBearer::hs256(SECRET))
        .hub_with("/hub", hub, move |o| {
            o.maximum_parallel_invocations_per_client = 4;
            configure(o);
        })
        .hub_with("/secure", TestHub::default(), move |o| {
            o.require_authorization = true;
            secure(o);
        })
        .build()
        .unwrap();
    let addr = serve(&app).await;
    Server { addr, app, cancelled }
}

async fn server() -> Server {
    server_with(|_| {}).await
}

fn options(protocol: Protocol) -> ClientOptions {
    ClientOptions {
        protocol,
        ..ClientOptions::default()
    }
}

async fn connect(addr: &str, protocol: Protocol) -> HubConnection {
    HubConnection::connect(&format!("http://{addr}/hub"), options(protocol))
        .await
        .expect("connect")
}

fn token(user: &str) -> String {
    let mut claims = Map::new();
    claims.insert("nameid".into(), Value::from(user));
    sign_hs256(SECRET, claims, Duration::from_secs(300)).unwrap()
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future).await.expect("in time")
}

/// Waits until `check` holds, polling.
async fn eventually(mut check: impl FnMut() -> bool) {
    within(async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test]
async fn client_invoke_in_both_protocols() {
    let server = server().await;
    for protocol in Protocol::ALL {
        let connection = connect(&server.addr, protocol).await;
        assert_eq!(connection.state(), ConnectionState::Connected);
        let echoed: String = connection.invoke("Echo", ("héllo ✓",)).await.unwrap();
        assert_eq!(echoed, "héllo ✓");
        let sum: i64 = connection.invoke("add", (40, 2)).await.unwrap();
        assert_eq!(sum, 42);
        let bytes: Binary = connection.invoke("Bytes", (Binary(vec![1, 2, 3]),)).await.unwrap();
        assert_eq!(bytes, Binary(vec![1, 2, 3]));
        let () = connection.invoke("Nothing", ()).await.unwrap();
        let none: Option<String> = connection.invoke("User", ()).await.unwrap();
        assert_eq!(none, None);
        let me: String = connection.invoke("Me", ()).await.unwrap();
        assert_eq!(connection.connection_id(), Some(me));
        // Many at once, answered by id.
        let calls = (0..20).map(|i| {
            let connection = connection.clone();
            async move { connection.invoke::<i64>("Add", (i, 1)).await.unwrap() }
        });
        let sums = futures_util::future::join_all(calls).await;
        assert_eq!(sums, (1..=20).collect::<Vec<i64>>());
        connection.stop().await;
        assert_eq!(connection.state(), ConnectionState::Disconnected);
        assert!(connection.closed().await.is_none());
        let error = connection.invoke::<String>("Echo", ("x",)).await.unwrap_err();
        assert!(error.is_disconnected(), "{error}");
    }
}

#[tokio::test]
async fn client_errors_have_the_server_texts() {
    let server = server().await;
    for protocol in Protocol::ALL {
        let connection = connect(&server.addr, protocol).await;
        let error = connection.invoke::<()>("Fail", ("boom",)).await.unwrap_err();
        assert!(error.is_hub_error());
        assert_eq!(
            error.message(),
            "An unexpected error occurred invoking 'Fail' on the server. HubException: boom"
        );
        assert_eq!(error.to_string(), error.message());
        let error = connection.invoke::<()>("Crash", ()).await.unwrap_err();
        assert_eq!(
            error.message(),
            "An unexpected error occurred invoking 'Crash' on the server."
        );
        let error = connection.invoke::<()>("Nope", ()).await.unwrap_err();
        assert_eq!(
            error.message(),
            "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist."
        );
        let error = connection.invoke::<String>("Echo", (1, 2)).await.unwrap_err();
        assert!(
            error
                .message()
                .starts_with("Failed to invoke 'Echo' due to an error on the server.")
        );
        let error = connection.invoke::<Vec<u8>>("Count", (1,)).await.unwrap_err();
        assert_eq!(
            error.message(),
            "The client attempted to invoke the streaming 'Count' method with a non-streaming invocation."
        );
        // A result that does not decode is the client's own error.
        let error = connection.invoke::<i64>("Echo", ("x",)).await.unwrap_err();
        assert!(error.is_protocol(), "{error:?}");
        // The connection is still fine.
        assert_eq!(connection.invoke::<String>("Echo", ("ok",)).await.unwrap(), "ok");
    }
}

#[tokio::test]
async fn client_send_reaches_handlers_ignoring_case() {
    let server = server().await;
    for protocol in Protocol::ALL {
        let connection = HubConnection::new(&format!("http://{}/hub", server.addr), options(protocol)).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let welcome = tx.clone();
        // Registered before start: the message sent from on_connected is not missed.
        connection.on("welcome", move |(text,): (String,)| {
            let welcome = welcome.clone();
            async move {
                welcome.send(format!("welcome {text}")).unwrap();
                Ok::<_, String>(())
            }
        });
        connection.on("MESSAGE", move |(text, n): (String, i32)| {
            let tx = tx.clone();
            async move {
                tx.send(format!("{text} {n}")).unwrap();
                Ok::<_, String>(())
            }
        });
        connection.start().await.unwrap();
        assert_eq!(within(rx.recv()).await.unwrap(), "welcome hello");
        connection.send("SendBack", ("hi",)).await.unwrap();
        assert_eq!(within(rx.recv()).await.unwrap(), "hi 42");
        // Handlers that take no arguments take any.
        connection.on("message", |()| async { Ok::<_, String>(()) });
        connection.send("SendBack", ("again",)).await.unwrap();
        assert_eq!(connection.invoke::<String>("Echo", ("sync",)).await.unwrap(), "sync");
        assert!(rx.try_recv().is_err(), "the replaced handler is not called");
        connection.stop().await;
    }
}

#[tokio::test]
async fn client_server_streams_and_cancellation() {
    let server = server().await;
    for protocol in Protocol::ALL {
        let connection = connect(&server.addr, protocol).await;
        let items: Vec<u32> = within(connection.stream::<u32>("Count", (5,)).try_collect())
            .await
            .unwrap();
        assert_eq!(items, vec![1, 2, 3, 4, 5]);
        let empty: Vec<u32> = within(connection.stream::<u32>("Count", (0,)).try_collect())
            .await
            .unwrap();
        assert!(empty.is_empty());
        let mut wrong = connection.stream::<String>("Echo", ("x",));
        let error = within(wrong.next()).await.unwrap().unwrap_err();
        assert_eq!(
            error.message(),
            "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation."
        );
        assert!(within(wrong.next()).await.is_none());

        // Dropping a stream before its end cancels the method on the server.
        server.cancelled.store(false, Ordering::SeqCst);
        let mut forever = connection.stream::<u32>("Forever", ());
        assert!(
            tokio::time::timeout(Duration::from_millis(200), forever.next())
                .await
                .is_err()
        );
        assert!(!server.cancelled.load(Ordering::SeqCst));
        drop(forever);
        eventually(|| server.cancelled.load(Ordering::SeqCst)).await;
        assert_eq!(connection.invoke::<String>("Echo", ("after",)).await.unwrap(), "after");
    }
}

#[tokio::test]
async fn client_upload_streams() {
    let server = server().await;
    for protocol in Protocol::ALL {
        let connection = connect(&server.addr, protocol).await;
        let upload = stream::iter(["a", "b", "c"]).then(|part| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            part.to_owned()
        });
        let joined: String = connection.invoke_with_upload("Concat", (">",), upload).await.unwrap();
        assert_eq!(joined, ">abc");
        let joined: String = connection
            .invoke_with_upload("Concat", ("",), stream::empty::<String>())
            .await
            .unwrap();
        assert_eq!(joined, "");
        // Ids are shared between invocations and streams: they keep working afterwards.
        assert_eq!(connection.invoke::<i64>("Add", (1, 1)).await.unwrap(), 2);
    }
}

#[tokio::test]
async fn client_results_answer_the_server() {
    let server = server().await;
    for protocol in Protocol::ALL {
        let connection = connect(&server.addr, protocol).await;
        connection.on("ask", |(question,): (String,)| async move {
            Ok::<_, String>(format!("answer to {question}"))
        });
        let answer: String = connection.invoke("AskCaller", ("q",)).await.unwrap();
        assert_eq!(answer, "answer to q");

        connection.on("Ask", |(_question,): (String,)| async move {
            Err::<String, _>("from callback".to_owned())
        });
        let error = connection.invoke::<String>("AskCaller", ("q",)).await.unwrap_err();
        assert_eq!(
            error.message(),
            "An unexpected error occurred invoking 'AskCaller' on the server. HubException: from callback"
        );

        connection.off("ASK");
        let error = connection.invoke::<String>("AskCaller", ("q",)).await.unwrap_err();
        assert_eq!(
            error.message(),
            "An unexpected error occurred invoking 'AskCaller' on the server. HubException: Client didn't provide a result."
        );

        // Arguments that do not fit the handler answer with an error too.
        connection.on("Ask", |(_n,): (i32,)| async move { Ok::<_, String>(0) });
        let error = connection.invoke::<String>("AskCaller", ("q",)).await.unwrap_err();
        assert!(
            error
                .message()
                .contains("HubException: Failed to bind the arguments of 'Ask'"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn client_results_from_a_handle() {
    let server = server().await;
    let handle = server.app.hub_handle::<TestHub>().unwrap();
    let connection = connect(&server.addr, Protocol::MessagePack).await;
    connection.on("Result", |()| async { Ok::<_, String>(10) });
    let id = connection.connection_id().unwrap();
    let result = handle
        .clients()
        .client(id)
        .invoke::<i32, _>("Result", ())
        .await
        .unwrap();
    assert_eq!(result, 10);
}

#[tokio::test]
async fn existence_checks_self_hosted() {
    let server = server().await;
    let handle = server.app.hub_handle::<TestHub>().unwrap();
    let connection = connect(&server.addr, Protocol::Json).await;
    let id = connection.connection_id().unwrap();
    connection.invoke::<()>("Join", ("fans",)).await.unwrap();
    assert!(handle.connection_exists(&id).await.unwrap());
    assert!(handle.group_exists("fans").await.unwrap());
    assert!(!handle.connection_exists("nobody").await.unwrap());
    assert!(!handle.group_exists("nobody").await.unwrap());
    assert!(!handle.user_exists("nobody").await.unwrap());
    connection.stop().await;
    eventually(|| !handle.is_connected(&id)).await;
    assert!(
        !handle.group_exists("fans").await.unwrap(),
        "a group without members is gone"
    );
}

#[tokio::test]
async fn client_skip_negotiation() {
    let server = server().await;
    for protocol in Protocol::ALL {
        let options = ClientOptions {
            skip_negotiation: true,
            ..options(protocol)
        };
        let connection = HubConnection::connect(&format!("ws://{}/hub", server.addr), options)
            .await
            .unwrap();
        assert_eq!(connection.connection_id(), None);
        assert_eq!(
            connection.invoke::<String>("Echo", ("direct",)).await.unwrap(),
            "direct"
        );
        assert!(!connection.invoke::<String>("Me", ()).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn client_access_tokens() {
    let server = server().await;
    let url = format!("http://{}/secure", server.addr);
    let error = HubConnection::connect(&url, ClientOptions::default())
        .await
        .unwrap_err();
    assert!(error.is_http(), "{error:?}");
    assert_eq!(error.status(), Some(401));
    assert_eq!(
        error.message(),
        "Failed to complete negotiation with the server: Unauthorized: Status code '401'"
    );
    for skip_negotiation in [false, true] {
        let options = ClientOptions {
            access_token: Some(token("alice")),
            skip_negotiation,
            ..ClientOptions::default()
        };
        let connection = HubConnection::connect(&url, options).await.unwrap();
        let user: Option<String> = connection.invoke("User", ()).await.unwrap();
        assert_eq!(user.as_deref(), Some("alice"));
    }
    let options = ClientOptions {
        skip_negotiation: true,
        ..ClientOptions::default()
    };
    let error = HubConnection::connect(&url, options).await.unwrap_err();
    assert!(error.is_http());
    assert_eq!(error.status(), Some(401));
}

#[tokio::test]
async fn client_negotiate_versions_errors_and_handshake_errors() {
    let server = server_with(|o| o.supported_protocols = vec![Protocol::Json]).await;
    // Version 0: the connection id is the transport id.
    let connection = HubConnection::connect(
        &format!("http://{}/hub?negotiateVersion=0", server.addr),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    let me: String = connection.invoke("Me", ()).await.unwrap();
    assert_eq!(connection.connection_id(), Some(me));

    let error = HubConnection::connect(&format!("http://{}/nowhere", server.addr), ClientOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert!(
        error
            .message()
            .ends_with("Either this is not a SignalR endpoint or there is a proxy blocking the connection.")
    );

    let error = HubConnection::connect(&format!("http://{}/hub", server.addr), options(Protocol::MessagePack))
        .await
        .unwrap_err();
    assert!(error.is_protocol(), "{error:?}");
    assert_eq!(error.message(), "The protocol 'messagepack' is not supported.");
    assert_eq!(
        error.to_string(),
        "Server returned handshake error: The protocol 'messagepack' is not supported."
    );

    let error = HubConnection::connect("ftp://example.invalid/hub", ClientOptions::default())
        .await
        .unwrap_err();
    assert!(error.is_config());

    let unreachable = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let error = HubConnection::connect(&format!("http://{unreachable}/hub"), ClientOptions::default())
        .await
        .unwrap_err();
    assert!(error.is_io(), "{error:?}");
}

/// A negotiate endpoint that answers with `body`, in chunks (chunked transfer encoding).
async fn fake_negotiate(body: Value) -> String {
    let router = axum::Router::new().route(
        "/{*path}",
        post(move || {
            let text = body.to_string();
            async move {
                let chunks: Vec<Result<String, std::convert::Infallible>> = text
                    .as_bytes()
                    .chunks(7)
                    .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
                    .collect();
                axum::body::Body::from_stream(stream::iter(chunks))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let _ = switchboard::serve(listener, router).await;
    });
    addr
}

#[tokio::test]
async fn client_follows_negotiate_redirects() {
    let server = server().await;
    let target = format!("http://{}/secure", server.addr);
    let redirect = fake_negotiate(json!({"url": target, "accessToken": token("bob")})).await;
    // Two hops: the first redirect points at the second.
    let first = fake_negotiate(json!({"url": format!("http://{redirect}/second")})).await;
    let connection = HubConnection::connect(&format!("http://{first}/hub"), ClientOptions::default())
        .await
        .unwrap();
    let user: Option<String> = connection.invoke("User", ()).await.unwrap();
    assert_eq!(user.as_deref(), Some("bob"));

    let refused = fake_negotiate(json!({"error": "This connection is not allowed."})).await;
    let error = HubConnection::connect(&format!("http://{refused}/hub"), ClientOptions::default())
        .await
        .unwrap_err();
    assert!(error.is_http());
    assert_eq!(error.message(), "This connection is not allowed.");

    let lonely = fake_negotiate(json!({
        "connectionId": "a", "connectionToken": "b", "negotiateVersion": 1,
        "availableTransports": [{"transport": "LongPolling", "transferFormats": ["Text"]}]
    }))
    .await;
    let error = HubConnection::connect(&format!("http://{lonely}/hub"), ClientOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        error.message(),
        "None of the transports supported by the client are supported by the server."
    );
}

fn fast_reconnect(protocol: Protocol) -> ClientOptions {
    ClientOptions {
        reconnect_delays: Some(vec![Duration::ZERO, Duration::from_millis(50)]),
        ..options(protocol)
    }
}

#[tokio::test]
async fn client_reconnects_with_a_new_connection_id() {
    let server = server().await;
    let handle = server.app.hub_handle::<TestHub>().unwrap();
    for protocol in Protocol::ALL {
        let connection = HubConnection::connect(&format!("http://{}/hub", server.addr), fast_reconnect(protocol))
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        connection.on("Message", move |(text, _): (String, i32)| {
            let tx = tx.clone();
            async move {
                tx.send(text).unwrap();
                Ok::<_, String>(())
            }
        });
        let first = connection.connection_id().unwrap();
        let sleeping = tokio::spawn({
            let connection = connection.clone();
            async move { connection.invoke::<()>("Sleep", ()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(handle.interrupt_transport(&first));
        // What was pending fails; the connection comes back with a new id.
        let error = within(sleeping).await.unwrap().unwrap_err();
        assert!(error.is_disconnected(), "{error:?}");
        assert_eq!(
            error.message(),
            "Invocation canceled due to the underlying connection being closed."
        );
        eventually(|| connection.state() == ConnectionState::Connected).await;
        let second = connection.connection_id().unwrap();
        assert_ne!(first, second);
        assert_eq!(connection.invoke::<String>("Me", ()).await.unwrap(), second);
        // Handlers are kept.
        connection.send("SendBack", ("still here",)).await.unwrap();
        assert_eq!(within(rx.recv()).await.unwrap(), "still here");
        connection.stop().await;
        assert!(connection.closed().await.is_none());
    }
}

#[tokio::test]
async fn client_without_reconnect_closes_when_the_transport_ends() {
    let server = server().await;
    let handle = server.app.hub_handle::<TestHub>().unwrap();
    let options = ClientOptions {
        reconnect_delays: None,
        ..ClientOptions::default()
    };
    let connection = HubConnection::connect(&format!("http://{}/hub", server.addr), options)
        .await
        .unwrap();
    let first = connection.connection_id().unwrap();
    handle.interrupt_transport(&first);
    // A WebSocket closed normally without a Close message ends without an error, as in the
    // TypeScript client.
    assert!(within(connection.closed()).await.is_none());
    assert_eq!(connection.state(), ConnectionState::Disconnected);
    assert_eq!(connection.connection_id(), None);
    // It can be started again.
    connection.start().await.unwrap();
    assert_ne!(connection.connection_id().unwrap(), first);
    assert_eq!(connection.invoke::<String>("Echo", ("again",)).await.unwrap(), "again");
}

struct Refusing;

impl Hub for Refusing {
    type Client = Untyped;

    fn methods(_: &mut Methods<Self>) {}

    async fn on_connected(self: Arc<Self>, _cx: HubContext<Self>) -> Result<(), HubError> {
        Err(HubError::new("go away"))
    }
}

#[tokio::test]
async fn client_close_with_an_error_ends_the_connection() {
    let app = Switchboard::builder().hub("/refusing", Refusing).build().unwrap();
    let addr = serve(&app).await;
    let connection = HubConnection::connect(&format!("http://{addr}/refusing"), fast_reconnect(Protocol::Json))
        .await
        .unwrap();
    let error = within(connection.closed())
        .await
        .expect("closed with the server's error");
    assert!(error.is_disconnected(), "{error:?}");
    assert!(
        error.message().starts_with("Connection closed with an error."),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!("Server returned an error on close: {}", error.message())
    );
    assert_eq!(connection.state(), ConnectionState::Disconnected);
}

#[tokio::test]
async fn client_close_from_the_server_does_not_reconnect() {
    let server = server().await;
    let connection = HubConnection::connect(&format!("http://{}/hub", server.addr), fast_reconnect(Protocol::Json))
        .await
        .unwrap();
    let _ = connection.invoke::<()>("Leave", ()).await;
    assert!(within(connection.closed()).await.is_none());
    assert_eq!(connection.state(), ConnectionState::Disconnected);
}

#[tokio::test]
async fn client_reconnect_gives_up_after_its_delays() {
    let app = Switchboard::builder().hub("/hub", TestHub::default()).build().unwrap();
    let handle = app.hub_handle::<TestHub>().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(switchboard::serve(listener, app.router::<()>()).into_future());
    let connection = HubConnection::connect(&format!("http://{addr}/hub"), fast_reconnect(Protocol::Json))
        .await
        .unwrap();
    // The server stops listening, then the connection breaks: every attempt fails.
    serving.abort();
    let _ = serving.await;
    handle.interrupt_transport(&connection.connection_id().unwrap());
    let error = within(connection.closed())
        .await
        .expect("closed with the last attempt's error");
    assert!(error.is_io(), "{error:?}");
    assert_eq!(connection.state(), ConnectionState::Disconnected);
}

#[tokio::test]
async fn client_stop_ends_reconnect_attempts() {
    let server = server().await;
    let handle = server.app.hub_handle::<TestHub>().unwrap();
    let options = ClientOptions {
        reconnect_delays: Some(vec![Duration::from_secs(60)]),
        ..ClientOptions::default()
    };
    let connection = HubConnection::connect(&format!("http://{}/hub", server.addr), options)
        .await
        .unwrap();
    handle.interrupt_transport(&connection.connection_id().unwrap());
    eventually(|| connection.state() == ConnectionState::Reconnecting).await;
    let error = connection.invoke::<String>("Echo", ("x",)).await.unwrap_err();
    assert_eq!(
        error.message(),
        "Cannot send data if the connection is not in the 'Connected' State."
    );
    within(connection.stop()).await;
    assert_eq!(connection.state(), ConnectionState::Disconnected);
    assert!(connection.closed().await.is_none());
}

#[tokio::test]
async fn client_server_timeout() {
    let server = server_with(|o| {
        o.keep_alive_interval = Duration::from_secs(60);
        o.client_timeout_interval = Duration::from_secs(120);
    })
    .await;
    let options = ClientOptions {
        server_timeout: Duration::from_millis(300),
        reconnect_delays: None,
        ..ClientOptions::default()
    };
    let connection = HubConnection::connect(&format!("http://{}/hub", server.addr), options)
        .await
        .unwrap();
    let error = within(connection.closed()).await.expect("timed out");
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(
        error.message(),
        "Server timeout elapsed without receiving a message from the server."
    );
}

#[tokio::test]
async fn client_keep_alive_holds_an_idle_connection() {
    // The server drops clients silent for 400 ms; the client pings every 100 ms.
    let server = server_with(|o| {
        o.client_timeout_interval = Duration::from_millis(400);
        o.keep_alive_interval = Duration::from_millis(100);
    })
    .await;
    let options = ClientOptions {
        keep_alive_interval: Duration::from_millis(100),
        reconnect_delays: None,
        ..ClientOptions::default()
    };
    let connection = HubConnection::connect(&format!("http://{}/hub", server.addr), options)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(connection.state(), ConnectionState::Connected);
    assert_eq!(connection.invoke::<String>("Echo", ("alive",)).await.unwrap(), "alive");
}

type FakeSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket server that runs `script` for each connection (numbered from 0).
async fn fake_hub<F, Fut>(script: F) -> String
where
    F: Fn(usize, FakeSocket) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut index = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(socket) = tokio_tungstenite::accept_async(tcp).await {
                tokio::spawn(script(index, socket));
                index += 1;
            }
        }
    });
    addr
}

async fn fake_send(socket: &mut FakeSocket, text: &str) {
    use futures_util::SinkExt;
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(text))
        .await
        .unwrap();
}

/// Reads the handshake request (and whatever else comes).
async fn fake_read(socket: &mut FakeSocket) -> String {
    match socket.next().await {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => text.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

#[tokio::test]
async fn client_records_across_frames_and_close_with_allow_reconnect() {
    let (seen, mut sent) = mpsc::unbounded_channel();
    let addr = fake_hub(move |index, mut socket| {
        let seen = seen.clone();
        async move {
            assert_eq!(
                fake_read(&mut socket).await,
                "{\"protocol\":\"json\",\"version\":1}\u{1e}"
            );
            if index == 0 {
                // The handshake response and the first records share a frame; a record spans two.
                fake_send(
                    &mut socket,
                    "{}\u{1e}{\"type\":1,\"target\":\"Hi\",\"arguments\":[\"one\"]}\u{1e}{\"type\":1,\"tar",
                )
                .await;
                fake_send(&mut socket, "get\":\"hi\",\"arguments\":[\"two\"]}\u{1e}").await;
                fake_send(
                    &mut socket,
                    "{\"type\":7,\"error\":\"bye\",\"allowReconnect\":true}\u{1e}",
                )
                .await;
                let _ = socket.close(None).await;
            } else {
                fake_send(&mut socket, "{}\u{1e}").await;
                fake_send(
                    &mut socket,
                    "{\"type\":1,\"target\":\"Hi\",\"arguments\":[\"three\"]}\u{1e}",
                )
                .await;
                // Report what the client sends until it leaves.
                while let Some(Ok(message)) = socket.next().await {
                    let _ = seen.send(message);
                }
            }
        }
    })
    .await;
    let connection = HubConnection::new(
        &format!("http://{addr}/"),
        ClientOptions {
            skip_negotiation: true,
            ..fast_reconnect(Protocol::Json)
        },
    )
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    connection.on("Hi", move |(text,): (String,)| {
        let tx = tx.clone();
        async move {
            tx.send(text).unwrap();
            Ok::<_, String>(())
        }
    });
    connection.start().await.unwrap();
    for expected in ["one", "two", "three"] {
        assert_eq!(within(rx.recv()).await.unwrap(), expected);
    }
    assert_eq!(connection.state(), ConnectionState::Connected);
    connection.stop().await;
    // A Ping right after the handshake; on stop, a Close message, then a normal close.
    use tokio_tungstenite::tungstenite::Message;
    assert_eq!(sent.recv().await.unwrap(), Message::text("{\"type\":6}\u{1e}"));
    assert_eq!(sent.recv().await.unwrap(), Message::text("{\"type\":7}\u{1e}"));
    match sent.recv().await.unwrap() {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn client_handshake_timeout() {
    let addr = fake_hub(|_, mut socket| async move {
        let _ = fake_read(&mut socket).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let options = ClientOptions {
        skip_negotiation: true,
        handshake_timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    let error = within(HubConnection::connect(&format!("ws://{addr}/hub"), options))
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
}

#[test]
fn client_futures_and_streams_are_send() {
    fn send<T: Send>(_: &T) {}
    fn unpin<T: Unpin>(_: &T) {}
    let connection = HubConnection::new("http://127.0.0.1:1/hub", ClientOptions::default()).unwrap();
    send(&connection.start());
    send(&connection.invoke::<String>("Echo", ("x",)));
    send(&connection.send("Echo", ("x",)));
    send(&connection.invoke_with_upload::<String, String>("Concat", ("",), stream::empty()));
    send(&connection.stop());
    send(&connection.closed());
    let items = connection.stream::<String>("Count", (1,));
    send(&items);
    unpin(&items);
    fn shared<T: Send + Sync + Clone>(_: &T) {}
    shared(&connection);
}
