//! A `#[client]` trait reached through every kind of proxy (all, others, group, user,
//! connection with a client result, caller), from a hub method and from a `HubHandle`, a
//! handler implementing the trait, and both lifecycle hooks.

use switchboard::{HubContext, HubError};

/// What the hub calls on its clients.
#[switchboard::client]
pub trait ChatClient {
    /// A broadcast.
    async fn receive(&self, user: String, text: String);
    /// No arguments.
    async fn ping(&self);
    /// A client result.
    async fn confirm(&self, question: String) -> bool;
    /// A client result the handler may refuse; named explicitly on the wire.
    #[client(name = "pickNumber")]
    async fn pick(&self, low: i32, high: i32) -> Result<i32, String>;
}

pub struct Chat;

#[switchboard::hub("/chat", client = ChatClient, parallel_invocations = 2)]
impl Chat {
    async fn broadcast(&self, cx: &HubContext<Self>, user: String, text: String) -> Result<(), HubError> {
        let clients = cx.clients();
        clients.all().receive(user.clone(), text.clone()).await?;
        clients.others().receive(user.clone(), text.clone()).await?;
        clients.group("room").receive(user.clone(), text.clone()).await?;
        clients.others_in_group("room").ping().await?;
        clients.user("alice").receive(user, text).await?;
        clients.caller().ping().await
    }

    async fn ask(&self, cx: &HubContext<Self>, connection_id: String) -> Result<bool, HubError> {
        let confirmed = cx.clients().client(connection_id).confirm("sure?".into()).await?;
        // A single-connection proxy also has the fire-and-forget methods.
        cx.clients().caller().ping().await?;
        Ok(confirmed)
    }

    async fn ask_caller(&self, cx: HubContext<Self>) -> Result<i32, HubError> {
        cx.clients().caller().pick(1, 6).await
    }

    #[on_connected]
    async fn connected(&self, cx: &HubContext<Self>) -> Result<(), HubError> {
        cx.groups().add(cx.connection_id(), "room").await
    }

    #[on_disconnected]
    async fn disconnected(&self, cx: &HubContext<Self>, error: Option<HubError>) {
        let _ = (cx.connection_id(), error);
    }
}

/// A Rust client's handler of the client methods.
struct Handler;

impl ChatClient for Handler {
    async fn receive(&self, user: String, text: String) {
        let _ = (user, text);
    }

    async fn ping(&self) {}

    async fn confirm(&self, question: String) -> bool {
        !question.is_empty()
    }

    async fn pick(&self, low: i32, high: i32) -> Result<i32, String> {
        if low <= high {
            Ok(low)
        } else {
            Err("empty range".into())
        }
    }
}

fn assert_handler<H: ChatClient>(_: &H) {}

#[tokio::main]
async fn main() {
    assert_handler(&Handler);
    let app = switchboard::Switchboard::builder().mount(Chat).build().unwrap();
    // Outside a hub method: the typed proxies from a handle (no one is connected).
    let handle = app.hub_handle::<Chat>().unwrap();
    handle.clients().all().ping().await.unwrap();
    handle
        .clients()
        .group("room")
        .receive("a".into(), "b".into())
        .await
        .unwrap();
    handle.clients().users(["alice", "bob"]).ping().await.unwrap();
    // A client result from a connection that is not there fails, and does not hang.
    assert!(handle.clients().client("nobody").confirm("?".into()).await.is_err());
}
