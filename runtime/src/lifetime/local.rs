//! The in-process lifetime manager: every connection of the hub lives in this process.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures_util::future::{BoxFuture, FutureExt};

use super::{ConnectionHandle, LifetimeManager, OutboundMessage, Presence, Target};
use crate::HubError;
use crate::protocol::membership::Membership;

/// The self-hosted lifetime manager: every connection of the hub lives in this process, in
/// one [membership index](crate::protocol::membership) behind a lock. Sends are delivered
/// before [`send`](LifetimeManager::send) returns, in the order they are made; group changes
/// hold at once.
#[derive(Debug, Default)]
pub struct LocalLifetimeManager {
    members: RwLock<Membership<ConnectionHandle>>,
}

impl LocalLifetimeManager {
    /// A manager with no connections.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Membership<ConnectionHandle>> {
        self.members.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Membership<ConnectionHandle>> {
        self.members.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `message` for every connection `target` names, each once, encoded once per
    /// protocol.
    fn deliver(&self, target: &Target, message: &OutboundMessage) -> Result<(), HubError> {
        let mut failure = None;
        let (recipients, excluded) = target.recipients();
        self.read().for_each(recipients, excluded, |_, connection| {
            if failure.is_some() {
                return;
            }
            match message.frame(connection.protocol()) {
                Ok(frame) => connection.send_frame(frame),
                Err(error) => failure = Some(error),
            }
        });
        failure.map_or(Ok(()), Err)
    }
}

impl LifetimeManager for LocalLifetimeManager {
    fn on_connected(&self, connection: &ConnectionHandle) {
        let id = connection.connection().id().clone();
        self.write()
            .add_connection(id, connection.user_id(), connection.clone());
    }

    fn on_disconnected(&self, connection: &ConnectionHandle) {
        self.write().remove_connection(connection.id());
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
        // A connection that is not (or no longer) here joins nothing: membership and
        // disconnects change under the same lock, so none is left dangling.
        self.write().join_group(connection_id, group);
        std::future::ready(Ok(())).boxed()
    }

    fn remove_from_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        self.write().leave_group(connection_id, group);
        std::future::ready(Ok(())).boxed()
    }

    fn connection(&self, connection_id: &str) -> Option<ConnectionHandle> {
        self.read().get(connection_id).cloned()
    }

    fn exists(&self, what: Presence) -> BoxFuture<'_, Result<bool, HubError>> {
        let members = self.read();
        let found = match &what {
            Presence::Connection(id) => members.contains_connection(id),
            Presence::User(user) => members.contains_user(user),
            Presence::Group(group) => members.contains_group(group),
        };
        std::future::ready(Ok(found)).boxed()
    }
}
