//! How the service protocol reads its fields over the shared MessagePack cursor
//! ([`msgpack::Reader`]): the error texts of the reference reader, and the compound fields
//! (string arrays, payload maps, claims, headers).
//!
//! Failures carry the texts of the reference reader (`Reading 'ackId' as Int32 failed.`, …),
//! which wraps every primitive read of a named field the same way, whether the record ended
//! or the value was of another type.

use bytes::Bytes;

use crate::protocol::ProtocolError;
use crate::protocol::msgpack::{self, Fault, Texts};

/// The service protocol reader's error texts.
pub(super) struct ServiceTexts;

impl Texts for ServiceTexts {
    fn value(what: &str, as_type: &str, fault: Fault) -> ProtocolError {
        match fault {
            Fault::Nil => ProtocolError::invalid(format!("Reading '{what}' as Not-Null {as_type} failed.")),
            Fault::End | Fault::Mismatch => ProtocolError::invalid(format!("Reading '{what}' as {as_type} failed.")),
        }
    }

    fn part(what: &str, part: &str, _: Fault) -> ProtocolError {
        ProtocolError::invalid(format!("Reading {part} for '{what}' failed."))
    }

    fn skipped_past_end() -> ProtocolError {
        ProtocolError::invalid("Unexpected end of the message while skipping a value.")
    }
}

/// A cursor over one service protocol record (the bytes after its VarInt length prefix).
pub(super) type Reader = msgpack::Reader<ServiceTexts>;

impl Reader {
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
}
