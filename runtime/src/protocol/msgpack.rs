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

use bytes::Bytes;
use rmp::Marker;
use rmp::encode as enc;
use serde::Serialize;

use super::message::{Close, Completion, CompletionResult, Headers, HubMessage, Invocation, RawValue, StreamItem};
use super::{Protocol, ProtocolError};

/// How deeply values may nest before a record is rejected.
const MAX_DEPTH: usize = 64;

const RESULT_ERROR: u8 = 1;
const RESULT_VOID: u8 = 2;
const RESULT_VALUE: u8 = 3;

fn truncated() -> ProtocolError {
    ProtocolError::invalid("Deserializing object of the `MessagePack` type failed: unexpected end of data.")
}

/// A cursor over one record.
struct Reader {
    record: Bytes,
    pos: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<&[u8], ProtocolError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.record.len())
            .ok_or_else(truncated)?;
        let slice = &self.record[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn marker(&mut self) -> Result<Marker, ProtocolError> {
        Ok(Marker::from_u8(self.take(1)?[0]))
    }

    fn be(&mut self, n: usize) -> Result<u64, ProtocolError> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn array_len(&mut self, what: &str) -> Result<usize, ProtocolError> {
        match self.marker()? {
            Marker::FixArray(n) => Ok(usize::from(n)),
            Marker::Array16 => Ok(self.be(2)? as usize),
            Marker::Array32 => Ok(self.be(4)? as usize),
            _ => Err(ProtocolError::invalid(format!(
                "Reading array length for '{what}' failed."
            ))),
        }
    }

    fn map_len(&mut self, what: &str) -> Result<usize, ProtocolError> {
        match self.marker()? {
            Marker::FixMap(n) => Ok(usize::from(n)),
            Marker::Map16 => Ok(self.be(2)? as usize),
            Marker::Map32 => Ok(self.be(4)? as usize),
            _ => Err(ProtocolError::invalid(format!(
                "Reading map length for '{what}' failed."
            ))),
        }
    }

    fn integer(&mut self, what: &str) -> Result<i64, ProtocolError> {
        let bad = || ProtocolError::invalid(format!("Reading '{what}' as Int32 failed."));
        Ok(match self.marker()? {
            Marker::FixPos(n) => i64::from(n),
            Marker::FixNeg(n) => i64::from(n),
            Marker::U8 => self.be(1)? as i64,
            Marker::U16 => self.be(2)? as i64,
            Marker::U32 => self.be(4)? as i64,
            Marker::U64 => i64::try_from(self.be(8)?).map_err(|_| bad())?,
            Marker::I8 => i64::from(self.be(1)? as u8 as i8),
            Marker::I16 => i64::from(self.be(2)? as u16 as i16),
            Marker::I32 => i64::from(self.be(4)? as u32 as i32),
            Marker::I64 => self.be(8)? as i64,
            _ => return Err(bad()),
        })
    }

    fn string_or_nil(&mut self, what: &str) -> Result<Option<String>, ProtocolError> {
        let len = match self.marker()? {
            Marker::Null => return Ok(None),
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.be(1)? as usize,
            Marker::Str16 => self.be(2)? as usize,
            Marker::Str32 => self.be(4)? as usize,
            _ => return Err(ProtocolError::invalid(format!("Reading '{what}' as String failed."))),
        };
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| ProtocolError::invalid(format!("Reading '{what}' as String failed.")))
    }

    fn string(&mut self, what: &str) -> Result<String, ProtocolError> {
        self.string_or_nil(what)?
            .ok_or_else(|| ProtocolError::invalid(format!("Reading '{what}' as String failed.")))
    }

    fn bool(&mut self, what: &str) -> Result<bool, ProtocolError> {
        match self.marker()? {
            Marker::True => Ok(true),
            Marker::False => Ok(false),
            _ => Err(ProtocolError::invalid(format!("Reading '{what}' as Boolean failed."))),
        }
    }

    fn headers(&mut self) -> Result<Headers, ProtocolError> {
        let count = self.map_len("headers")?;
        let mut headers = Headers::with_capacity(count.min(64));
        for _ in 0..count {
            let key = self.string("headers")?;
            let value = self.string("headers")?;
            headers.insert(key, value);
        }
        Ok(headers)
    }

    /// Steps over one value and returns it, sliced out of the record.
    fn value(&mut self) -> Result<RawValue, ProtocolError> {
        let start = self.pos;
        self.skip(0)?;
        Ok(RawValue::new(Protocol::MessagePack, self.record.slice(start..self.pos)))
    }

    fn skip(&mut self, depth: usize) -> Result<(), ProtocolError> {
        if depth > MAX_DEPTH {
            return Err(ProtocolError::invalid("The MessagePack value is nested too deeply."));
        }
        let (skip_bytes, items) = match self.marker()? {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => (0, 0),
            Marker::U8 | Marker::I8 => (1, 0),
            Marker::U16 | Marker::I16 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            Marker::FixStr(n) => (usize::from(n), 0),
            Marker::Str8 | Marker::Bin8 => (self.be(1)? as usize, 0),
            Marker::Str16 | Marker::Bin16 => (self.be(2)? as usize, 0),
            Marker::Str32 | Marker::Bin32 => (self.be(4)? as usize, 0),
            Marker::FixExt1 => (2, 0),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::Ext8 => (self.be(1)? as usize + 1, 0),
            Marker::Ext16 => (self.be(2)? as usize + 1, 0),
            Marker::Ext32 => (self.be(4)? as usize + 1, 0),
            Marker::FixArray(n) => (0, usize::from(n)),
            Marker::Array16 => (0, self.be(2)? as usize),
            Marker::Array32 => (0, self.be(4)? as usize),
            Marker::FixMap(n) => (0, usize::from(n) * 2),
            Marker::Map16 => (0, self.be(2)? as usize * 2),
            Marker::Map32 => (0, self.be(4)? as usize * 2),
            Marker::Reserved => {
                return Err(ProtocolError::invalid(
                    "Invalid MessagePack data (reserved marker 0xc1).",
                ));
            }
        };
        self.take(skip_bytes)?;
        for _ in 0..items {
            self.skip(depth + 1)?;
        }
        Ok(())
    }
}

pub(super) fn parse(record: Bytes) -> Result<Option<HubMessage>, ProtocolError> {
    let mut r = Reader { record, pos: 0 };
    let len = r.array_len("elementCount")?;
    if len == 0 {
        return Err(ProtocolError::invalid(
            "Unable to read message type: the message is an empty array.",
        ));
    }
    let kind = r.integer("messageType")?;
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
            let headers = r.headers()?;
            let invocation_id = r.string_or_nil("invocationId")?;
            let target = r.string("target")?;
            let count = r.array_len("arguments")?;
            let mut arguments = Vec::with_capacity(count.min(64));
            for _ in 0..count {
                arguments.push(r.value()?);
            }
            let mut stream_ids = Vec::new();
            if len > 5 {
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
            let headers = r.headers()?;
            let invocation_id = r.string("invocationId")?;
            HubMessage::StreamItem(StreamItem {
                headers,
                invocation_id,
                item: r.value()?,
            })
        }
        3 => {
            need(4)?;
            let headers = r.headers()?;
            let invocation_id = r.string("invocationId")?;
            let result = match r.integer("resultKind")? {
                1 => {
                    need(5)?;
                    CompletionResult::Error(r.string("error")?)
                }
                2 => CompletionResult::Void,
                3 => {
                    need(5)?;
                    CompletionResult::Value(r.value()?)
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
            let headers = r.headers()?;
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
            let sequence_id = u64::try_from(r.integer("sequenceId")?)
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
