//! The connections of one endpoint by their secret token: negotiated ones waiting for their
//! transport (holding what the client POSTed early), and attached ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::queue;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::connection::Connection;
use crate::options::TransportType;

/// The most a client may POST before its transport is up.
const MAX_EARLY_BYTES: usize = 1 << 20;

enum Slot {
    /// Negotiated; the transport must arrive before `expires`.
    Pending {
        id: Arc<str>,
        expires: Instant,
        early: Vec<Bytes>,
        early_len: usize,
        stateful: bool,
    },
    /// A transport is attached.
    Attached(Arc<Attached>),
}

/// A connection with its transport.
pub(crate) struct Attached {
    pub conn: Arc<Connection>,
    pub transport: TransportType,
    /// Where POSTed bytes go (Server-Sent Events and long polling).
    pub inbound: Option<queue::Sender<Bytes>>,
    /// The outbound queue, drained by one poll at a time (long polling).
    pub outbound: Option<tokio::sync::Mutex<queue::Receiver<Bytes>>>,
    /// Cancels the poll (or socket) in progress, when a newer one or a DELETE arrives; with
    /// the generation that tells which is current.
    pub poll: Mutex<Option<(u64, CancellationToken)>>,
    generation: AtomicU64,
    /// The last bytes of a closed connection have been handed out.
    drained: AtomicBool,
}

impl Attached {
    pub fn new(
        conn: Arc<Connection>,
        transport: TransportType,
        inbound: Option<queue::Sender<Bytes>>,
        outbound: Option<queue::Receiver<Bytes>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            conn,
            transport,
            inbound,
            outbound: outbound.map(tokio::sync::Mutex::new),
            poll: Mutex::new(None),
            generation: AtomicU64::new(0),
            drained: AtomicBool::new(false),
        })
    }

    /// Whether a closed connection's last bytes went out already.
    pub fn drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    pub fn mark_drained(&self) {
        self.drained.store(true, Ordering::Relaxed);
    }

    /// Starts a poll, or attaches a new socket: the previous one (if any) is cancelled, and
    /// the new one's token returned.
    pub fn begin_poll(&self) -> (u64, CancellationToken) {
        let token = CancellationToken::new();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let previous = self
            .poll
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace((generation, token.clone()));
        if let Some((_, previous)) = previous {
            previous.cancel();
        }
        (generation, token)
    }

    /// Whether the poll (or socket) of this generation is still the current one.
    pub fn is_current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Relaxed) == generation
    }

    /// Cancels the poll in progress.
    pub fn cancel_poll(&self) {
        if let Some((_, token)) = self.poll.lock().unwrap_or_else(|e| e.into_inner()).take() {
            token.cancel();
        }
    }
}

/// The outcome of a transport asking for a negotiated connection.
pub(crate) enum Claim {
    /// The connection is the caller's; `early` is what was POSTed before; `stateful` says
    /// whether negotiate agreed on stateful reconnect.
    Claimed {
        id: Arc<str>,
        early: Vec<Bytes>,
        stateful: bool,
    },
    Attached(Arc<Attached>),
    Unknown,
}

/// What a POST finds.
pub(crate) enum SendTarget {
    Attached(Arc<Attached>),
    /// Kept until the transport arrives.
    Buffered,
    TooLarge,
    Unknown,
}

#[derive(Default)]
pub(crate) struct Registry {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Registry {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a negotiated connection. Negotiated connections whose transport never came
    /// are dropped here, so the map cannot grow without bound.
    pub fn insert_pending(&self, token: String, id: Arc<str>, timeout: Duration, stateful: bool) {
        let now = Instant::now();
        let mut slots = self.slots();
        slots.retain(|_, slot| !matches!(slot, Slot::Pending { expires, .. } if *expires <= now));
        slots.insert(
            token,
            Slot::Pending {
                id,
                expires: now + timeout,
                early: Vec::new(),
                early_len: 0,
                stateful,
            },
        );
    }

    /// A transport asks for the connection negotiated under `token`: a pending one becomes
    /// the caller's (who must then [`Registry::attach`] it); an attached one is returned.
    pub fn claim(&self, token: &str) -> Claim {
        let mut slots = self.slots();
        match slots.remove(token) {
            Some(Slot::Pending {
                id,
                expires,
                early,
                stateful,
                ..
            }) if expires > Instant::now() => Claim::Claimed { id, early, stateful },
            Some(Slot::Pending { .. }) | None => Claim::Unknown,
            Some(Slot::Attached(attached)) => {
                slots.insert(token.to_owned(), Slot::Attached(attached.clone()));
                Claim::Attached(attached)
            }
        }
    }

    pub fn attach(&self, token: &str, attached: Arc<Attached>) {
        self.slots().insert(token.to_owned(), Slot::Attached(attached));
    }

    /// Where a POST to `token` goes; bytes for a connection whose transport has not arrived
    /// yet are kept for it.
    pub fn send_target(&self, token: &str, body: &Bytes) -> SendTarget {
        let mut slots = self.slots();
        match slots.get_mut(token) {
            Some(Slot::Attached(attached)) => SendTarget::Attached(attached.clone()),
            Some(Slot::Pending { early, early_len, .. }) => {
                if *early_len + body.len() > MAX_EARLY_BYTES {
                    return SendTarget::TooLarge;
                }
                *early_len += body.len();
                early.push(body.clone());
                SendTarget::Buffered
            }
            None => SendTarget::Unknown,
        }
    }

    /// The attached connection with this token.
    pub fn lookup(&self, token: &str) -> Option<Arc<Attached>> {
        match self.slots().get(token)? {
            Slot::Attached(attached) => Some(attached.clone()),
            Slot::Pending { .. } => None,
        }
    }

    /// Forgets `token`, if it still names `conn`.
    pub fn remove(&self, token: &str, conn: &Arc<Connection>) {
        let mut slots = self.slots();
        if matches!(slots.get(token), Some(Slot::Attached(a)) if Arc::ptr_eq(&a.conn, conn)) {
            slots.remove(token);
        }
    }
}
