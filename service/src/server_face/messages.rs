//! What the relay does with each message an app server sends: data for clients (one, many,
//! groups, users, everyone), group and user membership, existence checks and closes (with
//! their acks), client invocations and their completions, and pings.

use std::sync::Arc;

use switchboard::protocol::service::{
    Ack, AckStatus, ClientInvocation, CloseConnection, ErrorCompletion, GroupMember, GroupMemberQueryResponse, Ping,
    PingKind, ServiceMapping, ServiceMessage, ServiceStatus, ShutdownMode,
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
}

/// Tells each closed client's server connection (but `skip`'s app server, which closed it
/// itself) that it is gone.
async fn notify_closed(closed: Vec<Closed>, reason: Option<&str>, skip: Option<&ServerLink>) {
    for Closed { connection_id, server } in closed {
        if skip.is_some_and(|skip| server.same_server(skip)) {
            continue;
        }
        let close = CloseConnection {
            connection_id,
            error_message: reason.map(str::to_owned),
            ..CloseConnection::default()
        };
        server.send(&ServiceMessage::CloseConnection(close)).await;
    }
}

/// Whether the other nodes of a cluster apply this message to their clients too.
fn fans_out(message: &ServiceMessage) -> bool {
    use ServiceMessage as M;
    matches!(
        message,
        M::MultiConnectionData(_)
            | M::UserData(_)
            | M::MultiUserData(_)
            | M::BroadcastData(_)
            | M::GroupBroadcastData(_)
            | M::MultiGroupBroadcastData(_)
            | M::UserJoinGroup(_)
            | M::UserLeaveGroup(_)
            | M::UserJoinGroupWithAck(_)
            | M::UserLeaveGroupWithAck(_)
    )
}

/// Applies a message that needs no answer to this node's clients: sends, and group changes.
/// `false` for a group change of a connection that is not here.
pub(crate) fn apply(hub: &Hub, message: &ServiceMessage) -> bool {
    use ServiceMessage as M;
    match message {
        M::MultiConnectionData(m) => hub.connections_send(&m.connection_ids, &m.payloads),
        M::UserData(m) => hub.users_send(std::slice::from_ref(&m.user_id), &m.payloads),
        M::MultiUserData(m) => hub.users_send(&m.user_ids, &m.payloads),
        M::BroadcastData(m) => hub.broadcast(&m.excluded, &m.payloads),
        M::GroupBroadcastData(m) => hub.group_send(&m.group, &m.excluded, &m.excluded_users, &m.payloads),
        M::MultiGroupBroadcastData(m) => hub.groups_send(&m.groups, &m.payloads),
        M::JoinGroup(m) => return hub.join_group(&m.connection_id, &m.group),
        M::LeaveGroup(m) => return hub.leave_group(&m.connection_id, m.group.as_deref()),
        M::UserJoinGroup(m) => hub.user_join_group(&m.user_id, &m.group, m.ttl),
        M::UserLeaveGroup(m) => hub.user_leave_group(&m.user_id, m.group.as_deref()),
        M::UserJoinGroupWithAck(m) => hub.user_join_group(&m.user_id, &m.group, m.ttl),
        M::UserLeaveGroupWithAck(m) => hub.user_leave_group(&m.user_id, m.group.as_deref()),
        _ => {}
    }
    true
}

/// Messages for app servers' connections, to send in order.
type Sends = Vec<(Arc<ServerLink>, ServiceMessage)>;

/// What a query found on this node, and the messages its answer takes to this node's app
/// servers.
#[derive(Default)]
pub(crate) struct Found {
    pub(crate) found: bool,
    /// A group member query's members here (all of them, in connection id order).
    pub(crate) members: Vec<GroupMember>,
    closed: Vec<Closed>,
    reason: Option<String>,
    /// A client invocation for a client here: the messages to send, in order, before it
    /// reaches the client.
    invocation: Option<(Sends, ClientInvocation)>,
}

/// Whether the answer of this node settles a query (no other node need be asked).
fn settles(message: &ServiceMessage, found: &Found) -> bool {
    use ServiceMessage as M;
    match message {
        // Every node closes its own.
        M::CloseConnectionsWithAck(_)
        | M::CloseUserConnectionsWithAck(_)
        | M::CloseGroupConnectionsWithAck(_)
        | M::GroupMemberQuery(_) => false,
        _ => found.found,
    }
}

/// Answers a query from this node's state, doing what it asks (a group change, a close) to
/// the clients here; `caller` is the app server's connection that asked, when it is here.
/// Nothing is sent yet: see [`Found::finish`].
pub(crate) fn answer_here(
    hub: &Hub,
    message: &ServiceMessage,
    caller: Option<&Arc<ServerLink>>,
    instance_id: &str,
) -> Found {
    use ServiceMessage as M;
    let found = |found: bool| Found {
        found,
        ..Found::default()
    };
    let closing = |closed: Vec<Closed>, reason: &Option<String>| Found {
        found: !closed.is_empty(),
        closed,
        reason: reason.clone(),
        ..Found::default()
    };
    match message {
        M::JoinGroupWithAck(m) => found(hub.join_group(&m.connection_id, &m.group)),
        M::LeaveGroupWithAck(m) => found(hub.leave_group(&m.connection_id, m.group.as_deref())),
        M::CheckUserInGroupWithAck(m) => found(hub.user_in_group(&m.user_id, &m.group)),
        M::CheckGroupExistenceWithAck(m) => found(hub.group_exists(&m.group)),
        M::CheckConnectionExistenceWithAck(m) => found(hub.connection_exists(&m.connection_id)),
        M::CheckUserExistenceWithAck(m) => found(hub.user_exists(&m.user_id)),
        M::CloseConnectionWithAck(m) => closing(hub.close(Selection::Connection(&m.connection_id), &[]), &m.reason),
        M::CloseConnectionsWithAck(m) => closing(hub.close(Selection::All, &m.excluded), &m.reason),
        M::CloseUserConnectionsWithAck(m) => closing(hub.close(Selection::User(&m.user_id), &m.excluded), &m.reason),
        M::CloseGroupConnectionsWithAck(m) => closing(hub.close(Selection::Group(&m.group), &m.excluded), &m.reason),
        M::GroupMemberQuery(query) => {
            let members = hub.group_members(&query.group);
            Found {
                found: !members.is_empty(),
                members,
                ..Found::default()
            }
        }
        M::ClientInvocation(invocation) => {
            let Some(owner) = hub.server_of(&invocation.connection_id) else {
                return found(false);
            };
            // The caller's own connection, or (asked by another node) one of its app server here.
            let caller = caller
                .cloned()
                .or_else(|| hub.server_named(&invocation.caller_server_id));
            let mut sends = Vec::new();
            // The client's own app server (when it is another one) must know of the invocation
            // before the client can answer it: it relays the answer back.
            let owner_is_caller = caller.as_ref().is_some_and(|caller| owner.same_server(caller))
                || owner.server_id.as_deref() == Some(invocation.caller_server_id.as_str());
            if !owner_is_caller {
                sends.push((owner, M::ClientInvocation(invocation.clone())));
                if let Some(caller) = caller {
                    sends.push((
                        caller,
                        M::ServiceMapping(ServiceMapping {
                            invocation_id: invocation.invocation_id.clone(),
                            connection_id: invocation.connection_id.clone(),
                            instance_id: instance_id.to_owned(),
                        }),
                    ));
                }
            }
            Found {
                found: true,
                invocation: Some((sends, invocation.clone())),
                ..Found::default()
            }
        }
        _ => found(false),
    }
}

impl Found {
    /// Sends what the answer takes: closed clients' server connections are told, a client
    /// invocation goes to the client's app server and the caller, then to the client.
    pub(crate) async fn finish(&mut self, hub: &Hub) {
        notify_closed(std::mem::take(&mut self.closed), self.reason.as_deref(), None).await;
        if let Some((sends, invocation)) = self.invocation.take() {
            for (link, message) in sends {
                link.send(&message).await;
            }
            hub.deliver_to_connection(&invocation.connection_id, &invocation.payloads);
        }
    }
}

/// One page of members (sorted by connection id): at most `max` (all when `max` is not
/// positive), after the connection id `after`.
fn page_of(members: &[GroupMember], max: i32, after: Option<&str>) -> GroupMemberQueryResponse {
    let start = after.map_or(0, |after| {
        members.partition_point(|m| m.connection_id.as_str() <= after)
    });
    let limit = usize::try_from(max).ok().filter(|max| *max > 0).unwrap_or(usize::MAX);
    let page: Vec<GroupMember> = members.iter().skip(start).take(limit).cloned().collect();
    let more = start + page.len() < members.len();
    GroupMemberQueryResponse {
        continuation_token: if more {
            page.last().map(|m| m.connection_id.clone())
        } else {
            None
        },
        members: page,
    }
}

/// The ack id a query message carries.
fn ack_id(message: &ServiceMessage) -> Option<i32> {
    use ServiceMessage as M;
    Some(match message {
        M::JoinGroupWithAck(m) => m.ack_id,
        M::LeaveGroupWithAck(m) => m.ack_id,
        M::CheckUserInGroupWithAck(m) => m.ack_id,
        M::CheckGroupExistenceWithAck(m) => m.ack_id,
        M::CheckConnectionExistenceWithAck(m) => m.ack_id,
        M::CheckUserExistenceWithAck(m) => m.ack_id,
        M::CloseConnectionWithAck(m) => m.ack_id,
        M::CloseConnectionsWithAck(m) => m.ack_id,
        M::CloseUserConnectionsWithAck(m) => m.ack_id,
        M::CloseGroupConnectionsWithAck(m) => m.ack_id,
        M::GroupMemberQuery(m) => m.ack_id,
        _ => return None,
    })
}

/// Whether the relay answers this message with an ack or a completion (here and, in a
/// cluster, on the other nodes).
fn is_query(message: &ServiceMessage) -> bool {
    ack_id(message).is_some() || matches!(message, ServiceMessage::ClientInvocation(_))
}

/// Answers the app server that asked: from this node's answer and the other nodes'.
async fn reply_to_query(cx: &ServerContext, message: &ServiceMessage, here: Found, others: Vec<Ack>) {
    use ServiceMessage as M;
    let found = here.found || others.iter().any(|ack| ack.status == AckStatus::Ok);
    match message {
        M::ClientInvocation(invocation) if !found => {
            let error = format!("Connection '{}' does not exist.", invocation.connection_id);
            cx.reply(M::ErrorCompletion(ErrorCompletion {
                invocation_id: invocation.invocation_id.clone(),
                connection_id: invocation.connection_id.clone(),
                caller_server_id: invocation.caller_server_id.clone(),
                error: Some(error),
                tracing_id: invocation.tracing_id,
            }))
            .await;
        }
        M::ClientInvocation(_) => {}
        M::GroupMemberQuery(query) => {
            let mut members = here.members;
            for ack in &others {
                if let Some(payload) = &ack.payload
                    && let Ok(theirs) = GroupMemberQueryResponse::decode(payload.clone())
                {
                    members.extend(theirs.members);
                }
            }
            members.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
            members.dedup_by(|a, b| a.connection_id == b.connection_id);
            let page = page_of(&members, query.max, query.continuation_token.as_deref());
            let mut payload = Vec::new();
            page.encode(&mut payload);
            cx.reply(M::Ack(Ack {
                ack_id: query.ack_id,
                status: AckStatus::Ok,
                message: None,
                payload: Some(payload.into()),
            }))
            .await;
        }
        // Closes are done once every node has closed its own.
        M::CloseConnectionWithAck(_)
        | M::CloseConnectionsWithAck(_)
        | M::CloseUserConnectionsWithAck(_)
        | M::CloseGroupConnectionsWithAck(_) => {
            if let Some(id) = ack_id(message) {
                cx.ack(id, true).await;
            }
        }
        other => {
            if let Some(id) = ack_id(other) {
                cx.ack(id, found).await;
            }
        }
    }
}

/// Handles one message from an app server.
pub(crate) async fn handle(cx: &Arc<ServerContext>, message: ServiceMessage) {
    use ServiceMessage as M;
    let hub = &cx.hub;
    let cluster = cx.shared.cluster.as_ref();
    if is_query(&message) {
        let mut here = answer_here(hub, &message, Some(&cx.link), &cx.shared.instance_id);
        here.finish(hub).await;
        match cluster {
            Some(cluster) if !settles(&message, &here) && cluster.has_peers() => {
                // The other nodes' answers are awaited aside: this connection's messages go on.
                let (cx, cluster) = (cx.clone(), cluster.clone());
                tokio::spawn(async move {
                    let others = cluster.query(cx.hub.key(), &message).await;
                    reply_to_query(&cx, &message, here, others).await;
                });
            }
            _ => reply_to_query(cx, &message, here, Vec::new()).await,
        }
        return;
    }
    if let Some(cluster) = cluster
        && fans_out(&message)
    {
        cluster.publish_message(hub.key(), &message);
    }
    match message {
        M::Ping(ping) => handle_ping(cx, ping).await,
        M::ConnectionData(data) => {
            hub.send_to_connection(&data.connection_id, data.payload);
        }
        M::CloseConnection(close) if hub.served_by(&close.connection_id, &cx.link) => {
            let closed = hub.close(Selection::Connection(&close.connection_id), &[]);
            notify_closed(closed, close.error_message.as_deref(), Some(&cx.link)).await;
        }
        // From a server the client has moved away from (or an unknown client), it only says
        // that server has sent everything it had for the client.
        M::CloseConnection(_) => {}
        M::JoinGroup(_) | M::LeaveGroup(_) => {
            // A connection elsewhere in the cluster: its node applies it.
            if !apply(hub, &message)
                && let Some(cluster) = cluster
            {
                cluster.publish_message(hub.key(), &message);
            }
        }
        M::UserJoinGroupWithAck(ref m) => {
            let ack = m.ack_id;
            apply(hub, &message);
            cx.ack(ack, true).await;
        }
        M::UserLeaveGroupWithAck(ref m) => {
            let ack = m.ack_id;
            apply(hub, &message);
            cx.ack(ack, true).await;
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
        other => {
            apply(hub, &other);
        }
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
