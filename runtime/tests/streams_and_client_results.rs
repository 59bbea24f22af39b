//! Streams both ways and client results, message by message over a real WebSocket.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use futures_util::{TryStreamExt, stream};
use serde_json::json;
use switchboard::{Hub, HubContext, HubError, HubStream, Methods, Switchboard};

#[derive(Default)]
struct Streams {
    cancelled: Arc<AtomicBool>,
}

type Cx = HubContext<Streams>;

impl Hub for Streams {
    type Client = switchboard::Untyped;
    fn methods(m: &mut Methods<Self>) {
        m.stream("Count", |_, _, (n,): (u32,)| async move {
            Ok::<_, HubError>(stream::iter(1..=n))
        });
        m.stream("Forever", |hub: Arc<Streams>, cx: Cx, ()| async move {
            let cancelled = cx.cancellation();
            let flag = hub.cancelled.clone();
            tokio::spawn(async move {
                cancelled.cancelled().await;
                flag.store(true, Ordering::SeqCst);
            });
            Ok::<_, HubError>(stream::pending::<u32>())
        });
        m.try_stream("FailHalfway", |_, _, ()| async move {
            Ok::<_, HubError>(stream::iter([
                Ok(1),
                Err(HubError::exception("InvalidOperationException", "secret")),
            ]))
        });
        m.method("Concat", |_, _, (parts,): (HubStream<String>,)| async move {
            let parts: Vec<String> = parts.try_collect().await?;
            Ok::<_, HubError>(parts.concat())
        });
        m.method("SumBoth", |_, _, (a, b): (HubStream<i64>, HubStream<i64>)| async move {
            let a: i64 = a.try_fold(0, |sum, x| async move { Ok(sum + x) }).await?;
            let b: i64 = b.try_fold(0, |sum, x| async move { Ok(sum + x) }).await?;
            Ok::<_, HubError>(a * 1000 + b)
        });
        m.method("AskCaller", |_, cx: Cx, (question,): (String,)| async move {
            cx.clients().caller().invoke::<String, _>("Ask", (question,)).await
        });
        m.method("Me", |_, cx: Cx, ()| async move {
            Ok::<_, HubError>(cx.connection_id().to_owned())
        });
        m.method("AskCallerBriefly", |_, cx: Cx, ()| async move {
            cx.clients()
                .caller()
                .timeout(Duration::from_millis(300))
                .invoke::<String, _>("Ask", ("?",))
                .await
        });
    }
}

async fn server(parallel: usize) -> String {
    let app = Switchboard::builder()
        .hub_with("/streams", Streams::default(), move |o| {
            o.maximum_parallel_invocations_per_client = parallel
        })
        .build()
        .unwrap();
    serve(&app).await
}

async fn send(ws: &mut Socket, message: serde_json::Value) {
    send_text(ws, &format!("{message}\u{1e}")).await;
}

#[tokio::test]
async fn stream_items_then_completion_and_mode_errors() {
    let addr = server(1).await;
    let mut ws = connect_json(&addr, "/streams").await;
    send(
        &mut ws,
        json!({"type":4,"invocationId":"1","target":"Count","arguments":[3]}),
    )
    .await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.extend(next_records(&mut ws).await);
    }
    assert_eq!(
        seen,
        vec![
            json!({"type":2,"invocationId":"1","item":1}),
            json!({"type":2,"invocationId":"1","item":2}),
            json!({"type":2,"invocationId":"1","item":3}),
            json!({"type":3,"invocationId":"1"}),
        ]
    );
    assert_eq!(
        invoke(&mut ws, "2", "Count", json!([3])).await["error"],
        "The client attempted to invoke the streaming 'Count' method with a non-streaming invocation."
    );
}

#[tokio::test]
async fn stream_cancel_invocation_stops_the_method() {
    let app_hub = Streams::default();
    let cancelled = app_hub.cancelled.clone();
    let app = Switchboard::builder().hub("/streams", app_hub).build().unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/streams").await;
    send(
        &mut ws,
        json!({"type":4,"invocationId":"7","target":"Forever","arguments":[]}),
    )
    .await;
    // A second stream with the same id is refused while the first runs.
    send(
        &mut ws,
        json!({"type":4,"invocationId":"7","target":"Forever","arguments":[]}),
    )
    .await;
    assert_eq!(
        next_record(&mut ws).await,
        json!({"type":3,"invocationId":"7","error":"Invocation ID '7' is already in use."})
    );
    send(&mut ws, json!({"type":5,"invocationId":"7"})).await;
    assert_eq!(next_record(&mut ws).await, json!({"type":3,"invocationId":"7"}));
    assert!(cancelled.load(Ordering::SeqCst), "the method saw the cancellation");
    // Cancelling an unknown invocation is ignored.
    send(&mut ws, json!({"type":5,"invocationId":"nope"})).await;
    send(
        &mut ws,
        json!({"type":4,"invocationId":"8","target":"Count","arguments":[0]}),
    )
    .await;
    assert_eq!(next_record(&mut ws).await, json!({"type":3,"invocationId":"8"}));
}

#[tokio::test]
async fn stream_failing_halfway_hides_details() {
    let addr = server(1).await;
    let mut ws = connect_json(&addr, "/streams").await;
    send(
        &mut ws,
        json!({"type":4,"invocationId":"1","target":"FailHalfway","arguments":[]}),
    )
    .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.extend(next_records(&mut ws).await);
    }
    assert_eq!(seen[0], json!({"type":2,"invocationId":"1","item":1}));
    assert_eq!(
        seen[1],
        json!({"type":3,"invocationId":"1","error":"An error occurred on the server while streaming results."})
    );
}

#[tokio::test]
async fn upload_streams_feed_the_method() {
    let addr = server(1).await;
    let mut ws = connect_json(&addr, "/streams").await;
    send(
        &mut ws,
        json!({"type":1,"invocationId":"1","target":"Concat","arguments":[],"streamIds":["a"]}),
    )
    .await;
    for part in ["x", "y", "z"] {
        send(&mut ws, json!({"type":2,"invocationId":"a","item":part})).await;
    }
    send(&mut ws, json!({"type":3,"invocationId":"a"})).await;
    assert_eq!(
        next_record(&mut ws).await,
        json!({"type":3,"invocationId":"1","result":"xyz"})
    );

    // Two streams, interleaved.
    send(
        &mut ws,
        json!({"type":1,"invocationId":"2","target":"SumBoth","arguments":[],"streamIds":["p","q"]}),
    )
    .await;
    for (id, n) in [("p", 1), ("q", 10), ("p", 2), ("q", 20)] {
        send(&mut ws, json!({"type":2,"invocationId":id,"item":n})).await;
    }
    send(&mut ws, json!({"type":3,"invocationId":"p"})).await;
    send(&mut ws, json!({"type":3,"invocationId":"q"})).await;
    assert_eq!(next_record(&mut ws).await["result"], 3030);

    // The client ends a stream with an error.
    send(
        &mut ws,
        json!({"type":1,"invocationId":"3","target":"Concat","arguments":[],"streamIds":["b"]}),
    )
    .await;
    send(&mut ws, json!({"type":3,"invocationId":"b","error":"Something bad"})).await;
    assert_eq!(
        next_record(&mut ws).await["error"],
        "An unexpected error occurred invoking 'Concat' on the server. HubException: Something bad"
    );

    // Stream counts must match.
    assert_eq!(
        invoke(&mut ws, "4", "Concat", json!([])).await["error"],
        "An unexpected error occurred invoking 'Concat' on the server. HubException: Client sent 0 stream(s), Hub method expects 1."
    );
    // Items for unknown or finished streams are dropped.
    send(&mut ws, json!({"type":2,"invocationId":"a","item":"late"})).await;
    send(
        &mut ws,
        json!({"type":4,"invocationId":"5","target":"Count","arguments":[0]}),
    )
    .await;
    assert_eq!(next_record(&mut ws).await, json!({"type":3,"invocationId":"5"}));
}

#[tokio::test]
async fn client_results_need_parallel_invocations_inside_hub_methods() {
    let addr = server(1).await;
    let mut ws = connect_json(&addr, "/streams").await;
    assert_eq!(
        invoke(&mut ws, "1", "AskCaller", json!(["?"])).await["error"],
        "An unexpected error occurred invoking 'AskCaller' on the server."
    );
}

#[tokio::test]
async fn client_results_value_error_and_timeout() {
    let addr = server(4).await;
    let mut ws = connect_json(&addr, "/streams").await;
    send(
        &mut ws,
        json!({"type":1,"invocationId":"1","target":"AskCaller","arguments":["name?"]}),
    )
    .await;
    let ask = next_record(&mut ws).await;
    assert_eq!(ask["type"], 1);
    assert_eq!(ask["target"], "Ask");
    assert_eq!(ask["arguments"], json!(["name?"]));
    let id = ask["invocationId"]
        .as_str()
        .expect("a client result call has an id")
        .to_owned();
    send(&mut ws, json!({"type":3,"invocationId":id,"result":"Ada"})).await;
    assert_eq!(
        next_record(&mut ws).await,
        json!({"type":3,"invocationId":"1","result":"Ada"})
    );

    send(
        &mut ws,
        json!({"type":1,"invocationId":"2","target":"AskCaller","arguments":["again?"]}),
    )
    .await;
    let id = next_record(&mut ws).await["invocationId"].as_str().unwrap().to_owned();
    send(
        &mut ws,
        json!({"type":3,"invocationId":id,"error":"Client didn't provide a result."}),
    )
    .await;
    assert_eq!(
        next_record(&mut ws).await["error"],
        "An unexpected error occurred invoking 'AskCaller' on the server. HubException: Client didn't provide a result."
    );

    // Stray completions are ignored; an unanswered call times out.
    send(&mut ws, json!({"type":3,"invocationId":"s999","result":1})).await;
    send(
        &mut ws,
        json!({"type":1,"invocationId":"3","target":"AskCallerBriefly","arguments":[]}),
    )
    .await;
    assert_eq!(next_record(&mut ws).await["target"], "Ask");
    assert_eq!(
        next_record(&mut ws).await["error"],
        "An unexpected error occurred invoking 'AskCallerBriefly' on the server."
    );
}

#[tokio::test]
async fn client_results_from_a_handle_fail_when_the_client_leaves() {
    let app = Switchboard::builder()
        .hub("/streams", Streams::default())
        .build()
        .unwrap();
    let handle = app.hub_handle::<Streams>().unwrap();
    let addr = serve(&app).await;
    let unknown = handle
        .clients()
        .client("nobody")
        .invoke::<i32, _>("Result", ())
        .await
        .unwrap_err();
    assert_eq!(unknown.message(), "Connection 'nobody' does not exist.");
    let mut ws = connect_json(&addr, "/streams").await;
    let id = invoke(&mut ws, "1", "Me", json!([])).await["result"]
        .as_str()
        .unwrap()
        .to_owned();
    let asking = tokio::spawn({
        let handle = handle.clone();
        let id = id.clone();
        async move { handle.clients().client(id).invoke::<i32, _>("Result", ()).await }
    });
    assert_eq!(next_record(&mut ws).await["target"], "Result");
    drop(ws);
    let error = tokio::time::timeout(WAIT, asking).await.unwrap().unwrap().unwrap_err();
    assert_eq!(error.message(), format!("Connection '{id}' disconnected."));
}

#[tokio::test]
async fn streams_of_many_items_are_paced_not_dropped() {
    let app = Switchboard::builder()
        .hub_with("/streams", Streams::default(), |o| o.max_queued_messages = 8)
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/streams").await;
    send(
        &mut ws,
        json!({"type":4,"invocationId":"1","target":"Count","arguments":[5000]}),
    )
    .await;
    let mut items = 0;
    loop {
        let records = next_records(&mut ws).await;
        for record in records {
            match record["type"].as_u64() {
                Some(2) => {
                    items += 1;
                    assert_eq!(record["item"], items);
                }
                Some(3) => {
                    assert_eq!(items, 5000, "every item, in order, through a queue of 8");
                    return;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
