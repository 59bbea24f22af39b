//! Both ends of a link, driven by hand: bytes in, `now` moved on, bytes out.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::protocol::service::{ConnectionData, Ping, PingKind};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Every message in `bytes`, parsed.
fn messages(bytes: &[u8]) -> Vec<ServiceMessage> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(record) = split_binary_record(&mut buf, None).unwrap() {
        out.extend(crate::protocol::service::parse(record).unwrap());
    }
    assert!(buf.is_empty(), "a partial record was written");
    out
}

/// Everything the link has to write, parsed.
fn written(link: &mut ServiceLink, now: Instant) -> Vec<ServiceMessage> {
    let mut out = Vec::new();
    while let Some(batch) = link.poll_transmit(now) {
        out.extend(messages(&batch));
    }
    out
}

fn events(link: &mut ServiceLink) -> Vec<LinkEvent> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

fn data(id: &str, payload: &'static [u8]) -> ServiceMessage {
    ServiceMessage::ConnectionData(ConnectionData {
        connection_id: id.into(),
        payload: Bytes::from_static(payload),
        ..ConnectionData::default()
    })
}

fn is_keep_alive(message: &ServiceMessage) -> bool {
    matches!(message, ServiceMessage::Ping(p) if p.kind() == PingKind::KeepAlive)
}

/// An app server's end and a service's end with the handshake done, bytes exchanged between
/// them at `t0`.
fn linked(t0: Instant) -> (ServiceLink, ServiceLink) {
    let mut app = ServiceLink::app_server(HandshakeRequest::new(), LinkConfig::default(), t0);
    let mut service = ServiceLink::service(LinkConfig::default(), t0);
    let request = app.poll_transmit(t0).unwrap();
    service.handle_input(t0, &request);
    assert!(matches!(service.poll_event(), Some(LinkEvent::HandshakeRequested(_))));
    service.accept("c1");
    let response = service.poll_transmit(t0).unwrap();
    app.handle_input(t0, &response);
    assert!(matches!(app.poll_event(), Some(LinkEvent::Connected(_))));
    (app, service)
}

#[test]
fn link_handshake_request_then_response_opens_both_ends() {
    let t0 = Instant::now();
    let request = HandshakeRequest {
        connection_type: 1,
        target: "instance-1".into(),
        ..HandshakeRequest::new()
    };
    let mut app = ServiceLink::app_server(request.clone(), LinkConfig::default(), t0);
    assert!(!app.is_open() && !app.wants_records());
    let mut service = ServiceLink::service(LinkConfig::default(), t0);
    let bytes = app.poll_transmit(t0).unwrap();
    assert_eq!(
        messages(&bytes),
        vec![ServiceMessage::HandshakeRequest(request.clone())]
    );
    // The request arrives in two pieces.
    service.handle_input(t0, &bytes[..3]);
    assert_eq!(service.poll_event(), None);
    service.handle_input(t0, &bytes[3..]);
    assert_eq!(service.poll_event(), Some(LinkEvent::HandshakeRequested(request)));
    // Records that follow the request wait for the accept.
    service.handle_input(t0, &frame(&data("c", b"x")));
    assert_eq!(service.poll_event(), None);
    assert!(!service.is_open());
    service.accept("conn-1");
    assert!(service.is_open());
    assert_eq!(service.poll_event(), Some(LinkEvent::Message(data("c", b"x"))));
    let response = service.poll_transmit(t0).unwrap();
    app.handle_input(t0, &response);
    let expected = HandshakeResponse {
        error_message: None,
        connection_id: Some("conn-1".into()),
    };
    assert_eq!(events(&mut app), vec![LinkEvent::Connected(expected)]);
    assert!(app.is_open() && app.wants_records());
}

#[test]
fn link_handshake_refusals_end_the_link() {
    let t0 = Instant::now();
    // The service refuses an unknown version, and says why before the link ends.
    let mut service = ServiceLink::service(LinkConfig::default(), t0);
    let request = HandshakeRequest {
        version: 2,
        ..HandshakeRequest::new()
    };
    service.handle_input(t0, &frame(&ServiceMessage::HandshakeRequest(request)));
    assert_eq!(
        events(&mut service),
        vec![LinkEvent::Closed(LinkError::UnsupportedVersion(2))]
    );
    let [ServiceMessage::HandshakeResponse(response)] = &written(&mut service, t0)[..] else {
        panic!("expected a refusal")
    };
    assert_eq!(
        response.error_message.as_deref(),
        Some("Protocol version 2 is not supported; this service speaks version 1.")
    );
    // The app server's end reports the service's refusal.
    let mut app = ServiceLink::app_server(HandshakeRequest::new(), LinkConfig::default(), t0);
    let refusal = HandshakeResponse {
        error_message: Some("no".into()),
        connection_id: None,
    };
    app.handle_input(t0, &frame(&ServiceMessage::HandshakeResponse(refusal)));
    assert_eq!(
        events(&mut app),
        vec![LinkEvent::Closed(LinkError::HandshakeRefused("no".into()))]
    );
    assert!(app.is_closed());
    // Anything else first is not a handshake.
    let mut service = ServiceLink::service(LinkConfig::default(), t0);
    service.handle_input(t0, &frame(&data("c", b"x")));
    assert_eq!(
        events(&mut service),
        vec![LinkEvent::Closed(LinkError::NotAHandshake(6))]
    );
    let mut app = ServiceLink::app_server(HandshakeRequest::new(), LinkConfig::default(), t0);
    app.handle_input(t0, &frame(&ServiceMessage::Ping(Ping::keep_alive())));
    assert_eq!(events(&mut app), vec![LinkEvent::Closed(LinkError::NotAHandshake(3))]);
}

#[test]
fn link_handshake_times_out_on_either_end() {
    let t0 = Instant::now();
    for mut link in [
        ServiceLink::service(LinkConfig::default(), t0),
        ServiceLink::app_server(HandshakeRequest::new(), LinkConfig::default(), t0),
    ] {
        assert_eq!(link.poll_timeout(), Some(t0 + HANDSHAKE_TIMEOUT));
        link.handle_timeout(t0 + secs(14));
        assert!(!link.is_closed());
        link.handle_timeout(t0 + HANDSHAKE_TIMEOUT);
        assert_eq!(events(&mut link), vec![LinkEvent::Closed(LinkError::HandshakeTimeout)]);
        assert_eq!(link.poll_timeout(), None);
    }
    // Accepting does not wait forever either.
    let mut service = ServiceLink::service(LinkConfig::new(secs(1), secs(5), secs(30)), t0);
    service.handle_input(t0, &frame(&ServiceMessage::HandshakeRequest(HandshakeRequest::new())));
    assert!(matches!(service.poll_event(), Some(LinkEvent::HandshakeRequested(_))));
    service.handle_timeout(t0 + secs(1));
    assert!(service.is_closed());
}

#[test]
fn link_pings_when_nothing_was_sent_for_the_keep_alive_interval() {
    let t0 = Instant::now();
    let (mut app, _) = linked(t0);
    assert_eq!(app.poll_timeout(), Some(t0 + KEEP_ALIVE_INTERVAL));
    app.handle_timeout(t0 + secs(4));
    assert!(written(&mut app, t0 + secs(4)).is_empty());
    // A write at 3 s moves the ping to 8 s.
    app.send(&data("c", b"x"));
    assert_eq!(written(&mut app, t0 + secs(3)), vec![data("c", b"x")]);
    assert_eq!(app.poll_timeout(), Some(t0 + secs(8)));
    app.handle_timeout(t0 + secs(8));
    let sent = written(&mut app, t0 + secs(8));
    assert!(sent.len() == 1 && is_keep_alive(&sent[0]), "{sent:?}");
    assert_eq!(app.poll_timeout(), Some(t0 + secs(13)));
    // A ping is queued once, even if it is not written at once.
    app.handle_timeout(t0 + secs(13));
    app.handle_timeout(t0 + secs(13));
    assert_eq!(written(&mut app, t0 + secs(14)).len(), 1);
}

#[test]
fn link_ends_after_the_receive_timeout_without_input() {
    let t0 = Instant::now();
    let (mut app, mut service) = linked(t0);
    // Input at 20 s restarts the wait.
    service.handle_input(t0 + secs(20), &frame(&ServiceMessage::Ping(Ping::keep_alive())));
    assert!(matches!(
        service.poll_event(),
        Some(LinkEvent::Message(ServiceMessage::Ping(_)))
    ));
    for t in (5..50).step_by(5) {
        service.handle_timeout(t0 + secs(t));
        written(&mut service, t0 + secs(t));
    }
    assert!(!service.is_closed());
    service.handle_timeout(t0 + secs(50));
    assert_eq!(events(&mut service), vec![LinkEvent::Closed(LinkError::ReceiveTimeout)]);
    // The app server's end, with its own pings going out all along.
    for t in (5..30).step_by(5) {
        app.handle_timeout(t0 + secs(t));
        assert_eq!(written(&mut app, t0 + secs(t)).len(), 1);
    }
    assert!(!app.is_closed());
    app.handle_timeout(t0 + RECEIVE_TIMEOUT);
    assert_eq!(app.error(), Some(&LinkError::ReceiveTimeout));
    // Nothing more goes out.
    app.send(&data("c", b"x"));
    assert!(!app.wants_records());
    assert!(written(&mut app, t0 + secs(31)).is_empty());
}

#[test]
fn link_answers_echo_pings_and_reports_every_message() {
    let t0 = Instant::now();
    let (_, mut service) = linked(t0);
    let mut input = frame(&ServiceMessage::Ping(Ping::echo("42"))).to_vec();
    input.extend_from_slice(&frame(&data("c", b"x")));
    service.handle_input(t0, &input);
    assert_eq!(
        events(&mut service),
        vec![
            LinkEvent::Message(ServiceMessage::Ping(Ping::echo("42"))),
            LinkEvent::Message(data("c", b"x")),
        ]
    );
    assert_eq!(written(&mut service, t0), vec![ServiceMessage::Ping(Ping::echo("42"))]);
}

#[test]
fn link_writes_batches_bounded_in_records_and_bytes() {
    let t0 = Instant::now();
    let (mut app, _) = linked(t0);
    let record = frame(&data("c", b"x"));
    let mut queued = 0;
    while app.wants_records() {
        app.queue_record(record.clone());
        queued += 1;
    }
    assert_eq!(queued, MAX_BATCH_RECORDS);
    let batch = app.poll_transmit(t0).unwrap();
    assert_eq!(messages(&batch).len(), MAX_BATCH_RECORDS);
    assert_eq!(app.poll_transmit(t0), None);
    // Records of different sizes, joined in order.
    app.send(&data("a", b"1"));
    app.send(&data("bb", b"22"));
    app.send(&data("ccc", b"333"));
    let batch = app.poll_transmit(t0).unwrap();
    assert_eq!(
        messages(&batch),
        vec![data("a", b"1"), data("bb", b"22"), data("ccc", b"333")]
    );
    assert_eq!(app.poll_transmit(t0), None);
    // Large records: as many as fit in the byte bound, and one larger record alone.
    let big = frame(&ServiceMessage::ConnectionData(ConnectionData {
        connection_id: "c".into(),
        payload: Bytes::from(vec![7u8; 20_000]),
        ..ConnectionData::default()
    }));
    let huge = frame(&ServiceMessage::ConnectionData(ConnectionData {
        connection_id: "c".into(),
        payload: Bytes::from(vec![7u8; 100_000]),
        ..ConnectionData::default()
    }));
    for _ in 0..4 {
        assert!(app.wants_records());
        app.queue_record(big.clone());
    }
    assert!(!app.wants_records(), "over the byte bound");
    app.queue_record(huge.clone());
    assert_eq!(app.poll_transmit(t0).unwrap().len(), 3 * big.len());
    assert_eq!(app.poll_transmit(t0).unwrap(), big, "one record goes as it is");
    assert_eq!(app.poll_transmit(t0).unwrap(), huge);
    assert_eq!(app.poll_transmit(t0), None);
}

#[test]
fn link_rejects_malformed_and_oversized_input() {
    let t0 = Instant::now();
    let (mut app, _) = linked(t0);
    app.handle_input(t0, &[0x02, 0x91, 0xc1]);
    assert!(matches!(
        &events(&mut app)[..],
        [LinkEvent::Closed(LinkError::Malformed(_))]
    ));
    // Once ended, input is ignored.
    app.handle_input(t0, &frame(&data("c", b"x")));
    assert_eq!(app.poll_event(), None);

    let config = LinkConfig::default().max_record_size(16);
    let mut service = ServiceLink::service(config, t0);
    service.handle_input(t0, &frame(&ServiceMessage::HandshakeRequest(HandshakeRequest::new())));
    assert!(matches!(service.poll_event(), Some(LinkEvent::HandshakeRequested(_))));
    service.accept("c");
    service.handle_input(t0, &frame(&data("c", &[0; 64])));
    assert!(matches!(
        &events(&mut service)[..],
        [LinkEvent::Closed(LinkError::Malformed(_))]
    ));
    // Records of unknown types are skipped.
    let (mut app, _) = linked(t0);
    app.handle_input(t0, &[0x02, 0x91, 0x63]);
    app.handle_input(t0, &frame(&data("c", b"x")));
    assert_eq!(events(&mut app), vec![LinkEvent::Message(data("c", b"x"))]);
}

#[test]
fn link_closed_locally_reports_once_and_keeps_what_is_queued() {
    let t0 = Instant::now();
    let (mut app, _) = linked(t0);
    app.send(&data("c", b"x"));
    app.close();
    assert_eq!(events(&mut app), vec![LinkEvent::Closed(LinkError::Closed)]);
    assert_eq!(events(&mut app), vec![]);
    assert_eq!(written(&mut app, t0), vec![data("c", b"x")]);
    app.handle_timeout(t0 + secs(60));
    assert_eq!(app.error(), Some(&LinkError::Closed));
}

#[test]
fn link_echo_replies_are_bounded() {
    let t0 = Instant::now();
    let (mut app, _) = linked(t0);
    let echo = frame(&ServiceMessage::Ping(Ping::echo("e")));
    let flood: Vec<u8> = std::iter::repeat_n(&echo[..], MAX_PENDING_RECORDS + 10)
        .flatten()
        .copied()
        .collect();
    app.handle_input(t0, &flood);
    assert_eq!(events(&mut app).len(), MAX_PENDING_RECORDS + 10);
    assert_eq!(written(&mut app, t0).len(), MAX_PENDING_RECORDS);
}

proptest::proptest! {
    #[test]
    fn fuzz_link_input_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..6)) {
        let t0 = Instant::now();
        let (mut app, mut service) = linked(t0);
        let mut fresh = ServiceLink::service(LinkConfig::default(), t0);
        for (i, chunk) in chunks.iter().enumerate() {
            let now = t0 + secs(i as u64);
            for link in [&mut app, &mut service, &mut fresh] {
                link.handle_input(now, chunk);
                while link.poll_event().is_some() {}
                link.handle_timeout(now);
                while link.poll_transmit(now).is_some() {}
            }
        }
    }
}
