//! TLS with rustls: the one way this crate opens connections to `https`/`wss` endpoints (an
//! app server's server connections to the service, the Rust client's negotiate and WebSocket,
//! a relay's links to its peers) and serves them ([`serve`](crate::serve) with
//! [`Serve::tls`](crate::Serve::tls)).
//!
//! Servers are trusted when a root of the system's store vouches for them (the
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` variables replace the store, as OpenSSL reads them) or
//! one added with [`add_trusted_roots`], for a private certificate authority.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Why a certificate, a key or a root could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// A network stream to a server: plain TCP, or TLS over TCP.
#[derive(Debug)]
pub enum NetStream {
    /// `http`/`ws`.
    Plain(TcpStream),
    /// `https`/`wss`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for NetStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            NetStream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NetStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NetStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            NetStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            NetStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            NetStream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The roots added with [`add_trusted_roots`].
fn added_roots() -> &'static RwLock<Vec<CertificateDer<'static>>> {
    static ROOTS: OnceLock<RwLock<Vec<CertificateDer<'static>>>> = OnceLock::new();
    ROOTS.get_or_init(|| RwLock::new(Vec::new()))
}

/// The client configuration, made again when roots are added.
fn client_config_slot() -> &'static RwLock<Option<Arc<rustls::ClientConfig>>> {
    static CONFIG: OnceLock<RwLock<Option<Arc<rustls::ClientConfig>>>> = OnceLock::new();
    CONFIG.get_or_init(|| RwLock::new(None))
}

/// Trusts, besides the system's roots, the certificates in `pem` (one or more PEM
/// `CERTIFICATE` blocks) for every connection this process opens from now on. Returns how
/// many were added.
pub fn add_trusted_roots(pem: &[u8]) -> Result<usize, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("the trusted roots are not PEM certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(TlsError("the trusted roots hold no PEM certificate".to_owned()));
    }
    let count = certificates.len();
    added_roots()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .extend(certificates);
    *client_config_slot().write().unwrap_or_else(|e| e.into_inner()) = None;
    Ok(count)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The configuration connections to TLS servers use: the system's roots and the added ones.
pub fn client_config() -> Arc<rustls::ClientConfig> {
    if let Some(config) = client_config_slot().read().unwrap_or_else(|e| e.into_inner()).clone() {
        return config;
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "a system root certificate could not be read");
    }
    let (_, unusable) = roots.add_parsable_certificates(native.certs);
    if unusable > 0 {
        tracing::debug!(unusable, "system root certificates that rustls cannot use were skipped");
    }
    for root in added_roots().read().unwrap_or_else(|e| e.into_inner()).iter() {
        if let Err(error) = roots.add(root.clone()) {
            tracing::warn!(%error, "an added trusted root is not usable");
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| unreachable_config());
    let config = Arc::new(config);
    *client_config_slot().write().unwrap_or_else(|e| e.into_inner()) = Some(config.clone());
    config
}

/// ring supports every default protocol version; this is never reached.
fn unreachable_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// Opens a TCP connection to `host:port` (small writes go out at once), with TLS over it when
/// `tls`, the server's certificate checked for `host`.
pub async fn connect(host: &str, port: u16, tls: bool) -> io::Result<NetStream> {
    // A bracketed IPv6 literal, as URLs write it.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((bare, port)).await?;
    let _ = tcp.set_nodelay(true);
    if !tls {
        return Ok(NetStream::Plain(tcp));
    }
    let name = ServerName::try_from(bare.to_owned()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{host}' is not a TLS server name"),
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(client_config());
    let stream = connector.connect(name, tcp).await?;
    Ok(NetStream::Tls(Box::new(stream)))
}

/// Opens the WebSocket of `request` (a `ws://` or `wss://` URL with its headers), over TLS for
/// `wss`.
pub async fn connect_websocket(
    request: http::Request<()>,
    config: Option<tokio_tungstenite::tungstenite::protocol::WebSocketConfig>,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<NetStream>,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::error::{Error, UrlError};
    let uri = request.uri();
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err(Error::Url(UrlError::UnsupportedUrlScheme)),
    };
    let host = uri.host().ok_or(Error::Url(UrlError::NoHostName))?.to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let stream = connect(&host, port, tls).await.map_err(Error::Io)?;
    tokio_tungstenite::client_async_with_config(request, stream, config).await
}

/// A server configuration from a PEM certificate chain file (the server's certificate first)
/// and a PEM private key file (PKCS#8, PKCS#1 or SEC1), offering HTTP/1.1.
pub fn server_config(certificate_chain: &Path, private_key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_file_iter(certificate_chain)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            TlsError(format!(
                "cannot read the certificate chain {}: {e}",
                certificate_chain.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "{} holds no PEM certificate",
            certificate_chain.display()
        )));
    }
    // The key's own bytes never reach an error text.
    let key = PrivateKeyDer::from_pem_file(private_key)
        .map_err(|_| TlsError(format!("{} holds no usable PEM private key", private_key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(format!("the certificate and the key do not go together: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
