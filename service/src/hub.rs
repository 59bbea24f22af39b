//! One hub (by hub key: the `hub` query parameter, lower-cased, application prefix and all):
//! its app-server connections, its clients (each pinned to one server connection), and the
//! group and user memberships the relay holds for it.
//!
//! Sends to clients never wait: they go into each client's bounded queue (a client whose
//! queue is full is closed by the runtime), so the state is only locked briefly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use switchboard::TransportType;
use switchboard::protocol::service::{GroupMember, GroupMemberQueryResponse, Payloads};
use switchboard::transport::raw::RawSender;

use crate::link::ServerLink;
use crate::metrics::{HubSnapshot, Metrics};

/// A client about to be pinned to a server connection.
pub(crate) struct NewClient {
    pub(crate) sender: RawSender,
    /// The hub protocol its handshake named (lower-cased), if it could be read.
    pub(crate) protocol: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) transport: TransportType,
}

struct Client {
    sender: RawSender,
    protocol: Option<String>,
    user: Option<String>,
    transport: TransportType,
    server: Arc<ServerLink>,
    groups: HashSet<String>,
}

impl Client {
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

#[derive(Default)]
struct HubState {
    /// Forgotten by [`Hubs`]; whoever wants to add to it must look the hub up again.
    removed: bool,
    servers: Vec<Arc<ServerLink>>,
    next_server: usize,
    /// Bumped whenever the server connections change (the `servers` ping's tag).
    servers_version: i64,
    clients: HashMap<String, Client>,
    groups: HashMap<String, HashSet<String>>,
    /// Connections by user id.
    users: HashMap<String, HashSet<String>>,
    /// The groups each user belongs to, for its present and future connections.
    user_groups: HashMap<String, HashSet<String>>,
}

impl HubState {
    fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.clients.is_empty() && self.user_groups.is_empty()
    }

    fn add_to_group(&mut self, connection_id: &str, group: &str) -> bool {
        let Some(client) = self.clients.get_mut(connection_id) else {
            return false;
        };
        if client.groups.insert(group.to_owned()) {
            self.groups
                .entry(group.to_owned())
                .or_default()
                .insert(connection_id.to_owned());
        }
        true
    }

    fn remove_from_group(&mut self, connection_id: &str, group: &str) -> bool {
        let Some(client) = self.clients.get_mut(connection_id) else {
            return false;
        };
        if client.groups.remove(group)
            && let Some(members) = self.groups.get_mut(group)
        {
            members.remove(connection_id);
            if members.is_empty() {
                self.groups.remove(group);
            }
        }
        true
    }

    fn remove_client(&mut self, connection_id: &str) -> Option<Client> {
        let client = self.clients.remove(connection_id)?;
        for group in &client.groups {
            if let Some(members) = self.groups.get_mut(group) {
                members.remove(connection_id);
                if members.is_empty() {
                    self.groups.remove(group);
                }
            }
        }
        if let Some(user) = &client.user
            && let Some(connections) = self.users.get_mut(user)
        {
            connections.remove(connection_id);
            if connections.is_empty() {
                self.users.remove(user);
            }
        }
        Some(client)
    }

    fn close_pinned_to(&mut self, link_id: u64) {
        let pinned: Vec<String> = self
            .clients
            .iter()
            .filter(|(_, client)| client.server.id == link_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in pinned {
            if let Some(client) = self.remove_client(&id) {
                client.sender.close();
            }
        }
    }

    fn user_connections(&self, user: &str) -> Vec<String> {
        self.users
            .get(user)
            .map(|connections| connections.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// What [`Hub::attach_client`] did.
pub(crate) enum Attach {
    /// The client is pinned to this server connection.
    Pinned(Arc<ServerLink>),
    Refused(Refusal),
    /// The hub was forgotten meanwhile: look it up again.
    Forgotten(NewClient),
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

    /// Pins a new client to one of the server connections that take clients, in turn, and
    /// adds it to its user's groups.
    pub(crate) fn attach_client(&self, connection_id: &str, client: NewClient, max_clients: Option<usize>) -> Attach {
        let mut state = self.state();
        if state.removed {
            return Attach::Forgotten(client);
        }
        if max_clients.is_some_and(|max| state.clients.len() >= max) {
            return Attach::Refused(Refusal::Full);
        }
        let candidates: Vec<&Arc<ServerLink>> = state.servers.iter().filter(|s| s.accepts_clients()).collect();
        if candidates.is_empty() {
            return Attach::Refused(Refusal::NoServer);
        }
        let server = candidates[state.next_server % candidates.len()].clone();
        state.next_server = state.next_server.wrapping_add(1);
        let groups = client
            .user
            .as_ref()
            .and_then(|user| state.user_groups.get(user))
            .cloned()
            .unwrap_or_default();
        if let Some(user) = &client.user {
            state
                .users
                .entry(user.clone())
                .or_default()
                .insert(connection_id.to_owned());
        }
        state.clients.insert(
            connection_id.to_owned(),
            Client {
                sender: client.sender,
                protocol: client.protocol,
                user: client.user,
                transport: client.transport,
                server: server.clone(),
                groups: HashSet::new(),
            },
        );
        for group in groups {
            state.add_to_group(connection_id, &group);
        }
        Attach::Pinned(server)
    }

    /// Marks the hub forgotten if nothing is left in it; whether it did.
    pub(crate) fn forget_if_empty(&self) -> bool {
        let mut state = self.state();
        if state.is_empty() {
            state.removed = true;
        }
        state.removed
    }
    fn state(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
        self.state().remove_client(connection_id).map(|client| client.server)
    }

    /// Sends bytes to one client; `false` if it is not connected.
    pub(crate) fn send_to_connection(&self, connection_id: &str, payload: Bytes) -> bool {
        let state = self.state();
        let Some(client) = state.clients.get(connection_id) else {
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
        let client = state.clients.get(connection_id)?;
        client.deliver(payloads, &self.metrics);
        Some(client.server.clone())
    }

    /// The server connection a client is pinned to.
    pub(crate) fn server_of(&self, connection_id: &str) -> Option<Arc<ServerLink>> {
        self.state()
            .clients
            .get(connection_id)
            .map(|client| client.server.clone())
    }

    /// One page of a group's members, in connection id order: at most `max` (all when `max`
    /// is not positive), after the connection id `after`.
    pub(crate) fn group_members(&self, group: &str, max: i32, after: Option<&str>) -> GroupMemberQueryResponse {
        let state = self.state();
        let mut ids: Vec<&String> = state
            .groups
            .get(group)
            .map(|members| members.iter().collect())
            .unwrap_or_default();
        ids.sort();
        let start = after.map_or(0, |after| ids.partition_point(|id| id.as_str() <= after));
        let limit = usize::try_from(max).ok().filter(|max| *max > 0).unwrap_or(usize::MAX);
        let page: Vec<&String> = ids.iter().skip(start).take(limit).copied().collect();
        let more = start + page.len() < ids.len();
        GroupMemberQueryResponse {
            continuation_token: if more {
                page.last().map(|id| (*id).clone())
            } else {
                None
            },
            members: page
                .into_iter()
                .map(|id| GroupMember {
                    connection_id: id.clone(),
                    user_id: state.clients.get(id).and_then(|client| client.user.clone()),
                })
                .collect(),
        }
    }

    /// Every client but the excluded ones.
    pub(crate) fn broadcast(&self, excluded: &[String], payloads: &Payloads) {
        let state = self.state();
        let excluded: HashSet<&str> = excluded.iter().map(String::as_str).collect();
        for (id, client) in &state.clients {
            if !excluded.contains(id.as_str()) {
                client.deliver(payloads, &self.metrics);
            }
        }
    }

    /// A group's members but the excluded connections and users.
    pub(crate) fn group_send(&self, group: &str, excluded: &[String], excluded_users: &[String], payloads: &Payloads) {
        let state = self.state();
        let Some(members) = state.groups.get(group) else { return };
        let excluded: HashSet<&str> = excluded.iter().map(String::as_str).collect();
        let excluded_users: HashSet<&str> = excluded_users.iter().map(String::as_str).collect();
        for id in members {
            let Some(client) = state.clients.get(id) else { continue };
            let user_excluded = client.user.as_deref().is_some_and(|user| excluded_users.contains(user));
            if !excluded.contains(id.as_str()) && !user_excluded {
                client.deliver(payloads, &self.metrics);
            }
        }
    }

    /// The members of several groups, each once.
    pub(crate) fn groups_send(&self, groups: &[String], payloads: &Payloads) {
        let state = self.state();
        let targets: HashSet<&String> = groups
            .iter()
            .filter_map(|group| state.groups.get(group))
            .flatten()
            .collect();
        self.deliver_all(&state, targets, payloads);
    }

    /// Every connection of several users, each once.
    pub(crate) fn users_send(&self, users: &[String], payloads: &Payloads) {
        let state = self.state();
        let targets: HashSet<&String> = users
            .iter()
            .filter_map(|user| state.users.get(user))
            .flatten()
            .collect();
        self.deliver_all(&state, targets, payloads);
    }

    /// A list of connections, each once.
    pub(crate) fn connections_send(&self, connections: &[String], payloads: &Payloads) {
        let state = self.state();
        let targets: HashSet<&String> = connections.iter().collect();
        self.deliver_all(&state, targets, payloads);
    }

    fn deliver_all(&self, state: &HubState, targets: HashSet<&String>, payloads: &Payloads) {
        for id in targets {
            if let Some(client) = state.clients.get(id.as_str()) {
                client.deliver(payloads, &self.metrics);
            }
        }
    }

    /// Adds a connection to a group; `false` if the connection is unknown.
    pub(crate) fn join_group(&self, connection_id: &str, group: &str) -> bool {
        self.state().add_to_group(connection_id, group)
    }

    /// Removes a connection from a group; `false` if the connection is unknown.
    pub(crate) fn leave_group(&self, connection_id: &str, group: Option<&str>) -> bool {
        let mut state = self.state();
        match group {
            Some(group) => state.remove_from_group(connection_id, group),
            None => state.clients.contains_key(connection_id),
        }
    }

    /// Adds a user, with its present and future connections, to a group.
    pub(crate) fn user_join_group(&self, user: &str, group: &str) {
        let mut state = self.state();
        state
            .user_groups
            .entry(user.to_owned())
            .or_default()
            .insert(group.to_owned());
        for id in state.user_connections(user) {
            state.add_to_group(&id, group);
        }
    }

    /// Removes a user and its connections from a group, or (`None`) from every group.
    pub(crate) fn user_leave_group(&self, user: &str, group: Option<&str>) {
        let mut state = self.state();
        let connections = state.user_connections(user);
        match group {
            Some(group) => {
                if let Some(groups) = state.user_groups.get_mut(user) {
                    groups.remove(group);
                    if groups.is_empty() {
                        state.user_groups.remove(user);
                    }
                }
                for id in connections {
                    state.remove_from_group(&id, group);
                }
            }
            None => {
                state.user_groups.remove(user);
                for id in connections {
                    let groups: Vec<String> = state
                        .clients
                        .get(&id)
                        .map(|client| client.groups.iter().cloned().collect())
                        .unwrap_or_default();
                    for group in groups {
                        state.remove_from_group(&id, &group);
                    }
                }
            }
        }
    }

    pub(crate) fn connection_exists(&self, connection_id: &str) -> bool {
        self.state().clients.contains_key(connection_id)
    }

    pub(crate) fn user_exists(&self, user: &str) -> bool {
        self.state().users.contains_key(user)
    }

    pub(crate) fn group_exists(&self, group: &str) -> bool {
        self.state().groups.contains_key(group)
    }

    pub(crate) fn user_in_group(&self, user: &str, group: &str) -> bool {
        let state = self.state();
        state.user_groups.get(user).is_some_and(|groups| groups.contains(group))
            || state.users.get(user).is_some_and(|connections| {
                connections
                    .iter()
                    .any(|id| state.clients.get(id).is_some_and(|c| c.groups.contains(group)))
            })
    }

    /// Closes the selected clients but the excluded ones; each one's server connection is
    /// returned, to be told.
    pub(crate) fn close(&self, selection: Selection<'_>, excluded: &[String]) -> Vec<Closed> {
        let mut state = self.state();
        let selected: Vec<String> = match selection {
            Selection::Connection(id) => vec![id.to_owned()],
            Selection::User(user) => state.user_connections(user),
            Selection::Group(group) => state
                .groups
                .get(group)
                .map(|members| members.iter().cloned().collect())
                .unwrap_or_default(),
            Selection::All => state.clients.keys().cloned().collect(),
        };
        let mut closed = Vec::new();
        for id in selected {
            if excluded.contains(&id) {
                continue;
            }
            if let Some(client) = state.remove_client(&id) {
                client.sender.close();
                closed.push(Closed {
                    connection_id: id,
                    server: client.server,
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
        (state.clients.len(), state.servers.len())
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
        for client in state.clients.values() {
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
