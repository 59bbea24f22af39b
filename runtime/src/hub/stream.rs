//! Streams a client uploads to a hub method.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::HubError;
use crate::connection::invocations::StreamInput;

/// A stream of `T` that the client sends to a hub method (a method parameter of this type
/// takes one of the invocation's `streamIds`).
///
/// Items arrive as the client sends them; at most `stream_buffer_capacity` (10) wait here,
/// and the client's further items wait for the method to read. The stream ends when the
/// client completes it; an error the client completes it with arrives as an `Err` item,
/// after which the stream ends. When the method returns, the stream is dropped and later
/// items are discarded.
pub struct HubStream<T> {
    receiver: mpsc::Receiver<StreamInput>,
    finished: bool,
    item: PhantomData<fn() -> T>,
}

impl<T> HubStream<T> {
    pub(crate) fn new(receiver: mpsc::Receiver<StreamInput>) -> Self {
        Self {
            receiver,
            finished: false,
            item: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for HubStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubStream")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Stream for HubStream<T> {
    type Item = Result<T, HubError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(StreamInput::Item(raw))) => Poll::Ready(Some(raw.decode::<T>().map_err(|_| {
                self.finished = true;
                HubError::exception(
                    "InvalidDataException",
                    "Error binding a stream item. Make sure that the types of the provided values match the stream's item type.",
                )
            }))),
            Poll::Ready(Some(StreamInput::Error(error))) => {
                self.finished = true;
                Poll::Ready(Some(Err(HubError::new(error))))
            }
        }
    }
}

impl<T> Unpin for HubStream<T> {}
