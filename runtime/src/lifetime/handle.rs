//! [`ConnectionHandle`]: what a lifetime manager may do with one connection of this process.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::OutboundMessage;
use crate::HubError;
use crate::connection::{CloseReason, Connection};
use crate::protocol::{CompletionResult, Protocol};

/// One connection of this process, as a [`LifetimeManager`](super::LifetimeManager) sees it:
/// its id, its user, its hub protocol, and the way to send it frames, invoke it and close it.
///
/// Cloning is cheap (the connection is shared); a handle kept after the connection ended
/// sends nothing.
#[derive(Clone)]
pub struct ConnectionHandle {
    connection: Arc<Connection>,
}

impl ConnectionHandle {
    pub(crate) fn new(connection: Arc<Connection>) -> Self {
        Self { connection }
    }

    /// The connection behind the handle, for the crate's own use.
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// The connection id.
    pub fn id(&self) -> &str {
        self.connection.id()
    }

    /// The user the connection belongs to, if its authentication named one.
    pub fn user_id(&self) -> Option<&str> {
        self.connection.user_id().map(|user| &**user)
    }

    /// The hub protocol the connection's handshake chose, whose bytes
    /// [`OutboundMessage::frame`] makes for it.
    pub fn protocol(&self) -> Protocol {
        self.connection.protocol()
    }

    /// Queues one framed message (bytes of [`Self::protocol`]) without waiting.
    ///
    /// The queue is bounded: when it is full the client is not reading fast enough, and the
    /// connection is closed with an error rather than buffering without limit. Frames to a
    /// closing connection are dropped.
    pub fn send_frame(&self, frame: Bytes) {
        self.connection.send_frame(frame);
    }

    /// Invokes a client method on this connection (the message gets an invocation id) and
    /// waits for the client's Completion, at most `timeout`; fails with an `IOException`
    /// when the connection ends first and a `TimeoutException` when the time runs out.
    pub async fn invoke(&self, message: &OutboundMessage, timeout: Duration) -> Result<CompletionResult, HubError> {
        invoke_client(&self.connection, message, timeout).await
    }

    /// Closes the connection: the client gets a Close message without an error and does not
    /// reconnect automatically.
    pub fn close(&self) {
        self.connection.close(CloseReason::graceful());
    }

    /// Whether the connection has started closing.
    pub fn is_closing(&self) -> bool {
        self.connection.closing().is_cancelled()
    }
}

impl std::fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionHandle")
            .field("id", &self.connection.id())
            .finish_non_exhaustive()
    }
}

/// Sends an invocation with an id to one connection and waits for its Completion, the
/// timeout, or the connection's end.
async fn invoke_client(
    conn: &Arc<Connection>,
    message: &OutboundMessage,
    timeout: Duration,
) -> Result<CompletionResult, HubError> {
    let disconnected = || HubError::exception("IOException", format!("Connection '{}' disconnected.", conn.id()));
    let id = conn.invocations().next_result_id();
    let frame = message.frame_with_id(conn.protocol(), &id)?;
    let (sender, receiver) = oneshot::channel();
    conn.invocations().expect_result(id.clone(), sender);
    if !conn.send_frame_wait(frame).await {
        conn.invocations().forget_result(&id);
        return Err(disconnected());
    }
    let outcome = tokio::select! {
        result = receiver => result.map_err(|_| disconnected()),
        _ = conn.closing().cancelled() => Err(disconnected()),
        _ = tokio::time::sleep(timeout) => Err(HubError::exception(
            "TimeoutException",
            format!("The client did not answer invocation '{id}' within {} ms.", timeout.as_millis()),
        )),
    };
    conn.invocations().forget_result(&id);
    outcome
}
