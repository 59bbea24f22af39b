//! The bridge between a connection (which knows nothing of hub types) and a hub: method
//! lookup, argument binding, the reference server's error texts, and the lifecycle hooks.

use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};

use super::methods::{MethodKind, Methods};
use super::{Hub, HubContext, HubShared};
use crate::HubError;
use crate::connection::Connection;
use crate::options::HubOptions;
use crate::protocol::{Invocation, RawValue};

/// An invocation ready to run, or the error text its caller gets at once.
pub(crate) enum Prepared {
    Run(BoxFuture<'static, Result<RawValue, HubError>>),
    Fail(String),
}

/// What the connection driver needs from a hub, without knowing its type.
pub(crate) trait Dispatcher: Send + Sync + 'static {
    fn options(&self) -> &HubOptions;
    /// Registers the connection and runs the hub's `on_connected`.
    fn connected(&self, conn: &Arc<Connection>) -> BoxFuture<'static, Result<(), HubError>>;
    /// Unregisters the connection and runs the hub's `on_disconnected`.
    fn disconnected(&self, conn: &Arc<Connection>, error: Option<HubError>) -> BoxFuture<'static, ()>;
    /// Looks up and binds an invocation.
    fn prepare(&self, conn: &Arc<Connection>, invocation: Invocation, streaming: bool) -> Prepared;
}

/// One hub mapped at one path.
pub(crate) struct HubEndpoint<H> {
    pub hub: Arc<H>,
    pub methods: Arc<Methods<H>>,
    pub shared: Arc<HubShared>,
    pub options: HubOptions,
}

impl<H: Hub> HubEndpoint<H> {
    fn context(&self, conn: &Arc<Connection>) -> HubContext<H> {
        HubContext::new(conn.clone(), self.shared.clone())
    }
}

impl<H: Hub> Dispatcher for HubEndpoint<H> {
    fn options(&self) -> &HubOptions {
        &self.options
    }

    fn connected(&self, conn: &Arc<Connection>) -> BoxFuture<'static, Result<(), HubError>> {
        self.shared.manager.on_connected(conn);
        let hook = self.hub.clone().on_connected(self.context(conn));
        async move {
            match std::panic::AssertUnwindSafe(hook).catch_unwind().await {
                Ok(result) => result,
                Err(_) => Err(HubError::exception("Exception", "on_connected panicked.")),
            }
        }
        .boxed()
    }

    fn disconnected(&self, conn: &Arc<Connection>, error: Option<HubError>) -> BoxFuture<'static, ()> {
        self.shared.manager.on_disconnected(conn);
        let hook = self.hub.clone().on_disconnected(self.context(conn), error);
        async move {
            if std::panic::AssertUnwindSafe(hook).catch_unwind().await.is_err() {
                tracing::error!("on_disconnected panicked");
            }
        }
        .boxed()
    }

    fn prepare(&self, conn: &Arc<Connection>, invocation: Invocation, streaming: bool) -> Prepared {
        let target = invocation.target;
        let binding_failure = |error: HubError| {
            Prepared::Fail(error.client_text(
                &format!("Failed to invoke '{target}' due to an error on the server."),
                self.options.enable_detailed_errors,
            ))
        };
        let Some(entry) = self.methods.find(&target) else {
            return binding_failure(HubError::new("Method does not exist."));
        };
        match (entry.kind, streaming) {
            (MethodKind::Unary, false) => {}
            (MethodKind::Unary, true) => {
                return Prepared::Fail(format!(
                    "The client attempted to invoke the non-streaming '{target}' method with a streaming invocation."
                ));
            }
        }
        match (entry.handler)(self.hub.clone(), self.context(conn), invocation.arguments) {
            Ok(future) => Prepared::Run(future),
            Err(error) => binding_failure(HubError::exception("InvalidDataException", error.message())),
        }
    }
}
