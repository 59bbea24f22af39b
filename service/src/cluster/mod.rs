//! The relay cluster (`--redis`): any number of relay nodes share one Redis, on which each
//! node keeps its entry in a registry ([`peers`]) and publishes what its app servers ask of
//! the other nodes' clients ([`envelope`]).
//!
//! - **Channels.** One for the whole cluster (`{prefix}:cluster`: messages and queries, each
//!   published once per send, never per recipient) and one per node (`{prefix}:node:{id}`:
//!   answers to its queries, and requests to ask an app server for a connection to another
//!   node). Each node has one publishing and one subscribing connection, so what one node
//!   publishes reaches another in the order it was published.
//! - **Never waiting on Redis.** What a node publishes goes through a queue bounded in count
//!   and bytes to the publishing task; when Redis is away or slow the queue fills and what does
//!   not fit is dropped (and counted). Client traffic that needs no other node never waits.
//!   Queries wait for the live nodes' answers for [`QUERY_TIMEOUT`] at most.
//! - **Registry.** Every heartbeat (a fifth of the node timeout) a node writes its
//!   [`NodeInfo`] (`{prefix}:node:{id}`, expiring) and reads everyone's. A node whose beat has
//!   not changed for the node timeout is dead for the others (see [`peers`]).
//!
//! This module knows nothing of hubs: what arrives goes to the [`Node`] the relay gives it.

pub(crate) mod envelope;
pub(crate) mod peers;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use switchboard::protocol::service::{Ack, ServiceMessage};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use envelope::{Envelope, Kind};
use peers::{NodeInfo, Peers};

/// How long a query waits for the other nodes' answers.
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The most messages waiting to be published.
const OUTBOX_COUNT: usize = 8192;
/// The most bytes waiting to be published.
const OUTBOX_BYTES: usize = 32 << 20;
/// The most messages sent to Redis in one round trip.
const BATCH: usize = 128;
/// How long one command to Redis may take before Redis counts as away.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an app server is left to answer a request for a connection before it is asked again.
const TARGET_RETRY: Duration = Duration::from_secs(10);

/// A cluster's settings.
#[derive(Clone)]
pub(crate) struct ClusterSettings {
    pub(crate) redis_url: String,
    pub(crate) node_id: String,
    pub(crate) advertise: String,
    pub(crate) node_timeout: Duration,
    pub(crate) prefix: String,
}

/// What the relay does with what other nodes send, and tells of itself.
pub(crate) trait Node: Send + Sync {
    /// This node's clients (every hub) and, by hub key, the app servers with a server
    /// connection here that takes clients.
    fn report(&self) -> (usize, std::collections::BTreeMap<String, Vec<String>>);
    /// A message from another node, for this node's clients.
    fn message(&self, hub: &str, message: ServiceMessage);
    /// A query from another node; `answer` is sent back to it.
    fn query(&self, hub: &str, message: ServiceMessage, answer: Answer);
    /// Node `node` asks app server `server` of `hub` for a server connection to it.
    fn target(&self, hub: &str, server: &str, node: &str);
    /// Node `node` is dead.
    fn node_lost(&self, node: &str);
}

/// Where the answer to one query goes.
pub(crate) struct Answer {
    cluster: Arc<Cluster>,
    to: String,
    query: u64,
    hub: String,
}

impl Answer {
    /// Sends the answer: an `Ack` (its ack id is not read).
    pub(crate) fn send(self, ack: Ack) {
        let channel = self.cluster.node_channel(&self.to);
        let bytes = Envelope::with_message(
            Kind::Answer,
            self.query,
            &self.cluster.settings.node_id,
            &self.hub,
            &ServiceMessage::Ack(ack),
        );
        self.cluster.publish(channel, bytes);
    }
}

/// Counters of cross-node traffic.
#[derive(Default)]
pub(crate) struct ClusterStats {
    pub(crate) published: AtomicU64,
    pub(crate) published_bytes: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) received_bytes: AtomicU64,
    /// Not published: the queue was full, or Redis failed to take them.
    pub(crate) dropped: AtomicU64,
    /// Received and dropped: not a message of the cluster's.
    pub(crate) malformed: AtomicU64,
    /// App-server connections this node forwards to another one now.
    pub(crate) forwarding: AtomicU64,
}

struct Gather {
    waiting: HashSet<String>,
    answers: Vec<Ack>,
    done: Option<oneshot::Sender<Vec<Ack>>>,
}

impl Gather {
    fn finish_if_done(&mut self) {
        if self.waiting.is_empty()
            && let Some(done) = self.done.take()
        {
            let _ = done.send(std::mem::take(&mut self.answers));
        }
    }
}

/// One node of a relay cluster.
pub(crate) struct Cluster {
    pub(crate) settings: ClusterSettings,
    client: redis::Client,
    outbox: mpsc::Sender<(String, Bytes)>,
    outbox_bytes: Arc<AtomicUsize>,
    outbox_receiver: Mutex<Option<mpsc::Receiver<(String, Bytes)>>>,
    peers: Mutex<Peers>,
    gathers: Mutex<HashMap<u64, Gather>>,
    next_query: AtomicU64,
    redis_up: AtomicBool,
    /// When each (hub, server) was last asked for a connection to this node.
    asked: Mutex<HashMap<(String, String), Instant>>,
    pub(crate) stats: ClusterStats,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cluster {
    /// A node; nothing is connected until [`Cluster::start`]. A URL Redis cannot read is an
    /// error (without the URL, which may hold a password).
    pub(crate) fn new(settings: ClusterSettings) -> Result<Arc<Cluster>, String> {
        let client = redis::Client::open(settings.redis_url.as_str())
            .map_err(|e| format!("the Redis URL is not valid ({:?})", e.kind()))?;
        let (outbox, receiver) = mpsc::channel(OUTBOX_COUNT);
        Ok(Arc::new(Cluster {
            peers: Mutex::new(Peers::new(&settings.node_id, settings.node_timeout)),
            settings,
            client,
            outbox,
            outbox_bytes: Arc::new(AtomicUsize::new(0)),
            outbox_receiver: Mutex::new(Some(receiver)),
            gathers: Mutex::new(HashMap::new()),
            next_query: AtomicU64::new(1),
            redis_up: AtomicBool::new(false),
            asked: Mutex::new(HashMap::new()),
            stats: ClusterStats::default(),
        }))
    }

    /// Starts publishing, subscribing and heart-beating, until `stop`.
    pub(crate) fn start(self: &Arc<Self>, node: Weak<dyn Node>, stop: CancellationToken) {
        let Some(outbox) = lock(&self.outbox_receiver).take() else {
            return;
        };
        tokio::spawn(publisher(
            Arc::downgrade(self),
            outbox,
            self.outbox_bytes.clone(),
            stop.clone(),
        ));
        tokio::spawn(subscriber(Arc::downgrade(self), node.clone(), stop.clone()));
        tokio::spawn(heartbeat(Arc::downgrade(self), node, stop));
    }

    fn cluster_channel(&self) -> String {
        format!("{}:cluster", self.settings.prefix)
    }

    fn node_channel(&self, node: &str) -> String {
        format!("{}:node:{node}", self.settings.prefix)
    }

    fn registry_key(&self, node: &str) -> String {
        format!("{}:registry:{node}", self.settings.prefix)
    }

    fn registry_set(&self) -> String {
        format!("{}:nodes", self.settings.prefix)
    }

    /// Whether the last heartbeat round with Redis went well.
    pub(crate) fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    /// The live nodes but this one.
    pub(crate) fn peers(&self) -> Vec<NodeInfo> {
        lock(&self.peers).infos()
    }

    /// Whether any other node is alive.
    pub(crate) fn has_peers(&self) -> bool {
        !lock(&self.peers).ids().is_empty()
    }

    /// The node negotiate should send a new client of `hub` to, when another one has fewer
    /// clients than this one's `my_clients`.
    pub(crate) fn redirect_target(&self, hub: &str, my_clients: usize) -> Option<NodeInfo> {
        lock(&self.peers).least_loaded(hub, my_clients)
    }

    /// The hosts (without port) other nodes advertise: a client token minted for any of them
    /// is good here.
    pub(crate) fn peer_hosts(&self) -> Vec<String> {
        lock(&self.peers)
            .advertised()
            .iter()
            .filter_map(|url| url.split("://").nth(1))
            .map(|rest| {
                let authority = rest.split('/').next().unwrap_or(rest);
                crate::auth::host_without_port(authority).to_owned()
            })
            .collect()
    }

    /// Appends the cluster's gauges and counters, in the Prometheus text format.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let peers = lock(&self.peers).ids();
        let stats = &self.stats;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let metrics = [
            (
                "switchboard_cluster_redis_up",
                "gauge",
                "Whether the last heartbeat round with Redis went well.",
                u64::from(self.redis_up()),
            ),
            (
                "switchboard_cluster_peers",
                "gauge",
                "The other live nodes of the cluster.",
                peers.len() as u64,
            ),
            (
                "switchboard_cluster_forwarded_server_connections",
                "gauge",
                "App-server connections forwarded to another node now.",
                get(&stats.forwarding),
            ),
            (
                "switchboard_cluster_published_total",
                "counter",
                "Messages published to the other nodes.",
                get(&stats.published),
            ),
            (
                "switchboard_cluster_published_bytes_total",
                "counter",
                "Bytes published to the other nodes.",
                get(&stats.published_bytes),
            ),
            (
                "switchboard_cluster_received_total",
                "counter",
                "Messages received from Redis.",
                get(&stats.received),
            ),
            (
                "switchboard_cluster_received_bytes_total",
                "counter",
                "Bytes received from Redis.",
                get(&stats.received_bytes),
            ),
            (
                "switchboard_cluster_dropped_total",
                "counter",
                "Messages not published: the queue was full or Redis refused them.",
                get(&stats.dropped),
            ),
            (
                "switchboard_cluster_malformed_total",
                "counter",
                "Messages from Redis dropped because they do not parse.",
                get(&stats.malformed),
            ),
        ];
        for (name, kind, help, value) in metrics {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        out.push_str("# HELP switchboard_cluster_peer A live node of the cluster (always 1).\n");
        out.push_str("# TYPE switchboard_cluster_peer gauge\n");
        for peer in &peers {
            let _ = writeln!(
                out,
                "switchboard_cluster_peer{{node=\"{}\"}} 1",
                crate::metrics::escape(peer)
            );
        }
    }

    /// Queues bytes for a channel; dropped (and counted) when the queue is full.
    fn publish(&self, channel: String, bytes: Bytes) {
        let size = bytes.len() + channel.len();
        if self.outbox_bytes.fetch_add(size, Ordering::Relaxed) + size > OUTBOX_BYTES {
            self.outbox_bytes.fetch_sub(size, Ordering::Relaxed);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.outbox.try_send((channel, bytes)).is_err() {
            self.outbox_bytes.fetch_sub(size, Ordering::Relaxed);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publishes an app server's message for the other nodes' clients (encoded once).
    pub(crate) fn publish_message(&self, hub: &str, message: &ServiceMessage) {
        let bytes = Envelope::with_message(Kind::Message, 0, &self.settings.node_id, hub, message);
        self.publish(self.cluster_channel(), bytes);
    }

    /// Asks every other live node; resolves with the answers of those that answered within
    /// [`QUERY_TIMEOUT`] (a node that dies meanwhile is not waited for), at once with none
    /// while Redis is away.
    pub(crate) async fn query(&self, hub: &str, message: &ServiceMessage) -> Vec<Ack> {
        let waiting: HashSet<String> = lock(&self.peers).ids().into_iter().collect();
        // With Redis away nobody would hear the question: this node's answer is all there is.
        if waiting.is_empty() || !self.redis_up() {
            return Vec::new();
        }
        let id = self.next_query.fetch_add(1, Ordering::Relaxed);
        let (done, answered) = oneshot::channel();
        lock(&self.gathers).insert(
            id,
            Gather {
                waiting,
                answers: Vec::new(),
                done: Some(done),
            },
        );
        let bytes = Envelope::with_message(Kind::Query, id, &self.settings.node_id, hub, message);
        self.publish(self.cluster_channel(), bytes);
        let answers = tokio::time::timeout(QUERY_TIMEOUT, answered).await;
        let gather = lock(&self.gathers).remove(&id);
        match answers {
            Ok(Ok(answers)) => answers,
            _ => gather.map(|g| g.answers).unwrap_or_default(),
        }
    }

    fn answered(&self, query: u64, from: &str, ack: Ack) {
        let mut gathers = lock(&self.gathers);
        if let Some(gather) = gathers.get_mut(&query)
            && gather.waiting.remove(from)
        {
            gather.answers.push(ack);
            gather.finish_if_done();
        }
    }

    fn forget_node(&self, node: &str) {
        for gather in lock(&self.gathers).values_mut() {
            if gather.waiting.remove(node) {
                gather.finish_if_done();
            }
        }
    }

    /// Handles what arrived on a channel.
    fn received(self: &Arc<Self>, node: &dyn Node, payload: Bytes) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        self.stats
            .received_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let malformed = |error: &dyn std::fmt::Display| {
            self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "dropped a cluster message from Redis that does not parse");
        };
        let envelope = match Envelope::decode(payload) {
            Ok(envelope) => envelope,
            Err(error) => return malformed(&error),
        };
        if envelope.origin == self.settings.node_id {
            return;
        }
        match envelope.kind {
            Kind::Target => match std::str::from_utf8(&envelope.body) {
                Ok(server) => node.target(&envelope.hub, server, &envelope.origin),
                Err(error) => malformed(&error),
            },
            kind => {
                let message = match envelope.message() {
                    Ok(message) => message,
                    Err(error) => return malformed(&error),
                };
                match (kind, message) {
                    (Kind::Message, message) => node.message(&envelope.hub, message),
                    (Kind::Query, message) => {
                        let answer = Answer {
                            cluster: self.clone(),
                            to: envelope.origin.clone(),
                            query: envelope.query,
                            hub: envelope.hub.clone(),
                        };
                        node.query(&envelope.hub, message, answer);
                    }
                    (Kind::Answer, ServiceMessage::Ack(ack)) => self.answered(envelope.query, &envelope.origin, ack),
                    _ => malformed(&"an answer that is not an Ack"),
                }
            }
        }
    }

    /// Asks, on the nodes that have them, the app servers this node lacks for a connection.
    fn ask_for_missing_servers(&self, mine: &std::collections::BTreeMap<String, Vec<String>>) {
        let now = Instant::now();
        let mut asked = lock(&self.asked);
        asked.retain(|_, at| now.saturating_duration_since(*at) < TARGET_RETRY);
        for peer in self.peers() {
            for (hub, servers) in &peer.hubs {
                for server in servers {
                    let have = mine.get(hub).is_some_and(|here| here.contains(server));
                    let key = (hub.clone(), server.clone());
                    if have || asked.contains_key(&key) {
                        continue;
                    }
                    asked.insert(key, now);
                    tracing::debug!(%hub, %server, via = %peer.id, "asking an app server for a connection to this node");
                    let bytes = Envelope::encode(Kind::Target, 0, &self.settings.node_id, hub, server.as_bytes());
                    self.publish(self.node_channel(&peer.id), bytes);
                }
            }
        }
    }
}

/// Publishes what is queued, several messages per round trip, in order.
async fn publisher(
    cluster: Weak<Cluster>,
    mut outbox: mpsc::Receiver<(String, Bytes)>,
    queued_bytes: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let mut connection: Option<redis::aio::ConnectionManager> = None;
    let mut batch: Vec<(String, Bytes)> = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            count = outbox.recv_many(&mut batch, BATCH) => count,
        };
        if received == 0 {
            return;
        }
        let size: usize = batch.iter().map(|(channel, bytes)| channel.len() + bytes.len()).sum();
        queued_bytes.fetch_sub(size, Ordering::Relaxed);
        let Some(this) = cluster.upgrade() else { return };
        if connection.is_none() {
            connection = manager(&this.client).await;
        }
        let Some(publisher) = connection.as_mut() else {
            this.stats.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            continue;
        };
        let mut pipe = redis::pipe();
        for (channel, bytes) in &batch {
            pipe.cmd("PUBLISH").arg(channel).arg(&bytes[..]).ignore();
        }
        match pipe.query_async::<()>(publisher).await {
            Ok(()) => {
                this.stats.published.fetch_add(batch.len() as u64, Ordering::Relaxed);
                this.stats.published_bytes.fetch_add(size as u64, Ordering::Relaxed);
            }
            Err(error) => {
                this.stats.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::debug!(error = %error, count = batch.len(), "could not publish to Redis");
            }
        }
    }
}

/// A connection to Redis that reconnects by itself, each command bounded in time.
async fn manager(client: &redis::Client) -> Option<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    match client.get_connection_manager_with_config(config).await {
        Ok(connection) => Some(connection),
        Err(error) => {
            tracing::debug!(error = %error, "cannot connect to Redis");
            None
        }
    }
}

/// Subscribes to the cluster's channel and this node's; after Redis goes away, again.
async fn subscriber(cluster: Weak<Cluster>, node: Weak<dyn Node>, stop: CancellationToken) {
    let mut attempt = 0u32;
    loop {
        let Some(this) = cluster.upgrade() else { return };
        let channels = [this.cluster_channel(), this.node_channel(&this.settings.node_id)];
        let client = this.client.clone();
        drop(this);
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channels[..]).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            connected = tokio::time::timeout(RESPONSE_TIMEOUT, connect) => connected,
        };
        match connected {
            Ok(Ok(pubsub)) => {
                if attempt > 0 {
                    tracing::info!("subscribed to the cluster's channels on Redis again");
                }
                attempt = 0;
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        _ = stop.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let (Some(this), Some(node)) = (cluster.upgrade(), node.upgrade()) else {
                        return;
                    };
                    this.received(node.as_ref(), Bytes::copy_from_slice(message.get_payload_bytes()));
                }
                tracing::warn!("lost the Redis subscription of the cluster; subscribing again");
            }
            Ok(Err(error)) if attempt == 0 => {
                tracing::warn!(error = %error, "cannot subscribe on Redis; retrying")
            }
            Err(_) if attempt == 0 => tracing::warn!("Redis does not answer; retrying"),
            _ => {}
        }
        let delay = Duration::from_millis(100u64 << attempt.min(4)).min(Duration::from_secs(1));
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Every heartbeat: writes this node's entry, reads the others', reports dead nodes and asks
/// for the app servers this node lacks. Removes the entry when stopped.
async fn heartbeat(cluster: Weak<Cluster>, node: Weak<dyn Node>, stop: CancellationToken) {
    let mut connection: Option<redis::aio::ConnectionManager> = None;
    let mut beat = 0u64;
    let mut warned_twin = false;
    // The beat this node last wrote (after a round that went well).
    let mut written: Option<u64> = None;
    loop {
        let Some(this) = cluster.upgrade() else { return };
        let interval = (this.settings.node_timeout / 5).max(Duration::from_millis(100));
        if stop.is_cancelled() {
            if let Some(connection) = connection.as_mut() {
                let mut leave = redis::pipe();
                leave
                    .cmd("DEL")
                    .arg(this.registry_key(&this.settings.node_id))
                    .ignore()
                    .cmd("SREM")
                    .arg(this.registry_set())
                    .arg(&this.settings.node_id)
                    .ignore();
                let _ = tokio::time::timeout(RESPONSE_TIMEOUT, leave.query_async::<()>(connection)).await;
            }
            return;
        }
        let Some(local) = node.upgrade() else { return };
        let (clients, hubs) = local.report();
        beat += 1;
        let info = NodeInfo {
            id: this.settings.node_id.clone(),
            advertise: this.settings.advertise.clone(),
            beat,
            clients,
            hubs: hubs.clone(),
        };
        if connection.is_none() {
            connection = manager(&this.client).await;
        }
        let round = match connection.as_mut() {
            Some(connection) => round(&this, connection, &info).await,
            None => Err("no connection".to_owned()),
        };
        match round {
            Ok((previous, entries)) => {
                // This node's entry should hold what it wrote last round: anything else was
                // written by another node with the same id.
                // (A round that failed on this side may still have been written.)
                let twin = written.is_some_and(|written| {
                    previous.is_some_and(|p| p.advertise != info.advertise || !(written..info.beat).contains(&p.beat))
                });
                written = Some(info.beat);
                if twin && !warned_twin {
                    warned_twin = true;
                    tracing::warn!(node = %info.id, "another relay uses this node id; give each node its own --node-id");
                }
                if !this.redis_up.swap(true, Ordering::Relaxed) {
                    tracing::info!(node = %this.settings.node_id, "in the cluster's registry on Redis");
                }
                let (joined, dead) = lock(&this.peers).observe(Instant::now(), entries);
                for id in joined {
                    tracing::info!(node = %id, "a cluster node joined");
                }
                for id in &dead {
                    tracing::warn!(node = %id, "a cluster node stopped beating; its clients are gone");
                    this.forget_node(id);
                    local.node_lost(id);
                }
                if let (false, Some(connection)) = (dead.is_empty(), connection.as_mut()) {
                    // Its entry goes now rather than when it expires.
                    let mut forget = redis::pipe();
                    for id in &dead {
                        forget.cmd("DEL").arg(this.registry_key(id)).ignore();
                    }
                    forget.cmd("SREM").arg(this.registry_set()).arg(&dead).ignore();
                    let _ = tokio::time::timeout(RESPONSE_TIMEOUT, forget.query_async::<()>(connection)).await;
                }
                this.ask_for_missing_servers(&hubs);
            }
            Err(error) => {
                if this.redis_up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%error, "lost Redis: other nodes are out of reach until it is back");
                }
                lock(&this.peers).unsound();
            }
        }
        drop(local);
        drop(this);
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One registry round: writes `info`, returns what this node's entry held just before (if
/// anything) and every node's entry.
async fn round(
    cluster: &Cluster,
    connection: &mut redis::aio::ConnectionManager,
    info: &NodeInfo,
) -> Result<(Option<NodeInfo>, Vec<NodeInfo>), String> {
    let text = |e: redis::RedisError| e.to_string();
    let json = serde_json::to_string(info).map_err(|e| e.to_string())?;
    let expiry = u64::try_from(cluster.settings.node_timeout.as_millis().saturating_mul(3)).unwrap_or(u64::MAX);
    let mut write = redis::pipe();
    write
        .cmd("GET")
        .arg(cluster.registry_key(&info.id))
        .cmd("SET")
        .arg(cluster.registry_key(&info.id))
        .arg(json)
        .arg("PX")
        .arg(expiry)
        .ignore()
        .cmd("SADD")
        .arg(cluster.registry_set())
        .arg(&info.id)
        .ignore()
        .cmd("SMEMBERS")
        .arg(cluster.registry_set());
    let (previous, ids): (Option<String>, Vec<String>) = write.query_async(connection).await.map_err(text)?;
    let keys: Vec<String> = ids.iter().map(|id| cluster.registry_key(id)).collect();
    let entries: Vec<Option<String>> = if keys.is_empty() {
        Vec::new()
    } else {
        redis::cmd("MGET")
            .arg(&keys)
            .query_async(connection)
            .await
            .map_err(text)?
    };
    let mut infos = Vec::new();
    let mut gone = Vec::new();
    for (id, entry) in ids.iter().zip(entries) {
        match entry.map(|text: String| serde_json::from_str::<NodeInfo>(&text)) {
            Some(Ok(info)) => infos.push(info),
            Some(Err(_)) => {
                cluster.stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(node = %id, "a registry entry on Redis that does not parse; ignored");
            }
            // Expired: that node has been gone for a while.
            None => gone.push(id.clone()),
        }
    }
    if !gone.is_empty() {
        let _: Result<(), _> = redis::cmd("SREM")
            .arg(cluster.registry_set())
            .arg(&gone)
            .query_async(connection)
            .await;
    }
    let previous = previous.and_then(|text| serde_json::from_str::<NodeInfo>(&text).ok());
    Ok((previous, infos))
}
