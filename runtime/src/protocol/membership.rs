//! The membership index of one hub: which connections are connected, the user each belongs
//! to, the groups each has joined, and the groups users belong to (for their present and
//! future connections, optionally until an expiry); and the resolution of a send's
//! recipients into members, each once.
//!
//! It is a plain data structure, generic over what a member is (the self-hosted lifetime
//! manager stores its connections, the relay its clients' senders): no locks, no tasks, no
//! I/O. Its owner wraps it in whatever lock suits and passes time in as an [`Instant`]:
//! user-group memberships with an expiry last until the first [`Membership::expire`] at or
//! after it ([`Membership::next_expiry`] says when that is due).
//!
//! Groups exist while they have members: a group whose last connection leaves is forgotten.
//! A user joined to a group makes each of its connections a member, the ones it has now and
//! the ones added later; a user leaving a group (or its membership expiring) takes all of its
//! connections out of it.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use switchboard::protocol::membership::{Excluded, Membership, Recipients};
//!
//! let now = Instant::now();
//! let mut index = Membership::new();
//! index.add_connection("c1", Some("alice"), "first");
//! index.add_connection("c2", None, "second");
//! index.join_group("c2", "fans");
//! index.user_join_group("alice", "fans", Some(now + Duration::from_secs(60)));
//!
//! let fans = ["fans".to_owned()];
//! let mut reached = index.resolve(Recipients::Groups(&fans), Excluded::NONE);
//! reached.sort();
//! assert_eq!(reached, [&"first", &"second"]);
//!
//! // A minute later alice's membership has expired.
//! index.expire(now + Duration::from_secs(60));
//! assert_eq!(index.resolve(Recipients::Groups(&fans), Excluded::NONE), [&"second"]);
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// Whom a send is addressed to, before exclusions (see [`Membership::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recipients<'a> {
    /// Every connection.
    All,
    /// These connections (unknown ids are skipped).
    Connections(&'a [String]),
    /// The members of any of these groups.
    Groups(&'a [String]),
    /// Every connection of any of these users.
    Users(&'a [String]),
}

/// Who a send must not reach, even when it is addressed to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Excluded<'a> {
    /// Connection ids left out.
    pub connections: &'a [String],
    /// User ids whose connections are left out.
    pub users: &'a [String],
}

impl<'a> Excluded<'a> {
    /// Nobody is excluded.
    pub const NONE: Excluded<'static> = Excluded {
        connections: &[],
        users: &[],
    };

    /// These connections are excluded.
    pub fn connections(connections: &'a [String]) -> Self {
        Excluded {
            connections,
            users: &[],
        }
    }
}

struct Entry<M> {
    member: M,
    user: Option<Arc<str>>,
    groups: HashSet<Arc<str>>,
}

/// The membership index: connections (each with its member value and optional user), groups
/// and user groups. See the [module documentation](self).
pub struct Membership<M> {
    connections: HashMap<Arc<str>, Entry<M>>,
    /// Connection ids by group.
    groups: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Connection ids by user.
    users: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// The groups each user belongs to, with the membership's expiry if it has one.
    user_groups: HashMap<Arc<str>, HashMap<Arc<str>, Option<Instant>>>,
    /// (expiry, user, group) of every user-group membership that expires.
    expiries: BTreeSet<(Instant, Arc<str>, Arc<str>)>,
}

impl<M> Default for Membership<M> {
    fn default() -> Self {
        Membership {
            connections: HashMap::new(),
            groups: HashMap::new(),
            users: HashMap::new(),
            user_groups: HashMap::new(),
            expiries: BTreeSet::new(),
        }
    }
}

impl<M> std::fmt::Debug for Membership<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("connections", &self.connections.len())
            .field("groups", &self.groups.len())
            .field("users", &self.users.len())
            .field("user_groups", &self.user_groups.len())
            .finish()
    }
}

impl<M> Membership<M> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a connection, with the user it belongs to, and makes it a member of that user's
    /// groups. A connection already present under this id is replaced (it leaves its groups
    /// first) and its member returned.
    pub fn add_connection(&mut self, id: impl Into<Arc<str>>, user: Option<&str>, member: M) -> Option<M> {
        let id: Arc<str> = id.into();
        let replaced = self.remove_connection(&id);
        let user = user.map(|user| {
            self.users
                .get_key_value(user)
                .map_or_else(|| Arc::from(user), |(k, _)| k.clone())
        });
        let groups: Vec<Arc<str>> = user
            .as_ref()
            .and_then(|user| self.user_groups.get(user))
            .map(|groups| groups.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(user) = &user {
            self.users.entry(user.clone()).or_default().insert(id.clone());
        }
        self.connections.insert(
            id.clone(),
            Entry {
                member,
                user,
                groups: HashSet::new(),
            },
        );
        for group in groups {
            self.join(&id, group);
        }
        replaced
    }

    /// Removes a connection from the index and from its groups; its member, if it was there.
    pub fn remove_connection(&mut self, id: &str) -> Option<M> {
        let (id, entry) = self.connections.remove_entry(id)?;
        for group in &entry.groups {
            remove_from_set(&mut self.groups, group, &id);
        }
        if let Some(user) = &entry.user {
            remove_from_set(&mut self.users, user, &id);
        }
        Some(entry.member)
    }

    /// Adds a connection to a group; `false` if the connection is not in the index.
    pub fn join_group(&mut self, id: &str, group: &str) -> bool {
        let Some((id, _)) = self.connections.get_key_value(id) else {
            return false;
        };
        let id = id.clone();
        let group = self
            .groups
            .get_key_value(group)
            .map_or_else(|| Arc::from(group), |(k, _)| k.clone());
        self.join(&id, group);
        true
    }

    /// Removes a connection from a group; `false` if the connection is not in the index.
    pub fn leave_group(&mut self, id: &str, group: &str) -> bool {
        let Some(entry) = self.connections.get_mut(id) else {
            return false;
        };
        if entry.groups.remove(group) {
            remove_from_set(&mut self.groups, group, id);
        }
        true
    }

    /// Adds a user to a group: its connections now and those added later are members, until
    /// [`user_leave_group`](Self::user_leave_group) or, with `expires`, the first
    /// [`expire`](Self::expire) at or after that instant. Joining again replaces the expiry.
    pub fn user_join_group(&mut self, user: &str, group: &str, expires: Option<Instant>) {
        let user: Arc<str> = self
            .user_groups
            .get_key_value(user)
            .map(|(k, _)| k.clone())
            .or_else(|| self.users.get_key_value(user).map(|(k, _)| k.clone()))
            .unwrap_or_else(|| Arc::from(user));
        let group: Arc<str> = self
            .groups
            .get_key_value(group)
            .map_or_else(|| Arc::from(group), |(k, _)| k.clone());
        let previous = self
            .user_groups
            .entry(user.clone())
            .or_default()
            .insert(group.clone(), expires);
        if let Some(Some(at)) = previous {
            self.expiries.remove(&(at, user.clone(), group.clone()));
        }
        if let Some(at) = expires {
            self.expiries.insert((at, user.clone(), group.clone()));
        }
        let connections: Vec<Arc<str>> = self
            .users
            .get(&user)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        for id in connections {
            self.join(&id, group.clone());
        }
    }

    /// Removes a user from a group, or (`None`) from every group: the user-group membership
    /// ends, and each of the user's connections leaves the group(s), however it joined.
    pub fn user_leave_group(&mut self, user: &str, group: Option<&str>) {
        match group {
            Some(group) => {
                if let Some((user_key, groups)) = self.user_groups.get_key_value(user) {
                    let user_key = user_key.clone();
                    let removed = groups.get_key_value(group).map(|(k, at)| (k.clone(), *at));
                    if let Some((group_key, expires)) = removed {
                        if let Some(at) = expires {
                            self.expiries.remove(&(at, user_key.clone(), group_key));
                        }
                        if let Some(groups) = self.user_groups.get_mut(user) {
                            groups.remove(group);
                            if groups.is_empty() {
                                self.user_groups.remove(user);
                            }
                        }
                    }
                }
                for id in self.user_connections(user) {
                    self.leave_group(&id, group);
                }
            }
            None => {
                if let Some((user_key, groups)) = self.user_groups.remove_entry(user) {
                    for (group, expires) in groups {
                        if let Some(at) = expires {
                            self.expiries.remove(&(at, user_key.clone(), group));
                        }
                    }
                }
                for id in self.user_connections(user) {
                    let joined: Vec<Arc<str>> = self
                        .connections
                        .get(&id)
                        .map(|entry| entry.groups.iter().cloned().collect())
                        .unwrap_or_default();
                    for group in joined {
                        self.leave_group(&id, &group);
                    }
                }
            }
        }
    }

    /// Ends every user-group membership that expires at or before `now`, as
    /// [`user_leave_group`](Self::user_leave_group) would; how many ended.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut ended = 0;
        while let Some(first) = self.expiries.first() {
            if first.0 > now {
                break;
            }
            let Some((_, user, group)) = self.expiries.pop_first() else {
                break;
            };
            if let Some(groups) = self.user_groups.get_mut(&user) {
                groups.remove(&group);
                if groups.is_empty() {
                    self.user_groups.remove(&user);
                }
            }
            for id in self.user_connections(&user) {
                self.leave_group(&id, &group);
            }
            ended += 1;
        }
        ended
    }

    /// When the next user-group membership expires, if any does.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _, _)| *at)
    }

    /// The member of a connection.
    pub fn get(&self, id: &str) -> Option<&M> {
        self.connections.get(id).map(|entry| &entry.member)
    }

    /// The member of a connection, to change (its user and groups stay as they are).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut M> {
        self.connections.get_mut(id).map(|entry| &mut entry.member)
    }

    /// The user a connection belongs to.
    pub fn user_of(&self, id: &str) -> Option<&str> {
        self.connections.get(id).and_then(|entry| entry.user.as_deref())
    }

    /// Whether a connection is in the index.
    pub fn contains_connection(&self, id: &str) -> bool {
        self.connections.contains_key(id)
    }

    /// Whether a user has a connection in the index.
    pub fn contains_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Whether a group has members.
    pub fn contains_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// Whether a user belongs to a group: as a user, or through one of its connections.
    pub fn user_in_group(&self, user: &str, group: &str) -> bool {
        self.user_groups
            .get(user)
            .is_some_and(|groups| groups.contains_key(group))
            || self.users.get(user).is_some_and(|ids| {
                ids.iter().any(|id| {
                    self.connections
                        .get(id)
                        .is_some_and(|entry| entry.groups.contains(group))
                })
            })
    }

    /// The ids of a group's members, in no particular order.
    pub fn group_members(&self, group: &str) -> impl Iterator<Item = &str> {
        self.groups.get(group).into_iter().flatten().map(|id| &**id)
    }

    /// The ids of a user's connections, in no particular order.
    pub fn user_members(&self, user: &str) -> impl Iterator<Item = &str> {
        self.users.get(user).into_iter().flatten().map(|id| &**id)
    }

    /// The groups a connection has joined, in no particular order.
    pub fn groups_of(&self, id: &str) -> impl Iterator<Item = &str> {
        self.connections
            .get(id)
            .into_iter()
            .flat_map(|entry| entry.groups.iter())
            .map(|group| &**group)
    }

    /// Every connection id and its member, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &M)> {
        self.connections.iter().map(|(id, entry)| (&**id, &entry.member))
    }

    /// How many connections the index holds.
    pub fn len(&self) -> usize {
        self.connections.len()
    }

    /// Whether the index holds no connections and no user-group memberships.
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty() && self.user_groups.is_empty()
    }

    /// Calls `visit` with the id and member of every connection `recipients` names that
    /// `excluded` does not, each once, in no particular order.
    pub fn for_each<'s>(
        &'s self,
        recipients: Recipients<'_>,
        excluded: Excluded<'_>,
        mut visit: impl FnMut(&'s str, &'s M),
    ) {
        let excluded_ids: HashSet<&str> = excluded.connections.iter().map(String::as_str).collect();
        let excluded_users: HashSet<&str> = excluded.users.iter().map(String::as_str).collect();
        let mut offer = |id: &'s Arc<str>, entry: &'s Entry<M>| {
            let user_excluded = entry.user.as_deref().is_some_and(|user| excluded_users.contains(user));
            if !user_excluded && !excluded_ids.contains(&**id) {
                visit(id, &entry.member);
            }
        };
        match recipients {
            Recipients::All => self.connections.iter().for_each(|(id, entry)| offer(id, entry)),
            Recipients::Connections(ids) => {
                // Only a list of several can name one twice.
                let single = ids.len() == 1;
                let mut seen = HashSet::new();
                for id in ids {
                    if let Some((id, entry)) = self.connections.get_key_value(id.as_str())
                        && (single || seen.insert(id))
                    {
                        offer(id, entry);
                    }
                }
            }
            Recipients::Groups(groups) => {
                // A connection is in a group once; only several groups can reach it twice.
                let single = groups.len() == 1;
                let mut seen = HashSet::new();
                for members in groups.iter().filter_map(|group| self.groups.get(group.as_str())) {
                    for id in members {
                        if (single || seen.insert(id))
                            && let Some(entry) = self.connections.get(id)
                        {
                            offer(id, entry);
                        }
                    }
                }
            }
            Recipients::Users(users) => {
                // A connection belongs to one user: distinct users have distinct connections.
                let single = users.len() == 1;
                let mut seen = HashSet::new();
                for (user, ids) in users.iter().filter_map(|user| self.users.get_key_value(user.as_str())) {
                    if single || seen.insert(user) {
                        for id in ids {
                            if let Some(entry) = self.connections.get(id) {
                                offer(id, entry);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The members [`for_each`](Self::for_each) visits.
    pub fn resolve(&self, recipients: Recipients<'_>, excluded: Excluded<'_>) -> Vec<&M> {
        let mut members = Vec::new();
        self.for_each(recipients, excluded, |_, member| members.push(member));
        members
    }

    fn join(&mut self, id: &Arc<str>, group: Arc<str>) {
        if let Some(entry) = self.connections.get_mut(id)
            && entry.groups.insert(group.clone())
        {
            self.groups.entry(group).or_default().insert(id.clone());
        }
    }

    fn user_connections(&self, user: &str) -> Vec<Arc<str>> {
        self.users
            .get(user)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Removes `id` from the set under `key`, and the set once it is empty.
fn remove_from_set(map: &mut HashMap<Arc<str>, HashSet<Arc<str>>>, key: &str, id: &str) {
    if let Some(set) = map.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
