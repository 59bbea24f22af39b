//! What a connection reads: the bytes its transport brings in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;

use crate::queue;

/// Incoming bytes of a connection, from whichever transport carries them.
pub(crate) enum Inbound {
    /// A WebSocket's frames; a frame that breaks the WebSocket protocol ends them and sets the
    /// close code the socket is to end with.
    WebSocket(SplitStream<axum::extract::ws::WebSocket>, Arc<AtomicU16>),
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
            Inbound::WebSocket(stream, close_code) => loop {
                match stream.next().await? {
                    Ok(Message::Text(text)) => return Some((Bytes::from(text), false)),
                    Ok(Message::Binary(bytes)) => return Some((bytes, true)),
                    Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                    Ok(Message::Close(_)) => return None,
                    Err(error) => {
                        close_code.store(close_code_for(&error), Ordering::Relaxed);
                        return None;
                    }
                }
            },
            Inbound::Channel(receiver) => receiver.recv().await.map(|bytes| (bytes, true)),
        }
    }
}

/// A normal closure (RFC 6455 7.4.1).
pub(crate) const NORMAL_CLOSURE: u16 = 1000;

/// The close code a socket ends with after reading `error`, as Kestrel's WebSocket does:
/// 1007 for a text frame that is not UTF-8, 1009 for a frame or message over the limit, 1002
/// for any other breach of the protocol (an unmasked frame, a reserved opcode or bit).
pub(crate) fn close_code_for(error: &axum::Error) -> u16 {
    // axum wraps the WebSocket library's error; its text names the kind.
    let text = error.to_string();
    if text.contains("UTF-8") || text.contains("utf-8") {
        1007
    } else if text.contains("Space limit exceeded") || text.contains("too long") {
        1009
    } else if text.contains("protocol error") {
        1002
    } else {
        // The socket broke (reset, end of stream): nothing is left to tell.
        NORMAL_CLOSURE
    }
}
