//! [`ClientStream`]: the items of a server-to-client stream.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::ClientError;
use super::driver::{Pending, Shared};
use super::transport::{Outbound, encode};
use crate::protocol::{HubMessage, RawValue};

/// The items of a server-to-client stream, from [`HubConnection::stream`](super::HubConnection::stream).
///
/// The StreamInvocation is sent when the stream is first polled. The stream ends after the
/// server's Completion; a Completion with an error, or the loss of the connection, is yielded
/// as a last `Err` item. An item that does not decode into `T` is yielded as an `Err` and the
/// stream goes on. Dropping the stream before its end sends a CancelInvocation, so the
/// server stops the method.
///
/// Items are buffered without bound until polled (as the .NET client does), so that a stream
/// nobody reads never holds up the rest of the connection.
pub struct ClientStream<T> {
    shared: Arc<Shared>,
    id: String,
    start: Option<BoxFuture<'static, Result<(), ClientError>>>,
    items: mpsc::UnboundedReceiver<Result<RawValue, ClientError>>,
    finished: bool,
    item: PhantomData<fn() -> T>,
}

impl<T> ClientStream<T> {
    /// A stream that sends the StreamInvocation `invocation` (already framed, or the error
    /// that encoding it gave) when first polled.
    pub(crate) fn new(shared: Arc<Shared>, id: String, invocation: Result<Bytes, ClientError>) -> Self {
        let (sender, items) = mpsc::unbounded_channel();
        let start = {
            let shared = shared.clone();
            let id = id.clone();
            Box::pin(async move {
                let invocation = invocation?;
                let link = shared.register(&id, Pending::Stream(sender))?;
                link.queue
                    .send(Outbound::Records(invocation))
                    .await
                    .map_err(|_| ClientError::connection_closed())
            })
        };
        Self {
            shared,
            id,
            start: Some(start),
            items,
            finished: false,
            item: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Stream for ClientStream<T> {
    type Item = Result<T, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if let Some(start) = &mut this.start {
            match start.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => this.start = None,
                Poll::Ready(Err(error)) => {
                    this.start = None;
                    this.finished = true;
                    this.shared.forget(&this.id);
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
        match this.items.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                this.finished = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Some(Ok(raw))) => {
                Poll::Ready(Some(raw.decode::<T>().map_err(|e| {
                    ClientError::protocol(format!("Failed to decode a stream item: {e}"))
                })))
            }
        }
    }
}

impl<T> Drop for ClientStream<T> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Still waiting for items: tell the server to stop.
        let Some(link) = self.shared.forget(&self.id) else {
            return;
        };
        let cancel = encode(
            self.shared.options.protocol,
            &HubMessage::CancelInvocation {
                headers: Default::default(),
                invocation_id: self.id.clone(),
            },
        );
        if let Err(mpsc::error::TrySendError::Full(message)) = link.queue.try_send(Outbound::Records(cancel))
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let queue = link.queue.clone();
            runtime.spawn(async move {
                let _ = queue.send(message).await;
            });
        }
    }
}

impl<T> std::fmt::Debug for ClientStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStream")
            .field("invocation_id", &self.id)
            .field("finished", &self.finished)
            .finish()
    }
}
