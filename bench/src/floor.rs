//! The floor: a raw tokio-tungstenite server with no SignalR in it, the upper bound the hub is
//! compared with. Every connection (any path) is a WebSocket with a 4 KiB read buffer; a binary
//! or text frame starting with `E` goes back to its sender, one starting with `B` goes to every
//! connection (through a `tokio::sync::broadcast` channel; each connection queues every frame
//! that is waiting and flushes once, as a careful server would: the write buffer may grow to
//! 64 KiB before a write, so a burst goes out in one system call, and costs nothing while idle).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::ws_config;

use crate::proto::RAW_BROADCAST;

/// The floor's WebSocket settings: the generator's, with room to coalesce a burst of frames.
fn floor_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    ws_config().write_buffer_size(64 * 1024)
}

/// Counters and settings of a running floor server.
#[derive(Debug, Default)]
pub struct FloorStats {
    /// Fault injection for the harness's own tests: when non-zero, every connection silently
    /// skips every `drop_every`-th broadcast frame it should deliver.
    pub drop_every: u64,
    /// Broadcast frames a connection missed because it fell behind (channel lag).
    pub lagged: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

/// Serves `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, stats: Arc<FloorStats>) {
    let (tx, _) = broadcast::channel::<Message>(4096);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(floor_config())).await else {
                return;
            };
            stats.open.fetch_add(1, Ordering::Relaxed);
            connection(ws, tx, &stats).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn connection(
    mut ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    tx: broadcast::Sender<Message>,
    stats: &FloorStats,
) {
    let mut rx = tx.subscribe();
    let mut delivered = 0u64;
    let mut keep = move || {
        delivered += 1;
        stats.drop_every == 0 || !delivered.is_multiple_of(stats.drop_every)
    };
    loop {
        tokio::select! {
            msg = ws.next() => {
                let msg = match msg {
                    Some(Ok(msg)) => msg,
                    _ => return,
                };
                let op = match &msg {
                    Message::Binary(b) => b.first().copied(),
                    Message::Text(t) => t.as_bytes().first().copied(),
                    Message::Close(_) => return,
                    _ => {
                        // a ping: tungstenite queued the pong, push it out
                        if ws.flush().await.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                if op == Some(RAW_BROADCAST) {
                    let _ = tx.send(msg);
                } else if ws.send(msg).await.is_err() {
                    return;
                }
            }
            item = rx.recv() => match item {
                Ok(msg) => {
                    if keep() && ws.feed(msg).await.is_err() {
                        return;
                    }
                    loop {
                        match rx.try_recv() {
                            Ok(msg) => {
                                if keep() && ws.feed(msg).await.is_err() {
                                    return;
                                }
                            }
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                stats.lagged.fetch_add(n, Ordering::Relaxed);
                            }
                            Err(_) => break,
                        }
                    }
                    if ws.flush().await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    stats.lagged.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
