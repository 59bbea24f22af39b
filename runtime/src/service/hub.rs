//! The state of one hub at one service endpoint: its server connections, the clients the
//! service tunnels through them, pending acknowledgements, and what the service reports
//! (status and server list). A hub has one per endpoint ([`HubEndpoints`](super::hub_endpoints::HubEndpoints)).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::connection_string::ConnectionString;
use super::endpoint::{EndpointType, ServiceEndpoint};
use super::options::ServiceOptions;
use super::router::EndpointMetrics;
use super::tokens;
use crate::HubError;
use crate::connection::Connection;
use crate::protocol::service::{AckStatus, ServiceStatus};
use crate::queue;

/// How long an acknowledged message waits for its Ack.
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of the hub, tunnelled through one server connection.
pub(crate) struct VirtualClient {
    pub conn: Arc<Connection>,
    /// Bytes from the client, for the connection's driver; `None` once its input has ended
    /// here (it moves to another app server).
    pub inbound: Option<crate::queue::Sender<Bytes>>,
    /// The server connection the service opened it on.
    pub slot: usize,
    /// The service instance holding the client (its `Asrs-Instance-Id` header), if named.
    pub instance: Option<Arc<str>>,
}

/// Messages waiting for the service's Ack, by ack id.
#[derive(Default)]
pub(crate) struct Acks {
    next: AtomicI32,
    pending: Mutex<HashMap<i32, oneshot::Sender<AckStatus>>>,
}

impl Acks {
    pub fn expect(&self) -> (i32, oneshot::Receiver<AckStatus>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let (sender, receiver) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, sender);
        (id, receiver)
    }

    pub fn forget(&self, id: i32) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    pub fn complete(&self, id: i32, status: AckStatus) {
        if let Some(sender) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
            let _ = sender.send(status);
        }
    }
}

/// Where an endpoint is in its life at a hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Just added: connected or connecting, and not taking clients until its server list
    /// matches the other endpoints' (or the scale timeout passes).
    Adding = 0,
    /// Taking clients and messages.
    Serving = 1,
    /// Being removed: no new clients; messages go on until it is dropped.
    Removing = 2,
}

/// One hub's service-mode state at one endpoint.
pub(crate) struct ServiceHub {
    /// The hub's name at the service: application prefix and hub name, lower-cased.
    pub name: String,
    /// The endpoint, as configured.
    pub endpoint: ServiceEndpoint,
    pub connection_string: ConnectionString,
    pub options: ServiceOptions,
    pub server_id: String,
    pub allow_stateful_reconnects: bool,
    slots: RwLock<Vec<Option<queue::Sender<Bytes>>>>,
    pub clients: RwLock<HashMap<Arc<str>, VirtualClient>>,
    pub acks: Acks,
    pub stopping: CancellationToken,
    /// Cancelled when a graceful shutdown starts: each server connection tells the service
    /// it goes offline (`["shutdown","fin:N"]`) until the service acknowledges it.
    pub going_offline: CancellationToken,
    /// The slots whose server connection the service acknowledged going offline on.
    offline_acked: Mutex<HashSet<usize>>,
    /// Woken each time a server connection comes up.
    attached: Notify,
    /// Woken when a server connection goes, one is acknowledged offline, or a client leaves.
    changed: Notify,
    next_slot: AtomicUsize,
    pub received: AtomicU64,
    /// The initial (fixed) connections: slots `0..fixed`, kept open and reconnected.
    fixed: usize,
    /// Slots owned by an OnDemand connection (opened on a `target` ping, never reconnected).
    on_demand: Mutex<HashSet<usize>>,
    phase: AtomicU8,
    /// What the last status ping reported.
    metrics: Mutex<EndpointMetrics>,
    /// Whether the service has clients of the hub (from status pings; assumed until told).
    has_clients: AtomicBool,
    /// How many status answers have arrived.
    status_answers: AtomicU64,
    /// The app servers the service last listed for the hub (a `servers` ping's answer).
    servers: Mutex<Option<Vec<String>>>,
}

impl ServiceHub {
    pub fn new(
        name: String,
        endpoint: ServiceEndpoint,
        connection_string: ConnectionString,
        options: ServiceOptions,
        server_id: String,
        phase: Phase,
    ) -> Arc<Self> {
        let count = usize::try_from(options.initial_hub_server_connection_count).unwrap_or(0);
        Arc::new(Self {
            name,
            endpoint,
            allow_stateful_reconnects: options.allow_stateful_reconnects,
            connection_string,
            options,
            server_id,
            slots: RwLock::new(vec![None; count]),
            clients: RwLock::new(HashMap::new()),
            acks: Acks::default(),
            stopping: CancellationToken::new(),
            going_offline: CancellationToken::new(),
            offline_acked: Mutex::new(HashSet::new()),
            attached: Notify::new(),
            changed: Notify::new(),
            next_slot: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            fixed: count,
            on_demand: Mutex::new(HashSet::new()),
            phase: AtomicU8::new(phase as u8),
            metrics: Mutex::new(EndpointMetrics::default()),
            has_clients: AtomicBool::new(true),
            status_answers: AtomicU64::new(0),
            servers: Mutex::new(None),
        })
    }

    /// Whether the endpoint is secondary: its server connections are weak (send only; the
    /// service routes no clients through them).
    pub fn is_weak(&self) -> bool {
        self.endpoint.endpoint_type() == EndpointType::Secondary
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Adding,
            1 => Phase::Serving,
            _ => Phase::Removing,
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// What the status pings reported last.
    pub fn metrics(&self) -> EndpointMetrics {
        *self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the service reported clients of the hub (true until it has answered).
    pub fn has_clients(&self) -> bool {
        self.has_clients.load(Ordering::Acquire)
    }

    /// How many status answers have arrived (a later one tells of a later moment).
    pub fn status_answers(&self) -> u64 {
        self.status_answers.load(Ordering::Acquire)
    }

    /// The service answered a status ping.
    pub fn status_received(&self, status: ServiceStatus) {
        self.has_clients.store(status.active, Ordering::Release);
        self.status_answers.fetch_add(1, Ordering::AcqRel);
        let mut metrics = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(clients) = status.client_count {
            metrics.client_connection_count = clients;
        }
        if let Some(servers) = status.server_count {
            metrics.server_connection_count = servers;
        }
        if let Some(capacity) = status.capacity {
            metrics.connection_capacity = capacity;
        }
        drop(metrics);
        self.changed.notify_waiters();
    }

    /// The service listed the hub's app servers (`id1;id2`).
    pub fn servers_received(&self, servers: &str) {
        let mut names: Vec<String> = servers
            .split(';')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        names.sort();
        names.dedup();
        *self.servers.lock().unwrap_or_else(|e| e.into_inner()) = Some(names);
        self.changed.notify_waiters();
    }

    /// Forgets the server list, before asking for it again.
    pub fn forget_servers(&self) {
        *self.servers.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The app servers the service listed last, if it has answered.
    pub fn servers(&self) -> Option<Vec<String>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many server connections the hub keeps.
    pub fn slot_count(&self) -> usize {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Reserves a slot for an OnDemand connection, if the hub may open one more: always when
    /// `MaxHubServerConnectionCount` is not set, else while the initial connections and the
    /// OnDemand ones number fewer than it.
    pub fn reserve_on_demand(&self) -> Option<usize> {
        let mut on_demand = self.on_demand.lock().unwrap_or_else(|e| e.into_inner());
        let max = self
            .options
            .max_hub_server_connection_count
            .map(|max| usize::try_from(max).unwrap_or(0).max(self.fixed));
        if max.is_some_and(|max| self.fixed + on_demand.len() >= max) {
            return None;
        }
        let slot = (self.fixed..).find(|slot| !on_demand.contains(slot))?;
        on_demand.insert(slot);
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        if slots.len() <= slot {
            slots.resize(slot + 1, None);
        }
        Some(slot)
    }

    /// An OnDemand connection ended: its slot is free again.
    pub fn release_on_demand(&self, slot: usize) {
        self.detach(slot);
        self.on_demand.lock().unwrap_or_else(|e| e.into_inner()).remove(&slot);
    }

    /// `ws[s]://server-endpoint/server/?hub=…&cid=…[&target=…]`.
    pub fn server_url(&self, target: Option<&str>) -> String {
        let endpoint = self.connection_string.server_endpoint();
        let target = target.map_or_else(String::new, |target| {
            format!("&target={}", crate::connection::request::encode_component(target))
        });
        format!(
            "{}{}/server/?hub={}&cid={}{target}",
            endpoint.websocket_origin(),
            endpoint.path,
            self.name,
            crate::transport::new_id()
        )
    }

    /// The bearer token of a server connection.
    pub fn server_token(&self) -> Result<String, HubError> {
        let audience = format!(
            "{}server/?hub={}",
            self.connection_string.endpoint().audience_base(),
            self.name
        );
        let mut claims = Map::new();
        claims.insert("nameid".into(), Value::from(self.server_id.as_str()));
        tokens::sign(
            self.connection_string.access_key(),
            self.options.access_token_algorithm,
            &audience,
            claims,
            self.options.access_token_lifetime,
        )
    }

    pub fn attach(&self, slot: usize, sender: queue::Sender<Bytes>) {
        if let Some(entry) = self.slots.write().unwrap_or_else(|e| e.into_inner()).get_mut(slot) {
            *entry = Some(sender);
        }
        self.attached.notify_waiters();
    }

    /// Resolves once a server connection is up.
    pub async fn until_connected(&self) {
        self.until_attached(Self::is_connected).await;
    }

    /// Resolves once `done` holds, checked each time a server connection comes up.
    async fn until_attached(&self, done: fn(&Self) -> bool) {
        loop {
            let attached = self.attached.notified();
            tokio::pin!(attached);
            attached.as_mut().enable();
            if done(self) {
                return;
            }
            attached.await;
        }
    }

    /// Whether every initial (fixed) server connection is up.
    pub fn is_fully_connected(&self) -> bool {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.iter().take(self.fixed).all(Option::is_some)
    }

    /// Resolves once every initial (fixed) server connection is up.
    pub async fn until_fully_connected(&self) {
        self.until_attached(Self::is_fully_connected).await;
    }

    pub fn detach(&self, slot: usize) {
        if let Some(entry) = self.slots.write().unwrap_or_else(|e| e.into_inner()).get_mut(slot) {
            *entry = None;
        }
        self.changed.notify_waiters();
    }

    /// The service acknowledged that server connection `slot` goes offline.
    pub fn offline_acknowledged(&self, slot: usize) {
        if !self.going_offline.is_cancelled() {
            // An acknowledgement of nothing this server said: nothing to do.
            tracing::debug!(hub = %self.name, slot, "a shutdown acknowledgement while not shutting down; ignored");
            return;
        }
        self.offline_acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(slot);
        self.changed.notify_waiters();
    }

    /// Whether the service acknowledged that server connection `slot` goes offline.
    pub fn is_offline_acknowledged(&self, slot: usize) -> bool {
        self.offline_acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&slot)
    }

    /// Forgets a tunnelled client whose connection ended.
    pub fn remove_client(&self, id: &str) {
        self.clients.write().unwrap_or_else(|e| e.into_inner()).remove(id);
        self.changed.notify_waiters();
    }

    /// Resolves once `done` holds, checked now and after each change (a server connection
    /// going, an acknowledgement, a client leaving, a status or server list arriving).
    pub async fn until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(self) {
                return;
            }
            changed.await;
        }
    }

    /// Whether the service acknowledged going offline on every server connection that is up.
    fn offline_everywhere(&self) -> bool {
        let acked = self.offline_acked.lock().unwrap_or_else(|e| e.into_inner());
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .enumerate()
            .all(|(slot, sender)| sender.is_none() || acked.contains(&slot))
    }

    /// Stops the hub as its `GracefulShutdown` says. Off: at once. Otherwise, within the
    /// timeout: every server connection tells the service it goes offline and waits for its
    /// acknowledgement (the service sends no new clients here, and moves the current ones
    /// elsewhere when the mode is MigrateClients and it can), then the clients still here
    /// are served until they have all gone. Whatever is left at the timeout is dropped. Then
    /// every server connection closes.
    pub async fn shut_down(&self) {
        let graceful = &self.options.graceful_shutdown;
        if graceful.mode != super::GracefulShutdownMode::Off {
            let deadline = tokio::time::Instant::now() + graceful.timeout;
            self.going_offline.cancel();
            tracing::info!(hub = %self.name, "setting the hub server offline");
            let offline = tokio::time::timeout_at(deadline, self.until(Self::offline_everywhere)).await;
            let gone = match offline {
                Ok(()) => {
                    tracing::info!(hub = %self.name, "waiting for client connections to close");
                    let no_clients = |hub: &Self| hub.clients.read().unwrap_or_else(|e| e.into_inner()).is_empty();
                    tokio::time::timeout_at(deadline, self.until(no_clients)).await.is_ok()
                }
                Err(_) => false,
            };
            if !gone {
                tracing::warn!(
                    hub = %self.name,
                    "Timeout({}ms) reached, existing client connections will be dropped immediately.",
                    graceful.timeout.as_millis()
                );
            }
        }
        tracing::info!(hub = %self.name, "stopping the hub server");
        self.stopping.cancel();
    }

    /// Whether any server connection is up (negotiate redirects only then).
    pub fn is_connected(&self) -> bool {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(Option::is_some)
    }

    /// The queue of server connection `slot`, while it is up.
    pub fn slot_writer(&self, slot: usize) -> Option<queue::Sender<Bytes>> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(slot)
            .cloned()
            .flatten()
    }

    /// Queues `frame` on every server connection that is up, without waiting (a control
    /// message each connection must carry).
    pub fn write_everywhere(&self, frame: Bytes) {
        for sender in self.slots.read().unwrap_or_else(|e| e.into_inner()).iter().flatten() {
            let _ = sender.try_send(frame.clone());
        }
    }

    /// The queue of a server connection: the one `origin` (a tunnelled client) came through
    /// when it is up, so its messages keep their order; else the next one up.
    pub fn writer(&self, origin: Option<&str>) -> Option<queue::Sender<Bytes>> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        if let Some(origin) = origin
            && let Some(client) = self.clients.read().unwrap_or_else(|e| e.into_inner()).get(origin)
            && let Some(Some(sender)) = slots.get(client.slot)
        {
            return Some(sender.clone());
        }
        let count = slots.len();
        // A hub call's writes to an endpoint its client is not on keep to one connection
        // there, so they keep their order too.
        let start = match origin {
            Some(origin) => origin
                .bytes()
                .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b))),
            None => self.next_slot.fetch_add(1, Ordering::Relaxed),
        };
        (0..count).filter_map(|i| slots[(start + i) % count].clone()).next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(mode: super::super::GracefulShutdownMode, timeout: Duration) -> Arc<ServiceHub> {
        let mut options = ServiceOptions::default();
        options.graceful_shutdown.mode = mode;
        options.graceful_shutdown.timeout = timeout;
        let connection_string =
            ConnectionString::parse("Endpoint=http://127.0.0.1;AccessKey=abc;Version=1.0;").unwrap();
        let endpoint = ServiceEndpoint::new("", EndpointType::Primary, "");
        ServiceHub::new(
            "chat".into(),
            endpoint,
            connection_string,
            options,
            "server-a".into(),
            Phase::Serving,
        )
    }

    #[test]
    fn a_shutdown_acknowledgement_outside_a_shutdown_is_ignored() {
        let hub = hub(
            super::super::GracefulShutdownMode::WaitForClientsClose,
            Duration::from_secs(1),
        );
        hub.offline_acknowledged(0);
        assert!(!hub.is_offline_acknowledged(0), "nothing was asked");
        hub.going_offline.cancel();
        hub.offline_acknowledged(0);
        assert!(hub.is_offline_acknowledged(0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_graceful_shutdown_waits_for_the_acknowledgement_then_gives_up_at_the_timeout() {
        let hub = hub(
            super::super::GracefulShutdownMode::WaitForClientsClose,
            Duration::from_secs(30),
        );
        let (sender, _receiver) = crate::queue::channel(1);
        hub.attach(0, sender);
        let started = tokio::time::Instant::now();
        // The service never acknowledges: the hub stops at the timeout.
        hub.shut_down().await;
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(hub.stopping.is_cancelled() && hub.going_offline.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn off_stops_at_once_and_says_nothing() {
        let hub = hub(super::super::GracefulShutdownMode::Off, Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        hub.shut_down().await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(hub.stopping.is_cancelled() && !hub.going_offline.is_cancelled());
    }
}
