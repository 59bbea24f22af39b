//! How a client learns that it moves to another app server: the hub picks the new server
//! connection (under its lock, re-pinning the client there at once), and the client's task,
//! which forwards what the client sends, switches over at the next record boundary.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::state::server_link::ServerLink;

/// One client's pending move. Only clients of app servers that may migrate clients (their
/// handshake's migration level) have one.
#[derive(Default)]
pub(crate) struct Mover {
    target: Mutex<Option<Arc<ServerLink>>>,
    moved: Notify,
}

impl Mover {
    /// Asks the client's task to move the client to `target`.
    pub(crate) fn request(&self, target: Arc<ServerLink>) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = Some(target);
        self.moved.notify_one();
    }

    /// The next move asked for.
    pub(crate) async fn requested(&self) -> Arc<ServerLink> {
        loop {
            if let Some(target) = self.target.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return target;
            }
            self.moved.notified().await;
        }
    }
}
