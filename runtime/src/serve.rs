//! Serving an app over HTTP/1.1 with the limits Kestrel applies, in place of `axum::serve`.

use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Kestrel's `RequestHeadersTimeout`: a connection whose request headers take longer is closed.
pub const REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener`; await it to run until the shutdown signal, if one is set,
/// or forever.
///
/// Use it in place of `axum::serve`, which gives hyper no timer, so that a connection sending
/// its request headers one byte at a time is held forever. This closes a connection whose
/// request headers have not all come within the request-header timeout (30 s, Kestrel's
/// `RequestHeadersTimeout`), sends small messages at once (`TCP_NODELAY`), upgrades
/// WebSockets, and on a graceful shutdown lets the requests under way finish.
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
    }
}

/// A server being set up by [`serve`]; await it to run it.
#[must_use = "a server does nothing until awaited"]
pub struct Serve {
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener.local_addr().ok())
            .field("header_timeout", &self.header_timeout)
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

    async fn run(self) -> io::Result<()> {
        let Serve {
            listener,
            router,
            header_timeout,
            shutdown,
        } = self;
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
            let service = hyper_util::service::TowerToHyperService::new(router.clone());
            let stop = stop.clone();
            connections.spawn(async move {
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout);
                let connection = http
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .with_upgrades();
                tokio::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => {}
                    () = stop.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            });
            while connections.try_join_next().is_some() {}
        }
        while connections.join_next().await.is_some() {}
        Ok(())
    }
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
