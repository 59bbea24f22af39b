//! ChatHub: broadcast, groups, users and connections, plus the benchmark methods; written
//! with `#[hub]` and `#[client]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use switchboard::values::Dynamic;
use switchboard::{HubContext, HubError};

/// Counts of connections that came and went.
#[derive(Default)]
pub struct Stats {
    pub connected: AtomicU64,
    pub disconnected: AtomicU64,
    /// Connections that moved here from another app server (counted in `connected` too).
    pub migrated_in: AtomicU64,
    /// Connections that moved from here to another app server (counted in `disconnected` too).
    pub migrated_out: AtomicU64,
}

/// A connection's move between app servers, as `GetMigration` answers it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MigrationInfo {
    from: String,
    to: String,
}

/// What ChatHub calls on its clients.
#[switchboard::client]
pub trait ChatClient {
    /// A broadcast: who, and what.
    async fn send(&self, name: String, message: String);
    /// A group message: the group (or `*` for several), and what.
    async fn group_message(&self, group: String, message: String);
    /// A message to a user's connections.
    async fn user_message(&self, message: String);
    /// A message to one connection.
    async fn direct(&self, message: String);
    /// The benchmark echo: the caller's ticks and payload, unchanged.
    async fn measure(&self, ticks: Dynamic, payload: Dynamic);
}

pub struct ChatHub {
    pub stats: Arc<Stats>,
    /// This app server's name (`--server-name`).
    pub server_name: Arc<str>,
}

#[switchboard::hub("/chathub", client = ChatClient, detailed_errors = true)]
impl ChatHub {
    async fn get_server_name(&self) -> String {
        self.server_name.to_string()
    }

    /// Where the caller's connection moved here from, if it did.
    async fn get_migration(&self, cx: &HubContext<Self>) -> Option<MigrationInfo> {
        cx.migration()
            .filter(|moved| moved.to() == &*self.server_name)
            .map(|moved| MigrationInfo {
                from: moved.from().to_owned(),
                to: moved.to().to_owned(),
            })
    }

    async fn broadcast(&self, cx: &HubContext<Self>, name: String, message: String) -> Result<(), HubError> {
        cx.clients().all().send(name, message).await
    }

    async fn broadcast_others(&self, cx: &HubContext<Self>, name: String, message: String) -> Result<(), HubError> {
        cx.clients().others().send(name, message).await
    }

    async fn join_group(&self, cx: &HubContext<Self>, group: String) -> Result<(), HubError> {
        cx.groups().add(cx.connection_id(), &group).await
    }

    async fn leave_group(&self, cx: &HubContext<Self>, group: String) -> Result<(), HubError> {
        cx.groups().remove(cx.connection_id(), &group).await
    }

    async fn send_to_group(&self, cx: &HubContext<Self>, group: String, message: String) -> Result<(), HubError> {
        cx.clients().group(group.clone()).group_message(group, message).await
    }

    async fn send_to_others_in_group(
        &self,
        cx: &HubContext<Self>,
        group: String,
        message: String,
    ) -> Result<(), HubError> {
        cx.clients()
            .others_in_group(group.clone())
            .group_message(group, message)
            .await
    }

    async fn send_to_group_except(
        &self,
        cx: &HubContext<Self>,
        group: String,
        excluded: String,
        message: String,
    ) -> Result<(), HubError> {
        cx.clients()
            .group_except(group.clone(), [excluded])
            .group_message(group, message)
            .await
    }

    async fn send_to_groups(
        &self,
        cx: &HubContext<Self>,
        groups: Vec<String>,
        message: String,
    ) -> Result<(), HubError> {
        cx.clients().groups(groups).group_message("*".into(), message).await
    }

    async fn send_to_user(&self, cx: &HubContext<Self>, user: String, message: String) -> Result<(), HubError> {
        cx.clients().user(user).user_message(message).await
    }

    async fn send_to_users(&self, cx: &HubContext<Self>, users: Vec<String>, message: String) -> Result<(), HubError> {
        cx.clients().users(users).user_message(message).await
    }

    async fn send_to_connection(&self, cx: &HubContext<Self>, id: String, message: String) -> Result<(), HubError> {
        cx.clients().client(id).direct(message).await
    }

    async fn send_to_connections(
        &self,
        cx: &HubContext<Self>,
        ids: Vec<String>,
        message: String,
    ) -> Result<(), HubError> {
        cx.clients().clients(ids).direct(message).await
    }

    async fn send_to_all_except(
        &self,
        cx: &HubContext<Self>,
        excluded: Vec<String>,
        message: String,
    ) -> Result<(), HubError> {
        cx.clients().all_except(excluded).send("*".into(), message).await
    }

    async fn echo(&self, ticks: Dynamic, payload: Dynamic) -> (Dynamic, Dynamic) {
        (ticks, payload)
    }

    async fn echo_measure(&self, cx: &HubContext<Self>, ticks: Dynamic, payload: Dynamic) -> Result<(), HubError> {
        cx.clients().caller().measure(ticks, payload).await
    }

    async fn broadcast_measure(&self, cx: &HubContext<Self>, ticks: Dynamic, payload: Dynamic) -> Result<(), HubError> {
        cx.clients().all().measure(ticks, payload).await
    }

    async fn group_measure(
        &self,
        cx: &HubContext<Self>,
        group: String,
        ticks: Dynamic,
        payload: Dynamic,
    ) -> Result<(), HubError> {
        cx.clients().group(group).measure(ticks, payload).await
    }

    async fn disconnect(&self, cx: &HubContext<Self>) {
        cx.abort();
    }

    #[on_connected]
    async fn count_connected(&self, cx: &HubContext<Self>) {
        self.stats.connected.fetch_add(1, Ordering::Relaxed);
        if cx.migration().is_some_and(|moved| moved.to() == &*self.server_name) {
            self.stats.migrated_in.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[on_disconnected]
    async fn count_disconnected(&self, cx: &HubContext<Self>, _error: Option<HubError>) {
        self.stats.disconnected.fetch_add(1, Ordering::Relaxed);
        if cx.migration().is_some_and(|moved| moved.from() == &*self.server_name) {
            self.stats.migrated_out.fetch_add(1, Ordering::Relaxed);
        }
    }
}
