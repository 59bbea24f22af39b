//! The tokens an app server mints in service mode: for its server connections, and for the
//! clients it redirects (HMAC over the UTF-8 bytes of the access key, audiences without port).

use std::time::Duration;

use serde_json::{Map, Value};

use super::options::AccessTokenAlgorithm;
use crate::HubError;
use crate::jwt::{self, Algorithm, claims};

/// Signs `claims` for `audience`, valid for `lifetime` (one second at least).
pub(crate) fn sign(
    key: &str,
    algorithm: AccessTokenAlgorithm,
    audience: &str,
    mut claims: Map<String, Value>,
    lifetime: Duration,
) -> Result<String, HubError> {
    claims.insert("aud".into(), Value::from(audience));
    let algorithm = match algorithm {
        AccessTokenAlgorithm::HS256 => Algorithm::HS256,
        AccessTokenAlgorithm::HS512 => Algorithm::HS512,
    };
    jwt::sign(key.as_bytes(), algorithm, claims, lifetime.max(Duration::from_secs(1)))
        .map_err(|e| HubError::exception("InvalidOperationException", format!("could not sign a token: {e}")))
}

/// Adds a user's claims to a client token's claims: reserved names (but the first `sub`)
/// travel as `asrs.u.<name>`, SDK claims (`asrs.s.*`) are dropped.
pub(crate) fn add_user_claims(token: &mut Map<String, Value>, user: &Map<String, Value>) {
    for (name, value) in user {
        if name.starts_with(claims::SERVICE_PREFIX) {
            continue;
        }
        // The first `sub` passes as it is (it can be the user id); reserved names are prefixed.
        let first_sub = name == "sub" && !token.contains_key("sub");
        let name = if claims::RESERVED.contains(&name.as_str()) && !first_sub {
            format!("{}{name}", claims::USER_PREFIX)
        } else {
            name.clone()
        };
        token.entry(name).or_insert_with(|| value.clone());
    }
}

/// Rebuilds a client's claims from what the service forwards: `asrs.u.` prefixes removed,
/// SDK and token housekeeping claims dropped. Repeated claims become arrays.
pub(crate) fn user_claims(forwarded: &[(String, String)]) -> Map<String, Value> {
    let mut user = Map::new();
    for (name, value) in forwarded {
        if name.starts_with(claims::SERVICE_PREFIX) || ["aud", "exp", "iat", "nbf"].contains(&name.as_str()) {
            continue;
        }
        let name = name.strip_prefix(claims::USER_PREFIX).unwrap_or(name).to_owned();
        match user.get_mut(&name) {
            Some(Value::Array(values)) => values.push(Value::from(value.as_str())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::from(value.as_str())]);
            }
            None => {
                user.insert(name, Value::from(value.as_str()));
            }
        }
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_claims_round_trip_through_the_service() {
        let mut claims = Map::new();
        claims.insert("asrs.s.uid".into(), Value::from("alice"));
        let mut user = Map::new();
        user.insert("nameid".into(), Value::from("alice"));
        user.insert("exp".into(), Value::from(5));
        user.insert("asrs.s.sn".into(), Value::from("forged"));
        add_user_claims(&mut claims, &user);
        assert_eq!(claims.get("asrs.u.exp"), Some(&Value::from(5)));
        assert!(claims.get("asrs.s.sn").is_none());
        let forwarded = vec![
            ("asrs.s.uid".to_owned(), "alice".to_owned()),
            ("nameid".to_owned(), "alice".to_owned()),
            ("asrs.u.exp".to_owned(), "5".to_owned()),
            ("role".to_owned(), "a".to_owned()),
            ("role".to_owned(), "b".to_owned()),
            ("exp".to_owned(), "99".to_owned()),
        ];
        let rebuilt = user_claims(&forwarded);
        assert_eq!(rebuilt.get("nameid"), Some(&Value::from("alice")));
        assert_eq!(rebuilt.get("exp"), Some(&Value::from("5")));
        assert_eq!(rebuilt.get("role"), Some(&serde_json::json!(["a", "b"])));
        assert!(rebuilt.get("asrs.s.uid").is_none());
    }

    #[test]
    fn tokens_are_signed_with_the_key_string() {
        let token = sign(
            "key-string",
            AccessTokenAlgorithm::HS512,
            "http://host/client/?hub=chat",
            Map::new(),
            Duration::from_secs(60),
        )
        .unwrap();
        let verifier = jwt::Verifier::new([b"key-string".as_slice()], &[Algorithm::HS512]);
        assert!(
            verifier
                .verify(&token, Some(&["http://host/client/?hub=chat".to_owned()]))
                .is_ok()
        );
    }
}
