//! The Redis backplane between two app servers in this process and a real `redis-server`
//! (started here on a free loopback port, stopped at the end): a group change for a
//! connection on the other server, acknowledged by it; and a message published as ASP.NET
//! Core's backplane publishes it reaching a Switchboard client unchanged.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use switchboard::backplane::RedisBackplane;
use switchboard::backplane::envelope::Invocation;
use switchboard::client::{ClientOptions, HubConnection};
use switchboard::{Hub, Methods, Switchboard, Untyped};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

struct Room;

impl Hub for Room {
    type Client = Untyped;

    fn methods(_: &mut Methods<Self>) {}
}

/// A redis-server of this test, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server (install it: apt-get install redis-server): {e}"));
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An app server on the backplane named `name`; its URL and app.
async fn app_server(redis: &Redis, name: &str) -> (String, Switchboard) {
    let app = Switchboard::builder()
        .with_redis_backplane(RedisBackplane::new(redis.url()).server_name(name))
        .hub("/room", Room)
        .build()
        .expect("builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router::<()>();
    tokio::spawn(async move {
        let _ = switchboard::serve(listener, router).await;
    });
    (url, app)
}

/// A client whose `Said` calls land in a channel.
async fn listener(url: &str) -> (HubConnection, mpsc::UnboundedReceiver<String>) {
    let connection = HubConnection::new(&format!("{url}/room"), ClientOptions::default()).unwrap();
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
        .expect("in time")
        .expect("connects");
    (connection, receiver)
}

async fn next(receiver: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .expect("a message in time")
        .expect("a message")
}

/// Broadcasts `text` from `app` until `receiver` gets it (the subscriptions come up
/// asynchronously), then drains nothing else.
async fn until_reached(app: &Switchboard, receiver: &mut mpsc::UnboundedReceiver<String>, text: &str) {
    let handle = app.hub_handle::<Room>().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        handle.clients().all().send("Said", (text.to_owned(),)).await.unwrap();
        if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(300), receiver.recv()).await {
            assert_eq!(got, text);
            while let Ok(more) = receiver.try_recv() {
                assert_eq!(more, text);
            }
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backplane never carried a broadcast"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_change_for_a_connection_on_another_server_is_acknowledged_by_it() {
    let redis = Redis::start();
    let (a_url, a) = app_server(&redis, "server-a").await;
    let (_b_url, b) = app_server(&redis, "server-b").await;
    let (client, mut inbox) = listener(&a_url).await;
    let id = client.connection_id().unwrap();
    // B needs its own subscriptions up before it is asked for anything.
    until_reached(&b, &mut inbox, "warm-up").await;

    let on_b = b.hub_handle::<Room>().unwrap();
    tokio::time::timeout(WAIT, on_b.groups().add(&id, "fans"))
        .await
        .expect("acknowledged in time")
        .expect("added on server A");
    on_b.clients()
        .group("fans")
        .send("Said", ("to the fans",))
        .await
        .unwrap();
    assert_eq!(next(&mut inbox).await, "to the fans");

    tokio::time::timeout(WAIT, on_b.groups().remove(&id, "fans"))
        .await
        .expect("acknowledged in time")
        .expect("removed on server A");
    on_b.clients()
        .group("fans")
        .send("Said", ("not for a former member",))
        .await
        .unwrap();
    on_b.clients().all().send("Said", ("fence",)).await.unwrap();
    assert_eq!(
        next(&mut inbox).await,
        "fence",
        "the group send after the removal reached nobody"
    );

    // A client result from a connection on A, asked on B.
    client.on("Result", |()| async { Ok::<_, String>(7) });
    let result: i32 = tokio::time::timeout(WAIT, on_b.clients().client(id).invoke::<i32, _>("Result", ()))
        .await
        .expect("in time")
        .expect("a result");
    assert_eq!(result, 7);
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_as_aspnetcore_publishes_it_reaches_the_client_unchanged() {
    let redis = Redis::start();
    let (url, app) = app_server(&redis, "server-a").await;
    let (_client, mut inbox) = listener(&url).await;
    until_reached(&app, &mut inbox, "warm-up").await;

    // What an ASP.NET Core server with hub `Room` publishes for Clients.All.SendAsync("Said", "from .NET"):
    // the JSON and MessagePack invocations, each framed as its protocol frames it.
    let json = b"{\"type\":1,\"target\":\"Said\",\"arguments\":[\"from .NET\"]}\x1e".to_vec();
    let mut msgpack_body = vec![0x96, 0x01, 0x80, 0xC0, 0xA4];
    msgpack_body.extend_from_slice(b"Said");
    msgpack_body.extend_from_slice(&[0x91, 0xA9]);
    msgpack_body.extend_from_slice(b"from .NET");
    msgpack_body.push(0x90);
    let mut msgpack = vec![u8::try_from(msgpack_body.len()).unwrap()];
    msgpack.extend_from_slice(&msgpack_body);
    let envelope = Invocation {
        excluded: vec![],
        payloads: vec![("json".into(), json.into()), ("messagepack".into(), msgpack.into())],
        result: None,
    }
    .encode();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg("Room:all")
        .arg(envelope)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(receivers, 1, "the app server listens on ASP.NET Core's channel");
    assert_eq!(next(&mut inbox).await, "from .NET");

    // Garbage on the same channel is dropped; the next message still arrives.
    let _: i64 = redis::cmd("PUBLISH")
        .arg("Room:all")
        .arg(&b"\x92\x91\xdb\xff\xff\xff\xff"[..])
        .query_async(&mut connection)
        .await
        .unwrap();
    app.hub_handle::<Room>()
        .unwrap()
        .clients()
        .all()
        .send("Said", ("after garbage",))
        .await
        .unwrap();
    assert_eq!(next(&mut inbox).await, "after garbage");
}

#[test]
fn a_bad_redis_url_is_refused_when_the_app_is_built() {
    let error = Switchboard::builder()
        .with_redis_backplane(RedisBackplane::new("http://secret@example"))
        .hub("/room", Room)
        .build()
        .unwrap_err();
    assert!(
        error.to_string().starts_with("the Redis backplane's URL is not valid"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("secret"),
        "the URL stays out of the error: {error}"
    );
}
