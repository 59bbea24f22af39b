//! JSON Web Tokens: the one place where tokens are signed and verified (HMAC with a shared
//! secret: HS256, HS384 or HS512), and the names of the claims that service mode puts in them.
//!
//! The app server signs tokens for its server connections and for the clients it redirects
//! to a service; the relay and [`JwtBearer`](crate::JwtBearer) verify them. Neither a secret
//! nor a token ever appears in a [`JwtError`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use jsonwebtoken::Algorithm;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

/// Names of the claims the Azure SignalR service protocol defines, shared by the app server's
/// SDK (which writes them) and the relay (which reads them).
pub mod claims {
    /// The prefix of every claim the SDK itself sets; user claims never carry it.
    pub const SERVICE_PREFIX: &str = "asrs.s.";
    /// The prefix a user claim whose name is reserved (`aud`, `exp`, …) travels under.
    pub const USER_PREFIX: &str = "asrs.u.";
    /// The client's user id.
    pub const USER_ID: &str = "asrs.s.uid";
    /// The server id of the app server that negotiated the client (sticky routing).
    pub const SERVER_NAME: &str = "asrs.s.sn";
    /// The sticky mode, `Preferred` or `Required`, when sticky routing is on.
    pub const SERVER_STICKY: &str = "asrs.s.ssticky";
    /// `True` when the hub sends detailed errors.
    pub const DETAILED_ERRORS: &str = "asrs.s.derror";
    /// The longest a long-polling client may wait between polls, in seconds.
    pub const MAX_POLL_INTERVAL: &str = "asrs.s.ttl";
    /// The transports a client may use, as a bitmask: WebSockets 1, Server-Sent Events 2,
    /// long polling 4.
    pub const TRANSPORTS: &str = "asrs.s.htt";
    /// The registered claims a token's issuer sets, which user claims cannot override.
    pub const RESERVED: [&str; 12] = [
        "aud", "exp", "iat", "nbf", "iss", "actort", "acr", "azp", "c_hash", "jti", "nonce", "sub",
    ];
}

/// Why a token could not be signed or was refused: the kind of failure, never the token or
/// the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtError {
    kind: String,
}

impl JwtError {
    fn from_library(error: jsonwebtoken::errors::Error) -> Self {
        Self {
            kind: format!("{:?}", error.kind()),
        }
    }
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.kind)
    }
}

impl std::error::Error for JwtError {}

/// Signs `claims` with `secret` by `algorithm`, setting `iat` and `nbf` to now and `exp` to
/// `lifetime` from now (whole seconds since the Unix epoch). Other claims (such as `aud`) are
/// the caller's.
pub fn sign(
    secret: &[u8],
    algorithm: Algorithm,
    mut claims: Map<String, Value>,
    lifetime: Duration,
) -> Result<String, JwtError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    claims.insert("iat".into(), Value::from(now.as_secs()));
    claims.insert("nbf".into(), Value::from(now.as_secs()));
    claims.insert("exp".into(), Value::from((now + lifetime).as_secs()));
    jsonwebtoken::encode(&Header::new(algorithm), &claims, &EncodingKey::from_secret(secret))
        .map_err(JwtError::from_library)
}

/// Verifies tokens signed with any of a set of secrets (key rotation), checking expiry with
/// no leeway and, when asked, the audience.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Accepts tokens signed with any of `secrets` by any of `algorithms`. An `exp` claim is
    /// checked when present; [`Verifier::require_expiry`] makes it required.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>, algorithms: &[Algorithm]) -> Self {
        let mut validation = Validation::new(algorithms.first().copied().unwrap_or(Algorithm::HS256));
        validation.algorithms = algorithms.to_vec();
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Self {
            keys: secrets.into_iter().map(DecodingKey::from_secret).collect(),
            validation,
        }
    }

    /// Refuses tokens without an `exp` claim.
    pub fn require_expiry(mut self) -> Self {
        self.validation.required_spec_claims.insert("exp".to_owned());
        self
    }

    /// The signature algorithms accepted.
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.validation.algorithms = algorithms.to_vec();
        self
    }

    /// Requires one of these audiences in every token.
    pub fn audiences(mut self, audiences: &[impl ToString]) -> Self {
        self.validation.set_audience(audiences);
        self.validation.validate_aud = true;
        self
    }

    /// The claims of `token` if one of the secrets signed it and it passes the checks; with
    /// `audiences`, it must also name one of them (whatever [`Verifier::audiences`] said).
    pub fn verify(&self, token: &str, audiences: Option<&[String]>) -> Result<Map<String, Value>, JwtError> {
        let per_call;
        let validation = match audiences {
            Some(audiences) => {
                let mut validation = self.validation.clone();
                validation.set_audience(audiences);
                validation.validate_aud = true;
                per_call = validation;
                &per_call
            }
            None => &self.validation,
        };
        let mut last = None;
        for key in &self.keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, validation) {
                Ok(data) => return not_before(data.claims),
                Err(error) => last = Some(JwtError::from_library(error)),
            }
        }
        Err(last.unwrap_or_else(|| JwtError {
            kind: "no key is configured".to_owned(),
        }))
    }
}

/// How far in the future a token's `nbf` may be and the token still be taken (clocks differ
/// between machines): ASP.NET Core's default `ClockSkew`.
pub const NOT_BEFORE_SKEW: Duration = Duration::from_secs(300);

/// `claims`, unless their `nbf` is later than now by more than [`NOT_BEFORE_SKEW`].
fn not_before(claims: Map<String, Value>) -> Result<Map<String, Value>, JwtError> {
    let Some(nbf) = claims.get("nbf").and_then(Value::as_f64) else {
        return Ok(claims);
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    if nbf > now + NOT_BEFORE_SKEW.as_secs_f64() {
        return Err(JwtError {
            kind: "the token is not valid yet (nbf)".to_owned(),
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: Value) -> Map<String, Value> {
        json.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn jwt_a_token_not_valid_yet_is_refused_past_the_clock_skew() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let with_nbf = |nbf: u64| {
            let body = claims(serde_json::json!({"nbf": nbf, "exp": now + 7200}));
            jsonwebtoken::encode(&Header::default(), &body, &EncodingKey::from_secret(b"k")).unwrap()
        };
        let verifier = Verifier::new([b"k".as_slice()], &[Algorithm::HS256]);
        assert!(verifier.verify(&with_nbf(now), None).is_ok());
        assert!(verifier.verify(&with_nbf(now + 60), None).is_ok(), "within the skew");
        let error = verifier.verify(&with_nbf(now + 3600), None).unwrap_err();
        assert!(error.to_string().contains("not valid yet"), "{error}");
    }

    #[test]
    fn jwt_signed_tokens_verify_with_any_of_the_keys() {
        let token = sign(
            b"new",
            Algorithm::HS512,
            claims(serde_json::json!({"aud": "a", "x": 1})),
            Duration::from_secs(60),
        )
        .unwrap();
        let verifier = Verifier::new(
            [b"old".as_slice(), b"new".as_slice()],
            &[Algorithm::HS256, Algorithm::HS512],
        );
        assert_eq!(verifier.verify(&token, None).unwrap()["x"], 1);
        assert!(verifier.verify(&token, Some(&["a".to_owned()])).is_ok());
        assert!(verifier.verify(&token, Some(&["b".to_owned()])).is_err());
        let hs256_only = Verifier::new([b"new".as_slice()], &[Algorithm::HS256]);
        assert!(hs256_only.verify(&token, None).is_err());
        let other_key = Verifier::new([b"other".as_slice()], &[Algorithm::HS512]);
        assert_eq!(
            other_key.verify(&token, None).unwrap_err().to_string(),
            "InvalidSignature"
        );
    }

    #[test]
    fn jwt_expiry_and_required_claims() {
        let expired = {
            let mut c = Map::new();
            c.insert("exp".into(), Value::from(1));
            jsonwebtoken::encode(&Header::default(), &c, &EncodingKey::from_secret(b"k")).unwrap()
        };
        let no_exp = jsonwebtoken::encode(&Header::default(), &Map::new(), &EncodingKey::from_secret(b"k")).unwrap();
        let verifier = Verifier::new([b"k".as_slice()], &[Algorithm::HS256]);
        assert_eq!(
            verifier.verify(&expired, None).unwrap_err().to_string(),
            "ExpiredSignature"
        );
        assert!(verifier.verify(&no_exp, None).is_ok());
        assert!(verifier.clone().require_expiry().verify(&no_exp, None).is_err());
        let none = Verifier::new(std::iter::empty(), &[Algorithm::HS256]);
        assert_eq!(
            none.verify(&no_exp, None).unwrap_err().to_string(),
            "no key is configured"
        );
    }

    #[test]
    fn jwt_errors_never_name_the_token_or_key() {
        let token = sign(b"secret-key", Algorithm::HS256, Map::new(), Duration::from_secs(5)).unwrap();
        let error = Verifier::new([b"another".as_slice()], &[Algorithm::HS256])
            .verify(&token, None)
            .unwrap_err();
        let text = error.to_string();
        assert!(
            !text.contains(&token) && !text.contains("secret-key") && !text.contains("another"),
            "{text}"
        );
    }
}
