//! The node registry as one node sees it: what each node writes of itself on Redis (its
//! [`NodeInfo`], rewritten every heartbeat with a new beat count), and which other nodes are
//! alive. A node is dead once its beat has not changed for the node timeout while this
//! node's own view of Redis was sound. Sans-IO: time is passed in.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a node writes of itself in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeInfo {
    pub(crate) id: String,
    /// Where other nodes and app servers reach it (`http://host:port`).
    pub(crate) advertise: String,
    /// Counts up at each heartbeat.
    pub(crate) beat: u64,
    /// Its clients, every hub together.
    pub(crate) clients: usize,
    /// By hub key, the app servers (server ids) with a server connection here that takes
    /// clients.
    pub(crate) hubs: BTreeMap<String, Vec<String>>,
}

struct Peer {
    info: NodeInfo,
    /// When its beat last changed (or when this node's view of Redis came back).
    changed: Instant,
    /// Clients sent to it by negotiate since its last beat.
    sent: usize,
}

/// The other live nodes.
pub(crate) struct Peers {
    me: String,
    timeout: Duration,
    peers: HashMap<String, Peer>,
    /// The nodes found dead, with their last beat: their entry may linger in the registry
    /// until it expires, and only a new beat brings them back.
    dead: HashMap<String, u64>,
    /// Whether the last round with Redis went well.
    sound: bool,
}

impl Peers {
    pub(crate) fn new(me: &str, timeout: Duration) -> Self {
        Peers {
            me: me.to_owned(),
            timeout,
            peers: HashMap::new(),
            dead: HashMap::new(),
            sound: false,
        }
    }

    /// A heartbeat round read the registry: `entries` are the nodes in it. Returns the nodes
    /// that joined and those found dead (forgotten here).
    pub(crate) fn observe(&mut self, now: Instant, entries: Vec<NodeInfo>) -> (Vec<String>, Vec<String>) {
        if !self.sound {
            // Redis was away: nobody could beat, so every known node gets a fresh start.
            for peer in self.peers.values_mut() {
                peer.changed = now;
            }
            self.sound = true;
        }
        let mut joined = Vec::new();
        let listed: std::collections::HashSet<String> = entries.iter().map(|info| info.id.clone()).collect();
        self.dead.retain(|id, _| listed.contains(id));
        for info in entries.into_iter().filter(|info| info.id != self.me) {
            if self.dead.get(&info.id) == Some(&info.beat) {
                continue;
            }
            self.dead.remove(&info.id);
            match self.peers.get_mut(&info.id) {
                Some(peer) => {
                    if peer.info.beat != info.beat {
                        peer.changed = now;
                        peer.sent = 0;
                    }
                    peer.info = info;
                }
                None => {
                    joined.push(info.id.clone());
                    let peer = Peer {
                        info,
                        changed: now,
                        sent: 0,
                    };
                    self.peers.insert(peer.info.id.clone(), peer);
                }
            }
        }
        let timeout = self.timeout;
        let dead: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, peer)| now.saturating_duration_since(peer.changed) > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dead {
            if let Some(peer) = self.peers.remove(id) {
                self.dead.insert(id.clone(), peer.info.beat);
            }
        }
        joined.sort();
        (joined, dead)
    }

    /// A heartbeat round failed: nobody is found dead until Redis answers again.
    pub(crate) fn unsound(&mut self) {
        self.sound = false;
    }

    /// The ids of the live nodes.
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.peers.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Every live node's registry entry.
    pub(crate) fn infos(&self) -> Vec<NodeInfo> {
        let mut infos: Vec<NodeInfo> = self.peers.values().map(|peer| peer.info.clone()).collect();
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        infos
    }

    /// Of this node (with `my_clients`) and the live nodes that have an app server for
    /// `hub`, the one with the fewest clients (counting those sent there since its last
    /// beat); `None` when that is this node. The node picked is counted one more client.
    pub(crate) fn least_loaded(&mut self, hub: &str, my_clients: usize) -> Option<NodeInfo> {
        let best = self
            .peers
            .values_mut()
            .filter(|peer| peer.info.hubs.get(hub).is_some_and(|servers| !servers.is_empty()))
            .min_by_key(|peer| (peer.info.clients + peer.sent, peer.info.id.clone()))?;
        if best.info.clients + best.sent >= my_clients {
            return None;
        }
        best.sent += 1;
        Some(best.info.clone())
    }

    /// The advertised hosts of the live nodes.
    pub(crate) fn advertised(&self) -> Vec<String> {
        self.peers.values().map(|peer| peer.info.advertise.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, beat: u64, clients: usize, hub: Option<&str>) -> NodeInfo {
        NodeInfo {
            id: id.to_owned(),
            advertise: format!("http://{id}:80"),
            beat,
            clients,
            hubs: hub.map(|h| (h.to_owned(), vec!["s1".to_owned()])).into_iter().collect(),
        }
    }

    #[test]
    fn a_node_whose_beat_stops_is_dead_after_the_timeout() {
        let start = Instant::now();
        let mut peers = Peers::new("me", Duration::from_secs(3));
        let (joined, dead) = peers.observe(start, vec![info("me", 1, 0, None), info("b", 1, 0, None)]);
        assert_eq!((joined, dead), (vec!["b".to_owned()], vec![]));
        let at = |s: u64| start + Duration::from_secs(s);
        // Its entry stays (the same beat) or goes: either way it is dead past the timeout.
        assert_eq!(
            peers.observe(at(2), vec![info("b", 1, 0, None)]).1,
            Vec::<String>::new()
        );
        assert_eq!(
            peers.observe(at(4), vec![info("b", 1, 0, None)]).1,
            vec!["b".to_owned()]
        );
        assert!(peers.ids().is_empty());
        // Its lingering entry does not bring it back; a new beat does.
        assert_eq!(peers.observe(at(5), vec![info("b", 1, 0, None)]), (vec![], vec![]));
        assert!(peers.ids().is_empty());
        assert_eq!(
            peers.observe(at(6), vec![info("b", 2, 0, None)]).0,
            vec!["b".to_owned()]
        );
    }

    #[test]
    fn nobody_is_found_dead_across_a_redis_outage() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut peers = Peers::new("me", Duration::from_secs(3));
        peers.observe(start, vec![info("b", 1, 0, None)]);
        peers.unsound();
        // Redis comes back, empty: b has not written itself again yet.
        let (_, dead) = peers.observe(at(10), vec![]);
        assert!(dead.is_empty(), "{dead:?}");
        let (_, dead) = peers.observe(at(11), vec![info("b", 2, 0, None)]);
        assert!(dead.is_empty());
        assert_eq!(peers.ids(), ["b"]);
        assert_eq!(peers.observe(at(15), vec![info("b", 2, 0, None)]).1, ["b"]);
    }

    #[test]
    fn negotiate_sends_clients_to_the_least_loaded_node_serving_the_hub() {
        let mut peers = Peers::new("me", Duration::from_secs(3));
        peers.observe(
            Instant::now(),
            vec![info("b", 1, 1, Some("chat")), info("c", 1, 0, None)],
        );
        // c has no app server for the hub: never picked.
        assert_eq!(peers.least_loaded("chat", 1), None, "a tie stays here");
        assert_eq!(peers.least_loaded("chat", 3).map(|i| i.id), Some("b".to_owned()));
        // b counts the client sent: 2 now, as many as here.
        assert_eq!(peers.least_loaded("chat", 2).map(|i| i.id), None);
        assert_eq!(peers.least_loaded("other", 100), None);
    }
}
