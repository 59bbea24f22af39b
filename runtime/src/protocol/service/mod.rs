//! The Azure SignalR Service *server protocol*, sans-IO: the messages between an app server
//! and the service that holds its clients' connections.
//!
//! Each message is one MessagePack array whose first item is the message type, preceded by
//! its length as a VarInt: split records off a byte stream with
//! [`split_binary_record`](super::framing::split_binary_record), [`parse`] each one, and
//! [`write()`] messages already framed. Integers take their smallest MessagePack form and
//! absent strings are nil, as the reference implementation (MessagePack-CSharp) writes them,
//! so written records are byte-for-byte the reference SDK's.
//!
//! | type | message | direction |
//! |---|---|---|
//! | 1, 2 | [`HandshakeRequest`], [`HandshakeResponse`] | server → service, service → server |
//! | 3 | [`Ping`] | both |
//! | 4, 5, 6 | [`OpenConnection`], [`CloseConnection`], [`ConnectionData`] | both |
//! | 7, 8, 9, 10 | [`MultiConnectionData`], [`UserData`], [`MultiUserData`], [`BroadcastData`] | server → service |
//! | 11, 12 | [`JoinGroup`], [`LeaveGroup`] | server → service |
//! | 13, 14 | [`GroupBroadcastData`], [`MultiGroupBroadcastData`] | server → service |
//! | 15 | [`ServiceError`] | service → server |
//! | 16, 17 | [`UserJoinGroup`], [`UserLeaveGroup`] | server → service |
//! | 18, 19 | [`JoinGroupWithAck`], [`LeaveGroupWithAck`] | server → service |
//! | 20 | [`Ack`] | service → server |
//! | 21 | [`CheckUserInGroupWithAck`] | server → service |
//! | 22 | [`ServiceEvent`] | service → server |
//! | 23, 24, 25 | [`CheckGroupExistenceWithAck`], [`CheckConnectionExistenceWithAck`], [`CheckUserExistenceWithAck`] | server → service |
//! | 26, 27 | [`UserJoinGroupWithAck`], [`UserLeaveGroupWithAck`] | server → service |
//! | 28, 29 | [`AccessKeyRequest`], [`AccessKeyResponse`] | server → service, service → server |
//! | 30, 31, 32, 33 | [`CloseConnectionWithAck`], [`CloseConnectionsWithAck`], [`CloseUserConnectionsWithAck`], [`CloseGroupConnectionsWithAck`] | server → service |
//! | 34, 35, 36 | [`ClientInvocation`], [`ClientCompletion`], [`ErrorCompletion`] | both |
//! | 37 | [`ServiceMapping`] | service → server |
//! | 38 | [`ConnectionReconnect`] | service → server |
//! | 39 | [`ConnectionFlowControl`] | both |
//! | 40 | [`GroupMemberQuery`] | server → service |
//!
//! Reading follows the reference reader: optional trailing items are read only when the array
//! has them, anything after the items a message type knows is ignored, unknown extension keys
//! are skipped, and records of unknown types are skipped ([`parse`] returns `Ok(None)`).
//! Payloads are sliced out of the record without copying.

mod acks;
mod connection;
mod data;
mod decode;
mod encode;
mod events;
mod extensions;
mod fields;
mod groups;
pub mod link;
pub mod message_type;
mod ping;
mod writer;

use bytes::Bytes;

pub use acks::{
    Ack, AckStatus, CheckConnectionExistenceWithAck, CheckGroupExistenceWithAck, CheckUserExistenceWithAck,
    CheckUserInGroupWithAck, CloseConnectionWithAck, CloseConnectionsWithAck, CloseGroupConnectionsWithAck,
    CloseUserConnectionsWithAck,
};
pub use connection::{
    AccessKeyRequest, AccessKeyResponse, CloseConnection, ConnectionData, ConnectionFlowControl, ConnectionReconnect,
    DataMessageType, FlowControlConnectionType, FlowControlOperation, HandshakeRequest, HandshakeResponse, INSTANCE_ID,
    MIGRATE_FROM, MIGRATE_TO, OpenConnection,
};
pub use data::{
    BroadcastData, ClientCompletion, ClientInvocation, ErrorCompletion, GroupBroadcastData, MultiConnectionData,
    MultiGroupBroadcastData, MultiUserData, Payloads, ServiceMapping, UserData,
};
pub use events::{ServiceError, ServiceEvent, ServiceEventKind, ServiceEventObjectType};
pub use groups::{
    GroupMember, GroupMemberQuery, GroupMemberQueryResponse, JoinGroup, JoinGroupWithAck, LeaveGroup,
    LeaveGroupWithAck, UserJoinGroup, UserJoinGroupWithAck, UserLeaveGroup, UserLeaveGroupWithAck,
};
pub use ping::{Ping, PingKind, ServiceStatus, ShutdownMode};

use super::ProtocolError;

/// The service protocol version this implementation speaks, sent in [`HandshakeRequest`].
pub const SERVICE_PROTOCOL_VERSION: i32 = 1;

/// One service protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceMessage {
    /// Type 1.
    HandshakeRequest(HandshakeRequest),
    /// Type 2.
    HandshakeResponse(HandshakeResponse),
    /// Type 3.
    Ping(Ping),
    /// Type 4.
    OpenConnection(OpenConnection),
    /// Type 5.
    CloseConnection(CloseConnection),
    /// Type 6.
    ConnectionData(ConnectionData),
    /// Type 7.
    MultiConnectionData(MultiConnectionData),
    /// Type 8.
    UserData(UserData),
    /// Type 9.
    MultiUserData(MultiUserData),
    /// Type 10.
    BroadcastData(BroadcastData),
    /// Type 11.
    JoinGroup(JoinGroup),
    /// Type 12.
    LeaveGroup(LeaveGroup),
    /// Type 13.
    GroupBroadcastData(GroupBroadcastData),
    /// Type 14.
    MultiGroupBroadcastData(MultiGroupBroadcastData),
    /// Type 15.
    ServiceError(ServiceError),
    /// Type 16.
    UserJoinGroup(UserJoinGroup),
    /// Type 17.
    UserLeaveGroup(UserLeaveGroup),
    /// Type 18.
    JoinGroupWithAck(JoinGroupWithAck),
    /// Type 19.
    LeaveGroupWithAck(LeaveGroupWithAck),
    /// Type 20.
    Ack(Ack),
    /// Type 21.
    CheckUserInGroupWithAck(CheckUserInGroupWithAck),
    /// Type 22.
    ServiceEvent(ServiceEvent),
    /// Type 23.
    CheckGroupExistenceWithAck(CheckGroupExistenceWithAck),
    /// Type 24.
    CheckConnectionExistenceWithAck(CheckConnectionExistenceWithAck),
    /// Type 25.
    CheckUserExistenceWithAck(CheckUserExistenceWithAck),
    /// Type 26.
    UserJoinGroupWithAck(UserJoinGroupWithAck),
    /// Type 27.
    UserLeaveGroupWithAck(UserLeaveGroupWithAck),
    /// Type 28.
    AccessKeyRequest(AccessKeyRequest),
    /// Type 29.
    AccessKeyResponse(AccessKeyResponse),
    /// Type 30.
    CloseConnectionWithAck(CloseConnectionWithAck),
    /// Type 31.
    CloseConnectionsWithAck(CloseConnectionsWithAck),
    /// Type 32.
    CloseUserConnectionsWithAck(CloseUserConnectionsWithAck),
    /// Type 33.
    CloseGroupConnectionsWithAck(CloseGroupConnectionsWithAck),
    /// Type 34.
    ClientInvocation(ClientInvocation),
    /// Type 35.
    ClientCompletion(ClientCompletion),
    /// Type 36.
    ErrorCompletion(ErrorCompletion),
    /// Type 37.
    ServiceMapping(ServiceMapping),
    /// Type 38.
    ConnectionReconnect(ConnectionReconnect),
    /// Type 39.
    ConnectionFlowControl(ConnectionFlowControl),
    /// Type 40.
    GroupMemberQuery(GroupMemberQuery),
}

impl ServiceMessage {
    /// The message type number, the first item on the wire (see [`message_type`]).
    pub fn type_id(&self) -> u8 {
        use message_type as t;
        match self {
            ServiceMessage::HandshakeRequest(_) => t::HANDSHAKE_REQUEST,
            ServiceMessage::HandshakeResponse(_) => t::HANDSHAKE_RESPONSE,
            ServiceMessage::Ping(_) => t::PING,
            ServiceMessage::OpenConnection(_) => t::OPEN_CONNECTION,
            ServiceMessage::CloseConnection(_) => t::CLOSE_CONNECTION,
            ServiceMessage::ConnectionData(_) => t::CONNECTION_DATA,
            ServiceMessage::MultiConnectionData(_) => t::MULTI_CONNECTION_DATA,
            ServiceMessage::UserData(_) => t::USER_DATA,
            ServiceMessage::MultiUserData(_) => t::MULTI_USER_DATA,
            ServiceMessage::BroadcastData(_) => t::BROADCAST_DATA,
            ServiceMessage::JoinGroup(_) => t::JOIN_GROUP,
            ServiceMessage::LeaveGroup(_) => t::LEAVE_GROUP,
            ServiceMessage::GroupBroadcastData(_) => t::GROUP_BROADCAST_DATA,
            ServiceMessage::MultiGroupBroadcastData(_) => t::MULTI_GROUP_BROADCAST_DATA,
            ServiceMessage::ServiceError(_) => t::SERVICE_ERROR,
            ServiceMessage::UserJoinGroup(_) => t::USER_JOIN_GROUP,
            ServiceMessage::UserLeaveGroup(_) => t::USER_LEAVE_GROUP,
            ServiceMessage::JoinGroupWithAck(_) => t::JOIN_GROUP_WITH_ACK,
            ServiceMessage::LeaveGroupWithAck(_) => t::LEAVE_GROUP_WITH_ACK,
            ServiceMessage::Ack(_) => t::ACK,
            ServiceMessage::CheckUserInGroupWithAck(_) => t::CHECK_USER_IN_GROUP_WITH_ACK,
            ServiceMessage::ServiceEvent(_) => t::SERVICE_EVENT,
            ServiceMessage::CheckGroupExistenceWithAck(_) => t::CHECK_GROUP_EXISTENCE_WITH_ACK,
            ServiceMessage::CheckConnectionExistenceWithAck(_) => t::CHECK_CONNECTION_EXISTENCE_WITH_ACK,
            ServiceMessage::CheckUserExistenceWithAck(_) => t::CHECK_USER_EXISTENCE_WITH_ACK,
            ServiceMessage::UserJoinGroupWithAck(_) => t::USER_JOIN_GROUP_WITH_ACK,
            ServiceMessage::UserLeaveGroupWithAck(_) => t::USER_LEAVE_GROUP_WITH_ACK,
            ServiceMessage::AccessKeyRequest(_) => t::ACCESS_KEY_REQUEST,
            ServiceMessage::AccessKeyResponse(_) => t::ACCESS_KEY_RESPONSE,
            ServiceMessage::CloseConnectionWithAck(_) => t::CLOSE_CONNECTION_WITH_ACK,
            ServiceMessage::CloseConnectionsWithAck(_) => t::CLOSE_CONNECTIONS_WITH_ACK,
            ServiceMessage::CloseUserConnectionsWithAck(_) => t::CLOSE_USER_CONNECTIONS_WITH_ACK,
            ServiceMessage::CloseGroupConnectionsWithAck(_) => t::CLOSE_GROUP_CONNECTIONS_WITH_ACK,
            ServiceMessage::ClientInvocation(_) => t::CLIENT_INVOCATION,
            ServiceMessage::ClientCompletion(_) => t::CLIENT_COMPLETION,
            ServiceMessage::ErrorCompletion(_) => t::ERROR_COMPLETION,
            ServiceMessage::ServiceMapping(_) => t::SERVICE_MAPPING,
            ServiceMessage::ConnectionReconnect(_) => t::CONNECTION_RECONNECT,
            ServiceMessage::ConnectionFlowControl(_) => t::CONNECTION_FLOW_CONTROL,
            ServiceMessage::GroupMemberQuery(_) => t::GROUP_MEMBER_QUERY,
        }
    }
}

/// Parses one record (the bytes after its VarInt length prefix, as
/// [`split_binary_record`](super::framing::split_binary_record) returns them).
///
/// `Ok(None)` means a message type this implementation does not know; such records are
/// skipped, as the reference reader does. Malformed input is an error, never a panic.
pub fn parse(record: Bytes) -> Result<Option<ServiceMessage>, ProtocolError> {
    decode::parse(record)
}

/// Appends `message` to `out`, framed with its VarInt length prefix.
pub fn write(message: &ServiceMessage, out: &mut Vec<u8>) {
    encode::write_framed(message, out);
}

#[cfg(test)]
mod tests;
