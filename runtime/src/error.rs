//! The errors users meet: [`HubError`] from hub methods and sends, [`BuildError`] from
//! configuration.

use std::borrow::Cow;
use std::fmt;

/// An error from a hub method, a send, or a client.
///
/// What a client sees of it follows the reference server: a *hub* error (made with
/// [`HubError::new`], like .NET's `HubException`) always shows its message; any other error
/// (made with [`HubError::exception`] or converted from another error) shows only a generic
/// text unless detailed errors are on.
#[derive(Clone, PartialEq, Eq)]
pub struct HubError {
    kind: Kind,
    type_name: Cow<'static, str>,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Meant for the client: always shown.
    Hub,
    /// An internal failure: shown only with detailed errors.
    Exception,
    /// The message could not be encoded.
    Encode,
}

impl HubError {
    /// An error meant for the client, always shown to it (`HubException: <message>`).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Hub,
            type_name: Cow::Borrowed("HubException"),
            message: message.into(),
        }
    }

    /// An internal error named like a .NET exception type (for example
    /// `"InvalidOperationException"`), shown to clients only with detailed errors on.
    pub fn exception(type_name: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Exception,
            type_name: type_name.into(),
            message: message.into(),
        }
    }

    /// An internal error from any error value, shown to clients only with detailed errors on.
    pub fn internal(error: impl fmt::Display) -> Self {
        Self::exception("Exception", error.to_string())
    }

    pub(crate) fn encode(error: impl fmt::Display) -> Self {
        Self {
            kind: Kind::Encode,
            type_name: Cow::Borrowed("InvalidOperationException"),
            message: error.to_string(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The exception type name shown next to the message (`HubException`, …).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// Whether this error is meant for the client (always shown).
    pub fn is_hub_error(&self) -> bool {
        self.kind == Kind::Hub
    }

    /// Whether a value could not be encoded.
    pub fn is_encode(&self) -> bool {
        self.kind == Kind::Encode
    }

    /// `"{prefix} {Type}: {message}"` when the error is shown, else `prefix` alone.
    pub(crate) fn client_text(&self, prefix: &str, detailed: bool) -> String {
        if self.kind == Kind::Hub || detailed {
            format!("{prefix} {}: {}", self.type_name, self.message)
        } else {
            prefix.to_owned()
        }
    }
}

impl fmt::Debug for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HubError({}: {})", self.type_name, self.message)
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HubError {}

impl From<crate::protocol::ProtocolError> for HubError {
    fn from(error: crate::protocol::ProtocolError) -> Self {
        HubError::exception(error.exception_type(), error.to_string())
    }
}

/// A configuration error: a bad option, path or combination, found when the app is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    message: String,
}

impl BuildError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}
