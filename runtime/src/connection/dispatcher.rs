//! What a connection needs from the hub it serves, without knowing the hub's type: the
//! hub layer implements [`Dispatcher`] (see `hub/endpoint.rs`), and the connection's driver
//! calls it for each invocation and for the lifecycle hooks.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use super::Connection;
use crate::HubError;
use crate::options::HubOptions;
use crate::protocol::{Invocation, RawValue};

pub(crate) type ItemStream = BoxStream<'static, Result<RawValue, HubError>>;

/// A started invocation.
pub(crate) enum Invoked {
    /// Completes with one result.
    Unary(BoxFuture<'static, Result<RawValue, HubError>>),
    /// Yields a stream of items (or fails before the first).
    Stream(BoxFuture<'static, Result<ItemStream, HubError>>),
}

/// An invocation ready to run.
pub(crate) struct Started {
    pub invoked: Invoked,
    /// Cancelled by CancelInvocation (streams) or the connection's end.
    pub cancellation: CancellationToken,
    /// The client streams feeding the method, to forget once it returns.
    pub stream_ids: Vec<String>,
}

/// An invocation ready to run, or the error text its caller gets at once.
pub(crate) enum Prepared {
    Run(Started),
    Fail(String),
}

/// What the connection driver needs from a hub, without knowing its type.
pub(crate) trait Dispatcher: Send + Sync + 'static {
    fn options(&self) -> &HubOptions;
    /// The connection core's settings for a connection over `transport` (made once and
    /// shared).
    fn core_config(
        &self,
        transport: crate::options::TransportType,
        format_supported: fn(crate::protocol::TransferFormat) -> bool,
    ) -> Arc<crate::protocol::connection_core::Config>;
    /// Registers the connection and runs the hub's `on_connected`.
    fn connected(&self, conn: &Arc<Connection>) -> BoxFuture<'static, Result<(), HubError>>;
    /// Unregisters the connection and runs the hub's `on_disconnected`.
    fn disconnected(&self, conn: &Arc<Connection>, error: Option<HubError>) -> BoxFuture<'static, ()>;
    /// Looks up and binds an invocation.
    fn prepare(&self, conn: &Arc<Connection>, invocation: Invocation, streaming: bool) -> Prepared;
}
