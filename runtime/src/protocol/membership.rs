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
mod tests {
    use std::time::Duration;

    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn reached(index: &Membership<u32>, recipients: Recipients<'_>, excluded: Excluded<'_>) -> Vec<u32> {
        let mut members: Vec<u32> = index.resolve(recipients, excluded).into_iter().copied().collect();
        members.sort_unstable();
        members
    }

    /// c1 (alice), c2 (alice), c3 (bob), c4 (no user).
    fn sample() -> Membership<u32> {
        let mut index = Membership::new();
        index.add_connection("c1", Some("alice"), 1);
        index.add_connection("c2", Some("alice"), 2);
        index.add_connection("c3", Some("bob"), 3);
        index.add_connection("c4", None, 4);
        index
    }

    #[test]
    fn all_and_all_except() {
        let index = sample();
        assert_eq!(reached(&index, Recipients::All, Excluded::NONE), [1, 2, 3, 4]);
        let except = strings(&["c2", "c9"]);
        assert_eq!(
            reached(&index, Recipients::All, Excluded::connections(&except)),
            [1, 3, 4]
        );
        let users = strings(&["alice"]);
        let excluded = Excluded {
            connections: &[],
            users: &users,
        };
        assert_eq!(reached(&index, Recipients::All, excluded), [3, 4]);
    }

    #[test]
    fn connections_each_once_and_unknown_skipped() {
        let index = sample();
        let ids = strings(&["c3", "c1", "c3", "nope"]);
        assert_eq!(reached(&index, Recipients::Connections(&ids), Excluded::NONE), [1, 3]);
        let one = strings(&["c4"]);
        assert_eq!(reached(&index, Recipients::Connections(&one), Excluded::NONE), [4]);
    }

    #[test]
    fn groups_each_once_with_exclusions() {
        let mut index = sample();
        assert!(index.join_group("c1", "a"));
        assert!(index.join_group("c3", "a"));
        assert!(index.join_group("c1", "b"));
        assert!(index.join_group("c4", "b"));
        assert!(!index.join_group("nope", "a"));
        let both = strings(&["a", "b", "a", "missing"]);
        assert_eq!(reached(&index, Recipients::Groups(&both), Excluded::NONE), [1, 3, 4]);
        let a = strings(&["a"]);
        let except = strings(&["c1"]);
        assert_eq!(
            reached(&index, Recipients::Groups(&a), Excluded::connections(&except)),
            [3]
        );
        let bob = strings(&["bob"]);
        let excluded = Excluded {
            connections: &[],
            users: &bob,
        };
        assert_eq!(reached(&index, Recipients::Groups(&a), excluded), [1]);
        assert!(index.contains_group("a"));
        let mut members: Vec<&str> = index.group_members("a").collect();
        members.sort_unstable();
        assert_eq!(members, ["c1", "c3"]);
    }

    #[test]
    fn users_each_once() {
        let index = sample();
        let users = strings(&["alice", "bob", "alice", "carol"]);
        assert_eq!(reached(&index, Recipients::Users(&users), Excluded::NONE), [1, 2, 3]);
        let except = strings(&["c2"]);
        let alice = strings(&["alice"]);
        assert_eq!(
            reached(&index, Recipients::Users(&alice), Excluded::connections(&except)),
            [1]
        );
        assert!(index.contains_user("alice"));
        assert!(!index.contains_user("carol"));
    }

    #[test]
    fn leaving_and_removing_forget_empty_groups_and_users() {
        let mut index = sample();
        index.join_group("c1", "a");
        index.join_group("c2", "a");
        assert!(index.leave_group("c1", "a"));
        assert!(index.leave_group("c1", "a"), "leaving twice still finds the connection");
        assert!(!index.leave_group("nope", "a"));
        assert!(index.contains_group("a"));
        assert_eq!(index.remove_connection("c2"), Some(2));
        assert!(!index.contains_group("a"), "a group without members is forgotten");
        assert_eq!(index.remove_connection("c2"), None);
        assert!(index.contains_user("alice"));
        index.remove_connection("c1");
        assert!(!index.contains_user("alice"));
        assert_eq!(index.len(), 2);
        assert_eq!(index.get("c3"), Some(&3));
        assert_eq!(index.user_of("c3"), Some("bob"));
        assert_eq!(index.user_of("c4"), None);
    }

    #[test]
    fn re_adding_a_connection_replaces_it() {
        let mut index = sample();
        index.join_group("c1", "a");
        assert_eq!(index.add_connection("c1", Some("bob"), 10), Some(1));
        assert!(!index.contains_group("a"));
        let bob = strings(&["bob"]);
        assert_eq!(reached(&index, Recipients::Users(&bob), Excluded::NONE), [3, 10]);
        let alice = strings(&["alice"]);
        assert_eq!(reached(&index, Recipients::Users(&alice), Excluded::NONE), [2]);
    }

    #[test]
    fn user_groups_cover_present_and_future_connections() {
        let mut index = sample();
        index.user_join_group("alice", "fans", None);
        let fans = strings(&["fans"]);
        assert_eq!(reached(&index, Recipients::Groups(&fans), Excluded::NONE), [1, 2]);
        index.add_connection("c5", Some("alice"), 5);
        assert_eq!(reached(&index, Recipients::Groups(&fans), Excluded::NONE), [1, 2, 5]);
        assert!(index.user_in_group("alice", "fans"));
        assert!(!index.user_in_group("bob", "fans"));
        // A user's own connection in a group puts the user in it too.
        index.join_group("c3", "fans");
        assert!(index.user_in_group("bob", "fans"));
        // A user with no connection may belong to a group, and keeps the index non-empty.
        index.user_join_group("carol", "fans", None);
        assert!(index.user_in_group("carol", "fans"));
        assert!(!index.contains_user("carol"));
        index.add_connection("c6", Some("carol"), 6);
        assert_eq!(
            reached(&index, Recipients::Groups(&fans), Excluded::NONE),
            [1, 2, 3, 5, 6]
        );
    }

    #[test]
    fn user_leave_group_takes_every_connection_of_the_user_out() {
        let mut index = sample();
        index.user_join_group("alice", "fans", None);
        index.join_group("c1", "other");
        index.user_leave_group("alice", Some("fans"));
        let fans = strings(&["fans"]);
        assert!(reached(&index, Recipients::Groups(&fans), Excluded::NONE).is_empty());
        assert!(!index.user_in_group("alice", "fans"));
        assert!(index.contains_group("other"));
        index.user_join_group("alice", "fans", None);
        index.user_leave_group("alice", None);
        assert!(!index.contains_group("other"));
        assert!(!index.contains_group("fans"));
        index.add_connection("c5", Some("alice"), 5);
        assert_eq!(index.groups_of("c5").count(), 0);
    }

    #[test]
    fn user_group_memberships_expire() {
        let start = Instant::now();
        let mut index = sample();
        index.user_join_group("alice", "fans", Some(start + Duration::from_secs(10)));
        index.user_join_group("bob", "fans", Some(start + Duration::from_secs(20)));
        index.user_join_group("bob", "forever", None);
        assert_eq!(index.next_expiry(), Some(start + Duration::from_secs(10)));
        assert_eq!(index.expire(start + Duration::from_secs(9)), 0);
        let fans = strings(&["fans"]);
        assert_eq!(reached(&index, Recipients::Groups(&fans), Excluded::NONE), [1, 2, 3]);
        assert_eq!(index.expire(start + Duration::from_secs(10)), 1);
        assert_eq!(reached(&index, Recipients::Groups(&fans), Excluded::NONE), [3]);
        assert!(!index.user_in_group("alice", "fans"));
        // A later connection of alice no longer joins the expired group.
        index.add_connection("c5", Some("alice"), 5);
        assert_eq!(reached(&index, Recipients::Groups(&fans), Excluded::NONE), [3]);
        // Joining again replaces the expiry.
        index.user_join_group("bob", "fans", Some(start + Duration::from_secs(40)));
        assert_eq!(index.expire(start + Duration::from_secs(30)), 0);
        assert!(index.user_in_group("bob", "fans"));
        index.user_join_group("bob", "fans", None);
        assert_eq!(index.next_expiry(), None);
        assert_eq!(index.expire(start + Duration::from_secs(100)), 0);
        assert!(index.user_in_group("bob", "fans"));
        assert!(index.user_in_group("bob", "forever"));
    }

    #[test]
    fn leaving_forgets_the_expiry() {
        let start = Instant::now();
        let mut index = sample();
        index.user_join_group("alice", "a", Some(start + Duration::from_secs(1)));
        index.user_join_group("alice", "b", Some(start + Duration::from_secs(2)));
        index.user_leave_group("alice", Some("a"));
        assert_eq!(index.next_expiry(), Some(start + Duration::from_secs(2)));
        index.user_leave_group("alice", None);
        assert_eq!(index.next_expiry(), None);
        index.remove_connection("c1");
        index.remove_connection("c2");
        index.remove_connection("c3");
        index.remove_connection("c4");
        assert!(index.is_empty());
    }

    /// A step of the property test, over a few connection, user and group names.
    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, Option<u8>),
        Remove(u8),
        Join(u8, u8),
        Leave(u8, u8),
        UserJoin(u8, u8),
        UserLeave(u8, Option<u8>),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..6u8, proptest::option::of(0..3u8)).prop_map(|(c, u)| Op::Add(c, u)),
            (0..6u8).prop_map(Op::Remove),
            (0..6u8, 0..3u8).prop_map(|(c, g)| Op::Join(c, g)),
            (0..6u8, 0..3u8).prop_map(|(c, g)| Op::Leave(c, g)),
            (0..3u8, 0..3u8).prop_map(|(u, g)| Op::UserJoin(u, g)),
            (0..3u8, proptest::option::of(0..3u8)).prop_map(|(u, g)| Op::UserLeave(u, g)),
        ]
    }

    /// A connection's user and groups, in the model.
    type ModelEntry = (Option<String>, BTreeSet<String>);

    /// The same bookkeeping done naively: connection -> (user, groups), user -> groups.
    #[derive(Default)]
    struct Model {
        connections: std::collections::BTreeMap<String, ModelEntry>,
        user_groups: std::collections::BTreeMap<String, BTreeSet<String>>,
    }

    impl Model {
        fn apply(&mut self, op: &Op) {
            let (c, u, g) = (
                |i: u8| format!("c{i}"),
                |i: u8| format!("u{i}"),
                |i: u8| format!("g{i}"),
            );
            match *op {
                Op::Add(id, user) => {
                    let user = user.map(u);
                    let groups = user
                        .as_ref()
                        .and_then(|user| self.user_groups.get(user))
                        .cloned()
                        .unwrap_or_default();
                    self.connections.insert(c(id), (user, groups));
                }
                Op::Remove(id) => {
                    self.connections.remove(&c(id));
                }
                Op::Join(id, group) => {
                    if let Some((_, groups)) = self.connections.get_mut(&c(id)) {
                        groups.insert(g(group));
                    }
                }
                Op::Leave(id, group) => {
                    if let Some((_, groups)) = self.connections.get_mut(&c(id)) {
                        groups.remove(&g(group));
                    }
                }
                Op::UserJoin(user, group) => {
                    self.user_groups.entry(u(user)).or_default().insert(g(group));
                    for (owner, groups) in self.connections.values_mut() {
                        if owner.as_deref() == Some(u(user).as_str()) {
                            groups.insert(g(group));
                        }
                    }
                }
                Op::UserLeave(user, group) => {
                    let user = u(user);
                    for (owner, groups) in self.connections.values_mut() {
                        if owner.as_deref() == Some(user.as_str()) {
                            match group {
                                Some(group) => {
                                    groups.remove(&g(group));
                                }
                                None => groups.clear(),
                            }
                        }
                    }
                    match group {
                        Some(group) => {
                            if let Some(groups) = self.user_groups.get_mut(&user) {
                                groups.remove(&g(group));
                                if groups.is_empty() {
                                    self.user_groups.remove(&user);
                                }
                            }
                        }
                        None => {
                            self.user_groups.remove(&user);
                        }
                    }
                }
            }
        }
    }

    fn index_apply(index: &mut Membership<String>, op: &Op) {
        match *op {
            Op::Add(id, user) => {
                let user = user.map(|u| format!("u{u}"));
                index.add_connection(format!("c{id}"), user.as_deref(), format!("c{id}"));
            }
            Op::Remove(id) => {
                index.remove_connection(&format!("c{id}"));
            }
            Op::Join(id, group) => {
                index.join_group(&format!("c{id}"), &format!("g{group}"));
            }
            Op::Leave(id, group) => {
                index.leave_group(&format!("c{id}"), &format!("g{group}"));
            }
            Op::UserJoin(user, group) => index.user_join_group(&format!("u{user}"), &format!("g{group}"), None),
            Op::UserLeave(user, group) => {
                let group = group.map(|g| format!("g{g}"));
                index.user_leave_group(&format!("u{user}"), group.as_deref());
            }
        }
    }

    proptest::proptest! {
        /// After any sequence of changes, every kind of target resolves to what the naive
        /// model says, each member once, and the existence checks agree.
        #[test]
        fn resolution_matches_a_naive_model(ops in proptest::collection::vec(op(), 0..40)) {
            let mut index = Membership::new();
            let mut model = Model::default();
            for op in &ops {
                index_apply(&mut index, op);
                model.apply(op);
            }
            let sorted = |index: &Membership<String>, r: Recipients<'_>, e: Excluded<'_>| {
                let mut v: Vec<String> = index.resolve(r, e).into_iter().cloned().collect();
                v.sort();
                v
            };
            let groups: Vec<String> = vec!["g0".into(), "g2".into(), "g0".into()];
            let users: Vec<String> = vec!["u1".into(), "u0".into(), "u1".into()];
            let ids: Vec<String> = vec!["c3".into(), "c1".into(), "c3".into(), "c9".into()];
            let excluded_ids: Vec<String> = vec!["c0".into()];
            let excluded_users: Vec<String> = vec!["u2".into()];
            let excluded = Excluded { connections: &excluded_ids, users: &excluded_users };
            let kept = |id: &String, user: &Option<String>| {
                !excluded_ids.contains(id) && !user.as_ref().is_some_and(|u| excluded_users.contains(u))
            };
            let expect = |pick: &dyn Fn(&String, &ModelEntry) -> bool| -> Vec<String> {
                model
                    .connections
                    .iter()
                    .filter(|(id, entry)| pick(id, entry) && kept(id, &entry.0))
                    .map(|(id, _)| id.clone())
                    .collect()
            };
            proptest::prop_assert_eq!(sorted(&index, Recipients::All, excluded), expect(&|_, _| true));
            proptest::prop_assert_eq!(
                sorted(&index, Recipients::Groups(&groups), excluded),
                expect(&|_, (_, g)| groups.iter().any(|x| g.contains(x)))
            );
            proptest::prop_assert_eq!(
                sorted(&index, Recipients::Users(&users), excluded),
                expect(&|_, (u, _)| u.as_ref().is_some_and(|u| users.contains(u)))
            );
            proptest::prop_assert_eq!(
                sorted(&index, Recipients::Connections(&ids), excluded),
                expect(&|id, _| ids.contains(id))
            );
            for group in ["g0", "g1", "g2"] {
                let members = model.connections.values().any(|(_, g)| g.contains(group));
                proptest::prop_assert_eq!(index.contains_group(group), members);
                for user in ["u0", "u1", "u2"] {
                    let in_group = model.user_groups.get(user).is_some_and(|g| g.contains(group))
                        || model
                            .connections
                            .values()
                            .any(|(u, g)| u.as_deref() == Some(user) && g.contains(group));
                    proptest::prop_assert_eq!(index.user_in_group(user, group), in_group);
                }
            }
            proptest::prop_assert_eq!(index.len(), model.connections.len());
            proptest::prop_assert_eq!(index.is_empty(), model.connections.is_empty() && model.user_groups.is_empty());
        }
    }

    #[test]
    fn a_user_group_keeps_the_index_non_empty() {
        let mut index: Membership<u32> = Membership::new();
        assert!(index.is_empty());
        index.user_join_group("alice", "fans", None);
        assert!(!index.is_empty());
        assert_eq!(index.len(), 0);
        index.user_leave_group("alice", None);
        assert!(index.is_empty());
    }
}
