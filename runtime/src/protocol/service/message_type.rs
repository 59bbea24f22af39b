//! The message type numbers: the first item of every record.

/// [`HandshakeRequest`](super::HandshakeRequest).
pub const HANDSHAKE_REQUEST: u8 = 1;
/// [`HandshakeResponse`](super::HandshakeResponse).
pub const HANDSHAKE_RESPONSE: u8 = 2;
/// [`Ping`](super::Ping).
pub const PING: u8 = 3;
/// [`OpenConnection`](super::OpenConnection).
pub const OPEN_CONNECTION: u8 = 4;
/// [`CloseConnection`](super::CloseConnection).
pub const CLOSE_CONNECTION: u8 = 5;
/// [`ConnectionData`](super::ConnectionData).
pub const CONNECTION_DATA: u8 = 6;
/// [`MultiConnectionData`](super::MultiConnectionData).
pub const MULTI_CONNECTION_DATA: u8 = 7;
/// [`UserData`](super::UserData).
pub const USER_DATA: u8 = 8;
/// [`MultiUserData`](super::MultiUserData).
pub const MULTI_USER_DATA: u8 = 9;
/// [`BroadcastData`](super::BroadcastData).
pub const BROADCAST_DATA: u8 = 10;
/// [`JoinGroup`](super::JoinGroup).
pub const JOIN_GROUP: u8 = 11;
/// [`LeaveGroup`](super::LeaveGroup).
pub const LEAVE_GROUP: u8 = 12;
/// [`GroupBroadcastData`](super::GroupBroadcastData).
pub const GROUP_BROADCAST_DATA: u8 = 13;
/// [`MultiGroupBroadcastData`](super::MultiGroupBroadcastData).
pub const MULTI_GROUP_BROADCAST_DATA: u8 = 14;
/// [`ServiceError`](super::ServiceError).
pub const SERVICE_ERROR: u8 = 15;
/// [`UserJoinGroup`](super::UserJoinGroup).
pub const USER_JOIN_GROUP: u8 = 16;
/// [`UserLeaveGroup`](super::UserLeaveGroup).
pub const USER_LEAVE_GROUP: u8 = 17;
/// [`JoinGroupWithAck`](super::JoinGroupWithAck).
pub const JOIN_GROUP_WITH_ACK: u8 = 18;
/// [`LeaveGroupWithAck`](super::LeaveGroupWithAck).
pub const LEAVE_GROUP_WITH_ACK: u8 = 19;
/// [`Ack`](super::Ack).
pub const ACK: u8 = 20;
/// [`CheckUserInGroupWithAck`](super::CheckUserInGroupWithAck).
pub const CHECK_USER_IN_GROUP_WITH_ACK: u8 = 21;
/// [`ServiceEvent`](super::ServiceEvent).
pub const SERVICE_EVENT: u8 = 22;
/// [`CheckGroupExistenceWithAck`](super::CheckGroupExistenceWithAck).
pub const CHECK_GROUP_EXISTENCE_WITH_ACK: u8 = 23;
/// [`CheckConnectionExistenceWithAck`](super::CheckConnectionExistenceWithAck).
pub const CHECK_CONNECTION_EXISTENCE_WITH_ACK: u8 = 24;
/// [`CheckUserExistenceWithAck`](super::CheckUserExistenceWithAck).
pub const CHECK_USER_EXISTENCE_WITH_ACK: u8 = 25;
/// [`UserJoinGroupWithAck`](super::UserJoinGroupWithAck).
pub const USER_JOIN_GROUP_WITH_ACK: u8 = 26;
/// [`UserLeaveGroupWithAck`](super::UserLeaveGroupWithAck).
pub const USER_LEAVE_GROUP_WITH_ACK: u8 = 27;
/// [`AccessKeyRequest`](super::AccessKeyRequest).
pub const ACCESS_KEY_REQUEST: u8 = 28;
/// [`AccessKeyResponse`](super::AccessKeyResponse).
pub const ACCESS_KEY_RESPONSE: u8 = 29;
/// [`CloseConnectionWithAck`](super::CloseConnectionWithAck).
pub const CLOSE_CONNECTION_WITH_ACK: u8 = 30;
/// [`CloseConnectionsWithAck`](super::CloseConnectionsWithAck).
pub const CLOSE_CONNECTIONS_WITH_ACK: u8 = 31;
/// [`CloseUserConnectionsWithAck`](super::CloseUserConnectionsWithAck).
pub const CLOSE_USER_CONNECTIONS_WITH_ACK: u8 = 32;
/// [`CloseGroupConnectionsWithAck`](super::CloseGroupConnectionsWithAck).
pub const CLOSE_GROUP_CONNECTIONS_WITH_ACK: u8 = 33;
/// [`ClientInvocation`](super::ClientInvocation).
pub const CLIENT_INVOCATION: u8 = 34;
/// [`ClientCompletion`](super::ClientCompletion).
pub const CLIENT_COMPLETION: u8 = 35;
/// [`ErrorCompletion`](super::ErrorCompletion).
pub const ERROR_COMPLETION: u8 = 36;
/// [`ServiceMapping`](super::ServiceMapping).
pub const SERVICE_MAPPING: u8 = 37;
/// [`ConnectionReconnect`](super::ConnectionReconnect).
pub const CONNECTION_RECONNECT: u8 = 38;
/// [`ConnectionFlowControl`](super::ConnectionFlowControl).
pub const CONNECTION_FLOW_CONTROL: u8 = 39;
/// [`GroupMemberQuery`](super::GroupMemberQuery).
pub const GROUP_MEMBER_QUERY: u8 = 40;
/// `RefreshAuth`: named in the reference SDK's newest public API (a connection token, claims,
/// an expiry time and an ack id), but its layout is not in any published source this codec
/// follows, so records of this type are skipped like unknown ones.
pub const REFRESH_AUTH: u8 = 41;
