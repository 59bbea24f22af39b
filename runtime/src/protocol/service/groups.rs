//! Group membership messages: connections and users joining and leaving groups, with and
//! without an [`Ack`](super::Ack), and the paged group member query.

use bytes::Bytes;

use super::fields::Reader;
use super::writer;
use crate::protocol::ProtocolError;

/// `JoinGroup` (type 11): add a connection to a group.
///
/// Wire: `[11, connectionId, group, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinGroup {
    /// The connection.
    pub connection_id: String,
    /// The group.
    pub group: String,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `LeaveGroup` (type 12): remove a connection from a group.
///
/// Wire: `[12, connectionId, group, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaveGroup {
    /// The connection.
    pub connection_id: String,
    /// The group (the reference reader accepts nil here).
    pub group: Option<String>,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `UserJoinGroup` (type 16): add a user (all its connections, present and future) to a group.
///
/// Wire: `[16, userId, group, {ext: tracing id, ttl}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserJoinGroup {
    /// The user.
    pub user_id: String,
    /// The group.
    pub group: String,
    /// How long the membership lasts, in seconds (extension member 2); `None` is forever.
    pub ttl: Option<i32>,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `UserLeaveGroup` (type 17): remove a user from a group, or from every group.
///
/// Wire: `[17, userId, group, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLeaveGroup {
    /// The user.
    pub user_id: String,
    /// The group; `None` (nil) removes the user from all groups.
    pub group: Option<String>,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `JoinGroupWithAck` (type 18): [`JoinGroup`] answered by an [`Ack`](super::Ack).
///
/// Wire: `[18, connectionId, group, ackId, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinGroupWithAck {
    /// The connection.
    pub connection_id: String,
    /// The group.
    pub group: String,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `LeaveGroupWithAck` (type 19): [`LeaveGroup`] answered by an [`Ack`](super::Ack).
///
/// Wire: `[19, connectionId, group, ackId, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaveGroupWithAck {
    /// The connection.
    pub connection_id: String,
    /// The group (the reference reader accepts nil here).
    pub group: Option<String>,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `UserJoinGroupWithAck` (type 26): [`UserJoinGroup`] answered by an [`Ack`](super::Ack).
///
/// Wire: `[26, userId, group, ackId, {ext: tracing id, ttl}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserJoinGroupWithAck {
    /// The user.
    pub user_id: String,
    /// The group.
    pub group: String,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// How long the membership lasts, in seconds (extension member 2); `None` is forever.
    pub ttl: Option<i32>,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `UserLeaveGroupWithAck` (type 27): [`UserLeaveGroup`] answered by an [`Ack`](super::Ack).
///
/// Wire: `[27, userId, group, ackId, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLeaveGroupWithAck {
    /// The user.
    pub user_id: String,
    /// The group; `None` (nil) removes the user from all groups.
    pub group: Option<String>,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// `GroupMemberQuery` (type 40): ask for one page of a group's members. The service answers
/// with an [`Ack`](super::Ack) whose payload is a [`GroupMemberQueryResponse`].
///
/// Wire: `[40, {ext: tracing id}, group, ackId, max, continuationToken]` (the extension map
/// comes first in this message).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMemberQuery {
    /// The group.
    pub group: String,
    /// The id the Ack will carry.
    pub ack_id: i32,
    /// The most members to return.
    pub max: i32,
    /// Where the previous page ended; `None` for the first page.
    pub continuation_token: Option<String>,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// The payload of the [`Ack`](super::Ack) that answers a [`GroupMemberQuery`]:
/// `[[[connectionId, userId], …], continuationToken]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMemberQueryResponse {
    /// The members on this page.
    pub members: Vec<GroupMember>,
    /// Where to continue; `None` when this is the last page.
    pub continuation_token: Option<String>,
}

/// A connection in a group: `[connectionId, userId]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMember {
    /// The connection.
    pub connection_id: String,
    /// Its user, if it has one.
    pub user_id: Option<String>,
}

impl GroupMemberQueryResponse {
    /// Decodes an Ack payload. Like the reference reader, it does not check the outer array's
    /// length and ignores anything after the items it reads.
    pub fn decode(payload: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload);
        r.array_len("groupMemberQueryResponse")?;
        let count = r.array_len("groupMembers")?;
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            r.array_len("groupMembers")?;
            members.push(GroupMember {
                connection_id: r.string("ConnectionId")?,
                user_id: r.string_or_nil("UserId")?,
            });
        }
        Ok(GroupMemberQueryResponse {
            members,
            continuation_token: r.string_or_nil("ContinuationToken")?,
        })
    }

    /// Appends the encoded payload to `out` (not framed: it goes inside an Ack).
    pub fn encode(&self, out: &mut Vec<u8>) {
        writer::array(out, 2);
        writer::array(out, self.members.len());
        for member in &self.members {
            writer::array(out, 2);
            writer::str(out, &member.connection_id);
            writer::opt_str(out, member.user_id.as_deref());
        }
        writer::opt_str(out, self.continuation_token.as_deref());
    }
}
