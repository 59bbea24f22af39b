//! Sending to clients: targets (all, groups, users, connections…) as proxies with `send`, and
//! group membership.

use std::sync::Arc;

use serde::Serialize;

use crate::HubError;
use crate::lifetime::{LifetimeManager, OutboundMessage, Target};

/// The clients of a hub, to pick targets from. Inside a hub method, [`HubClients`] adds the
/// caller-relative targets.
#[derive(Clone)]
pub struct Clients {
    manager: Arc<dyn LifetimeManager>,
}

/// Some clients of a hub: send them an invocation of a client method.
#[derive(Clone)]
pub struct ClientProxy {
    manager: Arc<dyn LifetimeManager>,
    target: Target,
}

impl ClientProxy {
    /// Invokes client method `method` with `arguments` (a tuple, or `()` for none) on every
    /// connection of the target, without waiting for an answer. The message is encoded once
    /// per protocol, whatever the number of connections.
    pub async fn send<A>(&self, method: &str, arguments: A) -> Result<(), HubError>
    where
        A: Serialize + Send + Sync + 'static,
    {
        self.send_message(OutboundMessage::invocation(method, arguments)).await
    }

    /// Sends an already prepared message (see [`OutboundMessage`]).
    pub async fn send_message(&self, message: Arc<OutboundMessage>) -> Result<(), HubError> {
        self.manager.send(self.target.clone(), message).await
    }

    /// The connections this proxy reaches.
    pub fn target(&self) -> &Target {
        &self.target
    }
}

impl std::fmt::Debug for ClientProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientProxy").field("target", &self.target).finish()
    }
}

fn owned(ids: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    ids.into_iter().map(Into::into).collect()
}

impl Clients {
    pub(crate) fn new(manager: Arc<dyn LifetimeManager>) -> Self {
        Self { manager }
    }

    fn proxy(&self, target: Target) -> ClientProxy {
        ClientProxy {
            manager: self.manager.clone(),
            target,
        }
    }

    /// Every connection.
    pub fn all(&self) -> ClientProxy {
        self.proxy(Target::All)
    }

    /// Every connection but these.
    pub fn all_except(&self, excluded: impl IntoIterator<Item = impl Into<String>>) -> ClientProxy {
        self.proxy(Target::AllExcept(owned(excluded)))
    }

    /// One connection.
    pub fn client(&self, connection_id: impl Into<String>) -> ClientProxy {
        self.proxy(Target::Connection(connection_id.into()))
    }

    /// Several connections.
    pub fn clients(&self, connection_ids: impl IntoIterator<Item = impl Into<String>>) -> ClientProxy {
        self.proxy(Target::Connections(owned(connection_ids)))
    }

    /// The members of a group.
    pub fn group(&self, group: impl Into<String>) -> ClientProxy {
        self.proxy(Target::Group(group.into()))
    }

    /// The members of any of these groups, each reached once.
    pub fn groups(&self, groups: impl IntoIterator<Item = impl Into<String>>) -> ClientProxy {
        self.proxy(Target::Groups(owned(groups)))
    }

    /// The members of a group but these connections.
    pub fn group_except(
        &self,
        group: impl Into<String>,
        excluded: impl IntoIterator<Item = impl Into<String>>,
    ) -> ClientProxy {
        self.proxy(Target::GroupExcept(group.into(), owned(excluded)))
    }

    /// Every connection of a user.
    pub fn user(&self, user_id: impl Into<String>) -> ClientProxy {
        self.proxy(Target::User(user_id.into()))
    }

    /// Every connection of any of these users.
    pub fn users(&self, user_ids: impl IntoIterator<Item = impl Into<String>>) -> ClientProxy {
        self.proxy(Target::Users(owned(user_ids)))
    }
}

/// The clients as seen from inside a hub method: everything [`Clients`] has, plus the
/// targets relative to the caller.
#[derive(Clone)]
pub struct HubClients {
    clients: Clients,
    caller: Arc<str>,
}

impl HubClients {
    pub(crate) fn new(clients: Clients, caller: Arc<str>) -> Self {
        Self { clients, caller }
    }

    /// The calling connection.
    pub fn caller(&self) -> ClientProxy {
        self.clients.client(&*self.caller)
    }

    /// Every connection but the caller.
    pub fn others(&self) -> ClientProxy {
        self.clients.all_except([&*self.caller])
    }

    /// The members of a group but the caller.
    pub fn others_in_group(&self, group: impl Into<String>) -> ClientProxy {
        self.clients.group_except(group, [&*self.caller])
    }
}

impl std::ops::Deref for HubClients {
    type Target = Clients;

    fn deref(&self) -> &Clients {
        &self.clients
    }
}

/// Group membership of a hub's connections.
#[derive(Clone)]
pub struct Groups {
    manager: Arc<dyn LifetimeManager>,
}

impl Groups {
    pub(crate) fn new(manager: Arc<dyn LifetimeManager>) -> Self {
        Self { manager }
    }

    /// Adds a connection to a group (names are case-sensitive). Returns once done.
    pub async fn add(&self, connection_id: &str, group: &str) -> Result<(), HubError> {
        self.manager.add_to_group(connection_id, group).await
    }

    /// Removes a connection from a group. Returns once done.
    pub async fn remove(&self, connection_id: &str, group: &str) -> Result<(), HubError> {
        self.manager.remove_from_group(connection_id, group).await
    }
}
