//! TestHub and the hub behind `/authorizedhub`.

use std::sync::Arc;

use futures_util::{TryStreamExt, stream};
use serde::Serialize;
use switchboard::types::{Binary, Dynamic, Timestamp};
use switchboard::{Hub, HubContext, HubError, HubStream, Methods, TransportType};

/// The hub of the official client's functional tests.
pub struct TestHub;

type Cx = HubContext<TestHub>;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ComplexObject {
    string: String,
    int_array: Vec<i32>,
    byte_array: Binary,
    guid: String,
    date_time: Timestamp,
}

fn ok<T>(value: T) -> Result<T, HubError> {
    Ok(value)
}

impl Hub for TestHub {
    fn methods(m: &mut Methods<Self>) {
        m.method("Echo", |_, _, (message,): (String,)| async move { ok(message) });
        m.method("GetCallerConnectionId", |_, cx: Cx, ()| async move {
            ok(cx.connection_id().to_owned())
        });
        m.method("GetNumRedirects", |_, cx: Cx, ()| async move {
            ok(cx
                .request()
                .query("numRedirects")
                .and_then(|n| n.parse::<i32>().ok())
                .unwrap_or(0))
        });
        m.method("ThrowException", |_, _, (message,): (String,)| async move {
            Err::<(), _>(crate::invalid_operation(message))
        });
        m.method("InvokeWithString", |_, cx: Cx, (message,): (String,)| async move {
            cx.clients().caller().send("Message", (message,)).await
        });
        m.method("SendCustomObject", |_, cx: Cx, (object,): (Dynamic,)| async move {
            cx.clients().caller().send("CustomObject", (object,)).await
        });
        m.method("GetActiveTransportName", |_, cx: Cx, ()| async move {
            ok(match cx.transport() {
                TransportType::WebSockets => "WebSockets",
                TransportType::ServerSentEvents => "ServerSentEvents",
                TransportType::LongPolling => "LongPolling",
            })
        });
        m.method(
            "EchoComplexObject",
            |_, _, (object,): (Dynamic,)| async move { ok(object) },
        );
        m.method("SendComplexObject", |_, _, ()| async move {
            ok(ComplexObject {
                string: "hello world".into(),
                int_array: vec![1, 2, 3],
                byte_array: Binary(vec![1, 2, 3]),
                guid: "00010203-0405-0607-0706-050403020100".into(),
                date_time: Timestamp::from_unix(946_684_800, 0).unwrap_or_else(Timestamp::now),
            })
        });
        m.method("GetContentTypeHeader", |_, cx: Cx, ()| async move {
            ok(cx.request().header("content-type").map(str::to_owned))
        });
        m.method("GetHeader", |_, cx: Cx, (name,): (String,)| async move {
            ok(cx.request().header(&name).map(str::to_owned))
        });
        m.method("GetCookie", |_, cx: Cx, (name,): (String,)| async move {
            ok(cx.request().cookie(&name).map(str::to_owned))
        });
        m.method("GetUserIdentifier", |_, cx: Cx, ()| async move {
            ok(cx.user_id().map(str::to_owned))
        });
        m.stream("Stream", |_, _, ()| async move { ok(stream::iter(["a", "b", "c"])) });
        m.stream("InfiniteStream", |_, cx: Cx, ()| async move {
            let cancelled = cx.cancellation();
            let caller = cx.clients().caller();
            tokio::spawn(async move {
                cancelled.cancelled().await;
                let _ = caller.send("StreamCanceled", ()).await;
            });
            ok(stream::pending::<i32>())
        });
        m.method("StreamingConcat", |_, _, (parts,): (HubStream<String>,)| async move {
            let parts: Vec<String> = parts.try_collect().await?;
            ok(parts.concat())
        });
        m.stream("EmptyStream", |_, _, ()| async move { ok(stream::empty::<i32>()) });
        m.stream("StreamThrowException", |_, _, (message,): (String,)| async move {
            Err::<stream::Empty<i32>, _>(crate::invalid_operation(message))
        });
    }
}

/// The hub at `/authorizedhub`, which needs a bearer token.
pub struct AuthorizedHub;

impl Hub for AuthorizedHub {
    fn methods(m: &mut Methods<Self>) {
        m.method(
            "Echo",
            |_hub: Arc<AuthorizedHub>, _, (message,): (String,)| async move { ok(message) },
        );
    }
}
