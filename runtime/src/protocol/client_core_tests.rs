//! Deterministic tests of the client core: time is an `Instant` the test advances.

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn config(protocol: Protocol) -> ClientConfig {
    ClientConfig {
        protocol,
        handshake_timeout: 15 * SEC,
        keep_alive_interval: 15 * SEC,
        server_timeout: 30 * SEC,
        max_message_size: None,
    }
}

fn outputs(core: &mut ClientCore) -> Vec<ClientOutput> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn json_ping() -> ClientOutput {
    ClientOutput::KeepAlive(Bytes::from_static(b"{\"type\":6}\x1e"))
}

fn handshake_request(core: &mut ClientCore) -> Bytes {
    match core.poll_queued() {
        Some(ClientOutput::Handshake(request)) => request,
        other => panic!("expected the handshake request, got {other:?}"),
    }
}

/// A JSON client connection whose handshake the server accepted at `t0`, and which sent
/// its first ping then.
fn opened(t0: Instant) -> ClientCore {
    let mut core = ClientCore::new(t0, config(Protocol::Json));
    handshake_request(&mut core);
    core.handle_input(t0, b"{}\x1e");
    assert_eq!(outputs(&mut core), [ClientOutput::Opened]);
    first_ping(&mut core, t0, json_ping());
    core
}

/// The ping due at once after the handshake (at `t0`), at the shell's first timer check.
fn first_ping(core: &mut ClientCore, t0: Instant, ping: ClientOutput) {
    assert_eq!(core.poll_timeout(), Some(t0));
    core.handle_timeout(t0);
    assert_eq!(outputs(core), [ping]);
    assert_eq!(core.poll_timeout(), Some(t0 + 15 * SEC));
}

fn invocation(n: u32) -> String {
    format!("{{\"type\":1,\"target\":\"Hi\",\"arguments\":[{n}]}}\u{1e}")
}

fn arguments(outputs: &[ClientOutput]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|output| match output {
            ClientOutput::Message(HubMessage::Invocation(invocation)) => {
                Some(String::from_utf8_lossy(invocation.arguments[0].bytes()).into_owned())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_handshake_request_comes_first_and_asks_for_version_1() {
    let t0 = Instant::now();
    let mut json = ClientCore::new(t0, config(Protocol::Json));
    assert_eq!(
        handshake_request(&mut json),
        Bytes::from_static(b"{\"protocol\":\"json\",\"version\":1}\x1e")
    );
    assert_eq!(json.poll_output(), None, "then nothing until the server answers");
    let mut msgpack = ClientCore::new(t0, config(Protocol::MessagePack));
    assert_eq!(
        handshake_request(&mut msgpack),
        Bytes::from_static(b"{\"protocol\":\"messagepack\",\"version\":1}\x1e")
    );
    assert_eq!(msgpack.protocol(), Protocol::MessagePack);
}

#[test]
fn handshake_response_in_pieces_with_messages_behind_it() {
    let t0 = Instant::now();
    let mut core = ClientCore::new(t0, config(Protocol::Json));
    handshake_request(&mut core);
    core.handle_input(t0, b"{");
    assert_eq!(core.poll_output(), None);
    // The response and the first records share a piece; a record spans two.
    let mut rest = b"}\x1e".to_vec();
    rest.extend_from_slice(invocation(1).as_bytes());
    rest.extend_from_slice(&invocation(2).as_bytes()[..10]);
    core.handle_input(t0 + SEC, &rest);
    // Opened comes out of the handshake's queue alone: the messages wait for the shell.
    assert_eq!(core.poll_queued(), Some(ClientOutput::Opened));
    assert_eq!(core.poll_queued(), None);
    assert_eq!(arguments(&outputs(&mut core)), ["1"]);
    core.handle_input(t0 + SEC, &invocation(2).as_bytes()[10..]);
    assert_eq!(arguments(&outputs(&mut core)), ["2"]);
}

#[test]
fn handshake_refused_or_unreadable() {
    let t0 = Instant::now();
    let answer = |input: &[u8], max_message_size: Option<usize>| {
        let mut core = ClientCore::new(
            t0,
            ClientConfig {
                max_message_size,
                ..config(Protocol::Json)
            },
        );
        handshake_request(&mut core);
        core.handle_input(t0, input);
        let out = outputs(&mut core);
        assert!(core.is_closed());
        assert_eq!(core.poll_timeout(), None);
        out
    };
    let closed = |closing| vec![ClientOutput::Close(closing)];
    assert_eq!(
        answer(
            b"{\"error\":\"The protocol 'messagepack' is not supported.\"}\x1e",
            None
        ),
        closed(ClientClosing::Refused(
            "The protocol 'messagepack' is not supported.".to_owned()
        ))
    );
    assert_eq!(
        answer(b"not json\x1e", None),
        closed(ClientClosing::Invalid(ProtocolError::invalid("Error reading JSON.")))
    );
    assert_eq!(
        answer(b"{\"type\":6}\x1e", None),
        closed(ClientClosing::Invalid(ProtocolError::invalid(
            "Expected a handshake response from the server."
        )))
    );
    assert_eq!(
        answer(&[b' '; 100], Some(50)),
        closed(ClientClosing::Invalid(ProtocolError::MessageTooLarge { max: 50 }))
    );
}

#[test]
fn handshake_timeout() {
    let t0 = Instant::now();
    let mut core = ClientCore::new(t0, config(Protocol::Json));
    handshake_request(&mut core);
    assert_eq!(core.poll_timeout(), Some(t0 + 15 * SEC));
    core.handle_input(t0 + 14 * SEC, b"{");
    core.handle_timeout(t0 + 14 * SEC);
    assert_eq!(core.poll_output(), None, "not before the deadline, input or not");
    assert_eq!(core.poll_timeout(), Some(t0 + 15 * SEC), "input does not move it");
    core.handle_timeout(t0 + 15 * SEC);
    assert_eq!(
        outputs(&mut core),
        [ClientOutput::Close(ClientClosing::HandshakeTimeout)]
    );
    assert!(core.is_closed());
    assert_eq!(core.poll_timeout(), None);
    core.handle_input(t0 + 16 * SEC, b"}\x1e");
    assert_eq!(core.poll_output(), None, "nothing is read once closed");
    assert_eq!(HANDSHAKE_TIMEOUT, "The server did not answer the handshake in time.");
}

#[test]
fn keep_alive_pings_after_the_interval_without_sends() {
    let t0 = Instant::now();
    let mut core = opened(t0);
    assert_eq!(core.poll_timeout(), Some(t0 + 15 * SEC));
    core.handle_timeout(t0 + 14 * SEC);
    assert_eq!(core.poll_output(), None);
    // Receiving does not put the ping off; sending does.
    core.handle_input(t0 + 12 * SEC, invocation(1).as_bytes());
    assert_eq!(arguments(&outputs(&mut core)), ["1"]);
    core.note_sent(t0 + 10 * SEC);
    assert_eq!(core.poll_timeout(), Some(t0 + 25 * SEC));
    core.handle_timeout(t0 + 24 * SEC);
    assert_eq!(core.poll_output(), None);
    core.handle_timeout(t0 + 25 * SEC);
    assert_eq!(outputs(&mut core), [json_ping()]);
    // The ping counts as sent, whether or not the shell had room for it.
    assert_eq!(core.poll_timeout(), Some(t0 + 40 * SEC));
    core.handle_timeout(t0 + 26 * SEC);
    assert_eq!(core.poll_output(), None, "one ping per interval");
    assert!(!core.is_closed());
}

#[test]
fn a_send_before_the_first_ping_does_for_it() {
    let t0 = Instant::now();
    let mut core = ClientCore::new(t0, config(Protocol::Json));
    handshake_request(&mut core);
    core.handle_input(t0, b"{}\x1e");
    assert_eq!(outputs(&mut core), [ClientOutput::Opened]);
    core.note_sent(t0);
    core.handle_timeout(t0);
    assert_eq!(core.poll_output(), None);
    assert_eq!(core.poll_timeout(), Some(t0 + 15 * SEC));
}

#[test]
fn keep_alive_in_messagepack() {
    let t0 = Instant::now();
    let mut core = ClientCore::new(t0, config(Protocol::MessagePack));
    handshake_request(&mut core);
    core.handle_input(t0, b"{}\x1e");
    let ping = ClientOutput::KeepAlive(Bytes::from_static(&[2, 0x91, 6]));
    assert_eq!(outputs(&mut core), [ClientOutput::Opened]);
    first_ping(&mut core, t0, ping.clone());
    core.handle_timeout(t0 + 15 * SEC);
    assert_eq!(outputs(&mut core), [ping]);
}

#[test]
fn server_timeout_without_receives() {
    let t0 = Instant::now();
    let mut core = opened(t0);
    core.note_sent(t0 + 20 * SEC);
    core.handle_timeout(t0 + 20 * SEC);
    assert_eq!(core.poll_output(), None);
    // Any frame counts, data or not; sending does not.
    core.note_received(t0 + 10 * SEC);
    core.handle_input(t0 + 20 * SEC, b"{\"type\":6}\x1e");
    assert_eq!(core.poll_output(), None, "a ping is the core's");
    core.note_sent(t0 + 45 * SEC);
    assert_eq!(core.poll_timeout(), Some(t0 + 50 * SEC));
    core.handle_timeout(t0 + 49 * SEC);
    assert_eq!(core.poll_output(), None);
    core.handle_timeout(t0 + 50 * SEC);
    assert_eq!(outputs(&mut core), [ClientOutput::Close(ClientClosing::ServerTimeout)]);
    assert!(core.is_closed());
    assert_eq!(core.poll_timeout(), None);
    core.handle_input(t0 + 51 * SEC, invocation(1).as_bytes());
    assert_eq!(core.poll_output(), None, "nothing is read once closed");
    assert_eq!(
        SERVER_TIMEOUT,
        "Server timeout elapsed without receiving a message from the server."
    );
}

#[test]
fn server_timeout_and_a_due_ping_at_once() {
    let t0 = Instant::now();
    let mut core = opened(t0);
    core.handle_timeout(t0 + 30 * SEC);
    assert_eq!(
        outputs(&mut core),
        [json_ping(), ClientOutput::Close(ClientClosing::ServerTimeout)]
    );
}

#[test]
fn messages_pass_and_the_servers_close_ends() {
    let t0 = Instant::now();
    let mut core = opened(t0);
    let mut input = invocation(1).into_bytes();
    input.extend_from_slice(b"{\"type\":3,\"invocationId\":\"0\",\"result\":5}\x1e");
    input.extend_from_slice(b"{\"type\":2,\"invocationId\":\"1\",\"item\":6}\x1e");
    input.extend_from_slice(b"{\"type\":99}\x1e");
    input.extend_from_slice(b"{\"type\":7,\"error\":\"bye\",\"allowReconnect\":true}\x1e");
    input.extend_from_slice(invocation(2).as_bytes());
    core.handle_input(t0, &input);
    let out = outputs(&mut core);
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(arguments(&out), ["1"], "nothing is read after the Close");
    assert!(matches!(&out[1], ClientOutput::Message(HubMessage::Completion(c)) if c.invocation_id == "0"));
    assert!(matches!(&out[2], ClientOutput::Message(HubMessage::StreamItem(i)) if i.invocation_id == "1"));
    assert_eq!(
        out[3],
        ClientOutput::Close(ClientClosing::Closed {
            error: Some("bye".to_owned()),
            allow_reconnect: true,
        })
    );
    assert!(core.is_closed());

    let mut core = opened(t0);
    core.handle_input(t0, b"{\"type\":7}\x1e");
    assert_eq!(
        outputs(&mut core),
        [ClientOutput::Close(ClientClosing::Closed {
            error: None,
            allow_reconnect: false,
        })]
    );
}

#[test]
fn a_broken_record_ends_the_connection() {
    let t0 = Instant::now();
    let mut core = opened(t0);
    core.handle_input(t0, b"{\"type\":1,\"target\":5}\x1e");
    match outputs(&mut core).as_slice() {
        [ClientOutput::Close(ClientClosing::Invalid(ProtocolError::InvalidData(_)))] => {}
        other => panic!("expected the end of an invalid record, got {other:?}"),
    }
    assert!(core.is_closed());
}

#[test]
fn records_within_the_size_limit() {
    let t0 = Instant::now();
    let mut core = ClientCore::new(
        t0,
        ClientConfig {
            max_message_size: Some(64),
            ..config(Protocol::Json)
        },
    );
    handshake_request(&mut core);
    core.handle_input(t0, b"{}\x1e");
    assert_eq!(outputs(&mut core), [ClientOutput::Opened]);
    core.handle_input(t0, invocation(1).as_bytes());
    assert_eq!(arguments(&outputs(&mut core)), ["1"]);
    core.handle_input(t0, &[b' '; 100]);
    assert_eq!(
        outputs(&mut core),
        [ClientOutput::Close(ClientClosing::Invalid(
            ProtocolError::MessageTooLarge { max: 64 }
        ))]
    );
}
