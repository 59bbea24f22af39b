//! Tests of the membership index: unit cases and a property test against a plain model.

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
