//! Clients the service tunnels to this app server: each runs the same connection driver and
//! hub code as a self-hosted client; only its bytes travel as ConnectionData.

use std::sync::Arc;

use crate::queue;
use bytes::Bytes;

use super::hub::{ServiceHub, VirtualClient};
use super::tokens;
use crate::connection::claims::Claims;
use crate::connection::dispatcher::Dispatcher;
use crate::connection::inbound::Inbound;
use crate::connection::migration::Migration;
use crate::connection::request::RequestInfo;
use crate::connection::{CloseReason, Connection, ConnectionParts, driver};
use crate::options::TransportType;
use crate::protocol::TransferFormat;
use crate::protocol::service::link::frame;
use crate::protocol::service::{
    CloseConnection, ConnectionData, INSTANCE_ID, MIGRATE_FROM, MIGRATE_TO, OpenConnection, ServiceMessage,
};
use crate::transport::outbound;

/// The client's transport, from its forwarded request: a WebSocket upgrade, an event
/// stream, or else long polling.
fn transport(open: &OpenConnection) -> TransportType {
    let header = |name: &str| {
        open.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, values)| values.iter())
            .any(|value| {
                value.to_ascii_lowercase().contains(if name == "upgrade" {
                    "websocket"
                } else {
                    "text/event-stream"
                })
            })
    };
    if header("upgrade") {
        TransportType::WebSockets
    } else if header("accept") {
        TransportType::ServerSentEvents
    } else {
        TransportType::LongPolling
    }
}

/// The first value of header `name` (ignoring case) among service message headers.
fn header<'h>(headers: &'h [(String, Vec<String>)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, values)| values.first())
        .map(String::as_str)
}

/// The service opened a client on server connection `slot`.
pub(crate) fn open(hub: &Arc<ServiceHub>, dispatcher: &Arc<dyn Dispatcher>, slot: usize, open: OpenConnection) {
    let dispatcher = dispatcher.clone();
    let user_id = open
        .claims
        .iter()
        .find(|(name, _)| name == crate::jwt::claims::USER_ID)
        .map(|(_, value)| Arc::from(value.as_str()));
    let claims = tokens::user_claims(&open.claims);
    let request = RequestInfo::from_service(&open.headers, open.query_string.as_deref().unwrap_or(""));
    let options = dispatcher.options();
    let (conn, outbound) = Connection::new(ConnectionParts {
        id: Arc::from(open.connection_id.as_str()),
        user_id,
        request,
        claims: (!claims.is_empty()).then_some(Claims(claims)),
        transport: transport(&open),
        hand_over_request: false,
        queue_capacity: options.max_queued_messages,
        queue_bytes: options.max_queued_bytes,
        stateful_buffer: None,
    });
    // A client moving here from another app server: the service replays its handshake
    // request, and the handshake response must not reach the client a second time.
    let migrated_in = header(&open.headers, MIGRATE_FROM).map(|from| Migration::new(from, &hub.server_id));
    let skip_handshake_response = migrated_in.is_some();
    if let Some(moved) = migrated_in {
        conn.set_migration(moved);
    }
    let (inbound, receiver) = queue::bytes_channel(64, options.max_queued_bytes);
    hub.clients.write().unwrap_or_else(|e| e.into_inner()).insert(
        conn.id().clone(),
        VirtualClient {
            conn: conn.clone(),
            inbound: Some(inbound),
            slot,
            instance: header(&open.headers, INSTANCE_ID).map(Arc::from),
        },
    );
    tokio::spawn(pump(hub.clone(), conn.clone(), outbound, slot, skip_handshake_response));
    tokio::spawn(async move {
        // Server-Sent Events carry text only: a binary protocol is refused at the handshake,
        // as a self-hosted server does.
        let formats: fn(TransferFormat) -> bool = if conn.transport() == TransportType::ServerSentEvents {
            |format| format == TransferFormat::Text
        } else {
            |_| true
        };
        driver::run(conn.clone(), Inbound::Channel(receiver), formats, dispatcher).await;
        // The pump sends what is still queued, then forgets the client.
        conn.close(CloseReason::transport_closed());
    });
}

/// Sends what the connection queues to the service, then closes it at the service (for a
/// connection that moved away, that close tells the service everything it had to send has
/// been sent), and forgets the client. With `skip_handshake_response` the first record, the handshake response, is
/// dropped (the client got one from the server it came from).
async fn pump(
    hub: Arc<ServiceHub>,
    conn: Arc<Connection>,
    mut outbound: queue::Receiver<Bytes>,
    slot: usize,
    mut skip_handshake_response: bool,
) {
    let id = conn.id().to_string();
    let data = |payload: Bytes| {
        frame(&ServiceMessage::ConnectionData(ConnectionData {
            connection_id: id.clone(),
            payload,
            ..ConnectionData::default()
        }))
    };
    while let Some(mut batch) = outbound::next_batch(&mut outbound, &conn).await {
        if skip_handshake_response {
            // The response is one record of its own, the first queued.
            let Some(end) = batch
                .iter()
                .position(|b| *b == crate::protocol::framing::RECORD_SEPARATOR)
            else {
                continue;
            };
            skip_handshake_response = false;
            batch = batch.slice(end + 1..);
            if batch.is_empty() {
                continue;
            }
        }
        let Some(writer) = hub.slot_writer(slot) else { break };
        if writer.send(data(batch)).await.is_err() {
            break;
        }
        conn.mark_sent();
    }
    let rest = outbound::final_batch(&mut outbound, &conn);
    // The client's own server connection, to the end: the last messages and the close must
    // not overtake one another (the client may already be forgotten by the hub here).
    if let Some(writer) = hub.slot_writer(slot) {
        if !rest.is_empty() {
            let _ = writer.send(data(rest)).await;
        }
        let close = CloseConnection {
            connection_id: id.clone(),
            ..CloseConnection::default()
        };
        let _ = writer.send(frame(&ServiceMessage::CloseConnection(close))).await;
    }
    // Only now is the client gone: a shutdown waiting for its clients must not close the
    // server connection before their last messages are on it.
    conn.close(CloseReason::transport_closed());
    hub.remove_client(conn.id());
}

/// Bytes from a tunnelled client.
pub(crate) async fn data(hub: &ServiceHub, connection_id: &str, payload: Bytes) {
    let target = hub
        .clients
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(connection_id)
        .and_then(|c| c.inbound.clone());
    if let Some(inbound) = target {
        let _ = inbound.send(payload).await;
    }
}

/// Service instance `instance` is gone (an `["offline", instance]` ping): its clients are
/// closed here, as the service can no longer reach them.
pub(crate) fn instance_offline(hub: &ServiceHub, instance: &str) {
    let clients = hub.clients.read().unwrap_or_else(|e| e.into_inner());
    let mut closed = 0;
    for client in clients.values().filter(|c| c.instance.as_deref() == Some(instance)) {
        client.conn.close(CloseReason::transport_closed());
        closed += 1;
    }
    if closed > 0 {
        tracing::info!(hub = %hub.name, %instance, closed, "a service instance went offline; its clients are closed");
    }
}

/// The service closed a client: it left, or (with `Asrs-Migrate-To`) it moves to another app
/// server. A moving client's input ends here at a message boundary; the connection finishes
/// the invocations under way, sends their results, runs `on_disconnected` and closes without
/// a Close message to the client.
pub(crate) fn closed_by_service(hub: &ServiceHub, close: &CloseConnection) {
    let mut clients = hub.clients.write().unwrap_or_else(|e| e.into_inner());
    let Some(client) = clients.get_mut(&*close.connection_id) else {
        return;
    };
    match header(&close.headers, MIGRATE_TO) {
        Some(to) => {
            client.conn.set_migration(Migration::new(&hub.server_id, to));
            client.conn.start_draining();
            // The driver sees the end of the input once it has read what came before.
            client.inbound = None;
        }
        None => client.conn.close(CloseReason::transport_closed()),
    }
}

/// A server connection dropped: the clients it carried are gone.
pub(crate) fn close_all(hub: &ServiceHub, slot: usize) {
    for client in hub
        .clients
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|c| c.slot == slot)
    {
        client.conn.close(CloseReason::transport_closed());
    }
}
