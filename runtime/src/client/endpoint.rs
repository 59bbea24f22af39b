//! The hub URL and the URLs derived from it: negotiate, and the WebSocket.

use super::ClientError;
use crate::connection::request::encode_component;

/// A hub URL, split into what the requests need: `http`/`ws`, or `https`/`wss` over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
    query: Option<String>,
}

impl Endpoint {
    /// Parses an absolute `http://`, `https://`, `ws://` or `wss://` URL.
    pub(crate) fn parse(url: &str) -> Result<Self, ClientError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| ClientError::config(format!("'{url}' is not a valid URL.")))?;
        let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http" | "ws") => false,
            Some("https" | "wss") => true,
            _ => {
                return Err(ClientError::config(format!(
                    "'{url}' is not an absolute http(s):// or ws(s):// URL."
                )));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| ClientError::config(format!("'{url}' has no host.")))?;
        Ok(Self {
            tls,
            host: authority.host().to_owned(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority: authority.as_str().rsplit('@').next().unwrap_or_default().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().filter(|q| !q.is_empty()).map(str::to_owned),
        })
    }

    /// `host:port`, to open a TCP connection to.
    #[cfg(test)]
    fn socket_address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Opens a connection to the host, over TLS for `https`/`wss`.
    pub(crate) async fn connect(&self) -> std::io::Result<crate::tls::NetStream> {
        crate::tls::connect(&self.host, self.port, self.tls).await
    }

    /// The value of the `Host` header.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// The request target of negotiate: `{path}/negotiate?{query}&negotiateVersion=1`, the
    /// hub URL's query kept, `negotiateVersion` added unless the URL has one.
    pub(crate) fn negotiate_target(&self) -> String {
        let mut target = self.path.clone();
        if !target.ends_with('/') {
            target.push('/');
        }
        target.push_str("negotiate?");
        if let Some(query) = &self.query {
            target.push_str(query);
            target.push('&');
        }
        let has_version = self.query.as_deref().is_some_and(|q| {
            q.split('&')
                .any(|pair| pair.split('=').next() == Some("negotiateVersion"))
        });
        if has_version {
            target.pop();
        } else {
            target.push_str("negotiateVersion=1");
        }
        target
    }

    /// The WebSocket URL: `ws[s]://{authority}{path}?{query}&id={id}&access_token={token}`.
    pub(crate) fn websocket_url(&self, id: Option<&str>, access_token: Option<&str>) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        let mut url = format!("{scheme}://{}{}", self.authority, self.path);
        let mut separator = '?';
        let mut append = |url: &mut String, pair: &str| {
            url.push(separator);
            url.push_str(pair);
            separator = '&';
        };
        if let Some(query) = &self.query {
            append(&mut url, query);
        }
        if let Some(id) = id {
            append(&mut url, &format!("id={}", encode_component(id)));
        }
        if let Some(token) = access_token {
            append(&mut url, &format!("access_token={}", encode_component(token)));
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_keep_the_query() {
        let e = Endpoint::parse("http://127.0.0.1:5000/chat?room=a%20b").unwrap();
        assert_eq!(e.socket_address(), "127.0.0.1:5000");
        assert_eq!(e.negotiate_target(), "/chat/negotiate?room=a%20b&negotiateVersion=1");
        assert_eq!(
            e.websocket_url(Some("t/k"), Some("x.y")),
            "ws://127.0.0.1:5000/chat?room=a%20b&id=t%2Fk&access_token=x.y"
        );
        let e = Endpoint::parse("ws://localhost/hub/?negotiateVersion=0").unwrap();
        assert_eq!(e.socket_address(), "localhost:80");
        assert_eq!(e.negotiate_target(), "/hub/negotiate?negotiateVersion=0");
        assert_eq!(e.websocket_url(None, None), "ws://localhost/hub/?negotiateVersion=0");
        let e = Endpoint::parse("http://[::1]:81").unwrap();
        assert_eq!(e.socket_address(), "[::1]:81");
        assert_eq!(e.negotiate_target(), "/negotiate?negotiateVersion=1");
    }

    #[test]
    fn endpoint_takes_tls_urls_and_refuses_relative_ones() {
        let e = Endpoint::parse("https://example.com/hub").unwrap();
        assert_eq!(e.socket_address(), "example.com:443");
        assert_eq!(e.websocket_url(None, None), "wss://example.com/hub");
        let e = Endpoint::parse("wss://example.com:8443/hub").unwrap();
        assert_eq!(e.socket_address(), "example.com:8443");
        assert_eq!(e.websocket_url(None, None), "wss://example.com:8443/hub");
        assert!(Endpoint::parse("/hub").unwrap_err().is_config());
        assert!(Endpoint::parse("ftp://example.com/hub").unwrap_err().is_config());
    }
}
