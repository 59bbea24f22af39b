//! Service connection strings, parsed by the Azure SignalR SDK's rules:
//! `Endpoint=https://host;AccessKey=<key>;Version=1.0;[Port=…;][ClientEndpoint=…;][ServerEndpoint=…;]`.
//!
//! Properties are separated by `;` (empty ones ignored), split at the first `=` (parts
//! without one ignored); keys ignore case; values are trimmed. Errors carry the SDK's texts
//! and never the access key.

use std::fmt;

/// A parsed connection string.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    endpoint: Url,
    access_key: String,
    version: Option<String>,
    client_endpoint: Option<Url>,
    server_endpoint: Option<Url>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("endpoint", &self.endpoint.to_string())
            .field("access_key", &"<redacted>")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Why a connection string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStringError {
    message: String,
}

impl ConnectionStringError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for ConnectionStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectionStringError {}

/// An absolute http(s) URL, as much of it as a service endpoint needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: String,
    /// The host name or address.
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// The path, without a trailing `/` (empty for the root).
    pub path: String,
}

impl Url {
    /// Parses an absolute `http://` or `https://` URL. Whitespace and control characters are
    /// refused anywhere, and a host is a name (letters, digits, `-`, `.`, `_`, `~`, `%`) or a
    /// bracketed IPv6 address.
    pub fn parse(text: &str) -> Option<Url> {
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return None;
        }
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(index) => (&rest[..index], &rest[index..]),
            None => (rest, ""),
        };
        let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
            let (host, after) = stripped.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().ok()?,
                None if after.is_empty() => default_port,
                None => return None,
            };
            (format!("[{host}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), port.parse().ok()?),
                None => (authority.to_owned(), default_port),
            }
        };
        let name = |c: char| c.is_ascii_alphanumeric() || "-._~%".contains(c);
        let ipv6 = |c: char| c.is_ascii_hexdigit() || c == ':' || c == '.';
        let valid = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(address) => !address.is_empty() && address.chars().all(ipv6),
            None => !host.is_empty() && host.chars().all(name),
        };
        if !valid {
            return None;
        }
        let path = path
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_owned();
        Some(Url {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path,
        })
    }

    fn default_port(&self) -> u16 {
        if self.scheme == "https" { 443 } else { 80 }
    }

    /// `scheme://host[:port]` with the port only when it is not the scheme's default.
    pub fn origin(&self) -> String {
        if self.port == self.default_port() {
            format!("{}://{}", self.scheme, self.host)
        } else {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        }
    }

    /// The same URL with `ws`/`wss` for `http`/`https`.
    pub fn websocket_origin(&self) -> String {
        let scheme = if self.scheme == "https" { "wss" } else { "ws" };
        if self.port == self.default_port() {
            format!("{scheme}://{}", self.host)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// `scheme://host/`: the base of token audiences, which carry no port.
    pub fn audience_base(&self) -> String {
        format!("{}://{}/", self.scheme, self.host)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin(), self.path)
    }
}

impl ConnectionString {
    /// Parses a connection string.
    pub fn parse(text: &str) -> Result<ConnectionString, ConnectionStringError> {
        const MISSING_ENDPOINT: &str = "Connection string missing required properties endpoint.";
        let parts: Vec<&str> = text.split(';').filter(|p| !p.is_empty()).collect();
        if parts.len() < 2 {
            return Err(ConnectionStringError::new(MISSING_ENDPOINT));
        }
        let mut properties: Vec<(String, String)> = Vec::new();
        for part in parts {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            let key = key.trim();
            if properties.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
                return Err(ConnectionStringError::new(format!(
                    "Duplicate properties found in connection string: {key}."
                )));
            }
            properties.push((key.to_owned(), value.trim().to_owned()));
        }
        let get = |name: &str| {
            properties
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };

        let raw_endpoint = get("endpoint").ok_or_else(|| ConnectionStringError::new(MISSING_ENDPOINT))?;
        let mut endpoint = Url::parse(raw_endpoint.trim_end_matches('/')).ok_or_else(|| {
            ConnectionStringError::new(format!(
                "Endpoint property in connection string is not a valid URI: {raw_endpoint}."
            ))
        })?;

        let version = match get("version") {
            Some(version) if !valid_version(version) => {
                return Err(ConnectionStringError::new(format!(
                    "Version {version} is not supported."
                )));
            }
            version => version.map(str::to_owned),
        };
        if let Some(port) = get("port") {
            match port.parse::<i64>() {
                Ok(p) if (1..=65535).contains(&p) => endpoint.port = p as u16,
                _ => return Err(ConnectionStringError::new("Invalid value for port property.")),
            }
        }
        let optional_url = |name: &str, label: &str| -> Result<Option<Url>, ConnectionStringError> {
            match get(name) {
                None => Ok(None),
                Some(value) => Url::parse(value.trim_end_matches('/')).map(Some).ok_or_else(|| {
                    ConnectionStringError::new(format!(
                        "{label} property in connection string is not a valid URI: {value}."
                    ))
                }),
            }
        };
        let client_endpoint = optional_url("clientendpoint", "ClientEndpoint")?;
        let server_endpoint = optional_url("serverendpoint", "ServerEndpoint")?;
        match get("authtype") {
            None => {}
            Some(kind) if kind.eq_ignore_ascii_case("accesskey") => {}
            Some(kind) => {
                return Err(ConnectionStringError::new(format!(
                    "AuthType '{kind}' is not supported: Switchboard signs tokens with an access key (AccessKey=…)."
                )));
            }
        }
        let access_key = get("accesskey")
            .ok_or_else(|| ConnectionStringError::new("accesskey is required."))?
            .to_owned();
        if access_key.is_empty() {
            return Err(ConnectionStringError::new("accesskey is required."));
        }
        Ok(ConnectionString {
            endpoint,
            access_key,
            version,
            client_endpoint,
            server_endpoint,
        })
    }

    /// The service endpoint (with the `Port` property applied).
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Where clients are sent by negotiate: `ClientEndpoint`, else the endpoint.
    pub fn client_endpoint(&self) -> &Url {
        self.client_endpoint.as_ref().unwrap_or(&self.endpoint)
    }

    /// Where server connections go: `ServerEndpoint`, else the endpoint.
    pub fn server_endpoint(&self) -> &Url {
        self.server_endpoint.as_ref().unwrap_or(&self.endpoint)
    }

    /// The access key that signs tokens (the UTF-8 bytes of the key string).
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The `Version` property, if given.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

/// `1.<digits>` optionally followed by word characters, `-` or `.`.
fn valid_version(version: &str) -> bool {
    let Some(rest) = version.strip_prefix("1.") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && rest[digits..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        ConnectionString::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn connection_string_parses_like_azure() {
        let cs =
            ConnectionString::parse("Endpoint=https://x.service.signalr.net/;AccessKey=abc=def;Version=1.0;").unwrap();
        assert_eq!(cs.endpoint().to_string(), "https://x.service.signalr.net");
        assert_eq!(cs.access_key(), "abc=def", "only the first = splits");
        assert_eq!(cs.version(), Some("1.0"));
        assert_eq!(cs.client_endpoint().audience_base(), "https://x.service.signalr.net/");
        let cs = ConnectionString::parse(" endpoint = http://localhost ; ACCESSKEY=k ;port=8888;;").unwrap();
        assert_eq!(cs.endpoint().origin(), "http://localhost:8888");
        assert_eq!(
            cs.endpoint().audience_base(),
            "http://localhost/",
            "audiences carry no port"
        );
        assert_eq!(cs.endpoint().websocket_origin(), "ws://localhost:8888");
        let cs = ConnectionString::parse(
            "Endpoint=http://a;AccessKey=k;ClientEndpoint=https://clients.example:8443/;ServerEndpoint=http://servers",
        )
        .unwrap();
        assert_eq!(cs.client_endpoint().origin(), "https://clients.example:8443");
        assert_eq!(cs.server_endpoint().origin(), "http://servers");
        assert!(!format!("{cs:?}").contains("AccessKey=k") && !format!("{cs:?}").contains("\"k\""));
    }

    #[test]
    fn connection_string_error_texts() {
        assert_eq!(error(""), "Connection string missing required properties endpoint.");
        assert_eq!(
            error("Endpoint=http://a"),
            "Connection string missing required properties endpoint."
        );
        assert_eq!(
            error("AccessKey=k;Version=1.0"),
            "Connection string missing required properties endpoint."
        );
        assert_eq!(
            error("Endpoint=http://a;endpoint=http://b"),
            "Duplicate properties found in connection string: endpoint."
        );
        // Whitespace, control characters and hosts that are not names are not URIs (fuzzing
        // found these taken as hosts).
        for bad in [
            "http://\0/x",
            "http://a b",
            "https\t://a",
            "http://a/\tx",
            "http://a!b",
            "http://[]",
        ] {
            assert!(Url::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            Url::parse("http://[::1]:81/p").unwrap().to_string(),
            "http://[::1]:81/p"
        );
        assert_eq!(
            error("Endpoint=ftp://a;AccessKey=k"),
            "Endpoint property in connection string is not a valid URI: ftp://a."
        );
        assert_eq!(
            error("Endpoint=notaurl;AccessKey=k"),
            "Endpoint property in connection string is not a valid URI: notaurl."
        );
        assert_eq!(
            error("Endpoint=http://a;AccessKey=k;Version=2.0"),
            "Version 2.0 is not supported."
        );
        assert_eq!(
            error("Endpoint=http://a;AccessKey=k;Version=1.x"),
            "Version 1.x is not supported."
        );
        assert!(ConnectionString::parse("Endpoint=http://a;AccessKey=k;Version=1.0-preview.2").is_ok());
        for port in ["0", "65536", "-1", "x"] {
            assert_eq!(
                error(&format!("Endpoint=http://a;AccessKey=k;Port={port}")),
                "Invalid value for port property."
            );
        }
        assert_eq!(
            error("Endpoint=http://a;AccessKey=k;ClientEndpoint=nope"),
            "ClientEndpoint property in connection string is not a valid URI: nope."
        );
        assert_eq!(error("Endpoint=http://a;Version=1.0"), "accesskey is required.");
        assert!(error("Endpoint=http://a;AuthType=aad;ClientId=x").starts_with("AuthType 'aad' is not supported"));
        assert!(
            !error("Endpoint=ftp://a;AccessKey=secret-key").contains("secret-key"),
            "keys never in errors"
        );
    }
}
