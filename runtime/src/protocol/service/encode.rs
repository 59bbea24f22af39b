//! Writing [`ServiceMessage`]s with the item counts and layouts of the newest reference
//! writer, so older and newer peers alike read them.

use super::extensions::Extensions;
use super::writer as w;
use super::*;
use crate::protocol::framing::write_varint;

/// Appends `message` preceded by its VarInt length. The body is written in place after room
/// for the longest prefix and moved back over the unused part, so nothing is copied twice.
pub(super) fn write_framed(message: &ServiceMessage, out: &mut Vec<u8>) {
    const ROOM: usize = 5;
    let start = out.len();
    out.extend_from_slice(&[0; ROOM]);
    write_body(message, out);
    let length = out.len() - start - ROOM;
    let mut prefix = Vec::with_capacity(ROOM);
    write_varint(&mut prefix, length);
    let unused = ROOM - prefix.len();
    out.copy_within(start + ROOM.., start + prefix.len());
    out.truncate(out.len() - unused);
    out[start..start + prefix.len()].copy_from_slice(&prefix);
}

/// The array header and the type, the start of every message.
fn head(out: &mut Vec<u8>, items: usize, message: &ServiceMessage) {
    w::array(out, items);
    w::uint(out, u64::from(message.type_id()));
}

fn tracing(out: &mut Vec<u8>, tracing_id: Option<u64>) {
    Extensions::tracing(tracing_id).write(out);
}

fn multicast(out: &mut Vec<u8>, tracing_id: Option<u64>, filter: &Option<String>) {
    Extensions {
        tracing_id,
        filter: filter.clone(),
        ..Extensions::default()
    }
    .write(out);
}

pub(super) fn write_body(message: &ServiceMessage, out: &mut Vec<u8>) {
    match message {
        ServiceMessage::HandshakeRequest(m) => {
            head(out, 7, message);
            w::int(out, m.version);
            w::int(out, m.connection_type);
            w::str(
                out,
                if m.connection_type == HandshakeRequest::DEFAULT_CONNECTION {
                    ""
                } else {
                    &m.target
                },
            );
            w::int(out, m.migration_level);
            Extensions::write_empty(out);
            w::bool(out, m.allow_stateful_reconnects);
        }
        ServiceMessage::HandshakeResponse(m) => {
            head(out, 4, message);
            w::opt_str(out, m.error_message.as_deref());
            Extensions::write_empty(out);
            w::opt_str(out, m.connection_id.as_deref());
        }
        ServiceMessage::Ping(m) => {
            head(out, m.messages.len() + 1, message);
            for item in &m.messages {
                w::str(out, item);
            }
        }
        ServiceMessage::OpenConnection(m) => {
            head(out, 6, message);
            w::str(out, &m.connection_id);
            w::claims(out, &m.claims);
            w::headers(out, &m.headers);
            w::opt_str(out, m.query_string.as_deref());
            Extensions {
                tracing_id: m.tracing_id,
                protocol: m.protocol.clone(),
                ..Extensions::default()
            }
            .write(out);
        }
        ServiceMessage::CloseConnection(m) => {
            head(out, 5, message);
            w::str(out, &m.connection_id);
            w::opt_str(out, m.error_message.as_deref());
            w::headers(out, &m.headers);
            tracing(out, m.tracing_id);
        }
        ServiceMessage::ConnectionData(m) => {
            head(out, 4, message);
            w::str(out, &m.connection_id);
            w::bin(out, &m.payload);
            Extensions {
                tracing_id: m.tracing_id,
                data_type: m.data_type,
                is_partial: m.is_partial,
                ..Extensions::default()
            }
            .write(out);
        }
        ServiceMessage::MultiConnectionData(m) => {
            head(out, 4, message);
            w::str_array(out, &m.connection_ids);
            w::payloads(out, &m.payloads);
            multicast(out, m.tracing_id, &m.filter);
        }
        ServiceMessage::UserData(m) => {
            head(out, 4, message);
            w::str(out, &m.user_id);
            w::payloads(out, &m.payloads);
            multicast(out, m.tracing_id, &m.filter);
        }
        ServiceMessage::MultiUserData(m) => {
            head(out, 4, message);
            w::str_array(out, &m.user_ids);
            w::payloads(out, &m.payloads);
            multicast(out, m.tracing_id, &m.filter);
        }
        ServiceMessage::BroadcastData(m) => {
            head(out, 4, message);
            w::str_array(out, &m.excluded);
            w::payloads(out, &m.payloads);
            multicast(out, m.tracing_id, &m.filter);
        }
        ServiceMessage::JoinGroup(m) => {
            head(out, 4, message);
            w::str(out, &m.connection_id);
            w::str(out, &m.group);
            tracing(out, m.tracing_id);
        }
        ServiceMessage::LeaveGroup(m) => {
            head(out, 4, message);
            w::str(out, &m.connection_id);
            w::opt_str(out, m.group.as_deref());
            tracing(out, m.tracing_id);
        }
        ServiceMessage::GroupBroadcastData(m) => {
            head(out, 7, message);
            w::str(out, &m.group);
            w::str_array(out, &m.excluded);
            w::payloads(out, &m.payloads);
            multicast(out, m.tracing_id, &m.filter);
            w::str_array(out, &m.excluded_users);
            w::opt_str(out, m.caller_user_id.as_deref());
        }
        ServiceMessage::MultiGroupBroadcastData(m) => {
            head(out, 4, message);
            w::str_array(out, &m.groups);
            w::payloads(out, &m.payloads);
            multicast(out, m.tracing_id, &m.filter);
        }
        ServiceMessage::ServiceError(m) => {
            head(out, 2, message);
            w::opt_str(out, m.error_message.as_deref());
        }
        ServiceMessage::UserJoinGroup(m) => {
            head(out, 4, message);
            w::str(out, &m.user_id);
            w::str(out, &m.group);
            ttl_and_tracing(out, m.tracing_id, m.ttl);
        }
        ServiceMessage::UserLeaveGroup(m) => {
            head(out, 4, message);
            w::str(out, &m.user_id);
            w::opt_str(out, m.group.as_deref());
            tracing(out, m.tracing_id);
        }
        ServiceMessage::JoinGroupWithAck(m) => {
            head(out, 5, message);
            w::str(out, &m.connection_id);
            w::str(out, &m.group);
            w::int(out, m.ack_id);
            tracing(out, m.tracing_id);
        }
        ServiceMessage::LeaveGroupWithAck(m) => {
            head(out, 5, message);
            w::str(out, &m.connection_id);
            w::opt_str(out, m.group.as_deref());
            w::int(out, m.ack_id);
            tracing(out, m.tracing_id);
        }
        ServiceMessage::Ack(m) => {
            head(out, 6, message);
            w::int(out, m.ack_id);
            w::int(out, m.status.code());
            w::opt_str(out, m.message.as_deref());
            Extensions::write_empty(out);
            match &m.payload {
                Some(payload) => w::bin(out, payload),
                None => w::nil(out),
            }
        }
        ServiceMessage::CheckUserInGroupWithAck(m) => {
            head(out, 5, message);
            w::str(out, &m.user_id);
            w::str(out, &m.group);
            w::int(out, m.ack_id);
            tracing(out, m.tracing_id);
        }
        ServiceMessage::ServiceEvent(m) => {
            head(out, 6, message);
            w::int(out, m.object_type.code());
            w::opt_str(out, m.id.as_deref());
            w::int(out, m.kind.code());
            w::opt_str(out, m.message.as_deref());
            Extensions::write_empty(out);
        }
        ServiceMessage::CheckGroupExistenceWithAck(m) => check(out, message, &m.group, m.ack_id, m.tracing_id),
        ServiceMessage::CheckConnectionExistenceWithAck(m) => {
            check(out, message, &m.connection_id, m.ack_id, m.tracing_id);
        }
        ServiceMessage::CheckUserExistenceWithAck(m) => check(out, message, &m.user_id, m.ack_id, m.tracing_id),
        ServiceMessage::UserJoinGroupWithAck(m) => {
            head(out, 5, message);
            w::str(out, &m.user_id);
            w::str(out, &m.group);
            w::int(out, m.ack_id);
            ttl_and_tracing(out, m.tracing_id, m.ttl);
        }
        ServiceMessage::UserLeaveGroupWithAck(m) => {
            head(out, 5, message);
            w::str(out, &m.user_id);
            w::opt_str(out, m.group.as_deref());
            w::int(out, m.ack_id);
            tracing(out, m.tracing_id);
        }
        ServiceMessage::AccessKeyRequest(m) => {
            head(out, 4, message);
            w::opt_str(out, m.token.as_deref());
            w::opt_str(out, m.kid.as_deref());
            Extensions::write_empty(out);
        }
        ServiceMessage::AccessKeyResponse(m) => {
            head(out, 6, message);
            w::opt_str(out, m.kid.as_deref());
            w::opt_str(out, m.access_key.as_deref());
            w::opt_str(out, m.error_type.as_deref());
            w::opt_str(out, m.error_message.as_deref());
            Extensions::write_empty(out);
        }
        ServiceMessage::CloseConnectionWithAck(m) => {
            head(out, 5, message);
            w::str(out, &m.connection_id);
            w::opt_str(out, m.reason.as_deref());
            w::int(out, m.ack_id);
            tracing(out, m.tracing_id);
        }
        ServiceMessage::CloseConnectionsWithAck(m) => {
            head(out, 5, message);
            w::opt_str(out, m.reason.as_deref());
            w::int(out, m.ack_id);
            w::str_array(out, &m.excluded);
            tracing(out, m.tracing_id);
        }
        ServiceMessage::CloseUserConnectionsWithAck(m) => {
            close_many(
                out,
                message,
                &m.user_id,
                m.reason.as_deref(),
                m.ack_id,
                &m.excluded,
                m.tracing_id,
            );
        }
        ServiceMessage::CloseGroupConnectionsWithAck(m) => {
            close_many(
                out,
                message,
                &m.group,
                m.reason.as_deref(),
                m.ack_id,
                &m.excluded,
                m.tracing_id,
            );
        }
        ServiceMessage::ClientInvocation(m) => {
            head(out, 6, message);
            w::str(out, &m.invocation_id);
            w::str(out, &m.connection_id);
            w::str(out, &m.caller_server_id);
            w::payloads(out, &m.payloads);
            tracing(out, m.tracing_id);
        }
        ServiceMessage::ClientCompletion(m) => {
            head(out, 7, message);
            w::str(out, &m.invocation_id);
            w::str(out, &m.connection_id);
            w::str(out, &m.caller_server_id);
            w::opt_str(out, m.protocol.as_deref());
            w::bin(out, &m.payload);
            Extensions {
                tracing_id: m.tracing_id,
                protocol: m.protocol.clone(),
                ..Extensions::default()
            }
            .write(out);
        }
        ServiceMessage::ErrorCompletion(m) => {
            head(out, 6, message);
            w::str(out, &m.invocation_id);
            w::str(out, &m.connection_id);
            w::str(out, &m.caller_server_id);
            w::opt_str(out, m.error.as_deref());
            tracing(out, m.tracing_id);
        }
        ServiceMessage::ServiceMapping(m) => {
            head(out, 5, message);
            w::str(out, &m.invocation_id);
            w::str(out, &m.connection_id);
            w::str(out, &m.instance_id);
            Extensions::write_empty(out);
        }
        ServiceMessage::ConnectionReconnect(m) => {
            head(out, 3, message);
            w::str(out, &m.connection_id);
            Extensions::write_empty(out);
        }
        ServiceMessage::ConnectionFlowControl(m) => {
            head(out, 5, message);
            w::str(out, &m.connection_id);
            w::int32_fixed(out, m.connection_type.code());
            w::int32_fixed(out, m.operation.code());
            Extensions::write_empty(out);
        }
        ServiceMessage::GroupMemberQuery(m) => {
            head(out, 6, message);
            tracing(out, m.tracing_id);
            w::str(out, &m.group);
            w::int(out, m.ack_id);
            w::int(out, m.max);
            w::opt_str(out, m.continuation_token.as_deref());
        }
    }
}

fn ttl_and_tracing(out: &mut Vec<u8>, tracing_id: Option<u64>, ttl: Option<i32>) {
    Extensions {
        tracing_id,
        ttl,
        ..Extensions::default()
    }
    .write(out);
}

/// The existence checks: `[type, id, ackId, {ext}]`.
fn check(out: &mut Vec<u8>, message: &ServiceMessage, id: &str, ack_id: i32, tracing_id: Option<u64>) {
    head(out, 4, message);
    w::str(out, id);
    w::int(out, ack_id);
    tracing(out, tracing_id);
}

/// Closing a user's or a group's connections: `[type, id, reason, ackId, [excluded], {ext}]`.
fn close_many(
    out: &mut Vec<u8>,
    message: &ServiceMessage,
    id: &str,
    reason: Option<&str>,
    ack_id: i32,
    excluded: &[String],
    tracing_id: Option<u64>,
) {
    head(out, 6, message);
    w::str(out, id);
    w::opt_str(out, reason);
    w::int(out, ack_id);
    w::str_array(out, excluded);
    tracing(out, tracing_id);
}
