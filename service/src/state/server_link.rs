//! One app-server connection as the hubs see it: where its records go, and whether clients
//! may be pinned to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use switchboard::protocol::service::ServiceMessage;
use switchboard::protocol::service::link::frame;
use switchboard::queue;
use tokio_util::sync::CancellationToken;

/// One app-server connection as the hubs see it: where its records go.
pub(crate) struct ServerLink {
    /// Unique among this relay's server connections.
    pub(crate) id: u64,
    /// The app server's name (its token's `nameid`), if it gave one.
    pub(crate) server_id: Option<String>,
    /// Whether clients may be pinned to it (Weak connections only send).
    carries_clients: bool,
    /// Whether the app server replays to clients that reconnect statefully (its handshake's
    /// `AllowStatefulReconnects`).
    pub(crate) stateful_reconnects: bool,
    /// Whether the app server lets the relay move its clients to another server when it
    /// shuts down (its handshake's migration level).
    pub(crate) migrates_clients: bool,
    offline: AtomicBool,
    /// The clients pinned to it.
    pinned: AtomicUsize,
    /// Whether its app server was asked for another connection because this one carries many
    /// clients.
    asked_for_more: AtomicBool,
    sender: queue::Sender<Bytes>,
    /// Cancelled once the connection ends.
    pub(crate) closed: CancellationToken,
}

impl ServerLink {
    /// A link whose records go to `sender`, the bounded queue its connection's writer reads.
    pub(crate) fn new(
        id: u64,
        server_id: Option<String>,
        carries_clients: bool,
        stateful_reconnects: bool,
        migrates_clients: bool,
        sender: queue::Sender<Bytes>,
    ) -> Arc<Self> {
        let link = ServerLink {
            id,
            server_id,
            carries_clients,
            stateful_reconnects,
            migrates_clients,
            offline: AtomicBool::new(false),
            pinned: AtomicUsize::new(0),
            asked_for_more: AtomicBool::new(false),
            sender,
            closed: CancellationToken::new(),
        };
        Arc::new(link)
    }

    /// Queues one message, waiting for room; `false` once the connection has ended.
    pub(crate) async fn send(&self, message: &ServiceMessage) -> bool {
        let record = frame(message);
        tokio::select! {
            biased;
            _ = self.closed.cancelled() => false,
            sent = self.sender.send(record) => sent.is_ok(),
        }
    }

    /// One more client is pinned to it.
    pub(crate) fn pin(&self) {
        self.pinned.fetch_add(1, Ordering::Relaxed);
    }

    /// A client pinned to it is gone.
    pub(crate) fn unpin(&self) {
        self.pinned.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether its app server should be asked for another connection: it carries more than
    /// `bound` clients, and it was not asked already (`true` once).
    pub(crate) fn wants_company(&self, bound: usize) -> bool {
        self.pinned() > bound && !self.asked_for_more.swap(true, Ordering::Relaxed)
    }

    /// How many clients are pinned to it.
    pub(crate) fn pinned(&self) -> usize {
        self.pinned.load(Ordering::Relaxed)
    }

    /// The app server is going offline: no new clients are pinned to this connection.
    pub(crate) fn set_offline(&self) {
        self.offline.store(true, Ordering::Relaxed);
    }

    pub(crate) fn accepts_clients(&self) -> bool {
        self.carries_clients && !self.offline.load(Ordering::Relaxed) && !self.closed.is_cancelled()
    }

    /// Whether both links belong to the same app server.
    pub(crate) fn same_server(&self, other: &ServerLink) -> bool {
        self.id == other.id || (self.server_id.is_some() && self.server_id == other.server_id)
    }
}
