//! The hub messages of the SignalR hub protocol, independent of their encoding.

use std::collections::HashMap;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::{Protocol, ProtocolError};

/// One value as it arrived on the wire, still encoded in its protocol's format.
///
/// Arguments, stream items and results are kept encoded until the dispatcher knows the type
/// the receiving method wants, so that each value is decoded exactly once, straight into its
/// final type. A relay can forward the bytes without decoding them at all.
#[derive(Clone, PartialEq, Eq)]
pub struct RawValue {
    protocol: Protocol,
    bytes: Bytes,
}

impl RawValue {
    /// Wraps bytes holding exactly one value encoded for `protocol`.
    pub fn new(protocol: Protocol, bytes: Bytes) -> Self {
        Self { protocol, bytes }
    }

    /// The protocol whose format the bytes are in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The encoded bytes (JSON text, or one MessagePack value).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Decodes the value into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ProtocolError> {
        self.protocol.decode_value(&self.bytes)
    }

    /// Encodes `value` for `protocol`.
    pub fn encode<T: serde::Serialize + ?Sized>(protocol: Protocol, value: &T) -> Result<Self, ProtocolError> {
        // Room for most values at once, rather than growing from nothing.
        let mut out = Vec::with_capacity(128);
        protocol.encode_value(&mut out, value)?;
        Ok(Self::new(protocol, Bytes::from(out)))
    }
}

impl std::fmt::Debug for RawValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.protocol {
            Protocol::Json => write!(f, "Json({})", String::from_utf8_lossy(&self.bytes)),
            Protocol::MessagePack => write!(f, "MessagePack({:02x?})", &self.bytes[..]),
        }
    }
}

/// Message headers: a map of string to string, carried by every message kind but Ping.
pub type Headers = HashMap<String, String>;

/// An Invocation (type 1) or a StreamInvocation (type 4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Invocation {
    /// Headers of the message.
    pub headers: Headers,
    /// The id the caller expects a Completion for; `None` for a fire-and-forget send.
    pub invocation_id: Option<String>,
    /// The name of the method to invoke.
    pub target: String,
    /// The positional arguments.
    pub arguments: Vec<RawValue>,
    /// Ids of the upload streams that feed stream parameters.
    pub stream_ids: Vec<String>,
}

/// A StreamItem (type 2).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamItem {
    /// Headers of the message.
    pub headers: Headers,
    /// The stream invocation or upload stream the item belongs to.
    pub invocation_id: String,
    /// The item.
    pub item: RawValue,
}

/// How an invocation completed.
#[derive(Debug, Clone, PartialEq)]
pub enum CompletionResult<V = RawValue> {
    /// The method returned nothing (no `result` on the wire).
    Void,
    /// The method returned a value (which may be null).
    Value(V),
    /// The method failed with this message.
    Error(String),
}

/// A Completion (type 3).
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Headers of the message.
    pub headers: Headers,
    /// The invocation being completed.
    pub invocation_id: String,
    /// Its outcome.
    pub result: CompletionResult,
}

/// A Close (type 7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Close {
    /// Why the connection closes, if it closes because of an error.
    pub error: Option<String>,
    /// Whether the client may reconnect.
    pub allow_reconnect: bool,
}

/// A hub protocol message.
#[derive(Debug, Clone, PartialEq)]
pub enum HubMessage {
    /// Type 1: call a method.
    Invocation(Invocation),
    /// Type 2: one item of a stream.
    StreamItem(StreamItem),
    /// Type 3: the outcome of an invocation, or the end of a stream.
    Completion(Completion),
    /// Type 4: call a streaming method.
    StreamInvocation(Invocation),
    /// Type 5: cancel a streaming invocation.
    CancelInvocation {
        /// Headers of the message.
        headers: Headers,
        /// The invocation to cancel.
        invocation_id: String,
    },
    /// Type 6: keep-alive.
    Ping,
    /// Type 7: the connection is closing.
    Close(Close),
    /// Type 8: stateful reconnect acknowledgement.
    Ack {
        /// The last sequence id received.
        sequence_id: u64,
    },
    /// Type 9: stateful reconnect resumption point.
    Sequence {
        /// The sequence id of the next message.
        sequence_id: u64,
    },
}

impl HubMessage {
    /// The numeric message type on the wire.
    pub fn type_id(&self) -> u8 {
        match self {
            HubMessage::Invocation(_) => 1,
            HubMessage::StreamItem(_) => 2,
            HubMessage::Completion(_) => 3,
            HubMessage::StreamInvocation(_) => 4,
            HubMessage::CancelInvocation { .. } => 5,
            HubMessage::Ping => 6,
            HubMessage::Close(_) => 7,
            HubMessage::Ack { .. } => 8,
            HubMessage::Sequence { .. } => 9,
        }
    }
}
