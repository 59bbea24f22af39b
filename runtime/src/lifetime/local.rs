//! The in-process lifetime manager: every connection of the hub lives in this process.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::oneshot;

use super::{LifetimeManager, OutboundMessage, Target};
use crate::HubError;
use crate::connection::Connection;
use crate::protocol::CompletionResult;

type Members = HashMap<Arc<str>, Arc<Connection>>;

#[derive(Default)]
pub(crate) struct LocalLifetimeManager {
    connections: RwLock<Members>,
    groups: RwLock<HashMap<String, Members>>,
    users: RwLock<HashMap<Arc<str>, Members>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl LocalLifetimeManager {
    fn deliver(&self, target: &Target, message: &OutboundMessage) -> Result<(), HubError> {
        let mut failure = None;
        let mut send = |conn: &Arc<Connection>| {
            if failure.is_some() {
                return;
            }
            match message.frame(conn.protocol()) {
                Ok(frame) => conn.send_frame(frame),
                Err(error) => failure = Some(error),
            }
        };
        match target {
            Target::All => read(&self.connections).values().for_each(&mut send),
            Target::AllExcept(excluded) => read(&self.connections)
                .iter()
                .filter(|(id, _)| !excluded.iter().any(|e| e.as_str() == &***id))
                .for_each(|(_, c)| send(c)),
            Target::Connection(id) => read(&self.connections).get(id.as_str()).into_iter().for_each(&mut send),
            Target::Connections(ids) => {
                let connections = read(&self.connections);
                let unique: HashSet<&str> = ids.iter().map(String::as_str).collect();
                unique
                    .into_iter()
                    .filter_map(|id| connections.get(id))
                    .for_each(&mut send);
            }
            Target::Group(group) => read(&self.groups)
                .get(group)
                .into_iter()
                .flat_map(|m| m.values())
                .for_each(&mut send),
            Target::GroupExcept(group, excluded) => read(&self.groups)
                .get(group)
                .into_iter()
                .flat_map(|m| m.iter())
                .filter(|(id, _)| !excluded.iter().any(|e| e.as_str() == &***id))
                .for_each(|(_, c)| send(c)),
            Target::Groups(groups) => {
                let all = read(&self.groups);
                let mut seen = HashSet::new();
                for members in groups.iter().filter_map(|g| all.get(g)) {
                    for (id, conn) in members {
                        if seen.insert(id.clone()) {
                            send(conn);
                        }
                    }
                }
            }
            Target::User(user) => read(&self.users)
                .get(user.as_str())
                .into_iter()
                .flat_map(|m| m.values())
                .for_each(&mut send),
            Target::Users(users) => {
                let all = read(&self.users);
                let unique: HashSet<&str> = users.iter().map(String::as_str).collect();
                unique
                    .into_iter()
                    .filter_map(|u| all.get(u))
                    .flat_map(|m| m.values())
                    .for_each(&mut send);
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

impl LifetimeManager for LocalLifetimeManager {
    fn on_connected(&self, conn: &Arc<Connection>) {
        write(&self.connections).insert(conn.id().clone(), conn.clone());
        if let Some(user) = conn.user_id() {
            write(&self.users)
                .entry(user.clone())
                .or_default()
                .insert(conn.id().clone(), conn.clone());
        }
    }

    fn on_disconnected(&self, conn: &Arc<Connection>) {
        write(&self.connections).remove(conn.id());
        if let Some(user) = conn.user_id() {
            let mut users = write(&self.users);
            if let Some(members) = users.get_mut(user) {
                members.remove(conn.id());
                if members.is_empty() {
                    users.remove(user);
                }
            }
        }
        let joined: Vec<String> = conn
            .groups()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        if !joined.is_empty() {
            let mut groups = write(&self.groups);
            for group in joined {
                if let Some(members) = groups.get_mut(&group) {
                    members.remove(conn.id());
                    if members.is_empty() {
                        groups.remove(&group);
                    }
                }
            }
        }
    }

    fn send(
        &self,
        target: Target,
        message: Arc<OutboundMessage>,
        _origin: Option<&str>,
    ) -> BoxFuture<'_, Result<(), HubError>> {
        std::future::ready(self.deliver(&target, &message)).boxed()
    }

    fn add_to_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        if let Some(conn) = self.connection(connection_id) {
            // Membership is recorded on the connection too, so that leaving on disconnect
            // touches only its own groups; both under the groups lock, so a concurrent
            // disconnect cannot leave a dangling member.
            let mut groups = write(&self.groups);
            if !conn.closing().is_cancelled() {
                conn.groups()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(group.to_owned());
                groups
                    .entry(group.to_owned())
                    .or_default()
                    .insert(conn.id().clone(), conn);
            }
        }
        std::future::ready(Ok(())).boxed()
    }

    fn remove_from_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        let mut groups = write(&self.groups);
        if let Some(members) = groups.get_mut(group)
            && let Some(conn) = members.remove(connection_id)
        {
            conn.groups().lock().unwrap_or_else(|e| e.into_inner()).remove(group);
            if members.is_empty() {
                groups.remove(group);
            }
        }
        std::future::ready(Ok(())).boxed()
    }

    fn connection(&self, connection_id: &str) -> Option<Arc<Connection>> {
        read(&self.connections).get(connection_id).cloned()
    }

    fn invoke(
        &self,
        connection_id: &str,
        message: Arc<OutboundMessage>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<CompletionResult, HubError>> {
        invoke_found(self.connection(connection_id), connection_id, message, timeout)
    }
}

/// [`invoke_client`] on a connection looked up here, or the error for one that is not.
pub(crate) fn invoke_found(
    conn: Option<Arc<Connection>>,
    connection_id: &str,
    message: Arc<OutboundMessage>,
    timeout: Duration,
) -> BoxFuture<'static, Result<CompletionResult, HubError>> {
    let connection_id = connection_id.to_owned();
    async move {
        let conn = conn.ok_or_else(|| {
            HubError::exception("IOException", format!("Connection '{connection_id}' does not exist."))
        })?;
        invoke_client(&conn, &message, timeout).await
    }
    .boxed()
}

/// Sends an invocation with an id to one connection and waits for its Completion, the
/// timeout, or the connection's end.
pub(crate) async fn invoke_client(
    conn: &Arc<Connection>,
    message: &OutboundMessage,
    timeout: Duration,
) -> Result<CompletionResult, HubError> {
    let disconnected = || HubError::exception("IOException", format!("Connection '{}' disconnected.", conn.id()));
    let id = conn.invocations().next_result_id();
    let frame = message.frame_with_id(conn.protocol(), &id)?;
    let (sender, receiver) = oneshot::channel();
    conn.invocations().expect_result(id.clone(), sender);
    if !conn.send_frame_wait(frame).await {
        conn.invocations().forget_result(&id);
        return Err(disconnected());
    }
    let outcome = tokio::select! {
        result = receiver => result.map_err(|_| disconnected()),
        _ = conn.closing().cancelled() => Err(disconnected()),
        _ = tokio::time::sleep(timeout) => Err(HubError::exception(
            "TimeoutException",
            format!("The client did not answer invocation '{id}' within {} ms.", timeout.as_millis()),
        )),
    };
    conn.invocations().forget_result(&id);
    outcome
}
