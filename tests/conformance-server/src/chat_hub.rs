//! ChatHub: broadcast, groups, users and connections, plus the benchmark methods.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use switchboard::types::Dynamic;
use switchboard::{Hub, HubContext, HubError, Methods};

/// Counts of connections that came and went.
#[derive(Default)]
pub struct Stats {
    pub connected: AtomicU64,
    pub disconnected: AtomicU64,
}

pub struct ChatHub {
    pub stats: Arc<Stats>,
}

type Cx = HubContext<ChatHub>;

impl Hub for ChatHub {
    fn methods(m: &mut Methods<Self>) {
        m.method("Broadcast", |_, cx: Cx, (name, message): (String, String)| async move {
            cx.clients().all().send("Send", (name, message)).await
        });
        m.method(
            "BroadcastOthers",
            |_, cx: Cx, (name, message): (String, String)| async move {
                cx.clients().others().send("Send", (name, message)).await
            },
        );
        m.method("JoinGroup", |_, cx: Cx, (group,): (String,)| async move {
            cx.groups().add(cx.connection_id(), &group).await
        });
        m.method("LeaveGroup", |_, cx: Cx, (group,): (String,)| async move {
            cx.groups().remove(cx.connection_id(), &group).await
        });
        m.method(
            "SendToGroup",
            |_, cx: Cx, (group, message): (String, String)| async move {
                cx.clients()
                    .group(group.clone())
                    .send("GroupMessage", (group, message))
                    .await
            },
        );
        m.method(
            "SendToOthersInGroup",
            |_, cx: Cx, (group, message): (String, String)| async move {
                cx.clients()
                    .others_in_group(group.clone())
                    .send("GroupMessage", (group, message))
                    .await
            },
        );
        m.method(
            "SendToGroupExcept",
            |_, cx: Cx, (group, excluded, message): (String, String, String)| async move {
                cx.clients()
                    .group_except(group.clone(), [excluded])
                    .send("GroupMessage", (group, message))
                    .await
            },
        );
        m.method(
            "SendToGroups",
            |_, cx: Cx, (groups, message): (Vec<String>, String)| async move {
                cx.clients().groups(groups).send("GroupMessage", ("*", message)).await
            },
        );
        m.method(
            "SendToUser",
            |_, cx: Cx, (user, message): (String, String)| async move {
                cx.clients().user(user).send("UserMessage", (message,)).await
            },
        );
        m.method(
            "SendToUsers",
            |_, cx: Cx, (users, message): (Vec<String>, String)| async move {
                cx.clients().users(users).send("UserMessage", (message,)).await
            },
        );
        m.method(
            "SendToConnection",
            |_, cx: Cx, (id, message): (String, String)| async move {
                cx.clients().client(id).send("Direct", (message,)).await
            },
        );
        m.method(
            "SendToConnections",
            |_, cx: Cx, (ids, message): (Vec<String>, String)| async move {
                cx.clients().clients(ids).send("Direct", (message,)).await
            },
        );
        m.method(
            "SendToAllExcept",
            |_, cx: Cx, (excluded, message): (Vec<String>, String)| async move {
                cx.clients().all_except(excluded).send("Send", ("*", message)).await
            },
        );
        m.method("Echo", |_, _, (ticks, payload): (Dynamic, Dynamic)| async move {
            Ok::<_, HubError>((ticks, payload))
        });
        m.method(
            "EchoMeasure",
            |_, cx: Cx, (ticks, payload): (Dynamic, Dynamic)| async move {
                cx.clients().caller().send("Measure", (ticks, payload)).await
            },
        );
        m.method(
            "BroadcastMeasure",
            |_, cx: Cx, (ticks, payload): (Dynamic, Dynamic)| async move {
                cx.clients().all().send("Measure", (ticks, payload)).await
            },
        );
        m.method(
            "GroupMeasure",
            |_, cx: Cx, (group, ticks, payload): (String, Dynamic, Dynamic)| async move {
                cx.clients().group(group).send("Measure", (ticks, payload)).await
            },
        );
        m.method("Disconnect", |_, cx: Cx, ()| async move {
            cx.abort();
            Ok::<_, HubError>(())
        });
    }

    async fn on_connected(self: Arc<Self>, _cx: Cx) -> Result<(), HubError> {
        self.stats.connected.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn on_disconnected(self: Arc<Self>, _cx: Cx, _error: Option<HubError>) {
        self.stats.disconnected.fetch_add(1, Ordering::Relaxed);
    }
}
