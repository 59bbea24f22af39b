//! The handshake: the client's first record names the hub protocol and its version; the
//! server's first record accepts it (`{}`) or refuses it (`{"error":"…"}`).
//!
//! Both are JSON records ended by `0x1E`, whatever hub protocol follows.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::ProtocolError;
use super::framing::{self, RECORD_SEPARATOR};

/// The error text for a handshake that could not be read.
pub const UNEXPECTED_HANDSHAKE_ERROR: &str = "An unexpected error occurred during connection handshake.";

/// The error text for a handshake that took too long or was too large.
pub const HANDSHAKE_CANCELED: &str = "Handshake was canceled.";

/// What the client asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandshakeRequest {
    /// The hub protocol's name (`json`, `messagepack`).
    pub protocol: String,
    /// The hub protocol version.
    pub version: i32,
}

#[derive(Deserialize)]
struct WireRequest {
    protocol: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
}

/// Splits the handshake request off the front of `buf`, if it has arrived whole, and parses
/// it. Any bytes after it stay in `buf`: they are already hub messages.
pub fn read_request(buf: &mut BytesMut, max_size: Option<usize>) -> Result<Option<HandshakeRequest>, ProtocolError> {
    let Some(record) = framing::split_text_record(buf, max_size)? else {
        return Ok(None);
    };
    parse_request(&record).map(Some)
}

/// Parses the body of a handshake request record (without its separator).
pub fn parse_request(record: &[u8]) -> Result<HandshakeRequest, ProtocolError> {
    let content = || String::from_utf8_lossy(record).into_owned();
    let value: serde_json::Value =
        serde_json::from_slice(record).map_err(|_| ProtocolError::invalid("Error reading JSON."))?;
    if !value.is_object() {
        return Err(ProtocolError::invalid(format!(
            "Unexpected JSON Token Type '{}'. Expected a JSON Object.",
            json_token_type(&value)
        )));
    }
    let wire: WireRequest = serde_json::from_value(value).map_err(|_| ProtocolError::invalid("Error reading JSON."))?;
    let protocol = match wire.protocol {
        None => {
            return Err(ProtocolError::invalid(format!(
                "Missing required property 'protocol'. Message content: {}",
                content()
            )));
        }
        Some(serde_json::Value::String(s)) => s,
        Some(_) => return Err(ProtocolError::invalid("Expected 'protocol' to be of type String.")),
    };
    let version = match wire.version {
        None => {
            return Err(ProtocolError::invalid(format!(
                "Missing required property 'version'. Message content: {}",
                content()
            )));
        }
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| ProtocolError::invalid("Expected 'version' to be of type Number."))?,
        Some(_) => return Err(ProtocolError::invalid("Expected 'version' to be of type Number.")),
    };
    Ok(HandshakeRequest { protocol, version })
}

/// The name .NET's JSON reader gives a value's first token.
pub(super) fn json_token_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Array(_) => "Array",
        serde_json::Value::String(_) => "String",
        serde_json::Value::Number(_) => "Number",
        serde_json::Value::Bool(true) => "True",
        serde_json::Value::Bool(false) => "False",
        serde_json::Value::Null => "Null",
        serde_json::Value::Object(_) => "Object",
    }
}

/// Encodes a handshake request record (what a client sends first).
pub fn write_request(request: &HandshakeRequest) -> Bytes {
    let mut out = serde_json::to_vec(request).unwrap_or_default();
    out.push(RECORD_SEPARATOR);
    Bytes::from(out)
}

/// Encodes the handshake response record: `{}` on success, `{"error":"…"}` otherwise.
pub fn write_response(error: Option<&str>) -> Bytes {
    let mut out = Vec::with_capacity(3);
    match error {
        None => out.extend_from_slice(b"{}"),
        Some(error) => {
            out.extend_from_slice(b"{\"error\":");
            // A string always serializes.
            out.extend_from_slice(&serde_json::to_vec(error).unwrap_or_default());
            out.push(b'}');
        }
    }
    out.push(RECORD_SEPARATOR);
    Bytes::from(out)
}

/// The server's answer to a handshake, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// Why the server refused the handshake, if it did.
    pub error: Option<String>,
}

/// Splits the handshake response off the front of `buf`, if it has arrived whole.
pub fn read_response(buf: &mut BytesMut, max_size: Option<usize>) -> Result<Option<HandshakeResponse>, ProtocolError> {
    #[derive(Deserialize)]
    struct Wire {
        error: Option<String>,
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
    }
    let Some(record) = framing::split_text_record(buf, max_size)? else {
        return Ok(None);
    };
    let wire: Wire = serde_json::from_slice(&record).map_err(|_| ProtocolError::invalid("Error reading JSON."))?;
    if wire.kind.is_some() {
        return Err(ProtocolError::invalid("Expected a handshake response from the server."));
    }
    Ok(Some(HandshakeResponse { error: wire.error }))
}
