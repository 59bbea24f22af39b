//! The SignalR wire protocols, sans-IO: no sockets, no clocks, no tokio.
//!
//! - [`HubMessage`] and its parts: the hub protocol's messages, independent of encoding.
//! - [`Protocol`]: the JSON and MessagePack hub protocols, which turn records into messages
//!   and messages (or typed values, encoded once) into framed bytes.
//! - [`framing`]: record-separator (`0x1E`) and VarInt-length framing over a byte stream.
//! - [`handshake`]: the handshake request and response.
//! - [`membership`]: the membership index of a hub (connections, groups, users, user groups)
//!   and the resolution of a send's recipients.
//! - [`negotiate`]: the bodies of `POST {hub}/negotiate`, versions 0 and 1.
//! - [`values`]: value types each hub protocol represents in its own way (bytes, timestamps,
//!   any value).

mod arguments;
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) mod client_core;
pub(crate) mod connection_core;
pub mod framing;
pub mod handshake;
mod json;
pub(crate) mod liveness;
pub mod membership;
mod message;
mod msgpack;
pub mod negotiate;
pub(crate) mod replay_buffer;
// The server protocol is public API only for a relay (feature `relay`); the service-mode SDK
// uses it inside the crate either way.
#[cfg(feature = "relay")]
pub mod service;
#[cfg(not(feature = "relay"))]
#[allow(dead_code, unused_imports)]
pub(crate) mod service;
pub mod values;

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use arguments::Arguments;
pub(crate) use arguments::AsArray;
pub use message::{Close, Completion, CompletionResult, Headers, HubMessage, Invocation, RawValue, StreamItem};

/// The highest hub protocol version this implementation speaks (2 adds Ack and Sequence).
pub const MAX_HUB_PROTOCOL_VERSION: i32 = 2;

/// Whether a transport carries text or binary data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferFormat {
    /// UTF-8 text (WebSocket text frames; the only format of Server-Sent Events).
    Text,
    /// Arbitrary bytes (WebSocket binary frames).
    Binary,
}

impl TransferFormat {
    /// The name used in negotiate responses.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferFormat::Text => "Text",
            TransferFormat::Binary => "Binary",
        }
    }
}

/// A SignalR hub protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The JSON hub protocol (`"json"`): one JSON object per record, records ended by `0x1E`.
    Json,
    /// The MessagePack hub protocol (`"messagepack"`): VarInt-length-prefixed arrays.
    MessagePack,
}

/// An error decoding or encoding hub protocol data.
///
/// Its `Display` text is the message the reference server reports for the same input (the
/// part after the exception type name).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The input is not valid for the protocol; the text says why.
    InvalidData(String),
    /// A record is larger than the configured maximum.
    MessageTooLarge {
        /// The maximum, in bytes.
        max: usize,
    },
    /// A value could not be encoded.
    Encode(String),
    /// The framing itself is malformed (a length prefix too long): .NET's `FormatException`.
    Format(String),
}

impl ProtocolError {
    pub(crate) fn invalid(text: impl Into<String>) -> Self {
        ProtocolError::InvalidData(text.into())
    }

    /// The .NET exception type the reference server would name for this error.
    pub fn exception_type(&self) -> &'static str {
        match self {
            ProtocolError::InvalidData(_) | ProtocolError::MessageTooLarge { .. } => "InvalidDataException",
            ProtocolError::Encode(_) => "InvalidOperationException",
            ProtocolError::Format(_) => "FormatException",
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::InvalidData(text) | ProtocolError::Encode(text) | ProtocolError::Format(text) => {
                f.write_str(text)
            }
            ProtocolError::MessageTooLarge { max } => write!(
                f,
                "The maximum message size of {max}B was exceeded. The message size can be configured in AddHubOptions."
            ),
        }
    }
}

impl std::error::Error for ProtocolError {}

impl Protocol {
    /// Every protocol, in the order they are preferred.
    pub const ALL: [Protocol; 2] = [Protocol::Json, Protocol::MessagePack];

    /// The protocol's name in the handshake (`"json"`, `"messagepack"`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Json => "json",
            Protocol::MessagePack => "messagepack",
        }
    }

    /// Finds a protocol by its handshake name, ignoring case.
    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// The highest protocol version supported; any version up to it is accepted.
    pub fn version(self) -> i32 {
        MAX_HUB_PROTOCOL_VERSION
    }

    /// The transfer format the protocol needs from its transport.
    pub fn transfer_format(self) -> TransferFormat {
        match self {
            Protocol::Json => TransferFormat::Text,
            Protocol::MessagePack => TransferFormat::Binary,
        }
    }

    /// Splits the next complete record off the front of `buf`, if one is there.
    ///
    /// A record longer than `max_size` (when given) is an error, detected as soon as the
    /// bytes seen prove it, without waiting for the rest of it.
    pub fn split_record(self, buf: &mut BytesMut, max_size: Option<usize>) -> Result<Option<Bytes>, ProtocolError> {
        match self {
            Protocol::Json => framing::split_text_record(buf, max_size),
            Protocol::MessagePack => framing::split_binary_record(buf, max_size),
        }
    }

    /// Parses one record (as returned by [`Protocol::split_record`]) into a message.
    ///
    /// `Ok(None)` means the record holds a message type this implementation does not know,
    /// which is ignored, as the reference implementations do.
    pub fn parse_record(self, record: Bytes) -> Result<Option<HubMessage>, ProtocolError> {
        match self {
            Protocol::Json => json::parse(record),
            Protocol::MessagePack => msgpack::parse(record),
        }
    }

    /// Appends one framed message to `out`.
    pub fn write_message(self, out: &mut Vec<u8>, message: &HubMessage) -> Result<(), ProtocolError> {
        match self {
            Protocol::Json => json::write_message(out, message),
            Protocol::MessagePack => framing::write_binary_framed(out, |body| msgpack::write_message(body, message)),
        }
    }

    /// Appends a framed Invocation (or StreamInvocation when `streaming`) whose arguments are
    /// the typed values `arguments` (a tuple, `()` for none).
    pub fn write_invocation<A: Arguments + ?Sized>(
        self,
        out: &mut Vec<u8>,
        streaming: bool,
        invocation_id: Option<&str>,
        target: &str,
        arguments: &A,
        stream_ids: &[String],
    ) -> Result<(), ProtocolError> {
        match self {
            Protocol::Json => json::write_invocation(out, streaming, invocation_id, target, arguments, stream_ids),
            Protocol::MessagePack => framing::write_binary_framed(out, |body| {
                msgpack::write_invocation(body, streaming, invocation_id, target, arguments, stream_ids)
            }),
        }
    }

    /// Appends a framed Completion whose result, if any, is the typed value in `result`.
    pub fn write_completion<T: Serialize + ?Sized>(
        self,
        out: &mut Vec<u8>,
        invocation_id: &str,
        result: CompletionResult<&T>,
    ) -> Result<(), ProtocolError> {
        match self {
            Protocol::Json => json::write_completion(out, invocation_id, result),
            Protocol::MessagePack => {
                framing::write_binary_framed(out, |body| msgpack::write_completion(body, invocation_id, result))
            }
        }
    }

    /// Appends a framed StreamItem holding the typed value `item`.
    pub fn write_stream_item<T: Serialize + ?Sized>(
        self,
        out: &mut Vec<u8>,
        invocation_id: &str,
        item: &T,
    ) -> Result<(), ProtocolError> {
        match self {
            Protocol::Json => json::write_stream_item(out, invocation_id, item),
            Protocol::MessagePack => {
                framing::write_binary_framed(out, |body| msgpack::write_stream_item(body, invocation_id, item))
            }
        }
    }

    /// Encodes one bare value (no message around it) in this protocol's format.
    pub fn encode_value<T: Serialize + ?Sized>(self, out: &mut Vec<u8>, value: &T) -> Result<(), ProtocolError> {
        match self {
            Protocol::Json => serde_json::to_writer(out, value).map_err(|e| ProtocolError::Encode(e.to_string())),
            Protocol::MessagePack => {
                rmp_serde::encode::write_named(out, value).map_err(|e| ProtocolError::Encode(e.to_string()))
            }
        }
    }

    /// Decodes one bare value encoded in this protocol's format.
    pub fn decode_value<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, ProtocolError> {
        match self {
            Protocol::Json => serde_json::from_slice(bytes).map_err(|e| ProtocolError::invalid(e.to_string())),
            Protocol::MessagePack => rmp_serde::from_slice(bytes).map_err(|e| ProtocolError::invalid(e.to_string())),
        }
    }

    /// Appends `value` to `out` in this protocol's format, copying the bytes as they are when
    /// the value already is in this format and converting it otherwise.
    pub(crate) fn write_raw_value(self, out: &mut Vec<u8>, value: &RawValue) -> Result<(), ProtocolError> {
        if value.protocol() == self {
            out.extend_from_slice(value.bytes());
            Ok(())
        } else {
            let converted: values::Dynamic = value.decode()?;
            self.encode_value(out, &converted)
        }
    }
}

#[cfg(test)]
mod tests;
