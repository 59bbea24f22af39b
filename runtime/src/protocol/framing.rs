//! Record framing over a byte stream.
//!
//! Transport frames and hub messages do not line up: one WebSocket frame, POST body or poll
//! response may hold several records, and one record may be split over several frames. The
//! connection appends whatever arrives to a buffer and splits complete records off its front.
//!
//! - Text (JSON and the handshake): each record ends with the record separator `0x1E`.
//! - Binary (MessagePack): each record is preceded by its length as a VarInt: 7 bits a byte,
//!   least significant group first, high bit set on every byte but the last, at most 5 bytes.

use bytes::{Buf, Bytes, BytesMut};

use super::{Protocol, ProtocolError};

/// The record separator that ends every text record.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// The largest length a VarInt prefix may carry (2 GiB - 1).
pub const MAX_BINARY_RECORD: usize = i32::MAX as usize;

/// Splits the next `0x1E`-terminated record off `buf`, without its separator.
pub fn split_text_record(buf: &mut BytesMut, max_size: Option<usize>) -> Result<Option<Bytes>, ProtocolError> {
    let limit = max_size.map_or(buf.len(), |max| buf.len().min(max.saturating_add(1)));
    match buf[..limit].iter().position(|b| *b == RECORD_SEPARATOR) {
        Some(end) => {
            let record = buf.split_to(end + 1).freeze();
            Ok(Some(record.slice(..end)))
        }
        None => match max_size {
            Some(max) if buf.len() > max => Err(ProtocolError::MessageTooLarge { max }),
            _ => Ok(None),
        },
    }
}

/// Splits the next VarInt-length-prefixed record off `buf`, without its prefix.
pub fn split_binary_record(buf: &mut BytesMut, max_size: Option<usize>) -> Result<Option<Bytes>, ProtocolError> {
    let Some((length, prefix)) = read_varint(buf)? else {
        return Ok(None);
    };
    if let Some(max) = max_size
        && length > max
    {
        return Err(ProtocolError::MessageTooLarge { max });
    }
    if buf.len() - prefix < length {
        return Ok(None);
    }
    buf.advance(prefix);
    Ok(Some(buf.split_to(length).freeze()))
}

/// Reads a VarInt length from the front of `bytes`: `(length, bytes used)`, or `None` when
/// more bytes are needed.
pub fn read_varint(bytes: &[u8]) -> Result<Option<(usize, usize)>, ProtocolError> {
    let mut length: u64 = 0;
    for (index, byte) in bytes.iter().take(5).enumerate() {
        length |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            if length > MAX_BINARY_RECORD as u64 {
                return Err(too_large());
            }
            return Ok(Some((length as usize, index + 1)));
        }
        if index == 4 {
            return Err(too_large());
        }
    }
    Ok(None)
}

/// A length prefix past 2 GB, as the reference's binary message parser reports it.
fn too_large() -> ProtocolError {
    ProtocolError::Format("Messages over 2GB in size are not supported.".to_owned())
}

/// Appends `length` as a VarInt.
pub fn write_varint(out: &mut Vec<u8>, mut length: usize) {
    loop {
        let byte = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a binary record whose body `write_body` produces, preceded by its VarInt length.
///
/// The body is written in place after room for the longest prefix, and moved back over the
/// unused part of that room, so no second buffer is needed.
pub(crate) fn write_binary_framed(
    out: &mut Vec<u8>,
    write_body: impl FnOnce(&mut Vec<u8>) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let start = out.len();
    out.extend_from_slice(&[0; 5]);
    if let Err(error) = write_body(out) {
        out.truncate(start);
        return Err(error);
    }
    let length = out.len() - start - 5;
    let mut prefix = Vec::with_capacity(5);
    write_varint(&mut prefix, length);
    let shift = 5 - prefix.len();
    out.copy_within(start + 5.., start + prefix.len());
    out.truncate(out.len() - shift);
    out[start..start + prefix.len()].copy_from_slice(&prefix);
    Ok(())
}

/// Appends a text record: the JSON `body` and the record separator.
pub fn write_text_record(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(body);
    out.push(RECORD_SEPARATOR);
}

/// The hub message type of one framed record as this implementation writes it (JSON records
/// start with `{"type":N`; MessagePack records are arrays whose first item is the type), or
/// `None` for anything else, such as the handshake response.
pub fn message_type(text: bool, frame: &[u8]) -> Option<u8> {
    if text {
        let rest = frame.strip_prefix(b"{\"type\":")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
    } else {
        let (_, prefix) = read_varint(frame).ok()??;
        let body = &frame[prefix..];
        let skip = match *body.first()? {
            0x90..=0x9f => 1,
            0xdc => 3,
            0xdd => 5,
            _ => return None,
        };
        match *body.get(skip)? {
            kind @ 0x00..=0x7f => Some(kind),
            _ => None,
        }
    }
}

/// The length of the complete record (framing included) at the front of `bytes`, or `None`
/// when more bytes are needed.
fn framed_len(protocol: Protocol, bytes: &[u8]) -> Result<Option<usize>, ProtocolError> {
    match protocol {
        Protocol::Json => Ok(bytes.iter().position(|b| *b == RECORD_SEPARATOR).map(|end| end + 1)),
        Protocol::MessagePack => Ok(read_varint(bytes)?
            .map(|(length, prefix)| prefix + length)
            .filter(|total| *total <= bytes.len())),
    }
}

/// Splits the next complete record of `protocol` off `buf`, keeping its framing (separator or
/// length prefix), so it can be passed on unchanged.
pub fn split_framed_record(
    protocol: Protocol,
    buf: &mut BytesMut,
    max_size: Option<usize>,
) -> Result<Option<Bytes>, ProtocolError> {
    let too_large = |length: usize| max_size.filter(|max| length > *max);
    if protocol == Protocol::MessagePack
        && let Some((length, _)) = read_varint(buf)?
        && let Some(max) = too_large(length)
    {
        return Err(ProtocolError::MessageTooLarge { max });
    }
    match framed_len(protocol, buf)? {
        // The separator is not part of a text record's size.
        Some(total) if protocol == Protocol::Json && too_large(total - 1).is_some() => {
            Err(ProtocolError::MessageTooLarge {
                max: max_size.unwrap_or_default(),
            })
        }
        Some(total) => Ok(Some(buf.split_to(total).freeze())),
        None => match max_size {
            Some(max) if protocol == Protocol::Json && buf.len() > max => Err(ProtocolError::MessageTooLarge { max }),
            _ => Ok(None),
        },
    }
}

/// The complete records of `protocol` in a payload, framing included (cheap slices of it);
/// trailing bytes that do not make a whole record are left out.
pub struct FramedRecords {
    protocol: Protocol,
    rest: Bytes,
}

impl FramedRecords {
    /// Iterates over the records of `payload`.
    pub fn new(protocol: Protocol, payload: Bytes) -> Self {
        Self {
            protocol,
            rest: payload,
        }
    }
}

impl Iterator for FramedRecords {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let total = framed_len(self.protocol, &self.rest).ok()??;
        Some(self.rest.split_to(total))
    }
}

/// The hub message type of one framed record of `protocol`, wherever a JSON record puts its
/// `type` (a fast path for records that start with it), or `None` when it has none.
pub fn record_type(protocol: Protocol, record: &[u8]) -> Option<u8> {
    match protocol {
        Protocol::MessagePack => message_type(false, record),
        Protocol::Json => message_type(true, record).or_else(|| {
            #[derive(serde::Deserialize)]
            struct Typed {
                #[serde(rename = "type")]
                kind: u8,
            }
            let body = record.strip_suffix(&[RECORD_SEPARATOR]).unwrap_or(record);
            serde_json::from_slice::<Typed>(body).ok().map(|typed| typed.kind)
        }),
    }
}

/// Whether a message type counts for stateful reconnect (numbered, buffered, acknowledged):
/// Invocation, StreamItem, Completion, StreamInvocation and CancelInvocation.
pub fn is_tracked(message_type: u8) -> bool {
    (1..=5).contains(&message_type)
}
