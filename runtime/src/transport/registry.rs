//! The connections of one endpoint by their secret token: negotiated ones waiting for their
//! transport, and attached ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::connection::Connection;

enum Slot {
    /// Negotiated; the transport must arrive before `expires`.
    Pending { id: Arc<str>, expires: Instant },
    /// A transport claimed it (the connection is set once it runs).
    Attached(Option<Arc<Connection>>),
}

/// The outcome of a transport asking for a negotiated connection.
pub(crate) enum Claim {
    Claimed(Arc<str>),
    InUse,
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
    pub fn insert_pending(&self, token: String, id: Arc<str>, timeout: Duration) {
        let now = Instant::now();
        let mut slots = self.slots();
        slots.retain(|_, slot| !matches!(slot, Slot::Pending { expires, .. } if *expires <= now));
        slots.insert(
            token,
            Slot::Pending {
                id,
                expires: now + timeout,
            },
        );
    }

    /// A transport claims the connection negotiated under `token`.
    pub fn claim(&self, token: &str) -> Claim {
        let mut slots = self.slots();
        match slots.get(token) {
            Some(Slot::Pending { id, expires }) if *expires > Instant::now() => {
                let id = id.clone();
                slots.insert(token.to_owned(), Slot::Attached(None));
                Claim::Claimed(id)
            }
            Some(Slot::Pending { .. }) => {
                slots.remove(token);
                Claim::Unknown
            }
            Some(Slot::Attached(_)) => Claim::InUse,
            None => Claim::Unknown,
        }
    }

    pub fn attach(&self, token: &str, conn: Arc<Connection>) {
        if let Some(slot) = self.slots().get_mut(token) {
            *slot = Slot::Attached(Some(conn));
        }
    }

    /// The attached connection with this token, if any (`Some(None)` while it starts).
    pub fn lookup(&self, token: &str) -> Option<Option<Arc<Connection>>> {
        match self.slots().get(token)? {
            Slot::Attached(conn) => Some(conn.clone()),
            Slot::Pending { .. } => None,
        }
    }

    pub fn remove(&self, token: &str) {
        self.slots().remove(token);
    }
}
