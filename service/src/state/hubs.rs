//! Every hub the relay serves, by hub key: created when an app server connects to it, and
//! forgotten once nothing is left in it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::metrics::{HubSnapshot, Metrics};
use crate::state::hub::{Attach, Hub, NewClient, Refusal, Sticky};
use crate::state::mover::Mover;
use crate::state::server_link::ServerLink;

/// A client pinned: its hub, its server connection, and its mover when its app server may
/// have it moved elsewhere.
pub(crate) struct Pinned {
    pub(crate) hub: Arc<Hub>,
    pub(crate) link: Arc<ServerLink>,
    pub(crate) mover: Option<Arc<Mover>>,
}

/// Every hub, by key.
pub(crate) struct Hubs {
    map: Mutex<HashMap<String, Arc<Hub>>>,
    metrics: Arc<Metrics>,
    next_link: AtomicU64,
}

impl Hubs {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Hubs {
            map: Mutex::new(HashMap::new()),
            metrics,
            next_link: AtomicU64::new(1),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Hub>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new id for a server connection.
    pub(crate) fn next_link_id(&self) -> u64 {
        self.next_link.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The hub, if it exists.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Hub>> {
        self.map().get(key).cloned()
    }

    fn get_or_create(&self, key: &str) -> Arc<Hub> {
        self.map()
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Hub::new(key, self.metrics.clone())))
            .clone()
    }

    /// Registers a server connection of hub `key`.
    pub(crate) fn attach_server(&self, key: &str, link: Arc<ServerLink>) -> Arc<Hub> {
        loop {
            let hub = self.get_or_create(key);
            // A hub forgotten meanwhile is looked up (and created) again.
            if hub.attach_server(link.clone()) {
                return hub;
            }
        }
    }

    /// Pins a new client to one of hub `key`'s server connections, taking them in turn.
    pub(crate) fn attach_client(
        &self,
        key: &str,
        connection_id: &str,
        mut client: NewClient,
        max_clients: Option<usize>,
    ) -> Result<Pinned, Refusal> {
        loop {
            let absent = match &client.sticky {
                Sticky::Required(_) => Refusal::StickyServerGone,
                _ => Refusal::NoServer,
            };
            let hub = self.get(key).ok_or(absent)?;
            match hub.attach_client(connection_id, client, max_clients) {
                Attach::Pinned(link, mover) => return Ok(Pinned { hub, link, mover }),
                Attach::Refused(refusal) => return Err(refusal),
                Attach::Forgotten(returned) => client = returned,
            }
        }
    }

    /// Forgets `hub` if nothing is left in it.
    pub(crate) fn release(&self, hub: &Arc<Hub>) {
        let mut map = self.map();
        if map.get(hub.key()).is_some_and(|current| Arc::ptr_eq(current, hub)) && hub.forget_if_empty() {
            map.remove(hub.key());
        }
    }

    /// Every hub.
    pub(crate) fn all(&self) -> Vec<Arc<Hub>> {
        self.map().values().cloned().collect()
    }

    /// The connections of every hub, sorted by hub key.
    pub(crate) fn snapshot(&self) -> Vec<HubSnapshot> {
        let mut hubs: Vec<HubSnapshot> = self.all().iter().map(|hub| hub.snapshot()).collect();
        hubs.sort_by(|a, b| a.hub.cmp(&b.hub));
        hubs
    }
}
