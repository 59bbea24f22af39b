//! The tokens an app server mints in service mode: for its server connections, and for the
//! clients it redirects (HMAC over the UTF-8 bytes of the access key, audiences without port).

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use super::options::AccessTokenAlgorithm;
use crate::HubError;

/// Claims the SDK itself sets, which user claims cannot override.
const RESERVED: [&str; 12] = [
    "aud", "exp", "iat", "nbf", "iss", "actort", "acr", "azp", "c_hash", "jti", "nonce", "sub",
];

/// Signs `claims` for `audience`, valid for `lifetime`.
pub(crate) fn sign(
    key: &str,
    algorithm: AccessTokenAlgorithm,
    audience: &str,
    mut claims: Map<String, Value>,
    lifetime: Duration,
) -> Result<String, HubError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    claims.insert("aud".into(), Value::from(audience));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("nbf".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + lifetime.as_secs().max(1)));
    let algorithm = match algorithm {
        AccessTokenAlgorithm::HS256 => Algorithm::HS256,
        AccessTokenAlgorithm::HS512 => Algorithm::HS512,
    };
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .map_err(|e| {
        HubError::exception(
            "InvalidOperationException",
            format!("could not sign a token: {:?}", e.kind()),
        )
    })
}

/// Adds a user's claims to a client token's claims: reserved names (but the first `sub`)
/// travel as `asrs.u.<name>`, SDK claims (`asrs.s.*`) are dropped.
pub(crate) fn add_user_claims(claims: &mut Map<String, Value>, user: &Map<String, Value>) {
    for (name, value) in user {
        if name.starts_with("asrs.s.") {
            continue;
        }
        // The first `sub` passes as it is (it can be the user id); reserved names are prefixed.
        let first_sub = name == "sub" && !claims.contains_key("sub");
        let name = if RESERVED.contains(&name.as_str()) && !first_sub {
            format!("asrs.u.{name}")
        } else {
            name.clone()
        };
        claims.entry(name).or_insert_with(|| value.clone());
    }
}

/// Rebuilds a client's claims from what the service forwards: `asrs.u.` prefixes removed,
/// SDK and token housekeeping claims dropped. Repeated claims become arrays.
pub(crate) fn user_claims(forwarded: &[(String, String)]) -> Map<String, Value> {
    let mut claims = Map::new();
    for (name, value) in forwarded {
        if name.starts_with("asrs.s.") || ["aud", "exp", "iat", "nbf"].contains(&name.as_str()) {
            continue;
        }
        let name = name.strip_prefix("asrs.u.").unwrap_or(name).to_owned();
        match claims.get_mut(&name) {
            Some(Value::Array(values)) => values.push(Value::from(value.as_str())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::from(value.as_str())]);
            }
            None => {
                claims.insert(name, Value::from(value.as_str()));
            }
        }
    }
    claims
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
        let mut validation = jsonwebtoken::Validation::new(Algorithm::HS512);
        validation.set_audience(&["http://host/client/?hub=chat"]);
        let decoded = jsonwebtoken::decode::<Map<String, Value>>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"key-string"),
            &validation,
        );
        assert!(decoded.is_ok());
    }
}
