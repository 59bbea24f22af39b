//! The MessagePack hub protocol: each record is one MessagePack array whose first item is
//! the message type.
//!
//! | type | array |
//! |---|---|
//! | 1 Invocation | `[1, headers, invocationId or nil, target, [arguments], [streamIds]?]` (written with six items) |
//! | 2 StreamItem | `[2, headers, invocationId, item]` |
//! | 3 Completion | `[3, headers, invocationId, kind, result?]` (kind 1 error, 2 void, 3 value) |
//! | 4 StreamInvocation | `[4, headers, invocationId, target, [arguments], [streamIds]?]` |
//! | 5 CancelInvocation | `[5, headers, invocationId]` |
//! | 6 Ping | `[6]` |
//! | 7 Close | `[7, error or nil, allowReconnect?]` |
//! | 8 Ack / 9 Sequence | `[8, sequenceId]` / `[9, sequenceId]` |
//!
//! Values are sliced out of the record as they are and decoded only when their type is known.
//! The cursor underneath ([`Reader`]) is the one the service protocol's decoder reads with too;
//! only the error texts differ ([`Texts`]).

use bytes::Bytes;
use rmp::encode as enc;
use serde::Serialize;

use super::message::{Close, Completion, CompletionResult, Headers, HubMessage, Invocation, RawValue, StreamItem};
use super::{Protocol, ProtocolError};

mod reader;

pub(crate) use reader::{Fault, Reader, Texts};

const RESULT_ERROR: u8 = 1;
const RESULT_VOID: u8 = 2;
const RESULT_VALUE: u8 = 3;

/// The hub protocol reader's error texts: any early end of the record is one "unexpected end
/// of data", and a value of the wrong type names the field.
struct HubTexts;

fn truncated() -> ProtocolError {
    ProtocolError::invalid("Deserializing object of the `MessagePack` type failed: unexpected end of data.")
}

impl Texts for HubTexts {
    fn value(what: &str, as_type: &str, fault: Fault) -> ProtocolError {
        match fault {
            Fault::End => truncated(),
            Fault::Mismatch | Fault::Nil => ProtocolError::invalid(format!("Reading '{what}' as {as_type} failed.")),
        }
    }

    fn part(what: &str, part: &str, fault: Fault) -> ProtocolError {
        match fault {
            Fault::End => truncated(),
            Fault::Mismatch | Fault::Nil => ProtocolError::invalid(format!("Reading {part} for '{what}' failed.")),
        }
    }

    fn skipped_past_end() -> ProtocolError {
        truncated()
    }
}

type HubReader = Reader<HubTexts>;

/// The hub protocol reads every integer as the reference reader's `Int32` field (any integer
/// that fits in an `i64` is accepted).
fn integer(r: &mut HubReader, what: &str) -> Result<i64, ProtocolError> {
    r.integer(what, "Int32")
}

fn headers(r: &mut HubReader) -> Result<Headers, ProtocolError> {
    let count = r.map_len("headers")?;
    let mut headers = Headers::with_capacity(count.min(64));
    for _ in 0..count {
        let key = r.string("headers")?;
        let value = r.string("headers")?;
        headers.insert(key, value);
    }
    Ok(headers)
}

/// Steps over one value and returns it, sliced out of the record.
fn value(r: &mut HubReader) -> Result<RawValue, ProtocolError> {
    Ok(RawValue::new(Protocol::MessagePack, r.raw_value()?))
}

pub(super) fn parse(record: Bytes) -> Result<Option<HubMessage>, ProtocolError> {
    let mut r = HubReader::new(record);
    let r = &mut r;
    let len = r.array_len("elementCount")?;
    if len == 0 {
        return Err(ProtocolError::invalid(
            "Unable to read message type: the message is an empty array.",
        ));
    }
    let kind = integer(r, "messageType")?;
    let need = |min: usize| {
        if len < min {
            Err(ProtocolError::invalid(format!(
                "Invalid message: expected at least {min} items, got {len}."
            )))
        } else {
            Ok(())
        }
    };
    let message = match kind {
        1 | 4 => {
            need(5)?;
            let headers = headers(r)?;
            let invocation_id = r.string_or_nil("invocationId")?;
            let target = r.string("target")?;
            let count = r.array_len("arguments")?;
            let mut arguments = Vec::with_capacity(count.min(64));
            let mut too_deep = false;
            for _ in 0..count {
                match r.raw_value_or_too_deep()? {
                    Some(bytes) => arguments.push(RawValue::new(Protocol::MessagePack, bytes)),
                    None => {
                        too_deep = true;
                        break;
                    }
                }
            }
            if too_deep {
                // As the reference binds arguments while it reads them: an argument nested
                // too deeply fails the invocation's binding ("Error binding arguments…"),
                // not the connection. The record's end is known from its framing; the rest
                // of it is not read. Empty values bind to no type.
                arguments.resize(count, RawValue::new(Protocol::MessagePack, Bytes::new()));
            }
            let mut stream_ids = Vec::new();
            if len > 5 && !too_deep {
                let count = r.array_len("streamIds")?;
                for _ in 0..count {
                    stream_ids.push(r.string("streamIds")?);
                }
            }
            let invocation = Invocation {
                headers,
                invocation_id,
                target,
                arguments,
                stream_ids,
            };
            if kind == 1 {
                HubMessage::Invocation(invocation)
            } else {
                if invocation.invocation_id.is_none() {
                    return Err(ProtocolError::invalid("Reading 'invocationId' as String failed."));
                }
                HubMessage::StreamInvocation(invocation)
            }
        }
        2 => {
            need(4)?;
            let headers = headers(r)?;
            let invocation_id = r.string("invocationId")?;
            HubMessage::StreamItem(StreamItem {
                headers,
                invocation_id,
                item: value(r)?,
            })
        }
        3 => {
            need(4)?;
            let headers = headers(r)?;
            let invocation_id = r.string("invocationId")?;
            let result = match integer(r, "resultKind")? {
                1 => {
                    need(5)?;
                    CompletionResult::Error(r.string("error")?)
                }
                2 => CompletionResult::Void,
                3 => {
                    need(5)?;
                    CompletionResult::Value(value(r)?)
                }
                _ => return Err(ProtocolError::invalid("Invalid invocation result kind.")),
            };
            HubMessage::Completion(Completion {
                headers,
                invocation_id,
                result,
            })
        }
        5 => {
            need(3)?;
            let headers = headers(r)?;
            HubMessage::CancelInvocation {
                headers,
                invocation_id: r.string("invocationId")?,
            }
        }
        6 => HubMessage::Ping,
        7 => {
            need(2)?;
            let error = r.string_or_nil("error")?;
            let allow_reconnect = if len > 2 { r.bool("allowReconnect")? } else { false };
            HubMessage::Close(Close { error, allow_reconnect })
        }
        8 | 9 => {
            need(2)?;
            let sequence_id = u64::try_from(integer(r, "sequenceId")?)
                .map_err(|_| ProtocolError::invalid("Reading 'sequenceId' as Int64 failed."))?;
            if kind == 8 {
                HubMessage::Ack { sequence_id }
            } else {
                HubMessage::Sequence { sequence_id }
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(message))
}

fn io(e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::Encode(e.to_string())
}

fn write_headers(out: &mut Vec<u8>, headers: Option<&Headers>) -> Result<(), ProtocolError> {
    let headers = headers.filter(|h| !h.is_empty());
    enc::write_map_len(out, headers.map_or(0, |h| h.len() as u32)).map_err(io)?;
    for (key, value) in headers.into_iter().flatten() {
        enc::write_str(out, key).map_err(io)?;
        enc::write_str(out, value).map_err(io)?;
    }
    Ok(())
}

fn write_typed<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), ProtocolError> {
    rmp_serde::encode::write_named(out, value).map_err(io)
}

fn write_string_array(out: &mut Vec<u8>, items: &[String]) -> Result<(), ProtocolError> {
    enc::write_array_len(out, items.len() as u32).map_err(io)?;
    for item in items {
        enc::write_str(out, item).map_err(io)?;
    }
    Ok(())
}

fn invocation_head(
    out: &mut Vec<u8>,
    streaming: bool,
    headers: Option<&Headers>,
    invocation_id: Option<&str>,
    target: &str,
) -> Result<(), ProtocolError> {
    // Always six items, an empty stream id array included, as .NET writes them: some clients
    // (signalrcore) read the sixth item unconditionally.
    enc::write_array_len(out, 6).map_err(io)?;
    enc::write_pfix(out, if streaming { 4 } else { 1 }).map_err(io)?;
    write_headers(out, headers)?;
    match invocation_id {
        Some(id) => enc::write_str(out, id).map_err(io)?,
        None => enc::write_nil(out).map_err(io)?,
    }
    enc::write_str(out, target).map_err(io)
}

pub(super) fn write_invocation<A: super::Arguments + ?Sized>(
    out: &mut Vec<u8>,
    streaming: bool,
    invocation_id: Option<&str>,
    target: &str,
    arguments: &A,
    stream_ids: &[String],
) -> Result<(), ProtocolError> {
    invocation_head(out, streaming, None, invocation_id, target)?;
    write_typed(out, &super::AsArray(arguments))?;
    write_string_array(out, stream_ids)
}

fn completion_head(
    out: &mut Vec<u8>,
    headers: Option<&Headers>,
    invocation_id: &str,
    kind: u8,
) -> Result<(), ProtocolError> {
    enc::write_array_len(out, if kind == RESULT_VOID { 4 } else { 5 }).map_err(io)?;
    enc::write_pfix(out, 3).map_err(io)?;
    write_headers(out, headers)?;
    enc::write_str(out, invocation_id).map_err(io)?;
    enc::write_pfix(out, kind).map_err(io)
}

pub(super) fn write_completion<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    invocation_id: &str,
    result: CompletionResult<&T>,
) -> Result<(), ProtocolError> {
    match result {
        CompletionResult::Void => completion_head(out, None, invocation_id, RESULT_VOID),
        CompletionResult::Value(v) => {
            completion_head(out, None, invocation_id, RESULT_VALUE)?;
            write_typed(out, v)
        }
        CompletionResult::Error(e) => {
            completion_head(out, None, invocation_id, RESULT_ERROR)?;
            enc::write_str(out, &e).map_err(io)
        }
    }
}

pub(super) fn write_stream_item<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    invocation_id: &str,
    item: &T,
) -> Result<(), ProtocolError> {
    enc::write_array_len(out, 4).map_err(io)?;
    enc::write_pfix(out, 2).map_err(io)?;
    write_headers(out, None)?;
    enc::write_str(out, invocation_id).map_err(io)?;
    write_typed(out, item)
}

pub(super) fn write_message(out: &mut Vec<u8>, message: &HubMessage) -> Result<(), ProtocolError> {
    let raw = |out: &mut Vec<u8>, v: &RawValue| Protocol::MessagePack.write_raw_value(out, v);
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
            enc::write_array_len(out, inv.arguments.len() as u32).map_err(io)?;
            for argument in &inv.arguments {
                raw(out, argument)?;
            }
            write_string_array(out, &inv.stream_ids)?;
        }
        HubMessage::StreamItem(item) => {
            enc::write_array_len(out, 4).map_err(io)?;
            enc::write_pfix(out, 2).map_err(io)?;
            write_headers(out, Some(&item.headers))?;
            enc::write_str(out, &item.invocation_id).map_err(io)?;
            raw(out, &item.item)?;
        }
        HubMessage::Completion(c) => match &c.result {
            CompletionResult::Void => completion_head(out, Some(&c.headers), &c.invocation_id, RESULT_VOID)?,
            CompletionResult::Value(v) => {
                completion_head(out, Some(&c.headers), &c.invocation_id, RESULT_VALUE)?;
                raw(out, v)?;
            }
            CompletionResult::Error(e) => {
                completion_head(out, Some(&c.headers), &c.invocation_id, RESULT_ERROR)?;
                enc::write_str(out, e).map_err(io)?;
            }
        },
        HubMessage::CancelInvocation { headers, invocation_id } => {
            enc::write_array_len(out, 3).map_err(io)?;
            enc::write_pfix(out, 5).map_err(io)?;
            write_headers(out, Some(headers))?;
            enc::write_str(out, invocation_id).map_err(io)?;
        }
        HubMessage::Ping => {
            enc::write_array_len(out, 1).map_err(io)?;
            enc::write_pfix(out, 6).map_err(io)?;
        }
        HubMessage::Close(c) => {
            enc::write_array_len(out, 3).map_err(io)?;
            enc::write_pfix(out, 7).map_err(io)?;
            match &c.error {
                Some(e) => enc::write_str(out, e).map_err(io)?,
                None => enc::write_nil(out).map_err(io)?,
            }
            enc::write_bool(out, c.allow_reconnect).map_err(io)?;
        }
        HubMessage::Ack { sequence_id } | HubMessage::Sequence { sequence_id } => {
            enc::write_array_len(out, 2).map_err(io)?;
            enc::write_pfix(out, message.type_id()).map_err(io)?;
            enc::write_uint(out, *sequence_id).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_text(body: &[u8]) -> String {
        match parse(Bytes::copy_from_slice(body)) {
            Err(error) => error.to_string(),
            Ok(message) => panic!("parsed {message:?}"),
        }
    }

    const END: &str = "Deserializing object of the `MessagePack` type failed: unexpected end of data.";

    #[test]
    fn msgpack_reader_errors_keep_the_hub_texts() {
        assert_eq!(error_text(&[0x92, 0x08]), END);
        assert_eq!(error_text(&[0x06]), "Reading array length for 'elementCount' failed.");
        assert_eq!(
            error_text(&[0x91, 0xa1, b'x']),
            "Reading 'messageType' as Int32 failed."
        );
        // [5, {}, nil]: the invocation id of a cancel must be a string.
        assert_eq!(
            error_text(&[0x93, 0x05, 0x80, 0xc0]),
            "Reading 'invocationId' as String failed."
        );
        assert_eq!(
            error_text(&[0x93, 0x07, 0xc0, 0x01]),
            "Reading 'allowReconnect' as Boolean failed."
        );
    }

    #[test]
    fn msgpack_counts_larger_than_the_record_are_errors() {
        let huge = [0xff, 0xff, 0xff, 0xff];
        // [1, {}, nil, "t", array32(4 G)…]
        let mut invocation = vec![0x95, 0x01, 0x80, 0xc0, 0xa1, b't', 0xdd];
        invocation.extend(huge);
        assert_eq!(error_text(&invocation), END);
        // [1, map32(4 G)…]
        let mut headers = vec![0x95, 0x01, 0xdf];
        headers.extend(huge);
        assert_eq!(error_text(&headers), END);
        // A record declaring 300 items with two present.
        assert_eq!(error_text(&[0xdc, 0x01, 0x2c, 0x06]), END);
        // [2, {}, "i", array32(4 G)…]: an item claiming more values than are left.
        let mut item = vec![0x94, 0x02, 0x80, 0xa1, b'i', 0xdd];
        item.extend(huge);
        assert_eq!(error_text(&item), END);
    }
}
