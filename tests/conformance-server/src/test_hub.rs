//! TestHub and the hub behind `/authorizedhub`, written with `#[hub]` and `#[client]`.

use futures_util::{Stream, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use switchboard::values::{Binary, Dynamic, Timestamp};
use switchboard::{HubContext, HubError, HubStream, TransportType};

/// What TestHub calls on its clients.
#[switchboard::client]
pub trait TestClient {
    /// `InvokeWithString` sends the caller its string back.
    async fn message(&self, text: String);
    /// `SendCustomObject` sends the caller its object back.
    async fn custom_object(&self, object: Dynamic);
    /// A cancelled `InfiniteStream` tells its caller.
    async fn stream_canceled(&self);
    /// `GET /clientresult/{id}` asks the client for an int.
    async fn result(&self) -> i64;
}

/// The hub of the official client's functional tests.
pub struct TestHub {
    /// This app server's name (`--server-name`).
    pub server_name: std::sync::Arc<str>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComplexObject {
    string: String,
    int_array: Vec<i32>,
    byte_array: Binary,
    guid: String,
    date_time: Timestamp,
}

#[switchboard::hub("/testhub", client = TestClient, detailed_errors = true, stateful_reconnect = true)]
impl TestHub {
    async fn echo(&self, message: String) -> String {
        message
    }

    async fn get_server_name(&self) -> String {
        self.server_name.to_string()
    }

    async fn get_caller_connection_id(&self, cx: &HubContext<Self>) -> String {
        cx.connection_id().to_owned()
    }

    async fn get_num_redirects(&self, cx: &HubContext<Self>) -> i32 {
        cx.request()
            .query("numRedirects")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    async fn throw_exception(&self, message: String) -> Result<(), HubError> {
        Err(crate::invalid_operation(message))
    }

    async fn invoke_with_string(&self, cx: &HubContext<Self>, message: String) -> Result<(), HubError> {
        cx.clients().caller().message(message).await
    }

    async fn send_custom_object(&self, cx: &HubContext<Self>, object: Dynamic) -> Result<(), HubError> {
        cx.clients().caller().custom_object(object).await
    }

    async fn stream(&self) -> impl Stream<Item = String> {
        stream::iter(["a", "b", "c"].map(String::from))
    }

    async fn infinite_stream(&self, cx: &HubContext<Self>) -> impl Stream<Item = i32> {
        let cancelled = cx.cancellation();
        let caller = cx.clients().caller();
        tokio::spawn(async move {
            cancelled.cancelled().await;
            let _ = caller.stream_canceled().await;
        });
        stream::pending()
    }

    async fn streaming_concat(&self, parts: HubStream<String>) -> Result<String, HubError> {
        let parts: Vec<String> = parts.try_collect().await?;
        Ok(parts.concat())
    }

    async fn empty_stream(&self) -> impl Stream<Item = i32> {
        stream::empty()
    }

    async fn stream_throw_exception(&self, message: String) -> Result<impl Stream<Item = i32>, HubError> {
        Err::<stream::Empty<i32>, _>(crate::invalid_operation(message))
    }

    async fn get_active_transport_name(&self, cx: &HubContext<Self>) -> String {
        match cx.transport() {
            TransportType::WebSockets => "WebSockets",
            TransportType::ServerSentEvents => "ServerSentEvents",
            TransportType::LongPolling => "LongPolling",
        }
        .to_owned()
    }

    async fn echo_complex_object(&self, object: Dynamic) -> Dynamic {
        object
    }

    async fn send_complex_object(&self) -> ComplexObject {
        ComplexObject {
            string: "hello world".into(),
            int_array: vec![1, 2, 3],
            byte_array: Binary(vec![1, 2, 3]),
            guid: "00010203-0405-0607-0706-050403020100".into(),
            date_time: Timestamp::from_unix(946_684_800, 0).unwrap_or_else(Timestamp::now),
        }
    }

    async fn get_content_type_header(&self, cx: &HubContext<Self>) -> Option<String> {
        cx.request().header("content-type").map(str::to_owned)
    }

    async fn get_header(&self, cx: &HubContext<Self>, name: String) -> Option<String> {
        cx.request().header(&name).map(str::to_owned)
    }

    async fn get_cookie(&self, cx: &HubContext<Self>, name: String) -> Option<String> {
        cx.request().cookie(&name).map(str::to_owned)
    }

    async fn get_user_identifier(&self, cx: &HubContext<Self>) -> Option<String> {
        cx.user_id().map(str::to_owned)
    }
}

/// The hub at `/authorizedhub`, which needs a bearer token.
pub struct AuthorizedHub;

#[switchboard::hub("/authorizedhub", authorize = true, detailed_errors = true)]
impl AuthorizedHub {
    async fn echo(&self, message: String) -> String {
        message
    }
}
