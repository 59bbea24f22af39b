//! Who a connection is: the claims of the bearer token it presented.

use serde_json::{Map, Value};

/// The claim type .NET maps a JWT's `nameid` claim to.
pub const NAME_IDENTIFIER_CLAIM: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";

/// The claims of a validated bearer token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims(pub Map<String, Value>);

impl Claims {
    /// A claim's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// A claim's value if it is a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// The name identifier: the `nameid` claim, else the full .NET claim type, else `sub`.
    pub fn name_identifier(&self) -> Option<&str> {
        self.get_str("nameid")
            .or_else(|| self.get_str(NAME_IDENTIFIER_CLAIM))
            .or_else(|| self.get_str("sub"))
    }
}
