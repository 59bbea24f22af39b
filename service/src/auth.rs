//! Access tokens: JWTs signed with one of the configured access keys (HMAC over the UTF-8
//! bytes of the key string, HS256 or HS512), not expired, whose audience names this relay's
//! host (without port), the face (`client` or `server`) and the hub, lower-cased:
//! `http://{host}/client/?hub={hub}`.
//!
//! Refusals say why in terms safe to log; neither keys nor tokens ever appear in them.

use std::sync::Arc;

use serde_json::{Map, Value};
use switchboard::jwt::{Algorithm, Verifier, claims};
use switchboard::transport::auth::AuthError;
use switchboard::{Authenticator, Claims, RequestInfo, TransportType};

/// The keys tokens may be signed with; any of them is accepted (key rotation).
pub(crate) struct Keys {
    verifier: Verifier,
}

impl Keys {
    pub(crate) fn new(access_keys: &[String]) -> Self {
        let secrets = access_keys.iter().map(|key| key.as_bytes());
        Keys {
            verifier: Verifier::new(secrets, &[Algorithm::HS256, Algorithm::HS512]).require_expiry(),
        }
    }

    /// The claims of `token` if it is signed with one of the keys, unexpired, and for one of
    /// `audiences`.
    pub(crate) fn validate(&self, token: &str, audiences: &[String]) -> Result<Map<String, Value>, AuthError> {
        self.verifier
            .verify(token, Some(audiences))
            .map_err(|error| AuthError::new(format!("token refused: {error}")))
    }
}

/// The host of a `Host` header value, without its port (`[::1]:80` → `[::1]`).
pub(crate) fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The audiences a token for `face` (`client` or `server`) of `hub` may carry, for a request
/// addressed to `host`. `https` is accepted as well as `http`, for relays behind a TLS proxy.
pub(crate) fn audiences(host: &str, face: &str, hub: &str) -> Vec<String> {
    let host = host_without_port(host);
    let hub = hub.to_lowercase();
    ["http", "https"]
        .iter()
        .map(|scheme| format!("{scheme}://{host}/{face}/?hub={hub}"))
        .collect()
}

/// Validates client tokens for the runtime's transports (negotiate included): the audience is
/// `http://{host}/client/?hub={hub}`, from the request's `Host` header and `hub` parameter.
/// In a cluster, a token minted for another node's host is good here too (negotiate may send
/// a client on to another node with its token).
pub(crate) struct ClientAuthenticator {
    pub(crate) keys: Arc<Keys>,
    /// The other hosts whose tokens are good here (a cluster's other nodes).
    pub(crate) other_hosts: Option<Arc<dyn Fn() -> Vec<String> + Send + Sync>>,
}

impl Authenticator for ClientAuthenticator {
    fn authenticate(&self, token: &str, request: &RequestInfo) -> Result<Claims, AuthError> {
        let hub = request
            .query("hub")
            .filter(|hub| !hub.is_empty())
            .ok_or_else(|| AuthError::new("the request names no hub"))?;
        let host = request
            .host()
            .ok_or_else(|| AuthError::new("the request has no Host header"))?;
        let mut accepted = audiences(host, "client", hub);
        if let Some(hosts) = &self.other_hosts {
            for peer in hosts() {
                accepted.extend(audiences(&peer, "client", hub));
            }
        }
        self.keys.validate(token, &accepted).map(Claims)
    }
}

/// Every claim as (type, value) pairs: arrays become repeated pairs, numbers and booleans
/// their text, objects their JSON text; nulls are left out.
pub(crate) fn claim_pairs(claims: &Map<String, Value>) -> Vec<(String, String)> {
    let mut pairs = Vec::with_capacity(claims.len());
    for (name, value) in claims {
        match value {
            Value::Array(items) => {
                for item in items {
                    if let Some(text) = claim_text(item) {
                        pairs.push((name.clone(), text));
                    }
                }
            }
            value => {
                if let Some(text) = claim_text(value) {
                    pairs.push((name.clone(), text));
                }
            }
        }
    }
    pairs
}

fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        other => Some(other.to_string()),
    }
}

/// The transports bitmask of a client token (`asrs.s.htt`), if it has a readable one.
pub(crate) fn allowed_transports(claims: &Claims) -> Option<u64> {
    match claims.get(claims::TRANSPORTS)? {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Whether a client token lets its client use `transport` (any, without `asrs.s.htt`).
pub(crate) fn transport_allowed(claims: &Claims, transport: TransportType) -> bool {
    let bit = match transport {
        TransportType::WebSockets => 1,
        TransportType::ServerSentEvents => 2,
        TransportType::LongPolling => 4,
    };
    allowed_transports(claims).is_none_or(|mask| mask & bit != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    fn token(key: &str, algorithm: Algorithm, claims: Value) -> String {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            &claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    }

    fn exp(offset: i64) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        now + offset
    }

    #[test]
    fn auth_host_without_port() {
        assert_eq!(host_without_port("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:443"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
    }

    #[test]
    fn auth_any_key_and_both_algorithms() {
        let keys = Keys::new(&["old".to_owned(), "new".to_owned()]);
        let aud = audiences("localhost:5000", "client", "Chat");
        assert_eq!(aud[0], "http://localhost/client/?hub=chat");
        for (key, algorithm) in [("old", Algorithm::HS256), ("new", Algorithm::HS512)] {
            let t = token(
                key,
                algorithm,
                json!({"aud": aud[0], "exp": exp(60), "asrs.s.uid": "u"}),
            );
            assert_eq!(keys.validate(&t, &aud).unwrap()["asrs.s.uid"], "u");
        }
        let wrong_key = token("other", Algorithm::HS256, json!({"aud": aud[0], "exp": exp(60)}));
        assert!(keys.validate(&wrong_key, &aud).is_err());
        let expired = token("new", Algorithm::HS256, json!({"aud": aud[0], "exp": exp(-10)}));
        assert!(keys.validate(&expired, &aud).is_err());
        let wrong_aud = token(
            "new",
            Algorithm::HS256,
            json!({"aud": "http://localhost/server/?hub=chat", "exp": exp(60)}),
        );
        assert!(keys.validate(&wrong_aud, &aud).is_err());
        let no_exp = token("new", Algorithm::HS256, json!({"aud": aud[0]}));
        assert!(keys.validate(&no_exp, &aud).is_err());
    }

    #[test]
    fn auth_refusal_never_names_the_token() {
        let keys = Keys::new(&["key".to_owned()]);
        let t = token("nope", Algorithm::HS256, json!({"aud": "x", "exp": exp(60)}));
        let text = keys.validate(&t, &["x".to_owned()]).unwrap_err().to_string();
        assert!(!text.contains(&t) && !text.contains("key\""), "{text}");
    }

    #[test]
    fn auth_claims_become_pairs() {
        let claims = json!({"role": ["a", "b"], "n": 5, "ok": true, "s": "x", "z": null})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            claim_pairs(&claims),
            [("n", "5"), ("ok", "true"), ("role", "a"), ("role", "b"), ("s", "x")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        let mask = |v: Value| allowed_transports(&Claims(json!({"asrs.s.htt": v}).as_object().unwrap().clone()));
        assert_eq!(mask(json!(5)), Some(5));
        assert_eq!(mask(json!("3")), Some(3));
        assert_eq!(mask(json!([1])), None);
        let claims = |v: Value| Claims(json!({"asrs.s.htt": v}).as_object().unwrap().clone());
        assert!(!transport_allowed(&claims(json!("6")), TransportType::WebSockets));
        assert!(transport_allowed(&claims(json!("6")), TransportType::LongPolling));
        assert!(transport_allowed(&Claims::default(), TransportType::WebSockets));
    }
}
