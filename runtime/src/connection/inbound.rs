//! What a connection reads: the bytes its transport brings in.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;

use crate::queue;

/// Incoming bytes of a connection, from whichever transport carries them.
pub(crate) enum Inbound {
    WebSocket(SplitStream<axum::extract::ws::WebSocket>),
    Channel(queue::Receiver<Bytes>),
}

impl Inbound {
    /// The next chunk of bytes, or `None` once the transport has ended.
    pub async fn next(&mut self) -> Option<Bytes> {
        self.next_frame().await.map(|(bytes, _)| bytes)
    }

    /// The next chunk of bytes and whether it came as binary.
    pub async fn next_frame(&mut self) -> Option<(Bytes, bool)> {
        use axum::extract::ws::Message;
        match self {
            Inbound::WebSocket(stream) => loop {
                match stream.next().await? {
                    Ok(Message::Text(text)) => return Some((Bytes::from(text), false)),
                    Ok(Message::Binary(bytes)) => return Some((bytes, true)),
                    Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                    Ok(Message::Close(_)) | Err(_) => return None,
                }
            },
            Inbound::Channel(receiver) => receiver.recv().await.map(|bytes| (bytes, true)),
        }
    }
}
