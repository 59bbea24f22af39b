//! End-to-end tests of the typed Rust clients that `#[switchboard::hub]` generates
//! (`TestHubClient`, `ChatHubClient`, `AuthorizedHubClient`), against the
//! conformance server served in-process: every hub method, over JSON and over MessagePack.
//!
//! Absence of a message is proven with a sentinel: messages to one connection arrive in
//! order, so once a sentinel sent after the call under test has reached the handler, nothing
//! that call sent to that connection is still on its way. This needs the handler to see the
//! messages in arrival order too: the client runs each handler call on a task of its own, and
//! only tokio's current-thread runtime (`#[tokio::test]`) runs those tasks in the order they
//! were spawned (on a multi-thread runtime a typed handler can see messages out of order).
//! Every wait is bounded by [`WAIT`].

use std::future::Future;
use std::time::Duration;

use conformance_server::chat_hub::{ChatClient, ChatHubClient};
use conformance_server::test_hub::{AuthorizedHubClient, TestClient, TestHubClient};
use conformance_server::{AppState, build};
use futures_util::{FutureExt, StreamExt, stream};
use serde_json::{Value, json};
use switchboard::client::{ClientOptions, ConnectionState};
use switchboard::protocol::Protocol;
use switchboard::values::Dynamic;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The longest any single step may take.
const WAIT: Duration = Duration::from_secs(10);

/// The error text of `ThrowException("An error occurred.")`, as the reference server words it.
const THROW_EXCEPTION_ERROR: &str = "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: An error occurred.";

/// The error text of `StreamThrowException("An error occurred.")`, as the reference server words it.
const STREAM_THROW_EXCEPTION_ERROR: &str = "An unexpected error occurred invoking 'StreamThrowException' on the server. InvalidOperationException: An error occurred.";

/// Runs each named `async fn(Protocol)` as two tests, `name::json` and `name::messagepack`.
macro_rules! for_both_protocols {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[tokio::test]
                async fn json() {
                    super::$test(super::Protocol::Json).await
                }

                #[tokio::test]
                async fn messagepack() {
                    super::$test(super::Protocol::MessagePack).await
                }
            }
        )*
    };
}

for_both_protocols!(
    echo,
    get_caller_connection_id,
    get_num_redirects,
    throw_exception,
    invoke_with_string,
    send_custom_object,
    server_stream,
    infinite_stream_cancelled,
    streaming_concat,
    empty_stream,
    stream_throw_exception,
    get_active_transport_name,
    echo_complex_object,
    send_complex_object,
    get_content_type_header,
    get_header,
    get_cookie,
    get_user_identifier,
    client_result,
    client_result_without_handler,
    authorized_hub,
    chat_broadcast,
    chat_groups,
    chat_send_to_groups,
    chat_users,
    chat_connections,
    chat_benchmarks,
    chat_disconnect_and_stats,
);

// ---------------------------------------------------------------------------------------
// The server and small helpers
// ---------------------------------------------------------------------------------------

/// Awaits `future`, failing the test after [`WAIT`].
async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// The conformance app, served in-process on a free port.
struct Server {
    port: u16,
}

impl Server {
    async fn start() -> Self {
        let state = AppState::new();
        let (router, _running) = build(&state).expect("the conformance app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        tokio::spawn(async move { switchboard::serve(listener, router).await });
        Self { port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET path`: the status and the body.
    async fn get(&self, path: &str) -> (u16, String) {
        within(&format!("GET {path}"), async {
            let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .expect("connect");
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                self.port
            );
            socket.write_all(request.as_bytes()).await.expect("write the request");
            let mut response = Vec::new();
            socket.read_to_end(&mut response).await.expect("read the response");
            let response = String::from_utf8(response).expect("a text response");
            let (head, body) = response.split_once("\r\n\r\n").expect("a complete response");
            assert!(
                !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
                "a chunked response: {head}"
            );
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("a status line");
            (status, body.to_owned())
        })
        .await
    }

    /// A bearer token for `user`, from `GET /generateJwtToken/{user}`.
    async fn token(&self, user: &str) -> String {
        let (status, token) = self.get(&format!("/generateJwtToken/{user}")).await;
        assert_eq!(status, 200, "{token}");
        token
    }

    /// Polls `GET /stats` until it reports `connected` and `disconnected` (the hooks run on
    /// the server's side of the connection, a moment after the client saw it open or close).
    async fn wait_for_stats(&self, connected: u64, disconnected: u64) {
        let expected =
            json!({ "connected": connected, "disconnected": disconnected, "migratedIn": 0, "migratedOut": 0 });
        let mut last = Value::Null;
        let reached = tokio::time::timeout(WAIT, async {
            loop {
                let (status, body) = self.get("/stats").await;
                assert_eq!(status, 200, "{body}");
                last = serde_json::from_str(&body).expect("stats are JSON");
                if last == expected {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(reached.is_ok(), "/stats stayed at {last}, expected {expected}");
    }
}

fn options(protocol: Protocol) -> ClientOptions {
    ClientOptions {
        protocol,
        // A connection the server ends stays ended: no reconnect behind the test's back.
        reconnect_delays: None,
        ..ClientOptions::default()
    }
}

/// A `Dynamic` holding `value` (JSON text; a MessagePack client converts it when sending).
fn dynamic(value: &Value) -> Dynamic {
    Dynamic::Json(serde_json::value::RawValue::from_string(value.to_string()).expect("valid JSON"))
}

// ---------------------------------------------------------------------------------------
// TestHub
// ---------------------------------------------------------------------------------------

/// What a [`TestHandler`] saw.
#[derive(Debug, PartialEq)]
enum TestEvent {
    Message(String),
    CustomObject(Value),
    StreamCanceled,
}

/// Answers TestHub's calls to its clients, recording them.
struct TestHandler {
    events: mpsc::UnboundedSender<TestEvent>,
    result: i64,
}

impl TestClient for TestHandler {
    async fn message(&self, text: String) {
        let _ = self.events.send(TestEvent::Message(text));
    }

    async fn custom_object(&self, object: Dynamic) {
        let _ = self.events.send(TestEvent::CustomObject(object.to_json()));
    }

    async fn stream_canceled(&self) {
        let _ = self.events.send(TestEvent::StreamCanceled);
    }

    async fn result(&self) -> i64 {
        self.result
    }
}

/// A TestHub client with a recording handler.
struct TestPeer {
    client: TestHubClient,
    events: mpsc::UnboundedReceiver<TestEvent>,
}

impl TestPeer {
    async fn connect(server: &Server, protocol: Protocol) -> Self {
        Self::connect_with(server, options(protocol), 0).await
    }

    async fn connect_with(server: &Server, options: ClientOptions, result: i64) -> Self {
        let (sender, events) = mpsc::unbounded_channel();
        let handler = TestHandler { events: sender, result };
        let client = within(
            "connect to /testhub",
            TestHubClient::connect_with_handler(&server.url("/testhub"), options, handler),
        )
        .await
        .expect("connect to /testhub");
        Self { client, events }
    }

    async fn next(&mut self) -> TestEvent {
        within("a call to the TestClient handler", self.events.recv())
            .await
            .expect("the handler is alive")
    }

    fn connection_id(&self) -> String {
        self.client
            .connection()
            .connection_id()
            .expect("a negotiated connection has an id")
    }
}

async fn test_client(server: &Server, protocol: Protocol) -> TestHubClient {
    within(
        "connect to /testhub",
        TestHubClient::connect(&server.url("/testhub"), options(protocol)),
    )
    .await
    .expect("connect to /testhub")
}

async fn echo(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    for text in ["", "hello", "héllo wörld ✓ 日本語 🎉 \u{1F600}\u{0000}\"\\"] {
        let echoed = within("Echo", client.echo(text.to_owned())).await.expect("Echo");
        assert_eq!(echoed, text);
    }
    assert_eq!(client.connection().state(), ConnectionState::Connected);
}

async fn get_caller_connection_id(protocol: Protocol) {
    let server = Server::start().await;
    let first = test_client(&server, protocol).await;
    let second = test_client(&server, protocol).await;
    let first_id = within("GetCallerConnectionId", first.get_caller_connection_id())
        .await
        .expect("GetCallerConnectionId");
    let second_id = within("GetCallerConnectionId", second.get_caller_connection_id())
        .await
        .expect("GetCallerConnectionId");
    assert_eq!(Some(first_id.clone()), first.connection().connection_id());
    assert_eq!(Some(second_id.clone()), second.connection().connection_id());
    assert_ne!(first_id, second_id);
}

async fn get_num_redirects(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    let redirects = within("GetNumRedirects", client.get_num_redirects())
        .await
        .expect("GetNumRedirects");
    assert_eq!(redirects, 0);
}

async fn throw_exception(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    let error = within("ThrowException", client.throw_exception("An error occurred.".into()))
        .await
        .expect_err("ThrowException fails");
    assert!(error.is_hub_error(), "{error:?}");
    assert_eq!(error.message(), THROW_EXCEPTION_ERROR);
    assert_eq!(error.to_string(), THROW_EXCEPTION_ERROR);
    // The connection goes on.
    assert_eq!(
        within("Echo", client.echo("still here".into())).await.expect("Echo"),
        "still here"
    );
}

async fn invoke_with_string(protocol: Protocol) {
    let server = Server::start().await;
    let mut peer = TestPeer::connect(&server, protocol).await;
    for text in ["first", "sécond ✓"] {
        within("InvokeWithString", peer.client.invoke_with_string(text.to_owned()))
            .await
            .expect("InvokeWithString");
    }
    assert_eq!(peer.next().await, TestEvent::Message("first".into()));
    assert_eq!(peer.next().await, TestEvent::Message("sécond ✓".into()));
}

async fn send_custom_object(protocol: Protocol) {
    let server = Server::start().await;
    let mut peer = TestPeer::connect(&server, protocol).await;
    let object =
        json!({ "Name": "Switchboard", "Year": 2024, "Tags": ["a", "b"], "Nested": { "On": true, "Off": null } });
    within("SendCustomObject", peer.client.send_custom_object(dynamic(&object)))
        .await
        .expect("SendCustomObject");
    assert_eq!(peer.next().await, TestEvent::CustomObject(object));
}

async fn server_stream(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    let items: Vec<String> = within("Stream", client.stream().collect::<Vec<_>>())
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("Stream items");
    assert_eq!(items, ["a", "b", "c"]);
}

async fn infinite_stream_cancelled(protocol: Protocol) {
    let server = Server::start().await;
    let mut peer = TestPeer::connect(&server, protocol).await;
    let mut numbers = peer.client.infinite_stream();
    // The first poll sends the StreamInvocation; nothing comes.
    assert!(numbers.next().now_or_never().is_none(), "InfiniteStream yielded");
    // The server handles this connection's messages in order: once Echo answers, the stream
    // has started.
    let echoed = within("Echo", peer.client.echo("started".into())).await.expect("Echo");
    assert_eq!(echoed, "started");
    // Dropping the stream cancels it; the server tells the handler.
    drop(numbers);
    assert_eq!(peer.next().await, TestEvent::StreamCanceled);
    assert_eq!(
        within("Echo", peer.client.echo("after".into())).await.expect("Echo"),
        "after"
    );
}

async fn streaming_concat(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    let parts = stream::iter(["a", "b", "c"].map(String::from));
    let joined = within("StreamingConcat", client.streaming_concat(parts))
        .await
        .expect("StreamingConcat");
    assert_eq!(joined, "abc");

    // Items that come one at a time, with the runtime yielding in between.
    let slow = stream::unfold(0, |n| async move {
        tokio::task::yield_now().await;
        (n < 5).then(|| (format!("{n}✓"), n + 1))
    });
    let joined = within("StreamingConcat", client.streaming_concat(slow))
        .await
        .expect("StreamingConcat");
    assert_eq!(joined, "0✓1✓2✓3✓4✓");

    let joined = within("StreamingConcat", client.streaming_concat(stream::empty()))
        .await
        .expect("StreamingConcat");
    assert_eq!(joined, "");
}

async fn empty_stream(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    let items = within("EmptyStream", client.empty_stream().collect::<Vec<_>>()).await;
    assert!(items.is_empty(), "{items:?}");
}

async fn stream_throw_exception(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    let items = within(
        "StreamThrowException",
        client
            .stream_throw_exception("An error occurred.".into())
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(items.len(), 1, "{items:?}");
    let error = items.into_iter().next().and_then(Result::err).expect("an error item");
    assert!(error.is_hub_error(), "{error:?}");
    assert_eq!(error.message(), STREAM_THROW_EXCEPTION_ERROR);
}

async fn get_active_transport_name(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    let name = within("GetActiveTransportName", client.get_active_transport_name())
        .await
        .expect("GetActiveTransportName");
    assert_eq!(name, "WebSockets");
}

async fn echo_complex_object(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    let object = json!({
        "String": "hello wörld",
        "IntArray": [1, 2, 3],
        "Big": 638_000_000_000_000_000_i64,
        "Negative": -7,
        "Float": 1.5,
        "Nested": { "Flag": true, "Nothing": null, "Empty": [] }
    });
    let echoed = within("EchoComplexObject", client.echo_complex_object(dynamic(&object)))
        .await
        .expect("EchoComplexObject");
    assert_eq!(echoed.to_json(), object);
    match protocol {
        Protocol::Json => assert!(matches!(echoed, Dynamic::Json(_)), "{echoed:?}"),
        Protocol::MessagePack => {
            assert!(matches!(echoed, Dynamic::MessagePack(_)), "{echoed:?}");
            // MessagePack-only values (bin, the timestamp extension) come back as they went.
            let value = rmpv::Value::Map(vec![
                ("ByteArray".into(), rmpv::Value::Binary(vec![1, 2, 3])),
                ("DateTime".into(), rmpv::Value::Ext(-1, vec![0x38, 0x6d, 0x43, 0x80])),
            ]);
            let echoed = within(
                "EchoComplexObject",
                client.echo_complex_object(Dynamic::MessagePack(value.clone())),
            )
            .await
            .expect("EchoComplexObject");
            assert_eq!(echoed, Dynamic::MessagePack(value));
        }
    }
}

async fn send_complex_object(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    let expected = json!({
        "String": "hello world",
        "IntArray": [1, 2, 3],
        "ByteArray": "AQID",
        "Guid": "00010203-0405-0607-0706-050403020100",
        "DateTime": "2000-01-01T00:00:00Z",
    });
    // The typed result decodes (with MessagePack, only from `bin` and the timestamp
    // extension); its fields are private, so they are read through its serialization.
    let object = within("SendComplexObject", client.send_complex_object())
        .await
        .expect("SendComplexObject");
    assert_eq!(serde_json::to_value(&object).expect("serializable"), expected);

    // The wire form, through the untyped connection.
    let raw: Dynamic = within("SendComplexObject", client.connection().invoke("SendComplexObject", ()))
        .await
        .expect("SendComplexObject");
    assert_eq!(raw.to_json(), expected);
    if let Dynamic::MessagePack(rmpv::Value::Map(fields)) = &raw {
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key.as_str() == Some(name))
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| panic!("no field {name} in {raw:?}"))
        };
        assert_eq!(field("ByteArray"), rmpv::Value::Binary(vec![1, 2, 3]));
        assert_eq!(field("DateTime"), rmpv::Value::Ext(-1, vec![0x38, 0x6d, 0x43, 0x80]));
        assert_eq!(
            field("IntArray"),
            rmpv::Value::Array(vec![1.into(), 2.into(), 3.into()])
        );
    } else {
        assert_eq!(protocol, Protocol::Json, "{raw:?}");
    }
}

async fn get_content_type_header(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    // The connection's request is the WebSocket upgrade, which has no body.
    let content_type = within("GetContentTypeHeader", client.get_content_type_header())
        .await
        .expect("GetContentTypeHeader");
    assert_eq!(content_type, None);
}

async fn get_header(protocol: Protocol) {
    let server = Server::start().await;
    let mut options = options(protocol);
    options.headers = vec![("X-Switchboard-Test".into(), "typed client".into())];
    let client = within(
        "connect to /testhub",
        TestHubClient::connect(&server.url("/testhub"), options),
    )
    .await
    .expect("connect to /testhub");
    let header = within("GetHeader", client.get_header("x-switchboard-test".into()))
        .await
        .expect("GetHeader");
    assert_eq!(header.as_deref(), Some("typed client"));
    let user_agent = within("GetHeader", client.get_header("User-Agent".into()))
        .await
        .expect("GetHeader");
    assert!(
        user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("switchboard-client/")),
        "{user_agent:?}"
    );
    let absent = within("GetHeader", client.get_header("X-Absent".into()))
        .await
        .expect("GetHeader");
    assert_eq!(absent, None);
}

async fn get_cookie(protocol: Protocol) {
    let server = Server::start().await;
    // The client keeps no cookie jar: cookies go as a header, as a browser would send the
    // ones negotiate set.
    let mut options = options(protocol);
    options.headers = vec![("Cookie".into(), "testCookie=testValue; testCookie2=testValue2".into())];
    let client = within(
        "connect to /testhub",
        TestHubClient::connect(&server.url("/testhub"), options),
    )
    .await
    .expect("connect to /testhub");
    for (name, value) in [
        ("testCookie", Some("testValue")),
        ("testCookie2", Some("testValue2")),
        ("expiredCookie", None),
    ] {
        let cookie = within("GetCookie", client.get_cookie(name.into()))
            .await
            .expect("GetCookie");
        assert_eq!(cookie.as_deref(), value, "cookie {name}");
    }
}

async fn get_user_identifier(protocol: Protocol) {
    let server = Server::start().await;
    let anonymous = test_client(&server, protocol).await;
    let user = within("GetUserIdentifier", anonymous.get_user_identifier())
        .await
        .expect("GetUserIdentifier");
    assert_eq!(user, None);

    let mut options = options(protocol);
    options.access_token = Some(server.token("alice").await);
    let signed_in = within(
        "connect to /testhub",
        TestHubClient::connect(&server.url("/testhub"), options),
    )
    .await
    .expect("connect to /testhub with a token");
    let user = within("GetUserIdentifier", signed_in.get_user_identifier())
        .await
        .expect("GetUserIdentifier");
    assert_eq!(user.as_deref(), Some("alice"));
}

async fn client_result(protocol: Protocol) {
    let server = Server::start().await;
    let first = TestPeer::connect_with(&server, options(protocol), 42).await;
    let second = TestPeer::connect_with(&server, options(protocol), -7).await;
    for (peer, expected) in [(&first, "42"), (&second, "-7"), (&first, "42")] {
        let (status, body) = server.get(&format!("/clientresult/{}", peer.connection_id())).await;
        assert_eq!((status, body.as_str()), (200, expected));
    }
    // The connection serves its own calls meanwhile.
    assert_eq!(within("Echo", first.client.echo("x".into())).await.expect("Echo"), "x");
}

async fn client_result_without_handler(protocol: Protocol) {
    let server = Server::start().await;
    let client = test_client(&server, protocol).await;
    let id = client.connection().connection_id().expect("a connection id");
    let (status, body) = server.get(&format!("/clientresult/{id}")).await;
    assert_eq!((status, body.as_str()), (200, "Client didn't provide a result."));
}

async fn authorized_hub(protocol: Protocol) {
    let server = Server::start().await;
    let url = server.url("/authorizedhub");
    let refused = within(
        "connect to /authorizedhub",
        AuthorizedHubClient::connect(&url, options(protocol)),
    )
    .await
    .expect_err("refused without a token");
    assert!(refused.is_http(), "{refused:?}");
    assert_eq!(refused.status(), Some(401), "{refused:?}");

    let mut with_token = options(protocol);
    with_token.access_token = Some(server.token("bob").await);
    let client = within(
        "connect to /authorizedhub",
        AuthorizedHubClient::connect(&url, with_token),
    )
    .await
    .expect("connect to /authorizedhub with a token");
    let echoed = within("Echo", client.echo("authorized ✓".into())).await.expect("Echo");
    assert_eq!(echoed, "authorized ✓");

    // A token that does not verify is refused too.
    let mut forged = options(protocol);
    forged.access_token = Some("e30.e30.c2lnbmF0dXJl".into());
    let refused = within("connect to /authorizedhub", AuthorizedHubClient::connect(&url, forged))
        .await
        .expect_err("refused with a bad token");
    assert_eq!(refused.status(), Some(401), "{refused:?}");
}

// ---------------------------------------------------------------------------------------
// ChatHub
// ---------------------------------------------------------------------------------------

/// What a [`ChatHandler`] saw.
#[derive(Debug, Clone, PartialEq)]
enum ChatEvent {
    Send(String, String),
    Group(String, String),
    User(String),
    Direct(String),
    Measure(Value, Value),
}

/// Answers ChatHub's calls to its clients, recording them.
struct ChatHandler(mpsc::UnboundedSender<ChatEvent>);

impl ChatClient for ChatHandler {
    async fn send(&self, name: String, message: String) {
        let _ = self.0.send(ChatEvent::Send(name, message));
    }

    async fn group_message(&self, group: String, message: String) {
        let _ = self.0.send(ChatEvent::Group(group, message));
    }

    async fn user_message(&self, message: String) {
        let _ = self.0.send(ChatEvent::User(message));
    }

    async fn direct(&self, message: String) {
        let _ = self.0.send(ChatEvent::Direct(message));
    }

    async fn measure(&self, ticks: Dynamic, payload: Dynamic) {
        let _ = self.0.send(ChatEvent::Measure(ticks.to_json(), payload.to_json()));
    }
}

/// A ChatHub client with a recording handler.
struct ChatPeer {
    name: &'static str,
    client: ChatHubClient,
    id: String,
    events: mpsc::UnboundedReceiver<ChatEvent>,
    sentinels: u32,
}

impl ChatPeer {
    async fn connect(server: &Server, protocol: Protocol, name: &'static str) -> Self {
        Self::connect_to(&server.url("/chathub"), options(protocol), name).await
    }

    /// A peer whose user id is `user` (the `user` query parameter).
    async fn connect_as(server: &Server, protocol: Protocol, name: &'static str, user: &str) -> Self {
        let url = server.url(&format!("/chathub?user={user}"));
        Self::connect_to(&url, options(protocol), name).await
    }

    async fn connect_to(url: &str, options: ClientOptions, name: &'static str) -> Self {
        let (sender, events) = mpsc::unbounded_channel();
        let client = within(
            &format!("{name} connects to {url}"),
            ChatHubClient::connect_with_handler(url, options, ChatHandler(sender)),
        )
        .await
        .unwrap_or_else(|e| panic!("{name} connects to {url}: {e:?}"));
        let id = client.connection().connection_id().expect("a connection id");
        Self {
            name,
            client,
            id,
            events,
            sentinels: 0,
        }
    }

    /// The next call to the handler.
    async fn next(&mut self) -> ChatEvent {
        within(&format!("a message to {}", self.name), self.events.recv())
            .await
            .expect("the handler is alive")
    }

    async fn expect(&mut self, expected: ChatEvent) {
        let got = self.next().await;
        assert_eq!(got, expected, "the next message to {}", self.name);
    }

    /// Proves that nothing else was sent to this peer: a sentinel it sends itself now must
    /// be the next message it gets.
    async fn expect_nothing(&mut self) {
        self.sentinels += 1;
        let sentinel = format!("sentinel {} of {}", self.sentinels, self.name);
        within(
            "SendToConnection (sentinel)",
            self.client.send_to_connection(self.id.clone(), sentinel.clone()),
        )
        .await
        .expect("SendToConnection (sentinel)");
        let got = self.next().await;
        assert_eq!(
            got,
            ChatEvent::Direct(sentinel),
            "{} got an unexpected message",
            self.name
        );
    }
}

/// Awaits a typed client call, failing the test on an error or after [`WAIT`].
async fn call<T>(what: &str, future: impl Future<Output = Result<T, switchboard::client::ClientError>>) -> T {
    within(what, future).await.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

async fn chat_broadcast(protocol: Protocol) {
    let server = Server::start().await;
    let mut a = ChatPeer::connect(&server, protocol, "a").await;
    let mut b = ChatPeer::connect(&server, protocol, "b").await;
    let mut c = ChatPeer::connect(&server, protocol, "c").await;

    call("Broadcast", a.client.broadcast("alice".into(), "hello ✓".into())).await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect(ChatEvent::Send("alice".into(), "hello ✓".into())).await;
        peer.expect_nothing().await;
    }

    call("BroadcastOthers", b.client.broadcast_others("bob".into(), "hi".into())).await;
    for peer in [&mut a, &mut c] {
        peer.expect(ChatEvent::Send("bob".into(), "hi".into())).await;
    }
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect_nothing().await;
    }
}

async fn chat_groups(protocol: Protocol) {
    let server = Server::start().await;
    let mut a = ChatPeer::connect(&server, protocol, "a").await;
    let mut b = ChatPeer::connect(&server, protocol, "b").await;
    let mut c = ChatPeer::connect(&server, protocol, "c").await;
    call("JoinGroup", a.client.join_group("g1".into())).await;
    call("JoinGroup", b.client.join_group("g1".into())).await;

    // SendToGroup: the members, whoever calls.
    call("SendToGroup", c.client.send_to_group("g1".into(), "m1".into())).await;
    a.expect(ChatEvent::Group("g1".into(), "m1".into())).await;
    b.expect(ChatEvent::Group("g1".into(), "m1".into())).await;
    c.expect_nothing().await;

    // SendToOthersInGroup: the members but the caller.
    call(
        "SendToOthersInGroup",
        a.client.send_to_others_in_group("g1".into(), "m2".into()),
    )
    .await;
    b.expect(ChatEvent::Group("g1".into(), "m2".into())).await;
    a.expect_nothing().await;
    c.expect_nothing().await;

    // SendToGroupExcept: the members but the excluded connection.
    call(
        "SendToGroupExcept",
        c.client.send_to_group_except("g1".into(), b.id.clone(), "m3".into()),
    )
    .await;
    a.expect(ChatEvent::Group("g1".into(), "m3".into())).await;
    b.expect_nothing().await;
    c.expect_nothing().await;

    // LeaveGroup: b is out.
    call("LeaveGroup", b.client.leave_group("g1".into())).await;
    call("SendToGroup", c.client.send_to_group("g1".into(), "m4".into())).await;
    a.expect(ChatEvent::Group("g1".into(), "m4".into())).await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect_nothing().await;
    }

    // Leaving a group one is not in, and sending to an empty group, are fine.
    call("LeaveGroup", c.client.leave_group("g1".into())).await;
    call("SendToGroup", c.client.send_to_group("nobody".into(), "m5".into())).await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect_nothing().await;
    }
}

async fn chat_send_to_groups(protocol: Protocol) {
    let server = Server::start().await;
    let mut a = ChatPeer::connect(&server, protocol, "a").await;
    let mut b = ChatPeer::connect(&server, protocol, "b").await;
    let mut c = ChatPeer::connect(&server, protocol, "c").await;
    let mut d = ChatPeer::connect(&server, protocol, "d").await;
    call("JoinGroup", a.client.join_group("g1".into())).await;
    call("JoinGroup", a.client.join_group("g2".into())).await;
    call("JoinGroup", b.client.join_group("g2".into())).await;
    call("JoinGroup", c.client.join_group("g3".into())).await;

    // Members of any listed group get it once, even a member of several.
    call(
        "SendToGroups",
        d.client.send_to_groups(vec!["g1".into(), "g2".into()], "many".into()),
    )
    .await;
    a.expect(ChatEvent::Group("*".into(), "many".into())).await;
    b.expect(ChatEvent::Group("*".into(), "many".into())).await;
    for peer in [&mut a, &mut b, &mut c, &mut d] {
        peer.expect_nothing().await;
    }

    call("SendToGroups", d.client.send_to_groups(Vec::new(), "none".into())).await;
    for peer in [&mut a, &mut b, &mut c, &mut d] {
        peer.expect_nothing().await;
    }
}

async fn chat_users(protocol: Protocol) {
    let server = Server::start().await;
    // alice has two connections; bob one; carol's id comes from her token; d has none.
    let mut alice1 = ChatPeer::connect_as(&server, protocol, "alice1", "alice").await;
    let mut alice2 = ChatPeer::connect_as(&server, protocol, "alice2", "alice").await;
    let mut bob = ChatPeer::connect_as(&server, protocol, "bob", "bob").await;
    let mut carol_options = options(protocol);
    carol_options.access_token = Some(server.token("carol").await);
    let mut carol = ChatPeer::connect_to(&server.url("/chathub"), carol_options, "carol").await;
    let mut d = ChatPeer::connect(&server, protocol, "d").await;

    call("SendToUser", d.client.send_to_user("alice".into(), "u1".into())).await;
    alice1.expect(ChatEvent::User("u1".into())).await;
    alice2.expect(ChatEvent::User("u1".into())).await;
    for peer in [&mut alice1, &mut alice2, &mut bob, &mut carol, &mut d] {
        peer.expect_nothing().await;
    }

    call("SendToUser", alice1.client.send_to_user("carol".into(), "u2".into())).await;
    carol.expect(ChatEvent::User("u2".into())).await;
    for peer in [&mut alice1, &mut alice2, &mut bob, &mut carol, &mut d] {
        peer.expect_nothing().await;
    }

    call(
        "SendToUsers",
        d.client
            .send_to_users(vec!["alice".into(), "bob".into(), "nobody".into()], "u3".into()),
    )
    .await;
    for peer in [&mut alice1, &mut alice2, &mut bob] {
        peer.expect(ChatEvent::User("u3".into())).await;
    }
    for peer in [&mut alice1, &mut alice2, &mut bob, &mut carol, &mut d] {
        peer.expect_nothing().await;
    }
}

async fn chat_connections(protocol: Protocol) {
    let server = Server::start().await;
    let mut a = ChatPeer::connect(&server, protocol, "a").await;
    let mut b = ChatPeer::connect(&server, protocol, "b").await;
    let mut c = ChatPeer::connect(&server, protocol, "c").await;

    call(
        "SendToConnection",
        a.client.send_to_connection(b.id.clone(), "d1".into()),
    )
    .await;
    b.expect(ChatEvent::Direct("d1".into())).await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect_nothing().await;
    }

    call(
        "SendToConnections",
        b.client
            .send_to_connections(vec![a.id.clone(), c.id.clone()], "d2".into()),
    )
    .await;
    a.expect(ChatEvent::Direct("d2".into())).await;
    c.expect(ChatEvent::Direct("d2".into())).await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect_nothing().await;
    }

    call(
        "SendToAllExcept",
        b.client.send_to_all_except(vec![a.id.clone()], "x1".into()),
    )
    .await;
    b.expect(ChatEvent::Send("*".into(), "x1".into())).await;
    c.expect(ChatEvent::Send("*".into(), "x1".into())).await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect_nothing().await;
    }

    call(
        "SendToAllExcept",
        c.client
            .send_to_all_except(vec![b.id.clone(), c.id.clone()], "x2".into()),
    )
    .await;
    a.expect(ChatEvent::Send("*".into(), "x2".into())).await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect_nothing().await;
    }
}

async fn chat_benchmarks(protocol: Protocol) {
    let server = Server::start().await;
    let mut a = ChatPeer::connect(&server, protocol, "a").await;
    let mut b = ChatPeer::connect(&server, protocol, "b").await;
    let mut c = ChatPeer::connect(&server, protocol, "c").await;
    call("JoinGroup", a.client.join_group("bench".into())).await;
    call("JoinGroup", b.client.join_group("bench".into())).await;
    let ticks = json!(638_000_000_000_000_000_i64);
    let payload = json!("payload ✓ 0123456789");

    let (echoed_ticks, echoed_payload) = call("Echo", a.client.echo(dynamic(&ticks), dynamic(&payload))).await;
    assert_eq!(
        (echoed_ticks.to_json(), echoed_payload.to_json()),
        (ticks.clone(), payload.clone())
    );

    let measure = ChatEvent::Measure(ticks.clone(), payload.clone());
    call("EchoMeasure", a.client.echo_measure(dynamic(&ticks), dynamic(&payload))).await;
    a.expect(measure.clone()).await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect_nothing().await;
    }

    call(
        "BroadcastMeasure",
        c.client.broadcast_measure(dynamic(&ticks), dynamic(&payload)),
    )
    .await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect(measure.clone()).await;
        peer.expect_nothing().await;
    }

    call(
        "GroupMeasure",
        c.client
            .group_measure("bench".into(), dynamic(&ticks), dynamic(&payload)),
    )
    .await;
    a.expect(measure.clone()).await;
    b.expect(measure.clone()).await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect_nothing().await;
    }
}

async fn chat_disconnect_and_stats(protocol: Protocol) {
    let server = Server::start().await;
    server.wait_for_stats(0, 0).await;
    let a = ChatPeer::connect(&server, protocol, "a").await;
    let mut b = ChatPeer::connect(&server, protocol, "b").await;
    let c = ChatPeer::connect(&server, protocol, "c").await;
    server.wait_for_stats(3, 0).await;

    // Disconnect: the server ends the caller's connection. The invocation may complete
    // before the connection goes, or fail with it.
    match within("Disconnect", a.client.disconnect()).await {
        Ok(()) => {}
        Err(error) => assert!(error.is_disconnected(), "{error:?}"),
    }
    let _ = within("a's connection closes", a.client.connection().closed()).await;
    assert_eq!(a.client.connection().state(), ConnectionState::Disconnected);
    let after = within("Broadcast after the end", a.client.broadcast("a".into(), "late".into())).await;
    assert!(after.is_err_and(|e| e.is_disconnected()), "a call after the end");
    server.wait_for_stats(3, 1).await;

    // The others go on, and no longer reach a.
    call("Broadcast", b.client.broadcast("b".into(), "still".into())).await;
    b.expect(ChatEvent::Send("b".into(), "still".into())).await;
    b.expect_nothing().await;

    // A client that stops counts as disconnected too.
    within("c stops", c.client.connection().stop()).await;
    assert_eq!(c.client.connection().state(), ConnectionState::Disconnected);
    server.wait_for_stats(3, 2).await;
}
