//! Draining a connection's outbound queue, shared by every transport: batches of everything
//! queued (one write, one flush), and the last batch once the connection closes (what was
//! queued before, then the Close message).

use crate::queue;
use bytes::{Bytes, BytesMut};

use crate::connection::{CloseReason, Connection};
use crate::protocol::{Close, HubMessage};

/// The most bytes joined into one batch.
pub(crate) const MAX_BATCH: usize = 64 * 1024;

/// The next batch of queued frames, or `None` once the connection starts closing.
pub(crate) async fn next_batch(outbound: &mut queue::Receiver<Bytes>, conn: &Connection) -> Option<Bytes> {
    let first = tokio::select! {
        biased;
        next = outbound.recv() => next?,
        _ = conn.closing().cancelled() => return None,
    };
    let Ok(next) = outbound.try_recv() else {
        return Some(first);
    };
    let mut joined = BytesMut::with_capacity(first.len() + next.len());
    joined.extend_from_slice(&first);
    joined.extend_from_slice(&next);
    while joined.len() < MAX_BATCH {
        match outbound.try_recv() {
            Ok(more) => joined.extend_from_slice(&more),
            Err(_) => break,
        }
    }
    Some(joined.freeze())
}

/// What is left to send once the connection is closing: queued frames, then the Close
/// message when the reason asks for one and the handshake chose a protocol.
pub(crate) fn final_batch(outbound: &mut queue::Receiver<Bytes>, conn: &Connection) -> Bytes {
    let reason = conn.close_reason().unwrap_or_else(CloseReason::transport_closed);
    outbound.close();
    let mut rest = Vec::new();
    while let Ok(bytes) = outbound.try_recv() {
        rest.extend_from_slice(&bytes);
    }
    if reason.send_close_message
        && let Some(protocol) = conn.protocol_chosen()
    {
        let close = HubMessage::Close(Close {
            error: reason.error,
            allow_reconnect: reason.allow_reconnect,
        });
        let _ = protocol.write_message(&mut rest, &close);
    }
    Bytes::from(rest)
}
