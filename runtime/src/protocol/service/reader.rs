//! A cursor over one service protocol record that never panics.
//!
//! Every read checks the bytes left first, lengths are checked against what remains before
//! anything is allocated, and unknown values are stepped over with a depth limit. Failures
//! carry the texts of the reference reader (`Reading 'ackId' as Int32 failed.`, …), which
//! wraps every primitive read of a named field the same way.

use bytes::Bytes;
use rmp::Marker;

use crate::protocol::ProtocolError;

/// How deeply an unknown value may nest before the record is rejected.
const MAX_DEPTH: usize = 64;

fn failed(what: &str, as_type: &str) -> ProtocolError {
    ProtocolError::invalid(format!("Reading '{what}' as {as_type} failed."))
}

/// A cursor over one record (the bytes after its VarInt length prefix).
pub(super) struct Reader {
    record: Bytes,
    pos: usize,
}

impl Reader {
    pub(super) fn new(record: Bytes) -> Self {
        Reader { record, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.record.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.record.len())?;
        let slice = &self.record[self.pos..end];
        self.pos = end;
        Some(slice)
    }

    fn marker(&mut self) -> Option<Marker> {
        self.take(1).map(|b| Marker::from_u8(b[0]))
    }

    /// The next marker, without consuming it.
    fn peek(&self) -> Option<Marker> {
        self.record.get(self.pos).map(|b| Marker::from_u8(*b))
    }

    /// A big-endian unsigned number of `n` (at most 8) bytes.
    fn be(&mut self, n: usize) -> Option<u64> {
        Some(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A length prefix of `n` bytes, as a `usize`.
    fn len(&mut self, n: usize) -> Option<usize> {
        usize::try_from(self.be(n)?).ok()
    }

    /// An array header. The count is checked against the bytes left (each item takes at
    /// least one), so a forged count cannot make the caller allocate.
    pub(super) fn array_len(&mut self, what: &str) -> Result<usize, ProtocolError> {
        let count = match self.marker() {
            Some(Marker::FixArray(n)) => Some(usize::from(n)),
            Some(Marker::Array16) => self.len(2),
            Some(Marker::Array32) => self.len(4),
            _ => None,
        };
        count
            .filter(|count| *count <= self.remaining())
            .ok_or_else(|| ProtocolError::invalid(format!("Reading array length for '{what}' failed.")))
    }

    /// A map header, checked like [`Reader::array_len`] (each entry takes at least two bytes).
    pub(super) fn map_len(&mut self, what: &str) -> Result<usize, ProtocolError> {
        let count = match self.marker() {
            Some(Marker::FixMap(n)) => Some(usize::from(n)),
            Some(Marker::Map16) => self.len(2),
            Some(Marker::Map32) => self.len(4),
            _ => None,
        };
        count
            .filter(|count| count.saturating_mul(2) <= self.remaining())
            .ok_or_else(|| ProtocolError::invalid(format!("Reading map length for '{what}' failed.")))
    }

    /// Any MessagePack integer that fits in an `i64`.
    fn integer(&mut self) -> Option<i64> {
        Some(match self.marker()? {
            Marker::FixPos(n) => i64::from(n),
            Marker::FixNeg(n) => i64::from(n),
            Marker::U8 => self.be(1)? as i64,
            Marker::U16 => self.be(2)? as i64,
            Marker::U32 => self.be(4)? as i64,
            Marker::U64 => i64::try_from(self.be(8)?).ok()?,
            Marker::I8 => i64::from(self.be(1)? as u8 as i8),
            Marker::I16 => i64::from(self.be(2)? as u16 as i16),
            Marker::I32 => i64::from(self.be(4)? as u32 as i32),
            Marker::I64 => self.be(8)? as i64,
            _ => return None,
        })
    }

    /// An integer in the `Int32` range, in any integer encoding.
    pub(super) fn i32(&mut self, what: &str) -> Result<i32, ProtocolError> {
        self.integer()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| failed(what, "Int32"))
    }

    /// A non-negative integer, in any integer encoding.
    pub(super) fn u64(&mut self, what: &str) -> Result<u64, ProtocolError> {
        let value = match self.peek() {
            Some(Marker::U64) => {
                self.pos += 1;
                self.be(8)
            }
            _ => self.integer().and_then(|n| u64::try_from(n).ok()),
        };
        value.ok_or_else(|| failed(what, "UInt64"))
    }

    pub(super) fn bool(&mut self, what: &str) -> Result<bool, ProtocolError> {
        match self.marker() {
            Some(Marker::True) => Ok(true),
            Some(Marker::False) => Ok(false),
            _ => Err(failed(what, "Boolean")),
        }
    }

    /// A string or nil; `None` in the outer option on any failure.
    fn try_string_or_nil(&mut self) -> Option<Option<String>> {
        let len = match self.marker()? {
            Marker::Null => return Some(None),
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.len(1)?,
            Marker::Str16 => self.len(2)?,
            Marker::Str32 => self.len(4)?,
            _ => return None,
        };
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).ok().map(|s| Some(s.to_owned()))
    }

    /// A string that may be nil (the reference reader's `ReadString`).
    pub(super) fn string_or_nil(&mut self, what: &str) -> Result<Option<String>, ProtocolError> {
        self.try_string_or_nil().ok_or_else(|| failed(what, "String"))
    }

    /// A string that must not be nil (the reference reader's `ReadStringNotNull`).
    pub(super) fn string(&mut self, what: &str) -> Result<String, ProtocolError> {
        self.string_or_nil(what)?.ok_or_else(|| failed(what, "Not-Null String"))
    }

    /// Binary data (or, as MessagePack-CSharp allows, a string's bytes) sliced out of the
    /// record without copying; nil is `None`.
    fn try_bytes_or_nil(&mut self) -> Option<Option<Bytes>> {
        let len = match self.marker()? {
            Marker::Null => return Some(None),
            Marker::Bin8 | Marker::Str8 => self.len(1)?,
            Marker::Bin16 | Marker::Str16 => self.len(2)?,
            Marker::Bin32 | Marker::Str32 => self.len(4)?,
            Marker::FixStr(n) => usize::from(n),
            _ => return None,
        };
        let start = self.pos;
        self.take(len)?;
        Some(Some(self.record.slice(start..self.pos)))
    }

    /// Binary data where nil reads as empty (the reference reader's `ReadBytes`).
    pub(super) fn bytes(&mut self, what: &str) -> Result<Bytes, ProtocolError> {
        self.try_bytes_or_nil()
            .map(Option::unwrap_or_default)
            .ok_or_else(|| failed(what, "Byte[]"))
    }

    /// Binary data that may be nil (the reference reader's `ReadByteSequence`).
    pub(super) fn bytes_or_nil(&mut self, what: &str) -> Result<Option<Bytes>, ProtocolError> {
        self.try_bytes_or_nil()
            .ok_or_else(|| ProtocolError::invalid(format!("Reading binary sequence for '{what}' failed.")))
    }

    /// An array of non-nil strings.
    pub(super) fn string_array(&mut self, what: &str) -> Result<Vec<String>, ProtocolError> {
        let count = self.array_len(what)?;
        let mut items = Vec::with_capacity(count);
        for i in 0..count {
            items.push(self.string(&format!("{what}[{i}]"))?);
        }
        Ok(items)
    }

    /// A map of protocol names to payloads: `{"json": bin, "messagepack": bin, …}`.
    pub(super) fn payloads(&mut self) -> Result<Vec<(String, Bytes)>, ProtocolError> {
        let count = self.map_len("payloads")?;
        let mut payloads = Vec::with_capacity(count);
        for i in 0..count {
            let key = self.string(&format!("payloads[{i}].key"))?;
            let value = self.bytes(&format!("payloads[{i}].value"))?;
            payloads.push((key, value));
        }
        Ok(payloads)
    }

    /// A map of claim types to values; a type may repeat.
    pub(super) fn claims(&mut self) -> Result<Vec<(String, String)>, ProtocolError> {
        let count = self.map_len("claims")?;
        let mut claims = Vec::with_capacity(count);
        for i in 0..count {
            // .NET's `Claim` refuses null types and values, so nil is an error here.
            let kind = self.string(&format!("claims[{i}].Type"))?;
            let value = self.string(&format!("claims[{i}].Value"))?;
            claims.push((kind, value));
        }
        Ok(claims)
    }

    /// A map of header names to arrays of values. Nil values (a `StringValues` holding null)
    /// are dropped.
    pub(super) fn headers(&mut self) -> Result<Vec<(String, Vec<String>)>, ProtocolError> {
        let count = self.map_len("headers")?;
        let mut headers = Vec::with_capacity(count);
        for i in 0..count {
            let key = self.string(&format!("headers[{i}].key"))?;
            let values = self.array_len(&format!("headers[{i}].value.length"))?;
            let mut list = Vec::with_capacity(values);
            for j in 0..values {
                if let Some(value) = self.string_or_nil(&format!("headers[{i}].value[{j}]"))? {
                    list.push(value);
                }
            }
            headers.push((key, list));
        }
        Ok(headers)
    }

    /// Steps over one value of any type.
    pub(super) fn skip(&mut self) -> Result<(), ProtocolError> {
        self.skip_nested(0)
    }

    fn skip_nested(&mut self, depth: usize) -> Result<(), ProtocolError> {
        if depth > MAX_DEPTH {
            return Err(ProtocolError::invalid("The MessagePack value is nested too deeply."));
        }
        let truncated = || ProtocolError::invalid("Unexpected end of the message while skipping a value.");
        let marker = self.marker().ok_or_else(truncated)?;
        let (bytes, items) = match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => (Some(0), 0),
            Marker::U8 | Marker::I8 => (Some(1), 0),
            Marker::U16 | Marker::I16 => (Some(2), 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (Some(4), 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (Some(8), 0),
            Marker::FixStr(n) => (Some(usize::from(n)), 0),
            Marker::Str8 | Marker::Bin8 => (self.len(1), 0),
            Marker::Str16 | Marker::Bin16 => (self.len(2), 0),
            Marker::Str32 | Marker::Bin32 => (self.len(4), 0),
            Marker::FixExt1 => (Some(2), 0),
            Marker::FixExt2 => (Some(3), 0),
            Marker::FixExt4 => (Some(5), 0),
            Marker::FixExt8 => (Some(9), 0),
            Marker::FixExt16 => (Some(17), 0),
            Marker::Ext8 => (self.len(1).and_then(|n| n.checked_add(1)), 0),
            Marker::Ext16 => (self.len(2).and_then(|n| n.checked_add(1)), 0),
            Marker::Ext32 => (self.len(4).and_then(|n| n.checked_add(1)), 0),
            Marker::FixArray(n) => (Some(0), usize::from(n)),
            Marker::Array16 => (Some(0), self.len(2).ok_or_else(truncated)?),
            Marker::Array32 => (Some(0), self.len(4).ok_or_else(truncated)?),
            Marker::FixMap(n) => (Some(0), usize::from(n) * 2),
            Marker::Map16 => (Some(0), self.len(2).ok_or_else(truncated)?.saturating_mul(2)),
            Marker::Map32 => (Some(0), self.len(4).ok_or_else(truncated)?.saturating_mul(2)),
            Marker::Reserved => {
                return Err(ProtocolError::invalid(
                    "Invalid MessagePack data (reserved marker 0xc1).",
                ));
            }
        };
        let bytes = bytes.ok_or_else(truncated)?;
        self.take(bytes).ok_or_else(truncated)?;
        if items > self.remaining() {
            return Err(truncated());
        }
        for _ in 0..items {
            self.skip_nested(depth + 1)?;
        }
        Ok(())
    }
}
