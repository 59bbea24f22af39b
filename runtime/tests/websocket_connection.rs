//! Connections over real WebSockets: handshake, invocations, errors, limits, keep-alive,
//! timeouts, and what bad input does (the connection ends cleanly, nothing else is lost).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::json;
use switchboard::{Hub, HubContext, HubError, Methods, Switchboard};

#[derive(Default)]
struct Probe {
    disconnects: AtomicUsize,
    errors: std::sync::Mutex<Vec<String>>,
}

type Cx = HubContext<Probe>;

impl Hub for Probe {
    type Client = switchboard::Untyped;
    fn methods(m: &mut Methods<Self>) {
        m.method("Echo", |_, _, (s,): (String,)| async move { Ok::<_, HubError>(s) });
        m.method("Void", |_, _, ()| async move { Ok::<_, HubError>(()) });
        m.method("Null", |_, _, ()| async move { Ok::<_, HubError>(None::<i32>) });
        m.method(
            "Add",
            |_, _, (a, b): (i64, i64)| async move { Ok::<_, HubError>(a + b) },
        );
        m.method(
            "Fail",
            |_, _, (s,): (String,)| async move { Err::<(), _>(HubError::new(s)) },
        );
        m.method("Boom", |_, _, (s,): (String,)| async move {
            Err::<(), _>(HubError::exception("InvalidOperationException", s))
        });
        m.method("Panic", |_, _, ()| async move {
            if true {
                panic!("deliberate");
            }
            Ok::<_, HubError>(())
        });
        m.method("Sleep", |_, _, (ms,): (u64,)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, HubError>(ms)
        });
        m.method("Flood", |_, cx: Cx, (count, size): (usize, usize)| async move {
            let payload = "x".repeat(size);
            for _ in 0..count {
                cx.clients().all().send("Flood", (payload.clone(),)).await?;
            }
            Ok::<_, HubError>(())
        });
        m.method("Depth", |_, _, (value,): (serde_json::Value,)| async move {
            let mut depth = 0;
            let mut inner = &value;
            while let Some(first) = inner.as_array().and_then(|items| items.first()) {
                depth += 1;
                inner = first;
            }
            Ok::<_, HubError>(depth)
        });
        m.method("Whoami", |_, cx: Cx, ()| async move {
            Ok::<_, HubError>(
                json!({ "id": cx.connection_id(), "user": cx.user_id(), "query": cx.request().query("q") }),
            )
        });
    }

    async fn on_disconnected(self: Arc<Self>, _cx: Cx, error: Option<HubError>) {
        if let Some(error) = error {
            self.errors.lock().unwrap().push(error.message().to_owned());
        }
        self.disconnects.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn websocket_invocations_and_completions() {
    let app = Switchboard::builder().hub("/probe", Probe::default()).build().unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/probe").await;
    assert_eq!(
        invoke(&mut ws, "1", "Echo", json!(["héllo"])).await,
        json!({"type":3,"invocationId":"1","result":"héllo"})
    );
    // Case-insensitive method names.
    assert_eq!(invoke(&mut ws, "2", "eCHO", json!(["x"])).await["result"], "x");
    // A method returning nothing completes with a null result, as .NET does for void.
    assert_eq!(
        invoke(&mut ws, "3", "Void", json!([])).await,
        json!({"type":3,"invocationId":"3","result":null})
    );
    assert_eq!(
        invoke(&mut ws, "4", "Null", json!([])).await,
        json!({"type":3,"invocationId":"4","result":null})
    );
    assert_eq!(invoke(&mut ws, "5", "Add", json!([40, 2])).await["result"], 42);
}

#[tokio::test]
async fn websocket_error_texts_match_the_reference_server() {
    let app = Switchboard::builder().hub("/probe", Probe::default()).build().unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/probe").await;
    let error = |c: serde_json::Value| c["error"].as_str().unwrap().to_owned();
    assert_eq!(
        error(invoke(&mut ws, "1", "Missing", json!([])).await),
        "Failed to invoke 'Missing' due to an error on the server. HubException: Method does not exist."
    );
    // Without detailed errors the binding details stay on the server.
    assert_eq!(
        error(invoke(&mut ws, "2", "Echo", json!(["a", "b"])).await),
        "Failed to invoke 'Echo' due to an error on the server."
    );
    assert_eq!(
        error(invoke(&mut ws, "3", "Add", json!(["a", 1])).await),
        "Failed to invoke 'Add' due to an error on the server."
    );
    assert_eq!(
        error(invoke(&mut ws, "4", "Boom", json!(["secret detail"])).await),
        "An unexpected error occurred invoking 'Boom' on the server."
    );
    // Hub errors are always shown.
    assert_eq!(
        error(invoke(&mut ws, "5", "Fail", json!(["for you"])).await),
        "An unexpected error occurred invoking 'Fail' on the server. HubException: for you"
    );
    // A panicking method fails its invocation; the connection goes on.
    assert_eq!(
        error(invoke(&mut ws, "6", "Panic", json!([])).await),
        "An unexpected error occurred invoking 'Panic' on the server."
    );
    assert_eq!(
        error(invoke(&mut ws, "7", "Echo", json!([])).await),
        "Failed to invoke 'Echo' due to an error on the server."
    );
    let streaming = json!({"type":4,"invocationId":"8","target":"Echo","arguments":["x"]});
    send_text(&mut ws, &format!("{streaming}\u{1e}")).await;
    assert_eq!(
        error(next_record(&mut ws).await),
        "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation."
    );
    assert_eq!(
        invoke(&mut ws, "9", "Echo", json!(["still here"])).await["result"],
        "still here"
    );
}

#[tokio::test]
async fn websocket_detailed_errors_show_details() {
    let app = Switchboard::builder()
        .hub_with("/probe", Probe::default(), |o| o.enable_detailed_errors = true)
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/probe").await;
    let error = |c: serde_json::Value| c["error"].as_str().unwrap().to_owned();
    assert_eq!(
        error(invoke(&mut ws, "1", "Echo", json!(["a", "b"])).await),
        "Failed to invoke 'Echo' due to an error on the server. InvalidDataException: Invocation provides 2 argument(s) but target expects 1."
    );
    assert_eq!(
        error(invoke(&mut ws, "2", "Add", json!(["a", 1])).await),
        "Failed to invoke 'Add' due to an error on the server. InvalidDataException: Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked."
    );
    assert_eq!(
        error(invoke(&mut ws, "3", "Boom", json!(["detail"])).await),
        "An unexpected error occurred invoking 'Boom' on the server. InvalidOperationException: detail"
    );
}

#[tokio::test]
async fn websocket_sends_without_invocation_id_are_never_answered() {
    let app = Switchboard::builder().hub("/probe", Probe::default()).build().unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/probe").await;
    for message in [
        json!({"type":1,"target":"Echo","arguments":["x"]}),
        json!({"type":1,"target":"Missing","arguments":[]}),
        json!({"type":1,"target":"Echo","arguments":[1, 2, 3]}),
        json!({"type":1,"target":"Fail","arguments":["x"]}),
        json!({"type":1,"target":"Echo","arguments":["x"],"invocationId":""}),
    ] {
        send_text(&mut ws, &format!("{message}\u{1e}")).await;
    }
    // The next thing the client sees answers the next invocation.
    assert_eq!(
        invoke(&mut ws, "after", "Echo", json!(["y"])).await["invocationId"],
        "after"
    );
}

#[tokio::test]
async fn websocket_records_split_and_batched_across_frames() {
    let app = Switchboard::builder().hub("/probe", Probe::default()).build().unwrap();
    let addr = serve(&app).await;
    let mut ws = open(&addr, "/probe").await;
    // The handshake and the first invocation in one frame.
    send_text(&mut ws, "{\"protocol\":\"json\",\"version\":1}\u{1e}{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"a\"]}\u{1e}").await;
    let first = next_text(&mut ws).await;
    let (handshake, rest) = first.split_once('\u{1e}').unwrap();
    assert_eq!(handshake, "{}");
    let completion = if rest.is_empty() {
        next_record(&mut ws).await
    } else {
        serde_json::from_str(rest.trim_end_matches('\u{1e}')).unwrap()
    };
    assert_eq!(completion["result"], "a");
    // One invocation split over three frames.
    send_text(&mut ws, "{\"type\":1,\"invocationId\":\"2\",").await;
    send_text(&mut ws, "\"target\":\"Echo\",\"argu").await;
    send_text(&mut ws, "ments\":[\"b\"]}\u{1e}").await;
    assert_eq!(next_record(&mut ws).await["result"], "b");
}

#[tokio::test]
async fn websocket_messagepack_round_trip() {
    let app = Switchboard::builder().hub("/probe", Probe::default()).build().unwrap();
    let addr = serve(&app).await;
    let mut ws = open(&addr, "/probe").await;
    send_text(&mut ws, "{\"protocol\":\"messagepack\",\"version\":1}\u{1e}").await;
    assert_eq!(
        next_event(&mut ws).await,
        Event::Binary(b"{}\x1e".to_vec()),
        "MessagePack frames are binary"
    );
    // [1, {}, "1", "Add", [40, 2]]
    let body = [0x95, 0x01, 0x80, 0xa1, b'1', 0xa3, b'A', b'd', b'd', 0x92, 40, 2];
    let mut framed = vec![body.len() as u8];
    framed.extend_from_slice(&body);
    send_binary(&mut ws, framed).await;
    // [3, {}, "1", 3, 42]
    assert_eq!(
        next_event(&mut ws).await,
        Event::Binary(vec![0x07, 0x95, 0x03, 0x80, 0xa1, b'1', 0x03, 42])
    );
}

/// A MessagePack record framed with its VarInt length.
fn varint_framed(body: &[u8]) -> Vec<u8> {
    let mut framed = Vec::new();
    switchboard::protocol::framing::write_varint(&mut framed, body.len());
    framed.extend_from_slice(body);
    framed
}

#[tokio::test]
async fn websocket_messagepack_nesting_past_the_limit_fails_the_binding_not_the_connection() {
    let app = Switchboard::builder()
        .hub_with("/probe", Probe::default(), |o| o.enable_detailed_errors = true)
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let mut ws = open(&addr, "/probe").await;
    send_text(&mut ws, "{\"protocol\":\"messagepack\",\"version\":1}\u{1e}").await;
    assert_eq!(next_event(&mut ws).await, Event::Binary(b"{}\x1e".to_vec()));
    // [1, {}, "1", "Depth", [[[…[nil]…]]]], then [1, {}, "2", "Add", [40, 2]] in the same frame.
    let depth_call = |id: u8, depth: usize| {
        let mut body = vec![0x95, 0x01, 0x80, 0xa1, id, 0xa5, b'D', b'e', b'p', b't', b'h', 0x91];
        body.extend(std::iter::repeat_n(0x91, depth));
        body.push(0xc0);
        varint_framed(&body)
    };
    let add = varint_framed(&[0x95, 0x01, 0x80, 0xa1, b'2', 0xa3, b'A', b'd', b'd', 0x92, 40, 2]);
    // 400 arrays deep binds (the reference reads up to 500).
    send_binary(&mut ws, depth_call(b'1', 400)).await;
    let Event::Binary(answer) = next_event(&mut ws).await else {
        panic!("no answer")
    };
    // [3, {}, "1", 3, 400]
    assert_eq!(answer, vec![0x09, 0x95, 0x03, 0x80, 0xa1, b'1', 0x03, 0xcd, 0x01, 0x90]);
    // 15,000 deep: a binding error for that invocation; the next record in the frame runs.
    let mut frame = depth_call(b'1', 15_000);
    frame.extend_from_slice(&add);
    send_binary(&mut ws, frame).await;
    let Event::Binary(answer) = next_event(&mut ws).await else {
        panic!("no answer")
    };
    let expected = "Failed to invoke 'Depth' due to an error on the server. InvalidDataException: Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked.";
    // [3, {}, "1", 1, expected]
    let mut error = vec![0x95, 0x03, 0x80, 0xa1, b'1', 0x01, 0xd9, expected.len() as u8];
    error.extend_from_slice(expected.as_bytes());
    let mut records = varint_framed(&error);
    if answer.len() == records.len() {
        let Event::Binary(next) = next_event(&mut ws).await else {
            panic!("no answer to Add")
        };
        assert_eq!(answer, records);
        assert_eq!(next, vec![0x07, 0x95, 0x03, 0x80, 0xa1, b'2', 0x03, 42]);
    } else {
        records.extend_from_slice(&[0x07, 0x95, 0x03, 0x80, 0xa1, b'2', 0x03, 42]);
        assert_eq!(answer, records);
    }
}

#[tokio::test]
async fn websocket_handshake_errors() {
    let app = Switchboard::builder()
        .hub_with("/probe", Probe::default(), |o| {
            o.maximum_receive_message_size = Some(100);
            o.handshake_timeout = Duration::from_millis(300);
        })
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let cases = [
        (
            "{\"protocol\":\"foo\",\"version\":1}\u{1e}",
            "The protocol 'foo' is not supported.",
        ),
        (
            "{\"protocol\":\"json\",\"version\":3}\u{1e}",
            "The server does not support version 3 of the 'json' protocol.",
        ),
        (
            "{\"version\":1}\u{1e}",
            "An unexpected error occurred during connection handshake.",
        ),
        (
            "not json\u{1e}",
            "An unexpected error occurred during connection handshake.",
        ),
    ];
    for (handshake, error) in cases {
        let mut ws = open(&addr, "/probe").await;
        send_text(&mut ws, handshake).await;
        assert_eq!(next_text(&mut ws).await, format!("{{\"error\":\"{error}\"}}\u{1e}"));
        assert_eq!(next_event(&mut ws).await, Event::Closed(Some(1000)));
    }
    // Versions 0 to 2 are accepted.
    for version in 0..=2 {
        let mut ws = open(&addr, "/probe").await;
        send_text(
            &mut ws,
            &format!("{{\"protocol\":\"json\",\"version\":{version}}}\u{1e}"),
        )
        .await;
        assert_eq!(next_text(&mut ws).await, "{}\u{1e}");
    }
    // Too large, and too slow.
    let mut ws = open(&addr, "/probe").await;
    send_text(&mut ws, &" ".repeat(200)).await;
    assert_eq!(
        next_text(&mut ws).await,
        "{\"error\":\"Handshake was canceled.\"}\u{1e}"
    );
    let mut ws = open(&addr, "/probe").await;
    assert_eq!(
        next_text(&mut ws).await,
        "{\"error\":\"Handshake was canceled.\"}\u{1e}"
    );
}

#[tokio::test]
async fn websocket_malformed_messages_close_only_that_connection() {
    let hub = Probe::default();
    let app = Switchboard::builder()
        .hub_with("/probe", hub, |o| o.enable_detailed_errors = true)
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let mut bystander = connect_json(&addr, "/probe").await;
    let cases = [
        (
            "{\"type\":1,\"target\":\"Echo\"\u{1e}",
            "Connection closed with an error. InvalidDataException: Error reading JSON.",
        ),
        (
            "{\"target\":\"Echo\",\"arguments\":[]}\u{1e}",
            "Connection closed with an error. InvalidDataException: Missing required property 'type'.",
        ),
        (
            "{\"type\":1,\"arguments\":[]}\u{1e}",
            "Connection closed with an error. InvalidDataException: Missing required property 'target'.",
        ),
        (
            "{\"type\":1,\"invocationId\":1,\"target\":\"Echo\",\"arguments\":[]}\u{1e}",
            "Connection closed with an error. InvalidDataException: Expected 'invocationId' to be of type String.",
        ),
        (
            "[1,2,3]\u{1e}",
            "Connection closed with an error. InvalidDataException: Unexpected JSON Token Type 'Array'. Expected a JSON Object.",
        ),
    ];
    for (bad, error) in cases {
        let mut ws = connect_json(&addr, "/probe").await;
        send_text(&mut ws, bad).await;
        let close = expect_close(&mut ws).await;
        assert_eq!(close, json!({"type":7,"error":error,"allowReconnect":true}));
    }
    // Unknown message types are skipped.
    let mut ws = connect_json(&addr, "/probe").await;
    send_text(&mut ws, "{\"type\":99,\"anything\":[1]}\u{1e}").await;
    assert_eq!(invoke(&mut ws, "1", "Echo", json!(["ok"])).await["result"], "ok");
    // Malformed MessagePack.
    let mut ws = open(&addr, "/probe").await;
    send_text(&mut ws, "{\"protocol\":\"messagepack\",\"version\":1}\u{1e}").await;
    assert_eq!(next_event(&mut ws).await, Event::Binary(b"{}\x1e".to_vec()));
    send_binary(&mut ws, vec![0x03, 0x95, 0x01, 0x80]).await;
    match next_event(&mut ws).await {
        Event::Binary(bytes) => {
            let body = bytes.iter().position(|b| b & 0x80 == 0).unwrap() + 1;
            assert_eq!(bytes[body..body + 2], [0x93, 0x07], "a Close message")
        }
        other => panic!("expected a Close message, got {other:?}"),
    }
    assert_eq!(next_event(&mut ws).await, Event::Closed(Some(1000)));
    // The bystander never noticed.
    assert_eq!(
        invoke(&mut bystander, "1", "Echo", json!(["fine"])).await["result"],
        "fine"
    );
}

#[tokio::test]
async fn websocket_oversized_message_closes_with_the_reference_error() {
    let app = Switchboard::builder()
        .hub_with("/probe", Probe::default(), |o| {
            o.maximum_receive_message_size = Some(1024);
            o.enable_detailed_errors = true;
        })
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/probe").await;
    // Exactly at the limit is fine.
    let prefix = "{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"";
    let fill = 1024 - prefix.len() - "\"]}".len();
    let at_limit = format!("{prefix}{}\"]}}\u{1e}", "y".repeat(fill));
    send_text(&mut ws, &at_limit).await;
    assert_eq!(next_record(&mut ws).await["result"].as_str().unwrap().len(), fill);
    send_text(&mut ws, &format!("{prefix}{}\"]}}\u{1e}", "y".repeat(2000))).await;
    let close = expect_close(&mut ws).await;
    assert_eq!(
        close["error"],
        "Connection closed with an error. InvalidDataException: The maximum message size of 1024B was exceeded. The message size can be configured in AddHubOptions."
    );
}

#[tokio::test]
async fn websocket_keep_alive_pings_when_idle() {
    let app = Switchboard::builder()
        .hub_with("/probe", Probe::default(), |o| {
            o.keep_alive_interval = Duration::from_secs(1)
        })
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/probe").await;
    let started = std::time::Instant::now();
    assert_eq!(next_text(&mut ws).await, "{\"type\":6}\u{1e}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "not before the interval"
    );
}

#[tokio::test]
async fn websocket_client_timeout_armed_by_first_ping() {
    let app = Switchboard::builder()
        .hub_with("/probe", Probe::default(), |o| {
            o.keep_alive_interval = Duration::from_secs(1);
            o.client_timeout_interval = Duration::from_secs(2);
            o.enable_detailed_errors = true;
        })
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/probe").await;
    send_text(&mut ws, "{\"type\":6}\u{1e}").await;
    let close = expect_close(&mut ws).await;
    assert_eq!(
        close["error"],
        "Connection closed with an error. OperationCanceledException: Client hasn't sent a message/ping within the configured ClientTimeoutInterval."
    );
    // A client that never pings is not timed out (old clients never ping).
    let mut quiet = connect_json(&addr, "/probe").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        invoke(&mut quiet, "1", "Echo", json!(["alive"])).await["result"],
        "alive"
    );
}

#[tokio::test]
async fn websocket_client_close_message_ends_gracefully() {
    let app = Switchboard::builder().hub("/probe", Probe::default()).build().unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/probe").await;
    send_text(&mut ws, "{\"type\":7}\u{1e}").await;
    assert_eq!(expect_close(&mut ws).await, json!({"type":7}));
}

#[tokio::test]
async fn websocket_parallel_invocations_are_limited_per_client() {
    let app = Switchboard::builder().hub("/probe", Probe::default()).build().unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/probe").await;
    // With the default limit of 1, the quick call waits for the slow one.
    send_text(&mut ws, "{\"type\":1,\"invocationId\":\"slow\",\"target\":\"Sleep\",\"arguments\":[300]}\u{1e}{\"type\":1,\"invocationId\":\"quick\",\"target\":\"Sleep\",\"arguments\":[0]}\u{1e}").await;
    assert_eq!(next_record(&mut ws).await["invocationId"], "slow");
    assert_eq!(next_record(&mut ws).await["invocationId"], "quick");

    let app = Switchboard::builder()
        .hub_with("/probe", Probe::default(), |o| {
            o.maximum_parallel_invocations_per_client = 2
        })
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/probe").await;
    send_text(&mut ws, "{\"type\":1,\"invocationId\":\"slow\",\"target\":\"Sleep\",\"arguments\":[300]}\u{1e}{\"type\":1,\"invocationId\":\"quick\",\"target\":\"Sleep\",\"arguments\":[0]}\u{1e}").await;
    assert_eq!(next_record(&mut ws).await["invocationId"], "quick");
    assert_eq!(next_record(&mut ws).await["invocationId"], "slow");
}

#[tokio::test]
async fn websocket_slow_reader_is_dropped_and_others_continue() {
    let app = Switchboard::builder()
        .hub_with("/probe", Probe::default(), |o| o.max_queued_messages = 16)
        .build()
        .unwrap();
    let handle = app.hub_handle::<Probe>().unwrap();
    let addr = serve(&app).await;
    let mut slow = connect_json(&addr, "/probe").await;
    let slow_id = invoke(&mut slow, "1", "Whoami", json!([])).await["result"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut fast = connect_json(&addr, "/probe").await;
    // The slow client stops reading; 40 MB of broadcasts cannot all fit in socket buffers,
    // so its queue fills and it is closed instead of growing without bound.
    let payload = "z".repeat(64 * 1024);
    let reader = tokio::spawn(async move {
        let mut received = 0usize;
        loop {
            match next_event(&mut fast).await {
                Event::Text(t) => {
                    received += t.matches("\"Flood\"").count();
                    if received >= 600 {
                        return (fast, received);
                    }
                }
                other => panic!("the fast client lost its connection: {other:?}"),
            }
        }
    });
    for _ in 0..600 {
        handle.clients().all().send("Flood", (payload.clone(),)).await.unwrap();
        tokio::task::yield_now().await;
    }
    let (mut fast, received) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received, 600);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while handle.is_connected(&slow_id) {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow client was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        invoke(&mut fast, "2", "Echo", json!(["still fine"])).await["result"],
        "still fine"
    );
    drop(slow);
}

#[tokio::test]
async fn websocket_a_client_that_does_not_read_is_closed_past_its_queued_bytes() {
    // Default options: 600 broadcasts are far fewer than the 4,096 messages a queue may hold,
    // but 600 × 64 KiB = 39 MB is far more than its 4 MiB and the sockets' buffers.
    let app = Switchboard::builder().hub("/probe", Probe::default()).build().unwrap();
    let handle = app.hub_handle::<Probe>().unwrap();
    let addr = serve(&app).await;
    let mut slow = connect_json(&addr, "/probe").await;
    let slow_id = invoke(&mut slow, "1", "Whoami", json!([])).await["result"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let payload = "q".repeat(64 * 1024);
    for _ in 0..600 {
        handle.clients().all().send("Flood", (payload.clone(),)).await.unwrap();
        tokio::task::yield_now().await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while handle.is_connected(&slow_id) {
        assert!(
            std::time::Instant::now() < deadline,
            "the client that does not read was never closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What it reads now ends with the reason, as a count-bound close gives.
    let mut last = serde_json::Value::Null;
    let mut delivered = 0usize;
    while let Event::Text(text) = tokio::time::timeout(WAIT, next_event(&mut slow))
        .await
        .expect("the socket ends")
    {
        for record in text.split('\u{1e}').filter(|r| !r.is_empty()) {
            last = serde_json::from_str(record).unwrap();
            delivered += usize::from(last["target"] == "Flood");
        }
    }
    assert!(
        delivered < 600,
        "only what was queued and buffered arrives ({delivered})"
    );
    assert_eq!(last["type"], 7, "{last}");
    assert_eq!(
        last["error"],
        "Connection closed with an error. The client did not read its messages fast enough: its outbound queue is full."
    );
}

#[tokio::test]
async fn websocket_lifecycle_counts_and_query() {
    let app = Switchboard::builder().hub("/probe", Probe::default()).build().unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/probe?q=v%20w").await;
    let who = invoke(&mut ws, "1", "Whoami", json!([])).await;
    assert_eq!(who["result"]["query"], "v w");
    assert_eq!(who["result"]["id"].as_str().unwrap().len(), 22);
    assert!(who["result"]["user"].is_null());
}

struct Grumpy;

impl Hub for Grumpy {
    type Client = switchboard::Untyped;
    fn methods(_: &mut Methods<Self>) {}

    async fn on_connected(self: Arc<Self>, _cx: HubContext<Self>) -> Result<(), HubError> {
        Err(HubError::exception(
            "InvalidOperationException",
            "Hub OnConnected failed.",
        ))
    }
}

#[tokio::test]
async fn websocket_on_connected_failure_closes_without_reconnect() {
    let app = Switchboard::builder()
        .hub("/plain", Grumpy)
        .hub_with("/detailed", Grumpy, |o| o.enable_detailed_errors = true)
        .build()
        .unwrap();
    let addr = serve(&app).await;
    let mut ws = connect_json(&addr, "/plain").await;
    assert_eq!(
        expect_close(&mut ws).await,
        json!({"type":7,"error":"Connection closed with an error."})
    );
    let mut ws = connect_json(&addr, "/detailed").await;
    assert_eq!(
        expect_close(&mut ws).await,
        json!({"type":7,"error":"Connection closed with an error. InvalidOperationException: Hub OnConnected failed."})
    );
}

/// Counts how often it is serialized.
struct Counted(Arc<AtomicUsize>);

impl serde::Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        serializer.serialize_str("counted")
    }
}

#[tokio::test]
async fn lifetime_send_encodes_once_per_protocol() {
    let app = Switchboard::builder().hub("/probe", Probe::default()).build().unwrap();
    let handle = app.hub_handle::<Probe>().unwrap();
    let addr = serve(&app).await;
    let mut json_clients = Vec::new();
    for _ in 0..3 {
        json_clients.push(connect_json(&addr, "/probe").await);
    }
    let mut msgpack_clients = Vec::new();
    for _ in 0..2 {
        let mut ws = open(&addr, "/probe").await;
        send_text(&mut ws, "{\"protocol\":\"messagepack\",\"version\":1}\u{1e}").await;
        assert_eq!(next_event(&mut ws).await, Event::Binary(b"{}\x1e".to_vec()));
        // [1, {}, "1", "Echo", ["x"]] answered by [3, {}, "1", 3, "x"]
        send_binary(
            &mut ws,
            vec![
                13, 0x95, 1, 0x80, 0xa1, b'1', 0xa4, b'E', b'c', b'h', b'o', 0x91, 0xa1, b'x',
            ],
        )
        .await;
        assert_eq!(
            next_event(&mut ws).await,
            Event::Binary(vec![8, 0x95, 3, 0x80, 0xa1, b'1', 3, 0xa1, b'x'])
        );
        msgpack_clients.push(ws);
    }
    // Everyone is registered once the handshake answered and a call went through.
    for ws in &mut json_clients {
        assert_eq!(invoke(ws, "1", "Echo", json!(["ready"])).await["result"], "ready");
    }
    let count = Arc::new(AtomicUsize::new(0));
    handle
        .clients()
        .all()
        .send("Counted", (Counted(count.clone()),))
        .await
        .unwrap();
    for ws in &mut json_clients {
        assert_eq!(
            next_record(ws).await,
            json!({"type":1,"target":"Counted","arguments":["counted"]})
        );
    }
    for ws in &mut msgpack_clients {
        match next_event(ws).await {
            Event::Binary(bytes) => assert!(bytes.ends_with(b"\xa7counted\x90"), "{bytes:02x?}"),
            other => panic!("expected a MessagePack invocation, got {other:?}"),
        }
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "one encoding per protocol for five recipients"
    );
}

/// A client WebSocket frame, written by hand: `fin`, `opcode`, masked (with a zero mask, so the
/// payload goes as is) unless `masked` is false.
fn raw_frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    assert!(payload.len() < 126);
    frame.push(mask_bit | payload.len() as u8);
    if masked {
        frame.extend_from_slice(&[0, 0, 0, 0]);
    }
    frame.extend_from_slice(payload);
    frame
}

/// Opens a WebSocket to `path` over a plain TCP stream, completes a JSON handshake, sends
/// `bad` and returns the code of the Close frame the server answers with.
async fn close_code_after(addr: &str, path: &str, bad: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let upgrade = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tcp.write_all(&raw_frame(0x1, b"{\"protocol\":\"json\",\"version\":1}\x1e", true))
        .await
        .unwrap();
    tcp.write_all(bad).await.unwrap();
    // Server frames are unmasked and short here: opcode, length, payload.
    loop {
        let mut header = [0u8; 2];
        tokio::time::timeout(WAIT, tcp.read_exact(&mut header))
            .await
            .expect("the server answers")
            .expect("a frame, not the end of the stream");
        let mut payload = vec![0u8; usize::from(header[1] & 0x7f)];
        tcp.read_exact(&mut payload).await.unwrap();
        if header[0] & 0x0f == 0x8 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

#[tokio::test]
async fn websocket_protocol_errors_close_with_the_codes_the_reference_uses() {
    let app = Switchboard::builder().hub("/probe", Probe::default()).build().unwrap();
    let addr = serve(&app).await;
    // A text frame that is not UTF-8: 1007.
    assert_eq!(
        close_code_after(&addr, "/probe", &raw_frame(0x1, b"\xff\xfe", true)).await,
        1007
    );
    // A client frame without a mask: 1002.
    assert_eq!(
        close_code_after(&addr, "/probe", &raw_frame(0x1, b"{}", false)).await,
        1002
    );
    // A reserved opcode: 1002.
    assert_eq!(
        close_code_after(&addr, "/probe", &raw_frame(0x3, b"", true)).await,
        1002
    );
    // A client that closes normally still gets 1000.
    assert_eq!(
        close_code_after(&addr, "/probe", &raw_frame(0x8, &[0x03, 0xe8], true)).await,
        1000
    );
}
