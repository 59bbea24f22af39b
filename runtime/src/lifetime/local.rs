//! The in-process lifetime manager: every connection of the hub lives in this process.

use std::sync::{Arc, RwLock};

use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::oneshot;

use super::{LifetimeManager, OutboundMessage, Target};
use crate::HubError;
use crate::connection::Connection;
use crate::protocol::CompletionResult;
use crate::protocol::membership::Membership;

#[derive(Default)]
pub(crate) struct LocalLifetimeManager {
    members: RwLock<Membership<Arc<Connection>>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl LocalLifetimeManager {
    fn deliver(&self, target: &Target, message: &OutboundMessage) -> Result<(), HubError> {
        let mut failure = None;
        let (recipients, excluded) = target.recipients();
        read(&self.members).for_each(recipients, excluded, |_, conn| {
            if failure.is_some() {
                return;
            }
            match message.frame(conn.protocol()) {
                Ok(frame) => conn.send_frame(frame),
                Err(error) => failure = Some(error),
            }
        });
        failure.map_or(Ok(()), Err)
    }
}

impl LifetimeManager for LocalLifetimeManager {
    fn on_connected(&self, conn: &Arc<Connection>) {
        write(&self.members).add_connection(conn.id().clone(), conn.user_id().map(|u| &**u), conn.clone());
    }

    fn on_disconnected(&self, conn: &Arc<Connection>) {
        write(&self.members).remove_connection(conn.id());
    }

    fn send(
        &self,
        target: Target,
        message: Arc<OutboundMessage>,
        _origin: Option<&str>,
    ) -> BoxFuture<'_, Result<(), HubError>> {
        std::future::ready(self.deliver(&target, &message)).boxed()
    }

    fn add_to_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        // A connection that is not (or no longer) here joins nothing: membership and
        // disconnects change under the same lock, so none is left dangling.
        write(&self.members).join_group(connection_id, group);
        std::future::ready(Ok(())).boxed()
    }

    fn remove_from_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        write(&self.members).leave_group(connection_id, group);
        std::future::ready(Ok(())).boxed()
    }

    fn connection(&self, connection_id: &str) -> Option<Arc<Connection>> {
        read(&self.members).get(connection_id).cloned()
    }

    fn invoke(
        &self,
        connection_id: &str,
        message: Arc<OutboundMessage>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<CompletionResult, HubError>> {
        invoke_found(self.connection(connection_id), connection_id, message, timeout)
    }
}

/// [`invoke_client`] on a connection looked up here, or the error for one that is not.
pub(crate) fn invoke_found(
    conn: Option<Arc<Connection>>,
    connection_id: &str,
    message: Arc<OutboundMessage>,
    timeout: Duration,
) -> BoxFuture<'static, Result<CompletionResult, HubError>> {
    let connection_id = connection_id.to_owned();
    async move {
        let conn = conn.ok_or_else(|| {
            HubError::exception("IOException", format!("Connection '{connection_id}' does not exist."))
        })?;
        invoke_client(&conn, &message, timeout).await
    }
    .boxed()
}

/// Sends an invocation with an id to one connection and waits for its Completion, the
/// timeout, or the connection's end.
pub(crate) async fn invoke_client(
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
