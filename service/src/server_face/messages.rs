//! What the relay does with each message an app server sends: data for clients (one, many,
//! groups, users, everyone), group and user membership, existence checks and closes (with
//! their acks), client invocations and their completions, and pings.

use std::sync::Arc;

use switchboard::protocol::service::{
    Ack, AckStatus, CloseConnection, ErrorCompletion, GroupMemberQuery, Ping, PingKind, ServiceMapping, ServiceMessage,
    ServiceStatus, ShutdownMode,
};

use crate::state::Shared;
use crate::state::hub::{Closed, Hub, Selection};
use crate::state::server_link::ServerLink;

/// One server connection, as its messages are handled.
pub(crate) struct ServerContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) link: Arc<ServerLink>,
}

impl ServerContext {
    async fn reply(&self, message: ServiceMessage) {
        self.link.send(&message).await;
    }

    async fn ack(&self, ack_id: i32, found: bool) {
        let status = if found { AckStatus::Ok } else { AckStatus::NotFound };
        self.reply(ServiceMessage::Ack(Ack {
            ack_id,
            status,
            ..Ack::default()
        }))
        .await;
    }

    /// Tells each closed client's server connection (but this one's app server, when
    /// `skip_own` says the app closed it itself) that it is gone.
    async fn notify_closed(&self, closed: Vec<Closed>, reason: Option<String>, skip_own: bool) {
        for Closed { connection_id, server } in closed {
            if skip_own && server.same_server(&self.link) {
                continue;
            }
            let close = CloseConnection {
                connection_id,
                error_message: reason.clone(),
                ..CloseConnection::default()
            };
            server.send(&ServiceMessage::CloseConnection(close)).await;
        }
    }
}

/// Handles one message from an app server.
pub(crate) async fn handle(cx: &ServerContext, message: ServiceMessage) {
    use ServiceMessage as M;
    let hub = &cx.hub;
    match message {
        M::Ping(ping) => handle_ping(cx, ping).await,
        M::ConnectionData(data) => {
            hub.send_to_connection(&data.connection_id, data.payload);
        }
        M::CloseConnection(close) if hub.served_by(&close.connection_id, &cx.link) => {
            let closed = hub.close(Selection::Connection(&close.connection_id), &[]);
            cx.notify_closed(closed, close.error_message, true).await;
        }
        // From a server the client has moved away from (or an unknown client), it only says
        // that server has sent everything it had for the client.
        M::CloseConnection(_) => {}
        M::MultiConnectionData(m) => hub.connections_send(&m.connection_ids, &m.payloads),
        M::UserData(m) => hub.users_send(std::slice::from_ref(&m.user_id), &m.payloads),
        M::MultiUserData(m) => hub.users_send(&m.user_ids, &m.payloads),
        M::BroadcastData(m) => hub.broadcast(&m.excluded, &m.payloads),
        M::GroupBroadcastData(m) => hub.group_send(&m.group, &m.excluded, &m.excluded_users, &m.payloads),
        M::MultiGroupBroadcastData(m) => hub.groups_send(&m.groups, &m.payloads),
        M::JoinGroup(m) => {
            hub.join_group(&m.connection_id, &m.group);
        }
        M::LeaveGroup(m) => {
            hub.leave_group(&m.connection_id, m.group.as_deref());
        }
        M::JoinGroupWithAck(m) => {
            let found = hub.join_group(&m.connection_id, &m.group);
            cx.ack(m.ack_id, found).await;
        }
        M::LeaveGroupWithAck(m) => {
            let found = hub.leave_group(&m.connection_id, m.group.as_deref());
            cx.ack(m.ack_id, found).await;
        }
        M::UserJoinGroup(m) => hub.user_join_group(&m.user_id, &m.group, m.ttl),
        M::UserLeaveGroup(m) => hub.user_leave_group(&m.user_id, m.group.as_deref()),
        M::UserJoinGroupWithAck(m) => {
            hub.user_join_group(&m.user_id, &m.group, m.ttl);
            cx.ack(m.ack_id, true).await;
        }
        M::UserLeaveGroupWithAck(m) => {
            hub.user_leave_group(&m.user_id, m.group.as_deref());
            cx.ack(m.ack_id, true).await;
        }
        M::CheckUserInGroupWithAck(m) => cx.ack(m.ack_id, hub.user_in_group(&m.user_id, &m.group)).await,
        M::CheckGroupExistenceWithAck(m) => cx.ack(m.ack_id, hub.group_exists(&m.group)).await,
        M::CheckConnectionExistenceWithAck(m) => cx.ack(m.ack_id, hub.connection_exists(&m.connection_id)).await,
        M::CheckUserExistenceWithAck(m) => cx.ack(m.ack_id, hub.user_exists(&m.user_id)).await,
        M::CloseConnectionWithAck(m) => {
            let closed = hub.close(Selection::Connection(&m.connection_id), &[]);
            cx.notify_closed(closed, m.reason, false).await;
            cx.ack(m.ack_id, true).await;
        }
        M::CloseConnectionsWithAck(m) => {
            let closed = hub.close(Selection::All, &m.excluded);
            cx.notify_closed(closed, m.reason, false).await;
            cx.ack(m.ack_id, true).await;
        }
        M::CloseUserConnectionsWithAck(m) => {
            let closed = hub.close(Selection::User(&m.user_id), &m.excluded);
            cx.notify_closed(closed, m.reason, false).await;
            cx.ack(m.ack_id, true).await;
        }
        M::CloseGroupConnectionsWithAck(m) => {
            let closed = hub.close(Selection::Group(&m.group), &m.excluded);
            cx.notify_closed(closed, m.reason, false).await;
            cx.ack(m.ack_id, true).await;
        }
        M::GroupMemberQuery(query) => handle_member_query(cx, query).await,
        M::ClientInvocation(invocation) => {
            // The client's own app server (when it is another one) must know of the
            // invocation before the client can answer it: it relays the answer back.
            let owner = hub.server_of(&invocation.connection_id);
            match owner {
                Some(owner) if !owner.same_server(&cx.link) => {
                    owner.send(&M::ClientInvocation(invocation.clone())).await;
                    cx.reply(M::ServiceMapping(ServiceMapping {
                        invocation_id: invocation.invocation_id.clone(),
                        connection_id: invocation.connection_id.clone(),
                        instance_id: cx.shared.instance_id.clone(),
                    }))
                    .await;
                }
                Some(_) => {}
                None => {
                    let error = format!("Connection '{}' does not exist.", invocation.connection_id);
                    cx.reply(M::ErrorCompletion(ErrorCompletion {
                        invocation_id: invocation.invocation_id,
                        connection_id: invocation.connection_id,
                        caller_server_id: invocation.caller_server_id,
                        error: Some(error),
                        tracing_id: invocation.tracing_id,
                    }))
                    .await;
                    return;
                }
            }
            hub.deliver_to_connection(&invocation.connection_id, &invocation.payloads);
        }
        M::ClientCompletion(completion) => {
            let caller = completion.caller_server_id.clone();
            forward_to_server(cx, &caller, M::ClientCompletion(completion)).await;
        }
        M::ErrorCompletion(completion) => {
            let caller = completion.caller_server_id.clone();
            forward_to_server(cx, &caller, M::ErrorCompletion(completion)).await;
        }
        // A repeated handshake, messages only the service sends, and what this relay does not
        // implement (access keys for Entra ID, flow control) are ignored.
        _ => {}
    }
}

/// Sends a client invocation's completion to the app server waiting for it.
async fn forward_to_server(cx: &ServerContext, server_id: &str, message: ServiceMessage) {
    match cx.hub.server_named(server_id) {
        Some(server) => {
            server.send(&message).await;
        }
        None => tracing::debug!(hub = cx.hub.key(), "completion for an app server that is not connected"),
    }
}

async fn handle_ping(cx: &ServerContext, ping: Ping) {
    // Echo pings are answered by the link itself.
    let reply = match ping.kind() {
        PingKind::Status(_) => {
            let (clients, servers) = cx.hub.counts();
            Some(Ping::service_status(ServiceStatus {
                active: clients > 0,
                client_count: Some(i32::try_from(clients).unwrap_or(i32::MAX)),
                server_count: Some(i32::try_from(servers).unwrap_or(i32::MAX)),
                // App servers weigh endpoints by free capacity when they pick one for a client.
                capacity: cx
                    .shared
                    .config
                    .max_clients_per_hub
                    .map(|max| i32::try_from(max).unwrap_or(i32::MAX)),
            }))
        }
        PingKind::Shutdown(mode) => {
            cx.link.set_offline();
            match mode {
                ShutdownMode::DropClients => cx.hub.close_pinned_to(&cx.link),
                // Where no other server takes them, they stay until they leave.
                ShutdownMode::MigrateClients => {
                    let moving = cx.hub.migrate_clients_of(&cx.link);
                    tracing::debug!(hub = %cx.hub.key(), moving, "moving the clients of a server that shuts down");
                }
                ShutdownMode::WaitForClientsClose => {}
            }
            Some(Ping::fin_ack())
        }
        PingKind::ServersRequest => {
            let (tag, names) = cx.hub.servers();
            Some(Ping::servers(tag, &names))
        }
        _ => None,
    };
    if let Some(reply) = reply {
        cx.reply(ServiceMessage::Ping(reply)).await;
    }
}

async fn handle_member_query(cx: &ServerContext, query: GroupMemberQuery) {
    let page = cx
        .hub
        .group_members(&query.group, query.max, query.continuation_token.as_deref());
    let mut payload = Vec::new();
    page.encode(&mut payload);
    cx.reply(ServiceMessage::Ack(Ack {
        ack_id: query.ack_id,
        status: AckStatus::Ok,
        message: None,
        payload: Some(payload.into()),
    }))
    .await;
}
