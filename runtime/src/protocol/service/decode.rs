//! Reading records into [`ServiceMessage`]s, item by item as the reference reader does.
//!
//! Each type first checks that the array holds its required items; optional trailing items
//! (older peers omit them) are read only when the array has them. Where the reference reader
//! reads an extension map unconditionally, a record that ends before it is accepted too.

use bytes::Bytes;

use super::extensions::{Carries, Extensions};
use super::fields::Reader;
use super::message_type as t;
use super::*;

pub(super) fn parse(record: Bytes) -> Result<Option<ServiceMessage>, ProtocolError> {
    let mut r = Reader::new(record);
    let len = r.array_len("message")?;
    if len == 0 {
        return Err(ProtocolError::invalid(
            "Unable to read message type: the message is an empty array.",
        ));
    }
    let kind = r.i32("messageType")?;
    let Ok(kind) = u8::try_from(kind) else {
        return Ok(None);
    };
    let need = |min: usize| {
        if len < min {
            Err(ProtocolError::invalid(format!(
                "Invalid message: expected at least {min} items, got {len}."
            )))
        } else {
            Ok(())
        }
    };
    let ext = |r: &mut Reader, index: usize, carries: Carries| Extensions::read_optional(r, len > index, carries);
    let r = &mut r;
    let message = match kind {
        t::HANDSHAKE_REQUEST => {
            need(2)?;
            let mut m = HandshakeRequest {
                version: r.i32("version")?,
                ..HandshakeRequest::new()
            };
            if len >= 4 {
                m.connection_type = r.i32("connectionType")?;
                m.target = r.string_or_nil("target")?.unwrap_or_default();
            }
            if len >= 5 {
                m.migration_level = r.i32("migratableStatus")?;
            }
            ext(r, 5, Carries::NONE)?;
            if len >= 7 {
                m.allow_stateful_reconnects = r.bool("enableStatefulReconnects")?;
            }
            ServiceMessage::HandshakeRequest(m)
        }
        t::HANDSHAKE_RESPONSE => {
            need(2)?;
            let error_message = r.string_or_nil("errorMessage")?;
            ext(r, 2, Carries::NONE)?;
            let connection_id = if len >= 4 {
                r.string_or_nil("connectionId")?
            } else {
                None
            };
            ServiceMessage::HandshakeResponse(HandshakeResponse {
                error_message,
                connection_id,
            })
        }
        t::PING => {
            let mut messages = Vec::with_capacity(len - 1);
            for i in 0..len - 1 {
                messages.push(r.string_or_nil(&format!("messages[{i}]"))?.unwrap_or_default());
            }
            ServiceMessage::Ping(Ping { messages })
        }
        t::OPEN_CONNECTION => {
            need(3)?;
            let mut m = OpenConnection {
                connection_id: r.string("connectionId")?,
                claims: r.claims()?,
                ..OpenConnection::default()
            };
            // Before version 1.0 of the SDK the message ended after the claims.
            if len >= 5 {
                m.headers = r.headers()?;
                m.query_string = r.string_or_nil("queryString")?;
                let e = ext(r, 5, Carries::TRACING_PROTOCOL)?;
                m.tracing_id = e.tracing_id;
                m.protocol = e.protocol;
            }
            ServiceMessage::OpenConnection(m)
        }
        t::CLOSE_CONNECTION => {
            need(3)?;
            let connection_id = r.string("connectionId")?;
            let error_message = r.string_or_nil("errorMessage")?;
            let headers = if len >= 4 { r.headers()? } else { Vec::new() };
            let e = ext(r, 4, Carries::TRACING)?;
            ServiceMessage::CloseConnection(CloseConnection {
                connection_id,
                error_message,
                headers,
                tracing_id: e.tracing_id,
            })
        }
        t::CONNECTION_DATA => {
            need(3)?;
            let connection_id = r.string("connectionId")?;
            let payload = r.bytes("payload")?;
            let e = ext(r, 3, Carries::CONNECTION_DATA)?;
            ServiceMessage::ConnectionData(ConnectionData {
                connection_id,
                payload,
                tracing_id: e.tracing_id,
                data_type: e.data_type,
                is_partial: e.is_partial,
            })
        }
        t::MULTI_CONNECTION_DATA => {
            need(3)?;
            let connection_ids = r.string_array("connectionList")?;
            let payloads = r.payloads()?;
            let e = ext(r, 3, Carries::MULTICAST)?;
            ServiceMessage::MultiConnectionData(MultiConnectionData {
                connection_ids,
                payloads,
                tracing_id: e.tracing_id,
                filter: e.filter,
            })
        }
        t::USER_DATA => {
            need(3)?;
            let user_id = r.string("userId")?;
            let payloads = r.payloads()?;
            let e = ext(r, 3, Carries::MULTICAST)?;
            ServiceMessage::UserData(UserData {
                user_id,
                payloads,
                tracing_id: e.tracing_id,
                filter: e.filter,
            })
        }
        t::MULTI_USER_DATA => {
            need(3)?;
            let user_ids = r.string_array("userList")?;
            let payloads = r.payloads()?;
            let e = ext(r, 3, Carries::MULTICAST)?;
            ServiceMessage::MultiUserData(MultiUserData {
                user_ids,
                payloads,
                tracing_id: e.tracing_id,
                filter: e.filter,
            })
        }
        t::BROADCAST_DATA => {
            need(3)?;
            let excluded = r.string_array("excludedList")?;
            let payloads = r.payloads()?;
            let e = ext(r, 3, Carries::MULTICAST)?;
            ServiceMessage::BroadcastData(BroadcastData {
                excluded,
                payloads,
                tracing_id: e.tracing_id,
                filter: e.filter,
            })
        }
        t::JOIN_GROUP => {
            need(3)?;
            let connection_id = r.string("connectionId")?;
            let group = r.string("groupName")?;
            let tracing_id = ext(r, 3, Carries::TRACING)?.tracing_id;
            ServiceMessage::JoinGroup(JoinGroup {
                connection_id,
                group,
                tracing_id,
            })
        }
        t::LEAVE_GROUP => {
            need(3)?;
            let connection_id = r.string("connectionId")?;
            let group = r.string_or_nil("groupName")?;
            let tracing_id = ext(r, 3, Carries::TRACING)?.tracing_id;
            ServiceMessage::LeaveGroup(LeaveGroup {
                connection_id,
                group,
                tracing_id,
            })
        }
        t::GROUP_BROADCAST_DATA => {
            need(4)?;
            let mut m = GroupBroadcastData {
                group: r.string("groupName")?,
                excluded: r.string_array("excludedList")?,
                payloads: r.payloads()?,
                ..GroupBroadcastData::default()
            };
            let e = ext(r, 4, Carries::MULTICAST)?;
            (m.tracing_id, m.filter) = (e.tracing_id, e.filter);
            if len >= 7 {
                m.excluded_users = r.string_array("excludedUserList")?;
                m.caller_user_id = r.string_or_nil("callerUserId")?;
            }
            ServiceMessage::GroupBroadcastData(m)
        }
        t::MULTI_GROUP_BROADCAST_DATA => {
            need(3)?;
            let groups = r.string_array("groupList")?;
            let payloads = r.payloads()?;
            let e = ext(r, 3, Carries::MULTICAST)?;
            ServiceMessage::MultiGroupBroadcastData(MultiGroupBroadcastData {
                groups,
                payloads,
                tracing_id: e.tracing_id,
                filter: e.filter,
            })
        }
        t::SERVICE_ERROR => {
            need(2)?;
            ServiceMessage::ServiceError(ServiceError {
                error_message: r.string_or_nil("errorMessage")?,
            })
        }
        t::USER_JOIN_GROUP => {
            need(3)?;
            let user_id = r.string("userId")?;
            let group = r.string("groupName")?;
            let e = ext(r, 3, Carries::TRACING_TTL)?;
            ServiceMessage::UserJoinGroup(UserJoinGroup {
                user_id,
                group,
                ttl: e.ttl,
                tracing_id: e.tracing_id,
            })
        }
        t::USER_LEAVE_GROUP => {
            need(3)?;
            let user_id = r.string("userId")?;
            let group = r.string_or_nil("groupName")?;
            let tracing_id = ext(r, 3, Carries::TRACING)?.tracing_id;
            ServiceMessage::UserLeaveGroup(UserLeaveGroup {
                user_id,
                group,
                tracing_id,
            })
        }
        t::JOIN_GROUP_WITH_ACK => {
            need(4)?;
            let connection_id = r.string("connectionId")?;
            let group = r.string("groupName")?;
            let ack_id = r.i32("ackId")?;
            let tracing_id = ext(r, 4, Carries::TRACING)?.tracing_id;
            ServiceMessage::JoinGroupWithAck(JoinGroupWithAck {
                connection_id,
                group,
                ack_id,
                tracing_id,
            })
        }
        t::LEAVE_GROUP_WITH_ACK => {
            need(4)?;
            let connection_id = r.string("connectionId")?;
            let group = r.string_or_nil("groupName")?;
            let ack_id = r.i32("ackId")?;
            let tracing_id = ext(r, 4, Carries::TRACING)?.tracing_id;
            ServiceMessage::LeaveGroupWithAck(LeaveGroupWithAck {
                connection_id,
                group,
                ack_id,
                tracing_id,
            })
        }
        t::ACK => {
            need(4)?;
            let ack_id = r.i32("ackId")?;
            let status = AckStatus::from_code(r.i32("status")?);
            let message = r.string_or_nil("message")?;
            ext(r, 4, Carries::NONE)?;
            let payload = if len >= 6 { r.bytes_or_nil("payload")? } else { None };
            ServiceMessage::Ack(Ack {
                ack_id,
                status,
                message,
                payload,
            })
        }
        t::CHECK_USER_IN_GROUP_WITH_ACK => {
            need(4)?;
            let user_id = r.string("userId")?;
            let group = r.string("groupName")?;
            let ack_id = r.i32("ackId")?;
            let tracing_id = ext(r, 4, Carries::TRACING)?.tracing_id;
            ServiceMessage::CheckUserInGroupWithAck(CheckUserInGroupWithAck {
                user_id,
                group,
                ack_id,
                tracing_id,
            })
        }
        t::SERVICE_EVENT => {
            need(5)?;
            let object_type = ServiceEventObjectType::from_code(r.i32("type")?);
            let id = r.string_or_nil("id")?;
            let kind = ServiceEventKind::from_code(r.i32("kind")?);
            let message = r.string_or_nil("message")?;
            ext(r, 5, Carries::NONE)?;
            ServiceMessage::ServiceEvent(ServiceEvent {
                object_type,
                id,
                kind,
                message,
            })
        }
        t::CHECK_GROUP_EXISTENCE_WITH_ACK
        | t::CHECK_CONNECTION_EXISTENCE_WITH_ACK
        | t::CHECK_USER_EXISTENCE_WITH_ACK => {
            need(3)?;
            let field = match kind {
                t::CHECK_GROUP_EXISTENCE_WITH_ACK => "groupName",
                t::CHECK_CONNECTION_EXISTENCE_WITH_ACK => "connectionId",
                _ => "userId",
            };
            let id = r.string(field)?;
            let ack_id = r.i32("ackId")?;
            let tracing_id = ext(r, 3, Carries::TRACING)?.tracing_id;
            match kind {
                t::CHECK_GROUP_EXISTENCE_WITH_ACK => {
                    ServiceMessage::CheckGroupExistenceWithAck(CheckGroupExistenceWithAck {
                        group: id,
                        ack_id,
                        tracing_id,
                    })
                }
                t::CHECK_CONNECTION_EXISTENCE_WITH_ACK => {
                    ServiceMessage::CheckConnectionExistenceWithAck(CheckConnectionExistenceWithAck {
                        connection_id: id,
                        ack_id,
                        tracing_id,
                    })
                }
                _ => ServiceMessage::CheckUserExistenceWithAck(CheckUserExistenceWithAck {
                    user_id: id,
                    ack_id,
                    tracing_id,
                }),
            }
        }
        t::USER_JOIN_GROUP_WITH_ACK => {
            need(4)?;
            let user_id = r.string("userId")?;
            let group = r.string("groupName")?;
            let ack_id = r.i32("ackId")?;
            let e = ext(r, 4, Carries::TRACING_TTL)?;
            ServiceMessage::UserJoinGroupWithAck(UserJoinGroupWithAck {
                user_id,
                group,
                ack_id,
                ttl: e.ttl,
                tracing_id: e.tracing_id,
            })
        }
        t::USER_LEAVE_GROUP_WITH_ACK => {
            need(4)?;
            let user_id = r.string("userId")?;
            let group = r.string_or_nil("groupName")?;
            let ack_id = r.i32("ackId")?;
            let tracing_id = ext(r, 4, Carries::TRACING)?.tracing_id;
            ServiceMessage::UserLeaveGroupWithAck(UserLeaveGroupWithAck {
                user_id,
                group,
                ack_id,
                tracing_id,
            })
        }
        t::ACCESS_KEY_REQUEST => {
            need(3)?;
            let token = r.string_or_nil("token")?;
            let kid = r.string_or_nil("kid")?;
            ext(r, 3, Carries::NONE)?;
            ServiceMessage::AccessKeyRequest(AccessKeyRequest { token, kid })
        }
        t::ACCESS_KEY_RESPONSE => {
            need(5)?;
            let m = AccessKeyResponse {
                kid: r.string_or_nil("kid")?,
                access_key: r.string_or_nil("accessKey")?,
                error_type: r.string_or_nil("errorType")?,
                error_message: r.string_or_nil("errorMessage")?,
            };
            ext(r, 5, Carries::NONE)?;
            ServiceMessage::AccessKeyResponse(m)
        }
        t::CLOSE_CONNECTION_WITH_ACK => {
            need(4)?;
            let connection_id = r.string("connectionId")?;
            let reason = r.string_or_nil("reason")?;
            let ack_id = r.i32("ackId")?;
            let tracing_id = ext(r, 4, Carries::TRACING)?.tracing_id;
            ServiceMessage::CloseConnectionWithAck(CloseConnectionWithAck {
                connection_id,
                reason,
                ack_id,
                tracing_id,
            })
        }
        t::CLOSE_CONNECTIONS_WITH_ACK => {
            need(4)?;
            let reason = r.string_or_nil("reason")?;
            let ack_id = r.i32("ackId")?;
            let excluded = r.string_array("excluded")?;
            let tracing_id = ext(r, 4, Carries::TRACING)?.tracing_id;
            ServiceMessage::CloseConnectionsWithAck(CloseConnectionsWithAck {
                reason,
                ack_id,
                excluded,
                tracing_id,
            })
        }
        t::CLOSE_USER_CONNECTIONS_WITH_ACK | t::CLOSE_GROUP_CONNECTIONS_WITH_ACK => {
            need(5)?;
            let user = kind == t::CLOSE_USER_CONNECTIONS_WITH_ACK;
            let id = r.string(if user { "userId" } else { "group" })?;
            let reason = r.string_or_nil("reason")?;
            let ack_id = r.i32("ackId")?;
            let excluded = r.string_array("excluded")?;
            let tracing_id = ext(r, 5, Carries::TRACING)?.tracing_id;
            if user {
                ServiceMessage::CloseUserConnectionsWithAck(CloseUserConnectionsWithAck {
                    user_id: id,
                    reason,
                    ack_id,
                    excluded,
                    tracing_id,
                })
            } else {
                ServiceMessage::CloseGroupConnectionsWithAck(CloseGroupConnectionsWithAck {
                    group: id,
                    reason,
                    ack_id,
                    excluded,
                    tracing_id,
                })
            }
        }
        t::CLIENT_INVOCATION => {
            need(5)?;
            let invocation_id = r.string("invocationId")?;
            let connection_id = r.string("connectionId")?;
            let caller_server_id = r.string("callerServerId")?;
            let payloads = r.payloads()?;
            let tracing_id = ext(r, 5, Carries::TRACING)?.tracing_id;
            ServiceMessage::ClientInvocation(ClientInvocation {
                invocation_id,
                connection_id,
                caller_server_id,
                payloads,
                tracing_id,
            })
        }
        t::CLIENT_COMPLETION => {
            need(6)?;
            let invocation_id = r.string("invocationId")?;
            let connection_id = r.string("connectionId")?;
            let caller_server_id = r.string("callerServerId")?;
            let protocol = r.string_or_nil("protocol")?;
            let payload = r.bytes("payload")?;
            let e = ext(r, 6, Carries::TRACING_PROTOCOL)?;
            ServiceMessage::ClientCompletion(ClientCompletion {
                invocation_id,
                connection_id,
                caller_server_id,
                // The extension member, when present, is read after the item and wins.
                protocol: e.protocol.or(protocol),
                payload,
                tracing_id: e.tracing_id,
            })
        }
        t::ERROR_COMPLETION => {
            need(5)?;
            let invocation_id = r.string("invocationId")?;
            let connection_id = r.string("connectionId")?;
            let caller_server_id = r.string("callerServerId")?;
            let error = r.string_or_nil("error")?;
            let tracing_id = ext(r, 5, Carries::TRACING)?.tracing_id;
            ServiceMessage::ErrorCompletion(ErrorCompletion {
                invocation_id,
                connection_id,
                caller_server_id,
                error,
                tracing_id,
            })
        }
        t::SERVICE_MAPPING => {
            need(4)?;
            let m = ServiceMapping {
                invocation_id: r.string("invocationId")?,
                connection_id: r.string("connectionId")?,
                instance_id: r.string("instanceId")?,
            };
            ext(r, 4, Carries::NONE)?;
            ServiceMessage::ServiceMapping(m)
        }
        t::CONNECTION_RECONNECT => {
            need(2)?;
            let connection_id = r.string("connectionId")?;
            ext(r, 2, Carries::NONE)?;
            ServiceMessage::ConnectionReconnect(ConnectionReconnect { connection_id })
        }
        t::CONNECTION_FLOW_CONTROL => {
            need(4)?;
            let connection_id = r.string("connectionId")?;
            let connection_type = r.i32("connectionType")?;
            let operation = r.i32("operation")?;
            // The reference reader validates both and does not read the extension map.
            let connection_type = FlowControlConnectionType::from_code(connection_type)
                .ok_or_else(|| ProtocolError::invalid(format!("Unsupported connection type: {connection_type}")))?;
            let operation = FlowControlOperation::from_code(operation)
                .ok_or_else(|| ProtocolError::invalid(format!("Unsupported operation: {operation}")))?;
            ServiceMessage::ConnectionFlowControl(ConnectionFlowControl {
                connection_id,
                connection_type,
                operation,
            })
        }
        t::GROUP_MEMBER_QUERY => {
            need(5)?;
            let tracing_id = Extensions::read(r, Carries::TRACING)?.tracing_id;
            let group = r.string("GroupName")?;
            let ack_id = r.i32("AckId")?;
            let max = r.i32("Max")?;
            let continuation_token = if len >= 6 {
                r.string_or_nil("ContinuationToken")?
            } else {
                None
            };
            ServiceMessage::GroupMemberQuery(GroupMemberQuery {
                group,
                ack_id,
                max,
                continuation_token,
                tracing_id,
            })
        }
        _ => return Ok(None),
    };
    Ok(Some(message))
}
