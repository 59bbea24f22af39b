//! Negotiate in service mode: the app server answers with a redirect to the service and a
//! token whose claims carry what the service needs (user id, transports, sticky server…).

use serde_json::{Map, Value};

use super::hub::ServiceHub;
use super::options::ServerStickyMode;
use super::tokens;
use crate::connection::claims::Claims;
use crate::connection::request::RequestInfo;
use crate::jwt;
use crate::options::{HubOptions, TransportType};
use crate::transport::RedirectError;

/// The negotiate body that sends the client to endpoint `hub` (chosen by
/// [`HubEndpoints`](super::hub_endpoints::HubEndpoints)).
pub(crate) fn redirect(
    hub: &ServiceHub,
    options: &HubOptions,
    request: &RequestInfo,
    claims: Option<&Claims>,
    user_id: Option<String>,
    hub_path: &str,
) -> Result<Vec<u8>, RedirectError> {
    let service = &hub.options;
    let mut token_claims = Map::new();
    if let Some(user) = user_id {
        token_claims.insert(jwt::claims::USER_ID.into(), Value::from(user));
    }
    if service.server_sticky_mode != ServerStickyMode::Disabled {
        token_claims.insert(jwt::claims::SERVER_NAME.into(), Value::from(hub.server_id.as_str()));
        let mode = if service.server_sticky_mode == ServerStickyMode::Required {
            "Required"
        } else {
            "Preferred"
        };
        token_claims.insert(jwt::claims::SERVER_STICKY.into(), Value::from(mode));
    }
    if options.enable_detailed_errors {
        token_claims.insert(jwt::claims::DETAILED_ERRORS.into(), Value::from("True"));
    }
    if let Some(ttl) = service.max_poll_interval_in_seconds {
        token_claims.insert(jwt::claims::MAX_POLL_INTERVAL.into(), Value::from(ttl.to_string()));
    }
    let transports = match &service.transport_type_detector {
        Some(detector) => detector(request),
        None => options.transports.clone(),
    };
    if transports.len() < 3 {
        let mask: u8 = transports
            .iter()
            .map(|t| match t {
                TransportType::WebSockets => 1,
                TransportType::ServerSentEvents => 2,
                TransportType::LongPolling => 4,
            })
            .fold(0, |mask, bit| mask | bit);
        token_claims.insert(jwt::claims::TRANSPORTS.into(), Value::from(mask.to_string()));
    }
    match &service.claims_provider {
        Some(provider) => {
            let provided: Map<String, Value> = provider(request)
                .into_iter()
                .map(|(name, value)| (name, Value::from(value)))
                .collect();
            tokens::add_user_claims(&mut token_claims, &provided);
        }
        None => {
            if let Some(claims) = claims {
                tokens::add_user_claims(&mut token_claims, &claims.0);
            }
        }
    }
    let client_endpoint = hub.connection_string.client_endpoint();
    let audience = format!("{}client/?hub={}", client_endpoint.audience_base(), hub.name);
    let token = tokens::sign(
        hub.connection_string.access_key(),
        service.access_token_algorithm,
        &audience,
        token_claims,
        service.access_token_lifetime,
    )
    .map_err(|e| RedirectError {
        status: 500,
        text: e.message().to_owned(),
    })?;
    if token.len() > 4096 {
        return Err(RedirectError {
            status: 413,
            text: "AccessToken must not be longer than 4K.".into(),
        });
    }
    let mut url = format!(
        "{}{}/client/?hub={}&asrs.op={}",
        client_endpoint.origin(),
        client_endpoint.path,
        hub.name,
        encode(hub_path)
    );
    for (name, value) in request.query_pairs() {
        if name != "negotiateVersion" && name != "access_token" {
            url.push('&');
            url.push_str(&encode(name));
            url.push('=');
            url.push_str(&encode(value));
        }
    }
    let body = serde_json::json!({
        "negotiateVersion": 0,
        "url": url,
        "accessToken": token,
        "availableTransports": [],
    });
    Ok(serde_json::to_vec(&body).unwrap_or_default())
}

/// Percent-encodes a query component.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
