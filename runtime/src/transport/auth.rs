//! Bearer tokens and users.
//!
//! A token travels in the `Authorization: Bearer …` header or, where clients cannot set
//! headers (browser WebSockets, Server-Sent Events), in the `access_token` query parameter.
//! An [`Authenticator`] turns a token into [`Claims`]; a user id provider picks the user id
//! from them. Tokens never appear in logs or error messages.

use std::sync::Arc;

use http::request::Parts;
use serde_json::{Map, Value};

use crate::connection::claims::Claims;
use crate::connection::request::RequestInfo;
use crate::jwt::{self, Algorithm, Verifier};

/// Why a token was refused. Deliberately says nothing about the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    reason: String,
}

impl AuthError {
    /// A refusal with a reason that is safe to log.
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for AuthError {}

/// Validates bearer tokens.
pub trait Authenticator: Send + Sync + 'static {
    /// The token's claims, or why it is not valid. `request` is the request that carried
    /// it (for checks that depend on it, such as an audience naming the host and hub).
    fn authenticate(&self, token: &str, request: &RequestInfo) -> Result<Claims, AuthError>;
}

/// JSON Web Tokens signed with a shared secret (HS256, HS384 or HS512).
#[derive(Debug, Clone)]
pub struct JwtBearer {
    verifier: Verifier,
}

impl JwtBearer {
    /// Accepts tokens signed with `secret` by HS256 (and, with [`JwtBearer::algorithms`],
    /// others), checking expiry with no leeway, and neither issuer nor audience.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            verifier: Verifier::new([secret], &[Algorithm::HS256]),
        }
    }

    /// The signature algorithms accepted.
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.verifier = self.verifier.algorithms(algorithms);
        self
    }

    /// Requires this audience.
    pub fn audience(mut self, audience: &str) -> Self {
        self.verifier = self.verifier.audiences(&[audience]);
        self
    }
}

impl Authenticator for JwtBearer {
    fn authenticate(&self, token: &str, _request: &RequestInfo) -> Result<Claims, AuthError> {
        self.verifier
            .verify(token, None)
            .map(Claims)
            .map_err(|e| AuthError::new(format!("invalid bearer token: {e}")))
    }
}

/// Signs a token with `secret` by HS256, carrying `claims` and expiring in `lifetime`.
pub fn sign_hs256(
    secret: &[u8],
    claims: Map<String, Value>,
    lifetime: std::time::Duration,
) -> Result<String, AuthError> {
    jwt::sign(secret, Algorithm::HS256, claims, lifetime)
        .map_err(|e| AuthError::new(format!("could not sign a token: {e}")))
}

/// The token of an `Authorization: Bearer …` header, if the headers have one.
pub fn bearer_header(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The bearer token of a request, from the header or the `access_token` query parameter.
pub(crate) fn bearer_token(parts: &Parts) -> Option<String> {
    if let Some(token) = bearer_header(&parts.headers) {
        return Some(token.to_owned());
    }
    let query = parts.uri.query()?;
    crate::connection::request::parse_query(query)
        .into_iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// What a user id provider sees of a connecting client.
#[derive(Debug)]
pub struct UserContext<'a> {
    /// The claims of its bearer token, if it presented a valid one.
    pub claims: Option<&'a Claims>,
    /// Its request.
    pub request: &'a RequestInfo,
}

/// Picks the user id of a connection.
pub type UserIdProvider = Arc<dyn Fn(&UserContext<'_>) -> Option<String> + Send + Sync>;

/// The default user id: the name identifier claim.
pub(crate) fn default_user_id(user: &UserContext<'_>) -> Option<String> {
    user.claims.and_then(Claims::name_identifier).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_bearer_header() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(bearer_header(&headers), None);
        headers.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_header(&headers), Some("abc"));
        headers.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_header(&headers), None);
    }
}
