//! The [`Ack`] and the requests that only exist to be acknowledged: the existence checks and
//! the close-connections commands.

use bytes::Bytes;

/// `Ack` (type 20): the service's answer to a message that carried an ack id.
///
/// Wire: `[20, ackId, status, message, {ext}, payload]`; older peers send four or five items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ack {
    /// The ack id of the message answered.
    pub ack_id: i32,
    /// The outcome.
    pub status: AckStatus,
    /// Details about the outcome. The reference SDK writes an empty string by default.
    pub message: Option<String>,
    /// A result, for queries (see [`GroupMemberQueryResponse`](super::GroupMemberQueryResponse));
    /// written as nil when absent.
    pub payload: Option<Bytes>,
}

/// The outcome an [`Ack`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AckStatus {
    /// Done, or (for checks) yes (1).
    #[default]
    Ok,
    /// Not found, or (for checks) no (2).
    NotFound,
    /// The service timed out (3).
    Timeout,
    /// The service failed (4).
    InternalServerError,
    /// A status this implementation does not know, kept as it is.
    Other(i32),
}

impl AckStatus {
    /// The number on the wire.
    pub fn code(self) -> i32 {
        match self {
            AckStatus::Ok => 1,
            AckStatus::NotFound => 2,
            AckStatus::Timeout => 3,
            AckStatus::InternalServerError => 4,
            AckStatus::Other(code) => code,
        }
    }

    /// The status for a number on the wire.
    pub fn from_code(code: i32) -> Self {
        match code {
            1 => AckStatus::Ok,
            2 => AckStatus::NotFound,
            3 => AckStatus::Timeout,
            4 => AckStatus::InternalServerError,
            code => AckStatus::Other(code),
        }
    }
}

/// `CheckUserInGroupWithAck` (type 21): is the user in the group? Ok means yes, NotFound no.
///
/// Wire: `[21, userId, group, ackId, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckUserInGroupWithAck {
    /// The user.
    pub user_id: String,
    /// The group.
    pub group: String,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `CheckGroupExistenceWithAck` (type 23): does the group have any connection?
///
/// Wire: `[23, group, ackId, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckGroupExistenceWithAck {
    /// The group.
    pub group: String,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `CheckConnectionExistenceWithAck` (type 24): is the connection connected?
///
/// Wire: `[24, connectionId, ackId, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConnectionExistenceWithAck {
    /// The connection.
    pub connection_id: String,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `CheckUserExistenceWithAck` (type 25): does the user have any connection?
///
/// Wire: `[25, userId, ackId, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckUserExistenceWithAck {
    /// The user.
    pub user_id: String,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `CloseConnectionWithAck` (type 30, obsolete in the reference SDK in favour of
/// [`CloseConnection`](super::CloseConnection)): close one connection.
///
/// Wire: `[30, connectionId, reason, ackId, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseConnectionWithAck {
    /// The connection.
    pub connection_id: String,
    /// Why, as the client will be told.
    pub reason: Option<String>,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `CloseConnectionsWithAck` (type 31, obsolete in the reference SDK): close every connection
/// of the hub but the excluded ones.
///
/// Wire: `[31, reason, ackId, [excluded], {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseConnectionsWithAck {
    /// Why, as the clients will be told.
    pub reason: Option<String>,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// Connections to leave open.
    pub excluded: Vec<String>,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `CloseUserConnectionsWithAck` (type 32): close every connection of a user.
///
/// Wire: `[32, userId, reason, ackId, [excluded], {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseUserConnectionsWithAck {
    /// The user.
    pub user_id: String,
    /// Why, as the clients will be told.
    pub reason: Option<String>,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// Connections to leave open.
    pub excluded: Vec<String>,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `CloseGroupConnectionsWithAck` (type 33): close every connection in a group.
///
/// Wire: `[33, group, reason, ackId, [excluded], {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseGroupConnectionsWithAck {
    /// The group.
    pub group: String,
    /// Why, as the clients will be told.
    pub reason: Option<String>,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// Connections to leave open.
    pub excluded: Vec<String>,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}
