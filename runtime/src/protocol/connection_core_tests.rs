//! Deterministic tests of the connection core: time is an `Instant` the test advances.

use super::*;
use crate::protocol::replay_buffer::SEQUENCE_TOO_LARGE;

const SEC: Duration = Duration::from_secs(1);

fn config() -> Config {
    Config {
        handshake_timeout: 15 * SEC,
        keep_alive_interval: Some(15 * SEC),
        client_timeout: 30 * SEC,
        disconnect_timeout: 5 * SEC,
        max_message_size: Some(1024),
        ..Config::default()
    }
}

fn outputs(core: &mut ConnectionCore) -> Vec<Output> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn transmit(text: &str) -> Output {
    Output::Transmit(Bytes::copy_from_slice(text.as_bytes()))
}

fn refused(text: &str) -> Vec<Output> {
    vec![
        transmit(&format!("{{\"error\":\"{text}\"}}\u{1e}")),
        Output::Close(Closing::TransportClosed),
    ]
}

/// A hub connection after a JSON handshake of `version` at `t0`.
fn opened(t0: Instant, version: i32, stateful: Option<usize>) -> ConnectionCore {
    let mut core = ConnectionCore::new(t0, stateful);
    core.start_hub(t0, config());
    let request = format!("{{\"protocol\":\"json\",\"version\":{version}}}\u{1e}");
    core.handle_input(t0, request.as_bytes());
    assert_eq!(
        outputs(&mut core),
        vec![Output::Opened(Protocol::Json), transmit("{}\u{1e}")]
    );
    core
}

fn invocation(n: u32) -> String {
    format!("{{\"type\":1,\"target\":\"A\",\"arguments\":[{n}]}}\u{1e}")
}

fn targets(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Message(HubMessage::Invocation(invocation)) => {
                Some(String::from_utf8_lossy(invocation.arguments[0].bytes()).into_owned())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn handshake_accepted_in_pieces_with_messages_behind_it() {
    let t0 = Instant::now();
    let mut core = ConnectionCore::new(t0, None);
    core.start_hub(t0, config());
    core.handle_input(t0, b"{\"protocol\":\"js");
    assert_eq!(core.poll_output(), None);
    let mut rest = b"on\",\"version\":1}\x1e".to_vec();
    rest.extend_from_slice(invocation(7).as_bytes());
    core.handle_input(t0 + SEC, &rest);
    let out = outputs(&mut core);
    assert_eq!(out[..2], [Output::Opened(Protocol::Json), transmit("{}\u{1e}")]);
    assert_eq!(targets(&out), ["7"], "the bytes after the handshake are hub messages");
    assert!(!core.reconnects());
}

#[test]
fn handshake_timeout() {
    let t0 = Instant::now();
    let mut core = ConnectionCore::new(t0, None);
    core.start_hub(t0, config());
    assert_eq!(core.poll_timeout(), Some(t0 + 15 * SEC));
    core.handle_input(t0 + 14 * SEC, b"{\"protocol\"");
    core.handle_timeout(t0 + 14 * SEC);
    assert_eq!(core.poll_output(), None, "not before the deadline, input or not");
    core.handle_timeout(t0 + 15 * SEC);
    assert_eq!(outputs(&mut core), refused(HANDSHAKE_CANCELED));
    assert!(core.is_closed());
    assert_eq!(core.poll_timeout(), None);
    core.handle_input(t0 + 16 * SEC, b":\"json\",\"version\":1}\x1e");
    assert_eq!(core.poll_output(), None, "nothing is read once closed");
}

#[test]
fn handshake_refusals() {
    let t0 = Instant::now();
    let refuse = |config: Config, input: &[u8]| {
        let mut core = ConnectionCore::new(t0, None);
        core.start_hub(t0, config);
        core.handle_input(t0, input);
        outputs(&mut core)
    };
    let large = vec![b'x'; 2000];
    assert_eq!(refuse(config(), &large), refused(HANDSHAKE_CANCELED));
    assert_eq!(refuse(config(), b"[]\x1e"), refused(UNEXPECTED_HANDSHAKE_ERROR));
    let detailed = Config {
        detailed_errors: true,
        ..config()
    };
    assert_eq!(
        refuse(detailed, b"[]\x1e"),
        refused(&format!(
            "{UNEXPECTED_HANDSHAKE_ERROR} InvalidDataException: Unexpected JSON Token Type 'Array'. Expected a JSON Object."
        ))
    );
    assert_eq!(
        refuse(config(), b"{\"protocol\":\"xml\",\"version\":1}\x1e"),
        refused("The protocol 'xml' is not supported.")
    );
    let mut json_only = config();
    json_only.set_supported_protocols(&[Protocol::Json]);
    assert_eq!(
        refuse(json_only, b"{\"protocol\":\"messagepack\",\"version\":1}\x1e"),
        refused("The protocol 'messagepack' is not supported.")
    );
    assert_eq!(
        refuse(config(), b"{\"protocol\":\"json\",\"version\":3}\x1e"),
        refused("The server does not support version 3 of the 'json' protocol.")
    );
    let text_only = Config {
        format_supported: |format| format == TransferFormat::Text,
        ..config()
    };
    assert_eq!(
        refuse(text_only, b"{\"protocol\":\"messagepack\",\"version\":1}\x1e"),
        refused(
            "Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format."
        )
    );
}

#[test]
fn keep_alive_due_after_the_interval_without_sending() {
    let t0 = Instant::now();
    let mut core = opened(t0, 1, None);
    assert_eq!(core.poll_timeout(), Some(t0 + 15 * SEC));
    core.handle_timeout(t0 + 14 * SEC);
    assert_eq!(core.poll_output(), None);
    core.note_sent(t0 + 10 * SEC);
    assert_eq!(
        core.poll_timeout(),
        Some(t0 + 25 * SEC),
        "sending resets the keep-alive"
    );
    core.handle_timeout(t0 + 24 * SEC);
    assert_eq!(core.poll_output(), None);
    core.handle_timeout(t0 + 25 * SEC);
    assert_eq!(
        outputs(&mut core),
        vec![Output::KeepAlive(Bytes::from_static(b"{\"type\":6}\x1e"))]
    );
    // Until something is sent, each check finds the keep-alive due again.
    core.handle_timeout(t0 + 26 * SEC);
    assert_eq!(outputs(&mut core).len(), 1);

    // Without an interval (long polling) there are no pings.
    let mut core = ConnectionCore::new(t0, None);
    core.start_hub(
        t0,
        Config {
            keep_alive_interval: None,
            ..config()
        },
    );
    core.handle_input(t0, b"{\"protocol\":\"json\",\"version\":1}\x1e");
    outputs(&mut core);
    assert_eq!(core.poll_timeout(), None);
    core.handle_timeout(t0 + 100 * SEC);
    assert_eq!(core.poll_output(), None);
}

#[test]
fn a_drained_connection_holds_no_output_queue() {
    let t0 = Instant::now();
    let mut core = opened(t0, 1, None);
    assert_eq!(core.outputs.capacity(), 0, "the handshake's outputs are let go");
    core.handle_timeout(t0 + 15 * SEC);
    assert_eq!(outputs(&mut core).len(), 1, "a ping");
    assert_eq!(core.outputs.capacity(), 0);
}

#[test]
fn stale_activity_stamps_change_nothing() {
    let t0 = Instant::now();
    let mut core = opened(t0, 1, None);
    core.handle_input(t0 + 20 * SEC, b"{\"type\":6}\x1e");
    core.note_sent(t0 + 20 * SEC);
    // A transport's stamps read later may be older than what the core saw itself.
    core.note_received(t0 + 5 * SEC);
    core.note_sent(t0 + 5 * SEC);
    assert_eq!(
        core.poll_timeout(),
        Some(t0 + 35 * SEC),
        "the ping after the latest send"
    );
    core.handle_timeout(t0 + 34 * SEC);
    assert_eq!(core.poll_output(), None, "nor a timeout counted from the stale receive");
}

#[test]
fn client_timeout_armed_by_the_first_ping() {
    let t0 = Instant::now();
    let mut core = opened(t0, 1, None);
    core.note_sent(t0 + 100 * SEC);
    core.handle_timeout(t0 + 100 * SEC);
    assert_eq!(core.poll_output(), None, "a client that never pings is not timed out");
    core.handle_input(t0 + 100 * SEC, b"{\"type\":6}\x1e");
    assert_eq!(core.poll_output(), None, "pings are not dispatched");
    assert_eq!(core.poll_timeout(), Some(t0 + 115 * SEC));
    core.note_sent(t0 + 125 * SEC);
    assert_eq!(core.poll_timeout(), Some(t0 + 130 * SEC));
    core.handle_timeout(t0 + 129 * SEC);
    assert_eq!(core.poll_output(), None);
    core.handle_timeout(t0 + 130 * SEC);
    assert_eq!(
        outputs(&mut core),
        vec![Output::Close(Closing::Failed {
            exception_type: "OperationCanceledException",
            message: CLIENT_TIMEOUT.to_owned(),
            allow_reconnect: true,
        })]
    );
    assert!(core.is_closed());
}

#[test]
fn a_connection_may_have_its_own_disconnect_timeout() {
    let t0 = Instant::now();
    let shared = Arc::new(config());
    let mut core = ConnectionCore::new(t0, None);
    core.start_raw(shared.clone());
    core.set_disconnect_timeout(SEC);
    assert_eq!(shared.disconnect_timeout, 5 * SEC, "the shared settings stay");
    core.transport_detached(t0);
    assert_eq!(core.poll_timeout(), Some(t0 + SEC));
    core.handle_timeout(t0 + SEC);
    assert_eq!(outputs(&mut core), vec![Output::Close(Closing::TransportClosed)]);
}

#[test]
fn disconnect_timeout_without_a_transport() {
    let t0 = Instant::now();
    let mut core = opened(t0, 1, None);
    core.note_sent(t0 + 3 * SEC);
    core.transport_detached(t0 + SEC);
    assert_eq!(core.poll_timeout(), Some(t0 + 6 * SEC));
    core.handle_timeout(t0 + 5 * SEC);
    assert_eq!(core.poll_output(), None);
    core.transport_attached();
    core.handle_timeout(t0 + 7 * SEC);
    assert_eq!(core.poll_output(), None, "a transport came back in time");
    core.transport_detached(t0 + 8 * SEC);
    core.handle_timeout(t0 + 13 * SEC);
    assert_eq!(outputs(&mut core), vec![Output::Close(Closing::TransportClosed)]);

    // A raw connection has only this timer.
    let mut raw = ConnectionCore::new(t0, None);
    raw.start_raw(config());
    assert_eq!(raw.poll_timeout(), None);
    raw.handle_timeout(t0 + 100 * SEC);
    assert_eq!(raw.poll_output(), None);
    raw.transport_detached(t0);
    raw.handle_timeout(t0 + 5 * SEC);
    assert_eq!(outputs(&mut raw), vec![Output::Close(Closing::TransportClosed)]);
}

#[test]
fn a_messagepack_length_prefix_past_2gb_fails_with_a_format_exception() {
    let t0 = Instant::now();
    let mut core = ConnectionCore::new(t0, None);
    core.start_hub(t0, config());
    core.handle_input(t0, b"{\"protocol\":\"messagepack\",\"version\":1}\x1e");
    assert_eq!(
        outputs(&mut core),
        vec![Output::Opened(Protocol::MessagePack), transmit("{}\u{1e}")]
    );
    // 2^35, in five VarInt bytes and a sixth.
    core.handle_input(t0, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_eq!(
        outputs(&mut core),
        vec![Output::Close(Closing::Failed {
            exception_type: "FormatException",
            message: "Messages over 2GB in size are not supported.".to_owned(),
            allow_reconnect: true,
        })]
    );
}

#[test]
fn oversized_and_malformed_messages_fail_the_connection() {
    let t0 = Instant::now();
    let mut core = opened(t0, 1, None);
    core.handle_input(t0, &[b' '; 1100]);
    assert_eq!(
        outputs(&mut core),
        vec![Output::Close(Closing::Failed {
            exception_type: "InvalidDataException",
            message:
                "The maximum message size of 1024B was exceeded. The message size can be configured in AddHubOptions."
                    .to_owned(),
            allow_reconnect: true,
        })]
    );
    let mut core = opened(t0, 1, None);
    core.handle_input(t0, b"{\"type\":1,\x1e");
    assert!(matches!(
        outputs(&mut core)[..],
        [Output::Close(Closing::Failed {
            exception_type: "InvalidDataException",
            allow_reconnect: true,
            ..
        })]
    ));
}

#[test]
fn the_clients_close_ends_gracefully() {
    let t0 = Instant::now();
    let mut core = opened(t0, 1, None);
    let mut input = invocation(1).into_bytes();
    input.extend_from_slice(b"{\"type\":7,\"error\":\"bye\"}\x1e");
    input.extend_from_slice(invocation(2).as_bytes());
    core.handle_input(t0, &input);
    let out = outputs(&mut core);
    assert_eq!(targets(&out), ["1"], "nothing after the Close is read");
    assert_eq!(
        out.last(),
        Some(&Output::Close(Closing::Graceful {
            error: Some("bye".to_owned())
        }))
    );
}

#[test]
fn stateful_needs_negotiate_and_version_2() {
    let t0 = Instant::now();
    assert!(!opened(t0, 2, None).reconnects());
    assert!(!opened(t0, 1, Some(100)).reconnects());
    let core = opened(t0, 2, Some(100));
    assert!(core.reconnects());
}

#[test]
fn stateful_records_numbered_acked_and_replayed() {
    let t0 = Instant::now();
    let mut core = opened(t0, 2, Some(1000));
    // Only tracked records are numbered; an untracked ping is not kept.
    let mut sent = invocation(1).into_bytes();
    sent.extend_from_slice(b"{\"type\":6}\x1e");
    sent.extend_from_slice(invocation(2).as_bytes());
    core.record_sent(&Bytes::from(sent));
    core.record_sent(&Bytes::from(invocation(3)));
    assert!(core.has_room());
    // The client acknowledges the first: it leaves the buffer.
    core.handle_input(t0, b"{\"type\":8,\"sequenceId\":1}\x1e");
    assert_eq!(outputs(&mut core), vec![Output::Acknowledged]);
    // A new socket replays from the oldest unacknowledged record.
    core.reconnected();
    let mut expected = b"{\"type\":9,\"sequenceId\":2}\x1e".to_vec();
    expected.extend_from_slice(invocation(2).as_bytes());
    expected.extend_from_slice(invocation(3).as_bytes());
    assert_eq!(core.resume(), Some(Bytes::from(expected)));
    core.handle_input(t0, b"{\"type\":8,\"sequenceId\":3}\x1e");
    assert_eq!(outputs(&mut core), vec![Output::Acknowledged]);
    assert_eq!(
        core.resume(),
        Some(Bytes::from_static(b"{\"type\":9,\"sequenceId\":4}\x1e"))
    );
}

#[test]
fn stateful_incoming_duplicates_dropped_after_a_sequence() {
    let t0 = Instant::now();
    let mut core = opened(t0, 2, Some(100));
    let input: String = (1..=3).map(invocation).collect();
    core.handle_input(t0, input.as_bytes());
    assert_eq!(targets(&outputs(&mut core)), ["1", "2", "3"]);
    assert_eq!(
        core.take_ack(),
        Some(Bytes::from_static(b"{\"type\":8,\"sequenceId\":3}\x1e"))
    );
    assert_eq!(core.take_ack(), None, "nothing new to acknowledge");
    // A new socket: nothing tracked before the client's Sequence; then the client replays
    // from 2, and only 4 is new.
    core.reconnected();
    core.handle_input(t0, invocation(9).as_bytes());
    assert_eq!(core.poll_output(), None);
    let mut input = b"{\"type\":9,\"sequenceId\":2}\x1e".to_vec();
    for n in 2..=4 {
        input.extend_from_slice(invocation(n).as_bytes());
    }
    core.handle_input(t0, &input);
    assert_eq!(targets(&outputs(&mut core)), ["4"]);
    assert_eq!(
        core.take_ack(),
        Some(Bytes::from_static(b"{\"type\":8,\"sequenceId\":4}\x1e"))
    );
}

#[test]
fn stateful_sequence_beyond_what_was_received() {
    let t0 = Instant::now();
    let mut core = opened(t0, 2, Some(100));
    core.handle_input(t0, invocation(1).as_bytes());
    outputs(&mut core);
    core.reconnected();
    core.handle_input(t0, b"{\"type\":9,\"sequenceId\":3}\x1e");
    assert_eq!(
        outputs(&mut core),
        vec![Output::Close(Closing::Failed {
            exception_type: "InvalidOperationException",
            message: SEQUENCE_TOO_LARGE.to_owned(),
            allow_reconnect: false,
        })]
    );
}

#[test]
fn stateful_buffer_limit() {
    let t0 = Instant::now();
    let one = invocation(1);
    let mut core = opened(t0, 2, Some(one.len() * 2));
    core.record_sent(&Bytes::from(one.clone()));
    assert!(core.has_room());
    core.record_sent(&Bytes::from(one.clone()));
    assert!(!core.has_room(), "full at the limit: senders wait");
    core.record_sent(&Bytes::from(one));
    core.handle_input(t0, b"{\"type\":8,\"sequenceId\":1}\x1e");
    assert_eq!(outputs(&mut core), vec![Output::Acknowledged]);
    assert!(!core.has_room(), "still at the limit");
    core.handle_input(t0, b"{\"type\":8,\"sequenceId\":2}\x1e");
    outputs(&mut core);
    assert!(core.has_room());
    // Without stateful reconnect nothing is kept and there is always room.
    let mut plain = opened(t0, 2, None);
    plain.record_sent(&Bytes::from(invocation(1)));
    assert!(plain.has_room());
    assert_eq!(plain.resume(), None);
}

fn json(records: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        out.extend_from_slice(record.as_bytes());
        out.push(framing::RECORD_SEPARATOR);
    }
    out
}

#[test]
fn raw_bytes_pass_through() {
    let t0 = Instant::now();
    let mut core = ConnectionCore::new(t0, Some(100));
    core.start_raw(config());
    core.handle_input(t0, b"abc");
    core.unread(b"12");
    assert_eq!(outputs(&mut core), vec![Output::Received(Bytes::from_static(b"12abc"))]);
    let frame = Bytes::from_static(b"frame");
    core.handle_input_bytes(t0, frame.clone());
    assert_eq!(core.poll_output(), Some(Output::Received(frame.clone())));
    // What arrives before the last bytes were taken follows them, in order.
    core.handle_input_bytes(t0, frame.clone());
    core.handle_input_bytes(t0, Bytes::from_static(b"next"));
    assert_eq!(
        outputs(&mut core),
        vec![Output::Received(frame), Output::Received(Bytes::from_static(b"next"))]
    );
    assert!(!core.accept_stateful_raw(Protocol::Json) || core.reconnects());
    let mut plain = ConnectionCore::new(t0, None);
    plain.start_raw(config());
    assert!(!plain.accept_stateful_raw(Protocol::Json), "not offered by negotiate");
}

#[test]
fn raw_stateful_records_acks_sequences_and_duplicates() {
    let t0 = Instant::now();
    let mut core = ConnectionCore::new(t0, Some(1000));
    core.start_raw(Config {
        max_message_size: None,
        ..config()
    });
    assert!(core.accept_stateful_raw(Protocol::Json));
    let invocation = r#"{"arguments":[1],"target":"A","type":1}"#;
    let ping = r#"{"type":6}"#;

    // Tracked messages are passed on and counted; an Ack from the client is consumed; a
    // partial record waits for the rest.
    core.record_sent(&Bytes::from_static(b"{\"type\":1}\x1e"));
    let mut input = json(&[invocation, r#"{"type":8,"sequenceId":1}"#, ping]);
    input.extend_from_slice(b"{\"type\":1,\"tar");
    core.handle_input(t0, &input);
    assert_eq!(
        outputs(&mut core),
        vec![
            Output::Acknowledged,
            Output::Received(Bytes::from(json(&[invocation, ping])))
        ]
    );
    assert_eq!(
        core.resume(),
        Some(Bytes::from_static(b"{\"type\":9,\"sequenceId\":2}\x1e")),
        "the Ack released what was sent"
    );
    assert_eq!(
        core.take_ack(),
        Some(Bytes::from_static(b"{\"type\":8,\"sequenceId\":1}\x1e"))
    );

    // After a new socket: nothing tracked passes before the client's Sequence, and what
    // the client replays that was already passed on is dropped.
    let mut core2 = ConnectionCore::new(t0, Some(1000));
    core2.start_raw(config());
    core2.accept_stateful_raw(Protocol::Json);
    core2.handle_input(t0, &json(&[invocation]));
    assert_eq!(
        outputs(&mut core2),
        vec![Output::Received(Bytes::from(json(&[invocation])))]
    );
    core2.reconnected();
    let second = r#"{"arguments":[2],"target":"A","type":1}"#;
    core2.handle_input(t0, &json(&[r#"{"type":9,"sequenceId":1}"#, invocation, second]));
    assert_eq!(
        outputs(&mut core2),
        vec![Output::Received(Bytes::from(json(&[second])))],
        "the replayed first invocation is dropped"
    );

    // A Sequence past what was received ends the connection with the reference text.
    core2.reconnected();
    core2.handle_input(t0, &json(&[r#"{"type":9,"sequenceId":10}"#]));
    let close = format!("{{\"type\":7,\"error\":\"Connection closed with an error. {SEQUENCE_TOO_LARGE}\"}}\u{1e}");
    assert_eq!(
        outputs(&mut core2),
        vec![transmit(&close), Output::Close(Closing::Graceful { error: None })]
    );
}

#[test]
fn raw_stateful_records_refuse_oversized_and_malformed_input() {
    let t0 = Instant::now();
    let raw = |max| {
        let mut core = ConnectionCore::new(t0, Some(1000));
        core.start_raw(Config {
            max_message_size: max,
            ..config()
        });
        core.accept_stateful_raw(Protocol::MessagePack);
        core
    };
    let mut prefix = Vec::new();
    framing::write_varint(&mut prefix, 1 << 20);
    let mut core = raw(Some(32 * 1024));
    core.handle_input(t0, &prefix);
    let out = outputs(&mut core);
    assert!(
        matches!(
            out[..],
            [Output::Transmit(_), Output::Close(Closing::Graceful { error: None })]
        ),
        "{out:?}"
    );
    // An Ack whose body is not a valid message is an error, not a panic.
    let mut core = raw(None);
    core.handle_input(t0, &[0x02, 0x92, 0x08]);
    let out = outputs(&mut core);
    assert!(matches!(out[..], [Output::Transmit(_), Output::Close(_)]), "{out:?}");
}
