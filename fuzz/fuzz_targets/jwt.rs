//! JWT verification: any text is a token that verifies or is refused, never a panic; a
//! token made from fuzzed claims verifies to those claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::jwt::{Algorithm, Verifier};

const SECRET: &[u8] = b"a fuzzing secret that is long enough";

fuzz_target!(|data: &[u8]| {
    let verifier = Verifier::new([SECRET], &[Algorithm::HS256, Algorithm::HS512]);
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = verifier.verify(token, None);
        let _ = verifier.verify(token, Some(&["http://host/client/?hub=chat".to_owned()]));
    }
    if let Ok(serde_json::Value::Object(claims)) = serde_json::from_slice(data) {
        if let Ok(token) = switchboard::transport::auth::sign_hs256(SECRET, claims.clone(), std::time::Duration::from_secs(60)) {
            if let Ok(verified) = verifier.verify(&token, None) {
                // Numbers as a JSON text round trip leaves them (the token is JSON text).
                let sent: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&serde_json::Value::Object(claims).to_string()).expect("claims reparse");
                for (name, value) in &sent {
                    if name != "exp" && name != "nbf" && name != "iat" {
                        assert_eq!(verified.get(name), Some(value), "claim {name}");
                    }
                }
            }
        }
    }
});
