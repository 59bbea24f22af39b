//! Golden records of the messages that carry payload maps (multicast data, client
//! invocations) and of the client result messages.
//!
//! The bytes are written out by hand from the layouts of the reference protocol code
//! (`ServiceProtocol.cs`, `ServiceMessage.cs`): each comment gives the MessagePack structure,
//! the bytes follow it item by item. Every test checks both directions: the writer produces
//! exactly these bytes (framed), and the reader turns them back into the message.

use bytes::Bytes;

use super::{cat, golden};
use crate::protocol::service::*;

fn payloads(items: &[(&str, &[u8])]) -> Payloads {
    items
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), Bytes::copy_from_slice(bytes)))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn golden_multi_connection_data() {
    // [7, ["c1", "c2"], {"json": bin("{}"), "messagepack": bin(91 06)}, {1: 1234}]
    let message = MultiConnectionData {
        connection_ids: strings(&["c1", "c2"]),
        payloads: payloads(&[("json", b"{}"), ("messagepack", &[0x91, 0x06])]),
        tracing_id: Some(1234),
        filter: None,
    };
    let body = cat(&[
        &[0x94, 0x07, 0x92, 0xa2],
        b"c1",
        &[0xa2],
        b"c2",
        &[0x82, 0xa4],
        b"json",
        &[0xc4, 0x02],
        b"{}",
        &[0xab],
        b"messagepack",
        &[0xc4, 0x02, 0x91, 0x06, 0x81, 0x01, 0xcd, 0x04, 0xd2],
    ]);
    golden(ServiceMessage::MultiConnectionData(message), &body);
}

#[test]
fn golden_user_data() {
    // [8, "u1", {"json": bin(01)}, {4: "x"}]
    let message = UserData {
        user_id: "u1".into(),
        payloads: payloads(&[("json", &[0x01])]),
        tracing_id: None,
        filter: Some("x".into()),
    };
    let body = cat(&[
        &[0x94, 0x08, 0xa2],
        b"u1",
        &[0x81, 0xa4],
        b"json",
        &[0xc4, 0x01, 0x01, 0x81, 0x04, 0xa1],
        b"x",
    ]);
    golden(ServiceMessage::UserData(message), &body);
}

#[test]
fn golden_multi_user_data() {
    // [9, ["u1", "u2"], {}, {}]
    let message = MultiUserData {
        user_ids: strings(&["u1", "u2"]),
        ..MultiUserData::default()
    };
    let body = cat(&[&[0x94, 0x09, 0x92, 0xa2], b"u1", &[0xa2], b"u2", &[0x80, 0x80]]);
    golden(ServiceMessage::MultiUserData(message), &body);
}

#[test]
fn golden_broadcast_data() {
    // [10, ["c3"], {"messagepack": bin(07)}, {1: 70000}]
    let message = BroadcastData {
        excluded: strings(&["c3"]),
        payloads: payloads(&[("messagepack", &[0x07])]),
        tracing_id: Some(70_000),
        filter: None,
    };
    let body = cat(&[
        &[0x94, 0x0a, 0x91, 0xa2],
        b"c3",
        &[0x81, 0xab],
        b"messagepack",
        &[0xc4, 0x01, 0x07, 0x81, 0x01, 0xce, 0x00, 0x01, 0x11, 0x70],
    ]);
    golden(ServiceMessage::BroadcastData(message), &body);
}

#[test]
fn golden_group_broadcast_data() {
    // [13, "g1", ["c1"], {"json": bin("1")}, {}, ["u1"], "u2"]
    let message = GroupBroadcastData {
        group: "g1".into(),
        excluded: strings(&["c1"]),
        payloads: payloads(&[("json", b"1")]),
        excluded_users: strings(&["u1"]),
        caller_user_id: Some("u2".into()),
        ..GroupBroadcastData::default()
    };
    let body = cat(&[
        &[0x97, 0x0d, 0xa2],
        b"g1",
        &[0x91, 0xa2],
        b"c1",
        &[0x81, 0xa4],
        b"json",
        &[0xc4, 0x01],
        b"1",
        &[0x80, 0x91, 0xa2],
        b"u1",
        &[0xa2],
        b"u2",
    ]);
    golden(ServiceMessage::GroupBroadcastData(message), &body);
}

#[test]
fn golden_multi_group_broadcast_data() {
    // [14, ["g1", "g2"], {"json": bin()}, {4: "f"}]
    let message = MultiGroupBroadcastData {
        groups: strings(&["g1", "g2"]),
        payloads: payloads(&[("json", b"")]),
        tracing_id: None,
        filter: Some("f".into()),
    };
    let body = cat(&[
        &[0x94, 0x0e, 0x92, 0xa2],
        b"g1",
        &[0xa2],
        b"g2",
        &[0x81, 0xa4],
        b"json",
        &[0xc4, 0x00, 0x81, 0x04, 0xa1],
        b"f",
    ]);
    golden(ServiceMessage::MultiGroupBroadcastData(message), &body);
}

#[test]
fn golden_client_invocation() {
    // [34, "i1", "c1", "s1", {"json": bin("{}")}, {}]
    let message = ClientInvocation {
        invocation_id: "i1".into(),
        connection_id: "c1".into(),
        caller_server_id: "s1".into(),
        payloads: payloads(&[("json", b"{}")]),
        tracing_id: None,
    };
    let body = cat(&[
        &[0x96, 0x22, 0xa2],
        b"i1",
        &[0xa2],
        b"c1",
        &[0xa2],
        b"s1",
        &[0x81, 0xa4],
        b"json",
        &[0xc4, 0x02],
        b"{}",
        &[0x80],
    ]);
    golden(ServiceMessage::ClientInvocation(message), &body);
}

#[test]
fn golden_client_completion() {
    // [35, "i1", "c1", "s1", "json", bin("{}"), {3: "json"}]: the protocol goes in twice.
    let message = ClientCompletion {
        invocation_id: "i1".into(),
        connection_id: "c1".into(),
        caller_server_id: "s1".into(),
        protocol: Some("json".into()),
        payload: Bytes::from_static(b"{}"),
        tracing_id: None,
    };
    let body = cat(&[
        &[0x97, 0x23, 0xa2],
        b"i1",
        &[0xa2],
        b"c1",
        &[0xa2],
        b"s1",
        &[0xa4],
        b"json",
        &[0xc4, 0x02],
        b"{}",
        &[0x81, 0x03, 0xa4],
        b"json",
    ]);
    golden(ServiceMessage::ClientCompletion(message), &body);
}

#[test]
fn golden_error_completion() {
    // [36, "i1", "c1", "s1", "Client disconnected.", {1: 1}]
    let message = ErrorCompletion {
        invocation_id: "i1".into(),
        connection_id: "c1".into(),
        caller_server_id: "s1".into(),
        error: Some("Client disconnected.".into()),
        tracing_id: Some(1),
    };
    let body = cat(&[
        &[0x96, 0x24, 0xa2],
        b"i1",
        &[0xa2],
        b"c1",
        &[0xa2],
        b"s1",
        &[0xb4],
        b"Client disconnected.",
        &[0x81, 0x01, 0x01],
    ]);
    golden(ServiceMessage::ErrorCompletion(message), &body);
}

#[test]
fn golden_service_mapping() {
    // [37, "i1", "c1", "inst1", {}]
    let message = ServiceMapping {
        invocation_id: "i1".into(),
        connection_id: "c1".into(),
        instance_id: "inst1".into(),
    };
    let body = cat(&[&[0x95, 0x25, 0xa2], b"i1", &[0xa2], b"c1", &[0xa5], b"inst1", &[0x80]]);
    golden(ServiceMessage::ServiceMapping(message), &body);
}
