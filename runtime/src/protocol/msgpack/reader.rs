//! The one MessagePack cursor, under both the hub protocol's MessagePack reader and the
//! service protocol's decoder. It never panics on input.
//!
//! Every read checks the bytes left first. A declared array or map count is checked against
//! what remains before the caller can allocate for it (each item takes at least one byte, each
//! map entry two), so a forged count is an error, never a huge allocation. Unknown values are
//! stepped over with a depth limit.
//!
//! The two protocols name their failures differently, after their reference readers (the hub
//! reader reports any early end as one "unexpected end of data", the service reader names the
//! field it was reading), so the texts come from a [`Texts`] vocabulary the reader is typed
//! with.

use std::marker::PhantomData;

use bytes::Bytes;
use rmp::Marker;

use crate::protocol::ProtocolError;

/// How deeply arrays and maps may nest in one value: MessagePack-CSharp's default
/// `MaximumObjectGraphDepth`, which the reference servers read with. Past it, a hub
/// invocation's argument fails to bind; any other value fails its record.
pub(crate) const MAX_DEPTH: usize = 500;

/// The error of a value nested past [`MAX_DEPTH`] where no binding error can stand for it.
const TOO_DEEP: &str = "The MessagePack value is nested too deeply.";

/// Why a read failed, for [`Texts`] to put into words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The record ends before the value does, or declares more items than it could hold.
    End,
    /// The value is of another type, out of range, or not UTF-8.
    Mismatch,
    /// The value is nil where a value is needed.
    Nil,
}

/// The error texts of one protocol's reader.
pub(crate) trait Texts {
    /// Reading the named value `what` as `as_type` (`Int32`, `String`, `Byte[]`, …) failed.
    fn value(what: &str, as_type: &str, fault: Fault) -> ProtocolError;
    /// Reading `part` (`array length`, `map length`, `binary sequence`) of `what` failed.
    fn part(what: &str, part: &str, fault: Fault) -> ProtocolError;
    /// A value being stepped over ends past the record.
    fn skipped_past_end() -> ProtocolError;
}

/// A cursor over one record, with the error texts of `T`.
pub(crate) struct Reader<T> {
    record: Bytes,
    pos: usize,
    texts: PhantomData<T>,
}

impl<T: Texts> Reader<T> {
    pub(crate) fn new(record: Bytes) -> Self {
        Reader {
            record,
            pos: 0,
            texts: PhantomData,
        }
    }

    fn remaining(&self) -> usize {
        self.record.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Fault> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.record.len())
            .ok_or(Fault::End)?;
        let slice = &self.record[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn marker(&mut self) -> Result<Marker, Fault> {
        Ok(Marker::from_u8(self.take(1)?[0]))
    }

    /// The next marker, without consuming it.
    fn peek(&self) -> Option<Marker> {
        self.record.get(self.pos).map(|b| Marker::from_u8(*b))
    }

    /// A big-endian unsigned number of `n` (at most 8) bytes.
    fn be(&mut self, n: usize) -> Result<u64, Fault> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A length prefix of `n` bytes.
    fn len(&mut self, n: usize) -> Result<usize, Fault> {
        usize::try_from(self.be(n)?).map_err(|_| Fault::End)
    }

    /// `count` items of at least `min_size` bytes each, if what is left can hold them.
    fn fits(&self, count: usize, min_size: usize) -> Result<usize, Fault> {
        if count.saturating_mul(min_size) <= self.remaining() {
            Ok(count)
        } else {
            Err(Fault::End)
        }
    }

    fn try_array_len(&mut self) -> Result<usize, Fault> {
        let count = match self.marker()? {
            Marker::FixArray(n) => usize::from(n),
            Marker::Array16 => self.len(2)?,
            Marker::Array32 => self.len(4)?,
            _ => return Err(Fault::Mismatch),
        };
        self.fits(count, 1)
    }

    fn try_map_len(&mut self) -> Result<usize, Fault> {
        let count = match self.marker()? {
            Marker::FixMap(n) => usize::from(n),
            Marker::Map16 => self.len(2)?,
            Marker::Map32 => self.len(4)?,
            _ => return Err(Fault::Mismatch),
        };
        self.fits(count, 2)
    }

    fn try_integer(&mut self) -> Result<i64, Fault> {
        Ok(match self.marker()? {
            Marker::FixPos(n) => i64::from(n),
            Marker::FixNeg(n) => i64::from(n),
            Marker::U8 => self.be(1)? as i64,
            Marker::U16 => self.be(2)? as i64,
            Marker::U32 => self.be(4)? as i64,
            Marker::U64 => i64::try_from(self.be(8)?).map_err(|_| Fault::Mismatch)?,
            Marker::I8 => i64::from(self.be(1)? as u8 as i8),
            Marker::I16 => i64::from(self.be(2)? as u16 as i16),
            Marker::I32 => i64::from(self.be(4)? as u32 as i32),
            Marker::I64 => self.be(8)? as i64,
            _ => return Err(Fault::Mismatch),
        })
    }

    fn try_string_or_nil(&mut self) -> Result<Option<String>, Fault> {
        let len = match self.marker()? {
            Marker::Null => return Ok(None),
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.len(1)?,
            Marker::Str16 => self.len(2)?,
            Marker::Str32 => self.len(4)?,
            _ => return Err(Fault::Mismatch),
        };
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| Fault::Mismatch)
    }

    /// Binary data (or, as MessagePack-CSharp allows, a string's bytes) sliced out of the
    /// record without copying; nil is `None`.
    fn try_bytes_or_nil(&mut self) -> Result<Option<Bytes>, Fault> {
        let len = match self.marker()? {
            Marker::Null => return Ok(None),
            Marker::Bin8 | Marker::Str8 => self.len(1)?,
            Marker::Bin16 | Marker::Str16 => self.len(2)?,
            Marker::Bin32 | Marker::Str32 => self.len(4)?,
            Marker::FixStr(n) => usize::from(n),
            _ => return Err(Fault::Mismatch),
        };
        let start = self.pos;
        self.take(len)?;
        Ok(Some(self.record.slice(start..self.pos)))
    }

    /// An array header, its count checked against the bytes left.
    pub(crate) fn array_len(&mut self, what: &str) -> Result<usize, ProtocolError> {
        self.try_array_len().map_err(|f| T::part(what, "array length", f))
    }

    /// A map header, its count checked against the bytes left.
    pub(crate) fn map_len(&mut self, what: &str) -> Result<usize, ProtocolError> {
        self.try_map_len().map_err(|f| T::part(what, "map length", f))
    }

    /// Any integer that fits in an `i64`, in any integer encoding; failures name it `as_type`.
    pub(crate) fn integer(&mut self, what: &str, as_type: &str) -> Result<i64, ProtocolError> {
        self.try_integer().map_err(|f| T::value(what, as_type, f))
    }

    /// An integer in the `Int32` range, in any integer encoding.
    pub(crate) fn i32(&mut self, what: &str) -> Result<i32, ProtocolError> {
        self.try_integer()
            .and_then(|n| i32::try_from(n).map_err(|_| Fault::Mismatch))
            .map_err(|f| T::value(what, "Int32", f))
    }

    /// A non-negative integer, in any integer encoding.
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, ProtocolError> {
        let value = match self.peek() {
            Some(Marker::U64) => {
                self.pos += 1;
                self.be(8)
            }
            _ => self
                .try_integer()
                .and_then(|n| u64::try_from(n).map_err(|_| Fault::Mismatch)),
        };
        value.map_err(|f| T::value(what, "UInt64", f))
    }

    /// A boolean.
    pub(crate) fn bool(&mut self, what: &str) -> Result<bool, ProtocolError> {
        match self.marker() {
            Ok(Marker::True) => Ok(true),
            Ok(Marker::False) => Ok(false),
            Ok(_) => Err(T::value(what, "Boolean", Fault::Mismatch)),
            Err(f) => Err(T::value(what, "Boolean", f)),
        }
    }

    /// A string that may be nil.
    pub(crate) fn string_or_nil(&mut self, what: &str) -> Result<Option<String>, ProtocolError> {
        self.try_string_or_nil().map_err(|f| T::value(what, "String", f))
    }

    /// A string that must not be nil.
    pub(crate) fn string(&mut self, what: &str) -> Result<String, ProtocolError> {
        self.string_or_nil(what)?
            .ok_or_else(|| T::value(what, "String", Fault::Nil))
    }

    /// Binary data where nil reads as empty (the service reference reader's `ReadBytes`).
    pub(crate) fn bytes(&mut self, what: &str) -> Result<Bytes, ProtocolError> {
        self.try_bytes_or_nil()
            .map(Option::unwrap_or_default)
            .map_err(|f| T::value(what, "Byte[]", f))
    }

    /// Binary data that may be nil (the service reference reader's `ReadByteSequence`).
    pub(crate) fn bytes_or_nil(&mut self, what: &str) -> Result<Option<Bytes>, ProtocolError> {
        self.try_bytes_or_nil().map_err(|f| T::part(what, "binary sequence", f))
    }

    /// Steps over one value of any type and returns it, sliced out of the record.
    pub(crate) fn raw_value(&mut self) -> Result<Bytes, ProtocolError> {
        self.raw_value_or_too_deep()?
            .ok_or_else(|| ProtocolError::invalid(TOO_DEEP))
    }

    /// Like [`Reader::raw_value`], but a value nested past [`MAX_DEPTH`] is `None` rather than
    /// an error (the cursor is then somewhere inside it: the caller stops reading the record).
    pub(crate) fn raw_value_or_too_deep(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let start = self.pos;
        Ok(self.skip_within()?.then(|| self.record.slice(start..self.pos)))
    }

    /// Steps over one value of any type.
    pub(crate) fn skip(&mut self) -> Result<(), ProtocolError> {
        self.raw_value().map(drop)
    }

    /// Steps over one value without recursion, keeping the items left in each open array or
    /// map; `false` (and the cursor inside it) once it nests past [`MAX_DEPTH`].
    fn skip_within(&mut self) -> Result<bool, ProtocolError> {
        let mut open: Vec<usize> = Vec::new();
        loop {
            let items = self.skip_head()?;
            if let Some(items) = items {
                if open.len() >= MAX_DEPTH {
                    return Ok(false);
                }
                if items > 0 {
                    open.push(items);
                    continue;
                }
            }
            // One whole value: counted off the arrays and maps it completes.
            loop {
                let Some(left) = open.last_mut() else { return Ok(true) };
                *left -= 1;
                if *left > 0 {
                    break;
                }
                open.pop();
            }
        }
    }

    /// Steps over one value's marker and, for a scalar, its bytes; for an array or a map, the
    /// number of values inside it (a map's keys and values both count), checked against the
    /// bytes left.
    fn skip_head(&mut self) -> Result<Option<usize>, ProtocolError> {
        let ended = |_| T::skipped_past_end();
        let (bytes, items) = match self.marker().map_err(ended)? {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => (0, None),
            Marker::U8 | Marker::I8 => (1, None),
            Marker::U16 | Marker::I16 => (2, None),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, None),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, None),
            Marker::FixStr(n) => (usize::from(n), None),
            Marker::Str8 | Marker::Bin8 => (self.len(1).map_err(ended)?, None),
            Marker::Str16 | Marker::Bin16 => (self.len(2).map_err(ended)?, None),
            Marker::Str32 | Marker::Bin32 => (self.len(4).map_err(ended)?, None),
            Marker::FixExt1 => (2, None),
            Marker::FixExt2 => (3, None),
            Marker::FixExt4 => (5, None),
            Marker::FixExt8 => (9, None),
            Marker::FixExt16 => (17, None),
            // The extension's type byte follows its length.
            Marker::Ext8 => (self.len(1).map_err(ended)?.saturating_add(1), None),
            Marker::Ext16 => (self.len(2).map_err(ended)?.saturating_add(1), None),
            Marker::Ext32 => (self.len(4).map_err(ended)?.saturating_add(1), None),
            Marker::FixArray(n) => (0, Some(usize::from(n))),
            Marker::Array16 => (0, Some(self.len(2).map_err(ended)?)),
            Marker::Array32 => (0, Some(self.len(4).map_err(ended)?)),
            Marker::FixMap(n) => (0, Some(usize::from(n) * 2)),
            Marker::Map16 => (0, Some(self.len(2).map_err(ended)?.saturating_mul(2))),
            Marker::Map32 => (0, Some(self.len(4).map_err(ended)?.saturating_mul(2))),
            Marker::Reserved => {
                return Err(ProtocolError::invalid(
                    "Invalid MessagePack data (reserved marker 0xc1).",
                ));
            }
        };
        self.take(bytes).map_err(ended)?;
        if let Some(items) = items {
            self.fits(items, 1).map_err(ended)?;
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts that show the fault, to check which one each read reports.
    struct Plain;

    impl Texts for Plain {
        fn value(what: &str, as_type: &str, fault: Fault) -> ProtocolError {
            ProtocolError::invalid(format!("{what} {as_type} {fault:?}"))
        }
        fn part(what: &str, part: &str, fault: Fault) -> ProtocolError {
            ProtocolError::invalid(format!("{what} {part} {fault:?}"))
        }
        fn skipped_past_end() -> ProtocolError {
            ProtocolError::invalid("skip End")
        }
    }

    fn reader(bytes: &[u8]) -> Reader<Plain> {
        Reader::new(Bytes::copy_from_slice(bytes))
    }

    fn text(error: ProtocolError) -> String {
        error.to_string()
    }

    #[test]
    fn reader_counts_larger_than_the_bytes_left_are_errors() {
        assert_eq!(reader(&[0x93, 1, 2, 3]).array_len("a").unwrap(), 3);
        assert_eq!(
            text(reader(&[0x93, 1, 2]).array_len("a").unwrap_err()),
            "a array length End"
        );
        let huge = [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(text(reader(&huge).array_len("a").unwrap_err()), "a array length End");
        // A map entry takes at least two bytes.
        assert_eq!(reader(&[0x81, 1, 2]).map_len("m").unwrap(), 1);
        assert_eq!(text(reader(&[0x81, 1]).map_len("m").unwrap_err()), "m map length End");
        assert_eq!(
            text(reader(&[0xdf, 0xff, 0xff, 0xff, 0xff]).map_len("m").unwrap_err()),
            "m map length End"
        );
        assert_eq!(
            text(reader(&[0x01]).array_len("a").unwrap_err()),
            "a array length Mismatch"
        );
        // A skipped array claiming more items than are left.
        assert_eq!(text(reader(&[0xdc, 0xff, 0xff, 0xc0]).skip().unwrap_err()), "skip End");
    }

    #[test]
    fn reader_faults_tell_an_early_end_from_a_wrong_type() {
        assert_eq!(text(reader(&[]).i32("n").unwrap_err()), "n Int32 End");
        assert_eq!(text(reader(&[0xd2, 0, 0]).i32("n").unwrap_err()), "n Int32 End");
        assert_eq!(
            text(reader(&[0xce, 0x80, 0, 0, 0]).i32("n").unwrap_err()),
            "n Int32 Mismatch"
        );
        assert_eq!(text(reader(&[0xa1, b'x']).i32("n").unwrap_err()), "n Int32 Mismatch");
        assert_eq!(text(reader(&[0xc0]).string("s").unwrap_err()), "s String Nil");
        assert_eq!(text(reader(&[0xa2, b'x']).string("s").unwrap_err()), "s String End");
        assert_eq!(
            text(reader(&[0xa1, 0xff]).string("s").unwrap_err()),
            "s String Mismatch"
        );
        assert_eq!(
            text(reader(&[0xc4, 2, 1]).bytes_or_nil("b").unwrap_err()),
            "b binary sequence End"
        );
        assert_eq!(text(reader(&[0xff]).u64("u").unwrap_err()), "u UInt64 Mismatch");
        assert_eq!(
            reader(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .u64("u")
                .unwrap(),
            u64::MAX
        );
        assert_eq!(text(reader(&[0x01]).bool("b").unwrap_err()), "b Boolean Mismatch");
    }

    #[test]
    fn reader_values_are_sliced_out_whole() {
        let mut r = reader(&[0x92, 0x81, 0xa1, b'k', 0x90, 0xc4, 1, 9, 0x07]);
        assert_eq!(&r.raw_value().unwrap()[..], &[0x92, 0x81, 0xa1, b'k', 0x90, 0xc4, 1, 9]);
        assert_eq!(r.i32("n").unwrap(), 7);
        // MAX_DEPTH arrays in one another are one value; one more is too deep.
        let nested = |depth: usize| {
            let mut bytes = vec![0x91; depth];
            bytes.push(0xc0);
            bytes.push(0x07);
            bytes
        };
        let mut r = reader(&nested(MAX_DEPTH));
        assert_eq!(r.raw_value().unwrap().len(), MAX_DEPTH + 1);
        assert_eq!(r.i32("n").unwrap(), 7);
        assert_eq!(
            text(reader(&nested(MAX_DEPTH + 1)).skip().unwrap_err()),
            "The MessagePack value is nested too deeply."
        );
        assert_eq!(reader(&nested(MAX_DEPTH + 1)).raw_value_or_too_deep().unwrap(), None);
        // Far deeper than any stack could recurse: no recursion, no panic.
        assert_eq!(reader(&nested(1_000_000)).raw_value_or_too_deep().unwrap(), None);
        assert!(reader(&[0xc1]).skip().is_err());
        // Empty arrays and maps, and maps, count as values of their own.
        let mut r = reader(&[0x93, 0x90, 0x80, 0x82, 1, 0x90, 2, 0x91, 0x05, 0x07]);
        assert_eq!(r.raw_value().unwrap().len(), 9);
        assert_eq!(r.i32("n").unwrap(), 7);
    }
}
