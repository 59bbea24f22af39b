//! Service endpoints as the Azure SDK configures them: each a connection string with a type
//! (primary endpoints carry clients, secondary ones only receive what the app sends) and an
//! optional name, from code or from configuration keys
//! `Azure:SignalR:ConnectionString[:{Name}[:{primary|secondary}]]` (or under
//! `ConnectionStrings:`). Endpoints naming the same service address are one endpoint.

use std::fmt;

use super::connection_string::ConnectionString;
use super::options::ServiceOptionsError;

/// Whether an endpoint carries clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointType {
    /// Clients negotiate to it; it also receives every message.
    #[default]
    Primary,
    /// It receives every message the app sends, and carries no clients of its own.
    Secondary,
}

/// One SignalR service (relay) an app server connects to.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceEndpoint {
    connection_string: String,
    endpoint_type: EndpointType,
    name: String,
}

impl fmt::Debug for ServiceEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceEndpoint")
            .field("connection_string", &"<redacted>")
            .field("endpoint_type", &self.endpoint_type)
            .field("name", &self.name)
            .finish()
    }
}

/// The configuration key of the one unnamed endpoint.
const KEY: &str = "Azure:SignalR:ConnectionString";
/// The same under the `ConnectionStrings` section.
const FALLBACK_KEY: &str = "ConnectionStrings:Azure:SignalR:ConnectionString";

impl ServiceEndpoint {
    /// An endpoint of `endpoint_type` named `name` (may be empty).
    pub fn new(connection_string: impl Into<String>, endpoint_type: EndpointType, name: impl Into<String>) -> Self {
        Self {
            connection_string: connection_string.into(),
            endpoint_type,
            name: name.into(),
        }
    }

    /// The endpoint a configuration key names, with its value: `None` for a key that is not
    /// one of `Azure:SignalR:ConnectionString[:{Name}[:{Type}]]` (ignoring case, also under
    /// `ConnectionStrings:`). A type other than `primary` or `secondary` is part of the name,
    /// as the Azure SDK reads it.
    pub fn from_config_key(key: &str, connection_string: &str) -> Option<Self> {
        let lower = key.to_ascii_lowercase();
        let rest = [KEY, FALLBACK_KEY].iter().find_map(|prefix| {
            let prefix = prefix.to_ascii_lowercase();
            if lower == prefix {
                Some("")
            } else {
                lower
                    .strip_prefix(&format!("{prefix}:"))
                    .map(|_| &key[prefix.len() + 1..])
            }
        })?;
        let (name, endpoint_type) = match rest.split_once(':') {
            Some((name, kind)) if kind.eq_ignore_ascii_case("primary") => (name, EndpointType::Primary),
            Some((name, kind)) if kind.eq_ignore_ascii_case("secondary") => (name, EndpointType::Secondary),
            _ => (rest, EndpointType::Primary),
        };
        Some(Self::new(connection_string, endpoint_type, name))
    }

    /// The connection string.
    pub fn connection_string(&self) -> &str {
        &self.connection_string
    }

    /// Primary or secondary.
    pub fn endpoint_type(&self) -> EndpointType {
        self.endpoint_type
    }

    /// The name (empty when it has none).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Parses every endpoint and keeps one per service address (its primary entry, else the
/// first); fails without any endpoint, on a bad connection string, or without a primary.
pub(crate) fn resolve(
    endpoints: &[ServiceEndpoint],
) -> Result<Vec<(ServiceEndpoint, ConnectionString)>, ServiceOptionsError> {
    let mut kept: Vec<(ServiceEndpoint, ConnectionString)> = Vec::new();
    for endpoint in endpoints.iter().filter(|e| !e.connection_string.trim().is_empty()) {
        let parsed =
            ConnectionString::parse(&endpoint.connection_string).map_err(ServiceOptionsError::ConnectionString)?;
        match kept.iter_mut().find(|(_, known)| known.endpoint() == parsed.endpoint()) {
            Some(existing) => {
                tracing::warn!(
                    endpoint = %parsed.endpoint(),
                    "several endpoints name the same service; using one of them (a primary one if any)"
                );
                if existing.0.endpoint_type != EndpointType::Primary && endpoint.endpoint_type == EndpointType::Primary
                {
                    *existing = (endpoint.clone(), parsed);
                }
            }
            None => kept.push((endpoint.clone(), parsed)),
        }
    }
    if kept.is_empty() {
        return Err(ServiceOptionsError::NoEndpoint);
    }
    if kept.iter().all(|(e, _)| e.endpoint_type != EndpointType::Primary) {
        return Err(ServiceOptionsError::NoPrimaryEndpoint);
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "Endpoint=http://a.local;AccessKey=abc;Version=1.0;";
    const B: &str = "Endpoint=http://b.local;AccessKey=abc;Version=1.0;";

    #[test]
    fn configuration_keys_name_endpoints_as_the_azure_sdk_reads_them() {
        let parse = |key: &str| ServiceEndpoint::from_config_key(key, A).map(|e| (e.name.clone(), e.endpoint_type));
        assert_eq!(
            parse("Azure:SignalR:ConnectionString"),
            Some((String::new(), EndpointType::Primary))
        );
        assert_eq!(
            parse("Azure:SignalR:ConnectionString:east"),
            Some(("east".into(), EndpointType::Primary))
        );
        assert_eq!(
            parse("azure:signalr:connectionstring:East:Secondary"),
            Some(("East".into(), EndpointType::Secondary)),
            "keys match ignoring case; the name keeps its case"
        );
        assert_eq!(
            parse("Azure:SignalR:ConnectionString:b:primary"),
            Some(("b".into(), EndpointType::Primary))
        );
        assert_eq!(
            parse("Azure:SignalR:ConnectionString:c:tertiary"),
            Some(("c:tertiary".into(), EndpointType::Primary)),
            "an unknown type is part of the name"
        );
        assert_eq!(
            parse("ConnectionStrings:Azure:SignalR:ConnectionString:d:secondary"),
            Some(("d".into(), EndpointType::Secondary))
        );
        assert_eq!(parse("Azure:SignalR:ConnectionStringX"), None);
        assert_eq!(parse("Azure:SignalR:ServerStickyMode"), None);
    }

    #[test]
    fn endpoints_of_one_address_collapse_and_a_primary_is_required() {
        let a = |kind, name: &str| ServiceEndpoint::new(A, kind, name);
        let kept = resolve(&[a(EndpointType::Secondary, "one"), a(EndpointType::Primary, "two")]).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].0.name(), "two", "the primary entry wins");
        let kept = resolve(&[
            ServiceEndpoint::new(B, EndpointType::Primary, ""),
            a(EndpointType::Secondary, "s"),
        ])
        .unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(
            resolve(&[a(EndpointType::Secondary, "s")]).unwrap_err().to_string(),
            "No primary endpoint defined."
        );
        assert_eq!(
            resolve(&[]).unwrap_err().to_string(),
            "No connection string was specified."
        );
        assert!(resolve(&[ServiceEndpoint::new("Endpoint=nope", EndpointType::Primary, "")]).is_err());
    }

    #[test]
    fn a_service_endpoint_never_shows_its_connection_string() {
        let endpoint = ServiceEndpoint::new(A, EndpointType::Primary, "east");
        assert!(!format!("{endpoint:?}").contains("abc"));
    }
}
