//! What a connection keeps of the HTTP request that opened it.

use http::HeaderMap;
use http::request::Parts;

/// The headers, query and cookies of the request that opened a connection's transport.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The client's address: the TCP peer the request came from, when the server that
    /// accepted it recorded one (`switchboard::serve`, or axum's `ConnectInfo`).
    remote: Option<std::net::SocketAddr>,
    path: String,
    headers: HeaderMap,
    raw_query: Option<String>,
    query: Vec<(String, String)>,
    cookies: Vec<(String, String)>,
}

/// A copy of `headers` whose values own their bytes. The server's header values are slices
/// of its whole read buffer (16 KiB or more), which a shallow clone would keep alive for as
/// long as the connection lives.
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(mut copy) = http::HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            owned.append(name.clone(), copy);
        }
    }
    owned
}

impl RequestInfo {
    pub(crate) fn from_parts(parts: &Parts) -> Self {
        let query = parts.uri.query().map(parse_query).unwrap_or_default();
        let cookies = parse_cookies(&parts.headers);
        Self {
            remote: parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0),
            path: parts.uri.path().to_owned(),
            headers: owned_headers(&parts.headers),
            raw_query: parts.uri.query().map(str::to_owned),
            query,
            cookies,
        }
    }

    /// What a service forwards of a client's request: its headers and query string.
    pub(crate) fn from_service(headers: &[(String, Vec<String>)], query_string: &str) -> Self {
        let query = query_string;
        let mut map = HeaderMap::new();
        for (name, values) in headers {
            let Ok(name) = http::header::HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            for value in values {
                if let Ok(value) = http::HeaderValue::from_str(value) {
                    map.append(name.clone(), value);
                }
            }
        }
        let query = parse_query(query.trim_start_matches('?'));
        let path = query
            .iter()
            .find(|(k, _)| k == "asrs.op")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let raw = query_text(query_string);
        let mut info = Self {
            remote: None,
            path,
            headers: map,
            query,
            cookies: Vec::new(),
            raw_query: raw,
        };
        info.cookies = parse_cookies(&info.headers);
        info
    }

    /// The address of the client that sent the request, when the server recorded it (as
    /// [`serve`](crate::serve) does); `None` through a service.
    pub fn remote_address(&self) -> Option<std::net::SocketAddr> {
        self.remote
    }

    /// The request path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `Host` header (host and port, as the client addressed the server).
    pub fn host(&self) -> Option<&str> {
        self.header("host")
    }

    /// All request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// One request header (names ignore case), if present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The query string as it was sent (without the leading `?`, not decoded), if any.
    pub fn query_string(&self) -> Option<&str> {
        self.raw_query.as_deref()
    }

    /// Every query parameter, decoded, in order.
    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn query_text(query: &str) -> Option<String> {
    let query = query.trim_start_matches('?');
    (!query.is_empty()).then(|| query.to_owned())
}

fn parse_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// Decodes an `application/x-www-form-urlencoded` query string.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(byte: Option<&u8>) -> Option<u8> {
    let b = *byte?;
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub(crate) fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_query_decoding() {
        assert_eq!(
            parse_query("a=1&b=x%20y+z&c&d=%zz&e=%E2%9C%93&f=%4"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), "✓".into()),
                ("f".into(), "%4".into()),
            ]
        );
    }
}
