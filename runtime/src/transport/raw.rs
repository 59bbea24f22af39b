//! Raw connections: negotiate and the transports without the hub protocol, for apps that
//! speak their own bytes (like .NET's `ConnectionHandler`).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::Inbound;
use super::request::RequestInfo;
use crate::connection::{CloseReason, Connection};

pub(crate) type RawHandler = Arc<dyn Fn(RawConnection) -> BoxFuture<'static, ()> + Send + Sync>;

/// One raw connection: receive the bytes the client sends, send bytes back.
///
/// Over WebSockets, what is sent goes out in frames of the kind (text or binary) the client
/// last sent.
pub struct RawConnection {
    conn: Arc<Connection>,
    inbound: Inbound,
    fixed_format: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RawConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawConnection")
            .field("id", self.conn.id())
            .finish_non_exhaustive()
    }
}

impl RawConnection {
    pub(crate) fn new(conn: Arc<Connection>, inbound: Inbound) -> Self {
        Self {
            conn,
            inbound,
            fixed_format: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The connection's id.
    pub fn connection_id(&self) -> &str {
        self.conn.id()
    }

    /// The request that opened the transport.
    pub fn request(&self) -> &RequestInfo {
        self.conn.request()
    }

    /// The claims of the bearer token the client presented, if valid.
    pub fn claims(&self) -> Option<&crate::Claims> {
        self.conn.claims()
    }

    /// The transport the client uses.
    pub fn transport(&self) -> crate::TransportType {
        self.conn.transport()
    }

    /// Sends what follows in binary frames (`true`) or text frames (`false`) over
    /// WebSockets, instead of following the kind the client last sent.
    pub fn set_binary(&self, binary: bool) {
        self.conn.set_binary(binary);
        self.fixed_format.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The next bytes from the client; `None` once it has gone.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let closing = self.conn.closing().clone();
        tokio::select! {
            biased;
            _ = closing.cancelled() => None,
            frame = self.inbound.next_frame() => {
                let (bytes, binary) = frame?;
                if !self.fixed_format.load(std::sync::atomic::Ordering::Relaxed) {
                    self.conn.set_binary(binary);
                }
                Some(bytes)
            }
        }
    }

    /// Sends bytes to the client (dropped if the connection has closed).
    pub fn send(&self, bytes: Bytes) {
        self.conn.send_frame(bytes);
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.conn.close(CloseReason::graceful());
    }

    /// A handle that sends to and closes this connection from other tasks, while this one
    /// keeps receiving.
    pub fn sender(&self) -> RawSender {
        RawSender {
            conn: self.conn.clone(),
        }
    }
}

/// Sends to and closes one [`RawConnection`] from anywhere; cheap to clone.
#[derive(Clone)]
pub struct RawSender {
    conn: Arc<Connection>,
}

impl std::fmt::Debug for RawSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSender")
            .field("id", self.conn.id())
            .finish_non_exhaustive()
    }
}

impl RawSender {
    /// The connection's id.
    pub fn connection_id(&self) -> &str {
        self.conn.id()
    }

    /// Sends bytes to the client, as [`RawConnection::send`] does: without waiting, into the
    /// connection's bounded queue (a client whose queue is full is closed).
    pub fn send(&self, bytes: Bytes) {
        self.conn.send_frame(bytes);
    }

    /// Closes the connection: what was sent before still goes out, then the transport ends.
    pub fn close(&self) {
        self.conn.close(CloseReason::graceful());
    }

    /// Whether the connection has started closing.
    pub fn is_closed(&self) -> bool {
        self.conn.closing().is_cancelled()
    }
}
