//! The JSON hub protocol: one JSON object per record.
//!
//! Parsing is tolerant in the ways the reference implementations are: properties come in any
//! order (`type` may be last), unknown properties are ignored, `"error": null` counts as no
//! error, and unknown message types are skipped. Values (arguments, items, results) are kept
//! as raw JSON text, sliced out of the record without copying.

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue as JsonRaw;

use super::framing::RECORD_SEPARATOR;
use super::message::{Close, Completion, CompletionResult, Headers, HubMessage, Invocation, RawValue, StreamItem};
use super::{Protocol, ProtocolError};

#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
    #[serde(rename = "invocationId")]
    invocation_id: Option<String>,
    target: Option<String>,
    #[serde(borrow)]
    arguments: Option<Vec<&'a JsonRaw>>,
    #[serde(rename = "streamIds")]
    stream_ids: Option<Vec<String>>,
    #[serde(borrow, default, deserialize_with = "present")]
    item: Option<&'a JsonRaw>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a JsonRaw>,
    error: Option<String>,
    #[serde(rename = "allowReconnect")]
    allow_reconnect: Option<bool>,
    #[serde(rename = "sequenceId")]
    sequence_id: Option<u64>,
    headers: Option<Headers>,
}

/// Keeps a property that is present, even when its value is `null`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de JsonRaw>, D::Error> {
    <&JsonRaw>::deserialize(deserializer).map(Some)
}

fn missing(name: &str) -> ProtocolError {
    ProtocolError::invalid(format!("Missing required property '{name}'."))
}

/// How deep arrays and objects may nest in a record: .NET's JSON reader's default `MaxDepth`.
const MAX_DEPTH: usize = 64;

pub(super) fn parse(record: Bytes) -> Result<Option<HubMessage>, ProtocolError> {
    if nests_deeper_than(&record, MAX_DEPTH) {
        return Err(ProtocolError::invalid("Error reading JSON."));
    }
    let wire: WireMessage<'_> = serde_json::from_slice(&record).map_err(|_| diagnose(&record))?;
    let kind = wire.kind.as_ref().ok_or_else(|| missing("type"))?;
    let Some(kind) = kind.as_u64().or_else(|| {
        kind.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
            .map(|f| f as u64)
    }) else {
        return Err(ProtocolError::invalid("Expected 'type' to be of type Number."));
    };
    let raw = |value: &JsonRaw| RawValue::new(Protocol::Json, record.slice_ref(value.get().as_bytes()));
    let headers = wire.headers.unwrap_or_default();
    let message = match kind {
        1 | 4 => {
            let target = wire.target.ok_or_else(|| missing("target"))?;
            let arguments = wire.arguments.ok_or_else(|| missing("arguments"))?;
            let invocation = Invocation {
                headers,
                // An empty id, like a missing one, marks a fire-and-forget send.
                invocation_id: wire.invocation_id.filter(|id| !id.is_empty()),
                target,
                arguments: arguments.into_iter().map(raw).collect(),
                stream_ids: wire.stream_ids.unwrap_or_default(),
            };
            if kind == 1 {
                HubMessage::Invocation(invocation)
            } else {
                if invocation.invocation_id.is_none() {
                    return Err(missing("invocationId"));
                }
                HubMessage::StreamInvocation(invocation)
            }
        }
        2 => HubMessage::StreamItem(StreamItem {
            headers,
            invocation_id: wire.invocation_id.ok_or_else(|| missing("invocationId"))?,
            item: raw(wire.item.ok_or_else(|| missing("item"))?),
        }),
        3 => {
            let invocation_id = wire.invocation_id.ok_or_else(|| missing("invocationId"))?;
            let result = match (wire.error, wire.result) {
                (Some(_), Some(_)) => {
                    return Err(ProtocolError::invalid(
                        "The 'error' and 'result' properties are mutually exclusive.",
                    ));
                }
                (Some(error), None) => CompletionResult::Error(error),
                (None, Some(value)) => CompletionResult::Value(raw(value)),
                (None, None) => CompletionResult::Void,
            };
            HubMessage::Completion(Completion {
                headers,
                invocation_id,
                result,
            })
        }
        5 => HubMessage::CancelInvocation {
            headers,
            invocation_id: wire.invocation_id.ok_or_else(|| missing("invocationId"))?,
        },
        6 => HubMessage::Ping,
        7 => HubMessage::Close(Close {
            error: wire.error,
            allow_reconnect: wire.allow_reconnect.unwrap_or(false),
        }),
        8 => HubMessage::Ack {
            sequence_id: wire.sequence_id.ok_or_else(|| missing("sequenceId"))?,
        },
        9 => HubMessage::Sequence {
            sequence_id: wire.sequence_id.ok_or_else(|| missing("sequenceId"))?,
        },
        _ => return Ok(None),
    };
    Ok(Some(message))
}

/// Whether arrays and objects nest deeper than `max` anywhere in `json` (strings skipped).
fn nests_deeper_than(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A record's properties in the order they come, each value as raw JSON.
struct Properties<'a>(Vec<(String, &'a JsonRaw)>);

impl<'de> Deserialize<'de> for Properties<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Properties<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut properties = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de JsonRaw>()? {
                    properties.push(entry);
                }
                Ok(Properties(properties))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// Why a record that does not read as a hub message fails, in the reference server's words:
/// not JSON; not an object; or the first property of the wrong type.
fn diagnose(record: &[u8]) -> ProtocolError {
    let error = |text: &str| ProtocolError::invalid(text);
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(record) else {
        return error("Error reading JSON.");
    };
    if !value.is_object() {
        return error(&format!(
            "Unexpected JSON Token Type '{}'. Expected a JSON Object.",
            super::handshake::json_token_type(&value)
        ));
    }
    let Ok(Properties(properties)) = serde_json::from_slice::<Properties<'_>>(record) else {
        return error("Error reading JSON.");
    };
    for (name, raw) in properties {
        let first = raw.get().as_bytes().first().copied().unwrap_or(b' ');
        let expected = match name.as_str() {
            "type" | "sequenceId" if !(first == b'-' || first.is_ascii_digit()) => "of type Number",
            "invocationId" | "target" | "error" if first != b'"' && first != b'n' => "of type String",
            "arguments" | "streamIds" if first != b'[' => "of type Array",
            "allowReconnect" if first != b't' && first != b'f' => "true or false",
            "headers" if first != b'{' => "of type StartObject",
            "headers" => {
                let headers: Vec<(String, &JsonRaw)> = serde_json::from_str::<Properties<'_>>(raw.get())
                    .map(|p| p.0)
                    .unwrap_or_default();
                if let Some((header, _)) = headers.iter().find(|(_, v)| !v.get().starts_with('"')) {
                    return error(&format!("Expected header '{header}' to be of type String."));
                }
                continue;
            }
            "streamIds" => {
                let ids: Vec<&JsonRaw> = serde_json::from_str(raw.get()).unwrap_or_default();
                if ids.iter().any(|id| !id.get().starts_with('"')) {
                    // .NET reads each id as a string, and fails on anything else.
                    return error("Error reading JSON.");
                }
                continue;
            }
            _ => continue,
        };
        return error(&format!("Expected '{name}' to be {expected}."));
    }
    error("Error reading JSON.")
}

/// Writes `{"type":N` and, when given and not empty, the headers.
fn open(out: &mut Vec<u8>, kind: u8, headers: Option<&Headers>) -> Result<(), ProtocolError> {
    out.extend_from_slice(b"{\"type\":");
    out.extend_from_slice(kind.to_string().as_bytes());
    if let Some(headers) = headers.filter(|h| !h.is_empty()) {
        out.extend_from_slice(b",\"headers\":");
        value(out, headers)?;
    }
    Ok(())
}

fn close(out: &mut Vec<u8>) {
    out.push(b'}');
    out.push(RECORD_SEPARATOR);
}

fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), ProtocolError> {
    serde_json::to_writer(out, value).map_err(|e| ProtocolError::Encode(e.to_string()))
}

fn field<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: &str, v: &T) -> Result<(), ProtocolError> {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    value(out, v)
}

fn raw_field(out: &mut Vec<u8>, name: &str, v: &RawValue) -> Result<(), ProtocolError> {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    Protocol::Json.write_raw_value(out, v)
}

/// Undoes a partly written record when writing it failed.
fn guarded(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let start = out.len();
    let result = write(out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn invocation_head(
    out: &mut Vec<u8>,
    streaming: bool,
    headers: Option<&Headers>,
    invocation_id: Option<&str>,
    target: &str,
) -> Result<(), ProtocolError> {
    open(out, if streaming { 4 } else { 1 }, headers)?;
    if let Some(id) = invocation_id {
        field(out, "invocationId", id)?;
    }
    field(out, "target", target)?;
    out.extend_from_slice(b",\"arguments\":");
    Ok(())
}

fn stream_ids_tail(out: &mut Vec<u8>, stream_ids: &[String]) -> Result<(), ProtocolError> {
    if !stream_ids.is_empty() {
        field(out, "streamIds", stream_ids)?;
    }
    close(out);
    Ok(())
}

pub(super) fn write_invocation<A: super::Arguments + ?Sized>(
    out: &mut Vec<u8>,
    streaming: bool,
    invocation_id: Option<&str>,
    target: &str,
    arguments: &A,
    stream_ids: &[String],
) -> Result<(), ProtocolError> {
    guarded(out, |out| {
        invocation_head(out, streaming, None, invocation_id, target)?;
        value(out, &super::AsArray(arguments))?;
        stream_ids_tail(out, stream_ids)
    })
}

pub(super) fn write_completion<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    invocation_id: &str,
    result: CompletionResult<&T>,
) -> Result<(), ProtocolError> {
    guarded(out, |out| {
        open(out, 3, None)?;
        field(out, "invocationId", invocation_id)?;
        match result {
            CompletionResult::Void => {}
            CompletionResult::Value(v) => field(out, "result", v)?,
            CompletionResult::Error(e) => field(out, "error", &e)?,
        }
        close(out);
        Ok(())
    })
}

pub(super) fn write_stream_item<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    invocation_id: &str,
    item: &T,
) -> Result<(), ProtocolError> {
    guarded(out, |out| {
        open(out, 2, None)?;
        field(out, "invocationId", invocation_id)?;
        field(out, "item", item)?;
        close(out);
        Ok(())
    })
}

pub(super) fn write_message(out: &mut Vec<u8>, message: &HubMessage) -> Result<(), ProtocolError> {
    guarded(out, |out| {
        match message {
            HubMessage::Invocation(inv) | HubMessage::StreamInvocation(inv) => {
                let streaming = matches!(message, HubMessage::StreamInvocation(_));
                invocation_head(
                    out,
                    streaming,
                    Some(&inv.headers),
                    inv.invocation_id.as_deref(),
                    &inv.target,
                )?;
                out.push(b'[');
                for (index, argument) in inv.arguments.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    Protocol::Json.write_raw_value(out, argument)?;
                }
                out.push(b']');
                return stream_ids_tail(out, &inv.stream_ids);
            }
            HubMessage::StreamItem(item) => {
                open(out, 2, Some(&item.headers))?;
                field(out, "invocationId", &item.invocation_id)?;
                raw_field(out, "item", &item.item)?;
            }
            HubMessage::Completion(completion) => {
                open(out, 3, Some(&completion.headers))?;
                field(out, "invocationId", &completion.invocation_id)?;
                match &completion.result {
                    CompletionResult::Void => {}
                    CompletionResult::Value(v) => raw_field(out, "result", v)?,
                    CompletionResult::Error(e) => field(out, "error", e)?,
                }
            }
            HubMessage::CancelInvocation { headers, invocation_id } => {
                open(out, 5, Some(headers))?;
                field(out, "invocationId", invocation_id)?;
            }
            HubMessage::Ping => open(out, 6, None)?,
            HubMessage::Close(c) => {
                open(out, 7, None)?;
                if let Some(error) = &c.error {
                    field(out, "error", error)?;
                }
                if c.allow_reconnect {
                    field(out, "allowReconnect", &true)?;
                }
            }
            HubMessage::Ack { sequence_id } => {
                open(out, 8, None)?;
                field(out, "sequenceId", sequence_id)?;
            }
            HubMessage::Sequence { sequence_id } => {
                open(out, 9, None)?;
                field(out, "sequenceId", sequence_id)?;
            }
        }
        close(out);
        Ok(())
    })
}
