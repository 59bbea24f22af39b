//! The writing half of a server connection, the same for both ends: the app server's server
//! connections (`server_connection.rs`) and the relay's server face (feature `relay`). It
//! feeds the [`ServiceLink`] core from the connection's bounded queue, writes the batches the
//! core makes (one binary frame each, within [`link::WRITE_TIMEOUT`]) and wakes for the core's
//! timers; once the link ends, what is still to write goes out, then a Close frame.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use futures_util::{Sink, SinkExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::protocol::service::link::{self, ServiceLink};
use crate::queue;

/// What one end's writer works with besides its socket.
pub struct LinkWriter {
    /// The records to send, in order (the connection's queue, bounded in count and bytes).
    pub outgoing: queue::Receiver<Bytes>,
    /// The link core the reader feeds too.
    pub link: Arc<Mutex<ServiceLink>>,
    /// Woken by the reader when the core may have something to write (a ping answer, a
    /// refusal).
    pub wake: Arc<Notify>,
    /// Cancelled when the connection ends, by either half.
    pub ended: CancellationToken,
}

impl std::fmt::Debug for LinkWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWriter").finish_non_exhaustive()
    }
}

fn lock(link: &Mutex<ServiceLink>) -> MutexGuard<'_, ServiceLink> {
    link.lock().unwrap_or_else(|e| e.into_inner())
}

async fn send<S, M>(sink: &mut S, message: M) -> bool
where
    S: Sink<M> + Unpin,
{
    matches!(
        tokio::time::timeout(link::WRITE_TIMEOUT, sink.send(message)).await,
        Ok(Ok(()))
    )
}

impl LinkWriter {
    /// Writes until the link ends: each batch as `binary(batch)`, reporting its size to
    /// `sent`. Then the link's last batches and the records still queued, and `close` (when
    /// the socket does not send a Close frame of its own on `close()`). A write that fails or
    /// stalls past the write timeout ends the link at once.
    pub async fn run<S, M>(self, mut sink: S, binary: fn(Bytes) -> M, close: Option<M>, mut sent: impl FnMut(usize))
    where
        S: Sink<M> + Unpin,
    {
        let LinkWriter {
            mut outgoing,
            link,
            wake,
            ended,
        } = self;
        loop {
            let (batch, deadline, wants) = {
                let mut link = lock(&link);
                let now = Instant::now();
                link.handle_timeout(now);
                while link.wants_records() {
                    match outgoing.try_recv() {
                        Ok(record) => link.queue_record(record),
                        Err(_) => break,
                    }
                }
                (link.poll_transmit(now), link.poll_timeout(), link.wants_records())
            };
            if let Some(batch) = batch {
                sent(batch.len());
                if !send(&mut sink, binary(batch)).await {
                    lock(&link).close();
                    ended.cancel();
                    return;
                }
                continue;
            }
            let Some(deadline) = deadline else { break };
            tokio::select! {
                biased;
                _ = ended.cancelled() => break,
                _ = wake.notified() => {}
                record = outgoing.recv(), if wants => match record {
                    Some(record) => lock(&link).queue_record(record),
                    None => lock(&link).close(),
                },
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        ended.cancel();
        // What the link still holds (its records and a refusal), then what is still queued.
        outgoing.close();
        let mut rest: Vec<Bytes> = {
            let mut link = lock(&link);
            let now = Instant::now();
            std::iter::from_fn(|| link.poll_transmit(now)).collect()
        };
        while let Ok(record) = outgoing.try_recv() {
            rest.push(record);
        }
        for batch in rest {
            sent(batch.len());
            if !send(&mut sink, binary(batch)).await {
                return;
            }
        }
        if let Some(close) = close {
            let _ = send(&mut sink, close).await;
        }
        let _ = tokio::time::timeout(link::WRITE_TIMEOUT, sink.close()).await;
    }
}
