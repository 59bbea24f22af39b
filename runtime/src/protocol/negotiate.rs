//! The bodies of `POST {hub}/negotiate`.
//!
//! Version 1 hands the client a public `connectionId` and a secret `connectionToken`, which is
//! the `id` of every later transport request. Version 0 (clients that send no
//! `negotiateVersion`) has no token: the `connectionId` doubles as the `id`. A negotiate can
//! also redirect the client elsewhere (`url` and `accessToken`) or refuse it (`error`).

use serde::{Deserialize, Serialize};

use super::TransferFormat;

/// The highest negotiate version this implementation speaks.
pub const MAX_NEGOTIATE_VERSION: u32 = 1;

/// A transport the server offers, with the transfer formats it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailableTransport {
    /// `WebSockets`, `ServerSentEvents` or `LongPolling`.
    pub transport: String,
    /// `Text` and/or `Binary`.
    #[serde(rename = "transferFormats")]
    pub transfer_formats: Vec<String>,
}

impl AvailableTransport {
    /// A transport entry from its name and formats.
    pub fn new(transport: &str, formats: &[TransferFormat]) -> Self {
        Self {
            transport: transport.to_owned(),
            transfer_formats: formats.iter().map(|f| f.as_str().to_owned()).collect(),
        }
    }
}

/// A successful negotiate: a new connection and the transports it may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegotiateResponse {
    /// The connection's public id.
    #[serde(rename = "connectionId")]
    pub connection_id: String,
    /// The secret transport id (version 1 and later).
    #[serde(rename = "connectionToken", skip_serializing_if = "Option::is_none", default)]
    pub connection_token: Option<String>,
    /// The negotiate version the server chose.
    #[serde(rename = "negotiateVersion", default)]
    pub negotiate_version: u32,
    /// The transports the client may use, in the order to try them.
    #[serde(rename = "availableTransports")]
    pub available_transports: Vec<AvailableTransport>,
    /// Whether the connection may reconnect statefully.
    #[serde(rename = "useStatefulReconnect", default, skip_serializing_if = "std::ops::Not::not")]
    pub use_stateful_reconnect: bool,
}

/// A negotiate that sends the client elsewhere, as a SignalR service does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegotiateRedirect {
    /// Where to negotiate next.
    pub url: String,
    /// The bearer token to use there.
    #[serde(rename = "accessToken", skip_serializing_if = "Option::is_none", default)]
    pub access_token: Option<String>,
}

/// A refused negotiate; the client fails to start with this text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegotiateError {
    /// The reason.
    pub error: String,
}

/// Any negotiate body, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiateBody {
    /// A new connection.
    Connection(NegotiateResponse),
    /// Go elsewhere.
    Redirect(NegotiateRedirect),
    /// Refused.
    Error(NegotiateError),
}

impl NegotiateBody {
    /// Parses a negotiate response body.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_slice(body)?;
        if value.get("error").is_some_and(|e| !e.is_null()) {
            return serde_json::from_value(value).map(NegotiateBody::Error);
        }
        if value.get("url").is_some_and(|u| !u.is_null()) {
            return serde_json::from_value(value).map(NegotiateBody::Redirect);
        }
        serde_json::from_value(value).map(NegotiateBody::Connection)
    }
}

/// The negotiate version to answer with, from the `negotiateVersion` query value.
///
/// A missing value means version 0; a value above the highest supported is lowered to it;
/// anything else is refused with the reference server's text.
pub fn select_version(query_value: Option<&str>, minimum: u32) -> Result<u32, NegotiateError> {
    let requested = match query_value {
        None => 0,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(v) => v,
            Err(_) => {
                return Err(NegotiateError {
                    error: "The client requested a non-integer protocol version.".into(),
                });
            }
        },
    };
    if requested < i64::from(minimum) {
        return Err(NegotiateError {
            error: format!("The client requested version '{requested}', but the server does not support this version."),
        });
    }
    Ok(requested.min(i64::from(MAX_NEGOTIATE_VERSION)) as u32)
}
