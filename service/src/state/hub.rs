//! One hub (by hub key: the `hub` query parameter, lower-cased, application prefix and all):
//! its app-server connections, its clients (each pinned to one server connection), and the
//! group and user memberships the relay holds for it, in the runtime's membership index
//! ([`switchboard::protocol::membership`]).
//!
//! Sends to clients never wait: they go into each client's bounded queue (a client whose
//! queue is full is closed by the runtime), so the state is only locked briefly.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard::TransportType;
use switchboard::protocol::membership::{Excluded, Membership, Recipients};
use switchboard::protocol::service::{GroupMember, Payloads};
use switchboard::protocol::{Close, HubMessage, Protocol};
use switchboard::transport::raw::RawSender;

use crate::metrics::{HubSnapshot, Metrics};
use crate::state::mover::Mover;
use crate::state::server_link::ServerLink;

/// A client about to be pinned to a server connection.
pub(crate) struct NewClient {
    pub(crate) sender: RawSender,
    /// The hub protocol its handshake named (lower-cased), if it could be read.
    pub(crate) protocol: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) transport: TransportType,
    /// The app server its token makes it stick to, and how strongly.
    pub(crate) sticky: Sticky,
}

/// A client's stickiness to the app server that negotiated it (the token's `asrs.s.sn` and
/// `asrs.s.ssticky` claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sticky {
    /// Any app server of the hub.
    None,
    /// That server when it has a server connection to the hub, else any.
    Preferred(String),
    /// Only that server.
    Required(String),
}

impl Sticky {
    /// From the claims' values: a mode other than `Preferred` or `Required` (ignoring case),
    /// or no server name, is no stickiness.
    pub(crate) fn from_claims(server: Option<&str>, mode: Option<&str>) -> Sticky {
        match (server.filter(|s| !s.is_empty()), mode) {
            (Some(server), Some(mode)) if mode.eq_ignore_ascii_case("required") => Sticky::Required(server.to_owned()),
            (Some(server), Some(mode)) if mode.eq_ignore_ascii_case("preferred") => {
                Sticky::Preferred(server.to_owned())
            }
            _ => Sticky::None,
        }
    }

    fn server(&self) -> Option<&str> {
        match self {
            Sticky::None => None,
            Sticky::Preferred(server) | Sticky::Required(server) => Some(server),
        }
    }
}

/// The error of the Close message a client gets when its app server goes away (as Azure
/// SignalR Service sends it); the client may reconnect.
pub(crate) const SERVER_OFFLINE: &str = "ServerOffline";

/// Closes a client with a Close message carrying `error` (in its protocol, when the relay
/// knows it) that lets the client reconnect.
pub(crate) fn close_reconnectable(sender: &RawSender, protocol: Option<Protocol>, error: &str) {
    if let Some(protocol) = protocol {
        let close = HubMessage::Close(Close {
            error: Some(error.to_owned()),
            allow_reconnect: true,
        });
        let mut out = Vec::new();
        if protocol.write_message(&mut out, &close).is_ok() {
            sender.send(Bytes::from(out));
        }
    }
    sender.close();
}

/// A client as the membership index holds it (its user and groups are the index's). It
/// counts as one of its server connection's clients while it exists.
struct Client {
    sender: RawSender,
    protocol: Option<String>,
    transport: TransportType,
    server: Arc<ServerLink>,
    /// Present when the client may be moved to another app server.
    mover: Option<Arc<Mover>>,
    /// While a move is asked for and not yet made: the server connection it comes from
    /// (where it goes back to if the new one goes away first).
    moving_from: Option<Arc<ServerLink>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.server.unpin();
    }
}

impl Client {
    /// Closes the client because its app server went away: with a Close message (in its
    /// protocol, when the relay knows it) that lets the client reconnect, to another server.
    fn close_server_offline(&self) {
        let protocol = self.protocol.as_deref().and_then(Protocol::from_name);
        close_reconnectable(&self.sender, protocol, SERVER_OFFLINE);
    }

    /// Sends the payload for this client's protocol, if there is one.
    fn deliver(&self, payloads: &Payloads, metrics: &Metrics) {
        let Some(protocol) = &self.protocol else { return };
        if let Some((_, bytes)) = payloads.iter().find(|(name, _)| name.eq_ignore_ascii_case(protocol)) {
            metrics.client_sent(bytes.len());
            self.sender.send(bytes.clone());
        }
    }
}

/// Why a client could not be pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No app server is connected to the hub.
    NoServer,
    /// The hub has `max_clients_per_hub` clients.
    Full,
    /// The client must stay with an app server that has no server connection to the hub.
    StickyServerGone,
}

/// A client closed by an app server's request, whose own server connection should hear of it.
pub(crate) struct Closed {
    pub(crate) connection_id: String,
    pub(crate) server: Arc<ServerLink>,
}

/// Which clients a close request is about.
pub(crate) enum Selection<'a> {
    Connection(&'a str),
    User(&'a str),
    Group(&'a str),
    All,
}

/// The expiry of a user-group membership `ttl` seconds from `now`; a TTL that is not positive
/// is taken as none (the membership lasts until the user leaves).
fn expiry(now: Instant, ttl: Option<i32>) -> Option<Instant> {
    let seconds = u64::try_from(ttl?).ok().filter(|s| *s > 0)?;
    now.checked_add(Duration::from_secs(seconds))
}

#[derive(Default)]
struct HubState {
    /// Forgotten by [`Hubs`](super::hubs::Hubs); whoever wants to add to it must look the hub up again.
    removed: bool,
    servers: Vec<Arc<ServerLink>>,
    next_server: usize,
    /// Bumped whenever the server connections change (the `servers` ping's tag).
    servers_version: i64,
    /// The clients, their users and groups, and the users' groups.
    members: Membership<Client>,
}

impl HubState {
    fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.members.is_empty()
    }

    fn close_pinned_to(&mut self, link_id: u64) {
        let pinned: Vec<String> = self
            .members
            .iter()
            .filter(|(_, client)| client.server.id == link_id)
            .map(|(id, _)| id.to_owned())
            .collect();
        for id in pinned {
            // A client on its way here from a server that is still there goes back to it.
            if let Some(client) = self.members.get_mut(&id)
                && let Some(from) = client.moving_from.take()
                && !from.closed.is_cancelled()
            {
                from.pin();
                std::mem::replace(&mut client.server, from).unpin();
                continue;
            }
            if let Some(client) = self.members.remove_connection(&id) {
                client.close_server_offline();
            }
        }
    }

    /// Sends the payload for each addressed client's protocol.
    fn deliver(&self, recipients: Recipients<'_>, excluded: Excluded<'_>, payloads: &Payloads, metrics: &Metrics) {
        self.members
            .for_each(recipients, excluded, |_, client| client.deliver(payloads, metrics));
    }
}

/// What [`Hub::attach_client`] did.
pub(crate) enum Attach {
    /// The client is pinned to this server connection; its app server may have it moved
    /// elsewhere when it shuts down (then it has a mover).
    Pinned(Arc<ServerLink>, Option<Arc<Mover>>),
    Refused(Refusal),
    /// The hub was forgotten meanwhile: look it up again.
    Forgotten(NewClient),
}

/// Of `candidates`, a connection of the app server with the fewest clients, and of its
/// connections the one with the fewest; among equals, the first from position `turn` on.
fn least_loaded(candidates: &[&Arc<ServerLink>], turn: usize) -> Arc<ServerLink> {
    let load = |link: &ServerLink| {
        let server: usize = candidates
            .iter()
            .filter(|other| other.same_server(link))
            .map(|other| other.pinned())
            .sum();
        (server, link.pinned())
    };
    let count = candidates.len();
    (0..count)
        .map(|i| candidates[(turn + i) % count])
        .min_by_key(|link| load(link))
        .map(|link| (*link).clone())
        .unwrap_or_else(|| candidates[0].clone())
}

/// One hub.
pub(crate) struct Hub {
    key: String,
    state: Mutex<HubState>,
    metrics: Arc<Metrics>,
}

impl Hub {
    pub(crate) fn new(key: &str, metrics: Arc<Metrics>) -> Self {
        Hub {
            key: key.to_owned(),
            state: Mutex::new(HubState::default()),
            metrics,
        }
    }

    /// Adds a server connection; `false` if the hub was forgotten meanwhile.
    pub(crate) fn attach_server(&self, link: Arc<ServerLink>) -> bool {
        let mut state = self.state();
        if state.removed {
            return false;
        }
        state.servers.push(link);
        state.servers_version += 1;
        true
    }

    /// Whether every server connection that takes clients replays to clients that reconnect
    /// statefully (and there is at least one), so a client may be offered it whichever
    /// connection it is pinned to.
    pub(crate) fn allows_stateful_reconnects(&self) -> bool {
        let state = self.state();
        let mut servers = state.servers.iter().filter(|s| s.accepts_clients()).peekable();
        servers.peek().is_some() && servers.all(|s| s.stateful_reconnects)
    }

    /// One server connection that takes clients of each app server of the hub.
    pub(crate) fn one_link_per_server(&self) -> Vec<Arc<ServerLink>> {
        let state = self.state();
        let mut picked: Vec<Arc<ServerLink>> = Vec::new();
        for link in state.servers.iter().filter(|s| s.accepts_clients()) {
            if !picked.iter().any(|p| p.same_server(link)) {
                picked.push(link.clone());
            }
        }
        picked
    }

    /// Pins a new client to a server connection that takes clients and adds it to its user's
    /// groups. The server is the sticky one when the client has one (and it is here); else the
    /// app server with the fewest clients, and of its connections the one with the fewest
    /// (ties in turn).
    pub(crate) fn attach_client(&self, connection_id: &str, client: NewClient, max_clients: Option<usize>) -> Attach {
        let mut state = self.state();
        if state.removed {
            return Attach::Forgotten(client);
        }
        if max_clients.is_some_and(|max| state.members.len() >= max) {
            return Attach::Refused(Refusal::Full);
        }
        let open: Vec<&Arc<ServerLink>> = state.servers.iter().filter(|s| s.accepts_clients()).collect();
        let sticky: Vec<&Arc<ServerLink>> = match client.sticky.server() {
            Some(name) => open
                .iter()
                .copied()
                .filter(|link| link.server_id.as_deref() == Some(name))
                .collect(),
            None => Vec::new(),
        };
        let candidates = match (&client.sticky, sticky.is_empty()) {
            (Sticky::Required(_), true) => return Attach::Refused(Refusal::StickyServerGone),
            (Sticky::None, _) | (Sticky::Preferred(_), true) => open,
            (_, false) => sticky,
        };
        if candidates.is_empty() {
            return Attach::Refused(Refusal::NoServer);
        }
        let server = least_loaded(&candidates, state.next_server).clone();
        state.next_server = state.next_server.wrapping_add(1);
        server.pin();
        let mover = server.migrates_clients.then(|| Arc::new(Mover::default()));
        let member = Client {
            sender: client.sender,
            protocol: client.protocol,
            transport: client.transport,
            server: server.clone(),
            mover: mover.clone(),
            moving_from: None,
        };
        state
            .members
            .add_connection(connection_id, client.user.as_deref(), member);
        Attach::Pinned(server, mover)
    }

    /// Marks the hub forgotten if nothing is left in it; whether it did.
    pub(crate) fn forget_if_empty(&self) -> bool {
        let mut state = self.state();
        if state.is_empty() {
            state.removed = true;
        }
        state.removed
    }

    /// The hub's state, with the user-group memberships that have expired ended.
    fn state(&self) -> MutexGuard<'_, HubState> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.members.next_expiry().is_some() {
            state.members.expire(Instant::now());
        }
        state
    }

    /// The hub key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Forgets a server connection and closes the clients pinned to it.
    pub(crate) fn detach_server(&self, link: &ServerLink) {
        let mut state = self.state();
        let before = state.servers.len();
        state.servers.retain(|server| server.id != link.id);
        if state.servers.len() != before {
            state.servers_version += 1;
        }
        state.close_pinned_to(link.id);
    }

    /// Forgets a client that left; its server connection, to tell, if it was still known.
    pub(crate) fn detach_client(&self, connection_id: &str) -> Option<Arc<ServerLink>> {
        self.state()
            .members
            .remove_connection(connection_id)
            .map(|client| client.server.clone())
    }

    /// Sends bytes to one client; `false` if it is not connected.
    pub(crate) fn send_to_connection(&self, connection_id: &str, payload: Bytes) -> bool {
        let state = self.state();
        let Some(client) = state.members.get(connection_id) else {
            return false;
        };
        self.metrics.client_sent(payload.len());
        client.sender.send(payload);
        true
    }

    /// Sends the payload for its protocol to one client; the client's server connection, or
    /// `None` if it is not connected.
    pub(crate) fn deliver_to_connection(&self, connection_id: &str, payloads: &Payloads) -> Option<Arc<ServerLink>> {
        let state = self.state();
        let client = state.members.get(connection_id)?;
        client.deliver(payloads, &self.metrics);
        Some(client.server.clone())
    }

    /// The server connection a client is pinned to.
    pub(crate) fn server_of(&self, connection_id: &str) -> Option<Arc<ServerLink>> {
        self.state()
            .members
            .get(connection_id)
            .map(|client| client.server.clone())
    }

    /// A group's members here, in connection id order.
    pub(crate) fn group_members(&self, group: &str) -> Vec<GroupMember> {
        let state = self.state();
        let mut ids: Vec<&str> = state.members.group_members(group).collect();
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| GroupMember {
                connection_id: id.to_owned(),
                user_id: state.members.user_of(id).map(str::to_owned),
            })
            .collect()
    }

    /// Every client but the excluded ones.
    pub(crate) fn broadcast(&self, excluded: &[String], payloads: &Payloads) {
        let excluded = Excluded::connections(excluded);
        self.state().deliver(Recipients::All, excluded, payloads, &self.metrics);
    }

    /// A group's members but the excluded connections and users.
    pub(crate) fn group_send(&self, group: &str, excluded: &[String], excluded_users: &[String], payloads: &Payloads) {
        let group = [group.to_owned()];
        let excluded = Excluded {
            connections: excluded,
            users: excluded_users,
        };
        self.state()
            .deliver(Recipients::Groups(&group), excluded, payloads, &self.metrics);
    }

    /// The members of several groups, each once.
    pub(crate) fn groups_send(&self, groups: &[String], payloads: &Payloads) {
        self.state()
            .deliver(Recipients::Groups(groups), Excluded::NONE, payloads, &self.metrics);
    }

    /// Every connection of several users, each once.
    pub(crate) fn users_send(&self, users: &[String], payloads: &Payloads) {
        self.state()
            .deliver(Recipients::Users(users), Excluded::NONE, payloads, &self.metrics);
    }

    /// A list of connections, each once.
    pub(crate) fn connections_send(&self, connections: &[String], payloads: &Payloads) {
        self.state().deliver(
            Recipients::Connections(connections),
            Excluded::NONE,
            payloads,
            &self.metrics,
        );
    }

    /// Moves the clients of `link`'s app server that may move to the other app servers of
    /// the hub that take clients, balanced as new clients are: each is pinned to its new
    /// server connection at once (so what the old server still says about it does not close
    /// it) and its task switches over at its next record boundary. Returns how many move;
    /// none when no other server is there (the clients stay until they leave).
    pub(crate) fn migrate_clients_of(&self, link: &ServerLink) -> usize {
        let mut state = self.state();
        let targets: Vec<Arc<ServerLink>> = state
            .servers
            .iter()
            .filter(|s| s.accepts_clients() && !s.same_server(link))
            .cloned()
            .collect();
        if targets.is_empty() {
            return 0;
        }
        let targets: Vec<&Arc<ServerLink>> = targets.iter().collect();
        let moving: Vec<Arc<str>> = state
            .members
            .iter()
            .filter(|(_, client)| client.mover.is_some() && client.server.same_server(link))
            .map(|(id, _)| Arc::from(id))
            .collect();
        for id in &moving {
            let target = least_loaded(&targets, state.next_server);
            state.next_server = state.next_server.wrapping_add(1);
            if let Some(client) = state.members.get_mut(id) {
                target.pin();
                let old = std::mem::replace(&mut client.server, target.clone());
                old.unpin();
                client.moving_from = Some(old);
                if let Some(mover) = &client.mover {
                    mover.request(target);
                }
            }
        }
        moving.len()
    }

    /// A client's move is over: it is served by `link` from now on (the server it moved to,
    /// or the one it came from when the move could not be made).
    pub(crate) fn moved(&self, connection_id: &str, link: &Arc<ServerLink>) {
        if let Some(client) = self.state().members.get_mut(connection_id) {
            client.moving_from = None;
            if client.server.id != link.id {
                link.pin();
                std::mem::replace(&mut client.server, link.clone()).unpin();
            }
        }
    }

    /// Whether a client is pinned to a connection of `link`'s app server.
    pub(crate) fn served_by(&self, connection_id: &str, link: &ServerLink) -> bool {
        self.state()
            .members
            .get(connection_id)
            .is_some_and(|client| client.server.same_server(link))
    }

    /// Adds a connection to a group; `false` if the connection is unknown.
    pub(crate) fn join_group(&self, connection_id: &str, group: &str) -> bool {
        self.state().members.join_group(connection_id, group)
    }

    /// Removes a connection from a group; `false` if the connection is unknown.
    pub(crate) fn leave_group(&self, connection_id: &str, group: Option<&str>) -> bool {
        let mut state = self.state();
        match group {
            Some(group) => state.members.leave_group(connection_id, group),
            None => state.members.contains_connection(connection_id),
        }
    }

    /// Adds a user, with its present and future connections, to a group, for `ttl` seconds
    /// when that is positive, else until it leaves.
    pub(crate) fn user_join_group(&self, user: &str, group: &str, ttl: Option<i32>) {
        let expires = expiry(Instant::now(), ttl);
        self.state().members.user_join_group(user, group, expires);
    }

    /// Removes a user and its connections from a group, or (`None`) from every group.
    pub(crate) fn user_leave_group(&self, user: &str, group: Option<&str>) {
        self.state().members.user_leave_group(user, group);
    }

    pub(crate) fn connection_exists(&self, connection_id: &str) -> bool {
        self.state().members.contains_connection(connection_id)
    }

    pub(crate) fn user_exists(&self, user: &str) -> bool {
        self.state().members.contains_user(user)
    }

    pub(crate) fn group_exists(&self, group: &str) -> bool {
        self.state().members.contains_group(group)
    }

    pub(crate) fn user_in_group(&self, user: &str, group: &str) -> bool {
        self.state().members.user_in_group(user, group)
    }

    /// Closes the selected clients but the excluded ones; each one's server connection is
    /// returned, to be told.
    pub(crate) fn close(&self, selection: Selection<'_>, excluded: &[String]) -> Vec<Closed> {
        let mut state = self.state();
        let named = [match selection {
            Selection::Connection(name) | Selection::User(name) | Selection::Group(name) => name.to_owned(),
            Selection::All => String::new(),
        }];
        let recipients = match selection {
            Selection::Connection(_) => Recipients::Connections(&named),
            Selection::User(_) => Recipients::Users(&named),
            Selection::Group(_) => Recipients::Groups(&named),
            Selection::All => Recipients::All,
        };
        let mut selected: Vec<String> = Vec::new();
        state
            .members
            .for_each(recipients, Excluded::connections(excluded), |id, _| {
                selected.push(id.to_owned())
            });
        let mut closed = Vec::new();
        for id in selected {
            if let Some(client) = state.members.remove_connection(&id) {
                client.sender.close();
                closed.push(Closed {
                    connection_id: id,
                    server: client.server.clone(),
                });
            }
        }
        closed
    }

    /// Closes the clients pinned to one server connection, without telling it.
    pub(crate) fn close_pinned_to(&self, link: &ServerLink) {
        self.state().close_pinned_to(link.id);
    }

    /// (clients, server connections) of the hub.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let state = self.state();
        (state.members.len(), state.servers.len())
    }

    /// The `servers` ping's answer: a tag that changes with the server connections, and the
    /// app servers' names.
    pub(crate) fn servers(&self) -> (i64, Vec<String>) {
        let state = self.state();
        let mut names: Vec<String> = state.servers.iter().filter_map(|s| s.server_id.clone()).collect();
        names.sort();
        names.dedup();
        (state.servers_version, names)
    }

    /// A connection of the app server named `server_id`.
    pub(crate) fn server_named(&self, server_id: &str) -> Option<Arc<ServerLink>> {
        self.state()
            .servers
            .iter()
            .find(|server| server.server_id.as_deref() == Some(server_id))
            .cloned()
    }

    pub(crate) fn snapshot(&self) -> HubSnapshot {
        let state = self.state();
        let mut clients: Vec<(&'static str, usize)> = Vec::new();
        for (_, client) in state.members.iter() {
            let name = client.transport.as_str();
            match clients.iter_mut().find(|(transport, _)| *transport == name) {
                Some((_, count)) => *count += 1,
                None => clients.push((name, 1)),
            }
        }
        clients.sort();
        HubSnapshot {
            hub: self.key.clone(),
            clients,
            servers: state.servers.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_positive_ttl_expires_and_any_other_does_not() {
        let now = Instant::now();
        assert_eq!(expiry(now, Some(30)), Some(now + Duration::from_secs(30)));
        assert_eq!(expiry(now, None), None);
        assert_eq!(expiry(now, Some(0)), None);
        assert_eq!(expiry(now, Some(-5)), None);
    }
}
