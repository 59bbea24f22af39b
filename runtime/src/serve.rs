//! Serving an app over HTTP/1.1 with the limits Kestrel applies, in place of `axum::serve`.

use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Kestrel's `RequestHeadersTimeout`: a connection whose request headers take longer is closed.
pub const REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener`; await it to run until the shutdown signal, if one is set,
/// or forever.
///
/// Use it in place of `axum::serve`, which gives hyper no timer, so that a connection sending
/// its request headers one byte at a time is held forever. This closes a connection whose
/// request headers have not all come within the request-header timeout (30 s, Kestrel's
/// `RequestHeadersTimeout`), sends small messages at once (`TCP_NODELAY`), upgrades
/// WebSockets, and on a graceful shutdown lets the requests under way finish. With
/// [`Serve::tls`] it serves HTTPS.
///
/// ```no_run
/// # use switchboard::{Hub, Methods, Switchboard};
/// # struct Chat;
/// # impl Hub for Chat { type Client = switchboard::Untyped; fn methods(_: &mut Methods<Self>) {} }
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let app = Switchboard::builder().hub("/chat", Chat).build()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
/// switchboard::serve(listener, app.router())
///     .with_graceful_shutdown(async { drop(tokio::signal::ctrl_c().await) })
///     .await?;
/// # Ok(()) }
/// ```
pub fn serve(listener: TcpListener, router: Router) -> Serve {
    Serve {
        listener,
        router,
        header_timeout: REQUEST_HEADER_TIMEOUT,
        shutdown: None,
        tls: None,
    }
}

/// A server being set up by [`serve`]; await it to run it.
#[must_use = "a server does nothing until awaited"]
pub struct Serve {
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener.local_addr().ok())
            .field("header_timeout", &self.header_timeout)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// How long a connection may take to send a request's headers (default
    /// [`REQUEST_HEADER_TIMEOUT`]); past it the connection is closed.
    pub fn request_header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Stops accepting connections once `signal` resolves; requests under way finish (an
    /// upgraded WebSocket belongs to its hub, which [`AppHandle::shutdown`](crate::AppHandle::shutdown)
    /// closes), then the server's future resolves.
    pub fn with_graceful_shutdown(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    /// Serves HTTPS with `config` (see [`tls::server_config`](crate::tls::server_config)):
    /// the TLS handshake, too, must end within the request-header timeout.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    async fn run(self) -> io::Result<()> {
        let Serve {
            listener,
            router,
            header_timeout,
            shutdown,
            tls,
        } = self;
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let stop = CancellationToken::new();
        if let Some(signal) = shutdown {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = signal => stop.cancel(),
                    () = stop.cancelled() => {}
                }
            });
        }
        let _stop_on_drop = stop.clone().drop_guard();
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    // Out of descriptors, say: the listener stays, and tries again shortly.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Small messages go out at once rather than waiting for the previous one's ACK.
            let _ = tcp.set_nodelay(true);
            // Handlers see the client's address (`RequestInfo::remote_address`, axum's
            // `ConnectInfo`).
            let peer = tcp.peer_addr().ok();
            let service = hyper_util::service::TowerToHyperService::new(router.clone().map_request(
                move |mut request: http::Request<hyper::body::Incoming>| {
                    if let Some(peer) = peer {
                        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    }
                    request
                },
            ));
            let stop = stop.clone();
            let acceptor = acceptor.clone();
            connections.spawn(async move {
                match acceptor {
                    None => serve_connection(tcp, service, header_timeout, stop).await,
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(header_timeout, acceptor.accept(tcp));
                        match handshake.await {
                            Ok(Ok(tls)) => serve_connection(tls, service, header_timeout, stop).await,
                            Ok(Err(error)) => tracing::debug!(%error, "a TLS handshake failed"),
                            Err(_) => tracing::debug!("a TLS handshake timed out"),
                        }
                    }
                }
            });
            while connections.try_join_next().is_some() {}
        }
        while connections.join_next().await.is_some() {}
        Ok(())
    }
}

/// Serves HTTP/1.1 on one connection until it ends, or until `stop` (then gracefully).
async fn serve_connection<I, S>(
    io: I,
    service: hyper_util::service::TowerToHyperService<S>,
    header_timeout: Duration,
    stop: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connection = http
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
