//! Messages that carry hub payloads from the app server to many clients, and the client
//! invocation (client results) messages.
//!
//! A payload map holds the same hub message encoded once per hub protocol, keyed by the
//! protocol's name (`"json"`, `"messagepack"`); the service gives each client the one for its
//! protocol. It is kept as an ordered list of `(name, bytes)`.

use bytes::Bytes;

/// The same message encoded once per hub protocol: `[(protocol name, bytes)]`.
pub type Payloads = Vec<(String, Bytes)>;

/// `MultiConnectionData` (type 7): payloads for a list of client connections.
///
/// Wire: `[7, [connectionIds], {payloads}, {ext: tracing id, filter}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiConnectionData {
    /// The target connections.
    pub connection_ids: Vec<String>,
    /// The payloads, by protocol name.
    pub payloads: Payloads,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
    /// A subscriber filter expression (extension member 4).
    pub filter: Option<String>,
}

/// `UserData` (type 8): payloads for every connection of one user.
///
/// Wire: `[8, userId, {payloads}, {ext: tracing id, filter}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserData {
    /// The target user.
    pub user_id: String,
    /// The payloads, by protocol name.
    pub payloads: Payloads,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
    /// A subscriber filter expression (extension member 4).
    pub filter: Option<String>,
}

/// `MultiUserData` (type 9): payloads for every connection of several users.
///
/// Wire: `[9, [userIds], {payloads}, {ext: tracing id, filter}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiUserData {
    /// The target users.
    pub user_ids: Vec<String>,
    /// The payloads, by protocol name.
    pub payloads: Payloads,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
    /// A subscriber filter expression (extension member 4).
    pub filter: Option<String>,
}

/// `BroadcastData` (type 10): payloads for every connection of the hub but the excluded ones.
///
/// Wire: `[10, [excludedConnectionIds], {payloads}, {ext: tracing id, filter}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastData {
    /// Connections that must not receive the payload.
    pub excluded: Vec<String>,
    /// The payloads, by protocol name.
    pub payloads: Payloads,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
    /// A subscriber filter expression (extension member 4).
    pub filter: Option<String>,
}

/// `GroupBroadcastData` (type 13): payloads for every connection in a group.
///
/// Wire: `[13, group, [excludedConnectionIds], {payloads}, {ext: tracing id, filter},
/// [excludedUserIds], callerUserId]`; older peers send four or five items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupBroadcastData {
    /// The target group.
    pub group: String,
    /// Connections that must not receive the payload.
    pub excluded: Vec<String>,
    /// The payloads, by protocol name.
    pub payloads: Payloads,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
    /// A subscriber filter expression (extension member 4).
    pub filter: Option<String>,
    /// Users whose connections must not receive the payload.
    pub excluded_users: Vec<String>,
    /// The user who sent it, if known.
    pub caller_user_id: Option<String>,
}

/// `MultiGroupBroadcastData` (type 14): payloads for every connection in several groups.
///
/// Wire: `[14, [groups], {payloads}, {ext: tracing id, filter}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiGroupBroadcastData {
    /// The target groups.
    pub groups: Vec<String>,
    /// The payloads, by protocol name.
    pub payloads: Payloads,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
    /// A subscriber filter expression (extension member 4).
    pub filter: Option<String>,
}

/// `ClientInvocation` (type 34): an invocation that expects a client result, sent to the
/// service (and, routed globally, between servers).
///
/// Wire: `[34, invocationId, connectionId, callerServerId, {payloads}, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInvocation {
    /// The invocation's id.
    pub invocation_id: String,
    /// The client connection that is to answer.
    pub connection_id: String,
    /// The server waiting for the result.
    pub caller_server_id: String,
    /// The invocation, by protocol name.
    pub payloads: Payloads,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `ClientCompletion` (type 35): a client's successful result, relayed to the caller server.
///
/// Wire: `[35, invocationId, connectionId, callerServerId, protocol, payload, {ext: tracing
/// id, protocol}]`. The protocol name is written twice, as an item and as extension member 3,
/// as the reference SDK does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCompletion {
    /// The invocation's id.
    pub invocation_id: String,
    /// The client connection that answered.
    pub connection_id: String,
    /// The server waiting for the result.
    pub caller_server_id: String,
    /// The hub protocol the payload is encoded in.
    pub protocol: Option<String>,
    /// The client's completion message, as it sent it (sliced from the record when read).
    pub payload: Bytes,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `ErrorCompletion` (type 36): a client invocation failed (the client left, timed out, or
/// answered with an error).
///
/// Wire: `[36, invocationId, connectionId, callerServerId, error, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCompletion {
    /// The invocation's id.
    pub invocation_id: String,
    /// The client connection that was to answer.
    pub connection_id: String,
    /// The server waiting for the result.
    pub caller_server_id: String,
    /// The error text.
    pub error: Option<String>,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `ServiceMapping` (type 37): the service tells the caller server which service instance
/// serves the client of a pending client invocation.
///
/// Wire: `[37, invocationId, connectionId, instanceId, {ext}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceMapping {
    /// The invocation's id.
    pub invocation_id: String,
    /// The client connection that is to answer.
    pub connection_id: String,
    /// The service instance the client is on.
    pub instance_id: String,
}
