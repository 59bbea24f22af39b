//! One hub mapped at one path, as the connection layer's [`Dispatcher`] sees it: method
//! lookup, invocation modes, argument and stream binding, the reference server's error
//! texts, and the lifecycle hooks.

use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::mpsc;

use super::methods::{Binder, MethodKind, Methods};
use super::{Hub, HubContext, HubShared, Scope};
use crate::HubError;
use crate::connection::Connection;
use crate::connection::dispatcher::{Dispatcher, Prepared, Started};
use crate::lifetime::ConnectionHandle;
use crate::options::HubOptions;
use crate::protocol::Invocation;

/// One hub mapped at one path.
pub(crate) struct HubEndpoint<H> {
    pub hub: Arc<H>,
    pub methods: Arc<Methods<H>>,
    pub shared: Arc<HubShared>,
    pub options: HubOptions,
    /// The connection core's settings, by transport.
    pub configs: crate::connection::CoreConfigs,
}

impl<H: Hub> HubEndpoint<H> {
    fn context(&self, conn: &Arc<Connection>, scope: Scope) -> HubContext<H> {
        HubContext::new(conn.clone(), self.shared.clone(), scope)
    }
}

impl<H: Hub> Dispatcher for HubEndpoint<H> {
    fn options(&self) -> &HubOptions {
        &self.options
    }

    fn core_config(
        &self,
        transport: crate::options::TransportType,
        format_supported: fn(crate::protocol::TransferFormat) -> bool,
    ) -> Arc<crate::protocol::connection_core::Config> {
        self.configs.get(&self.options, transport, format_supported)
    }

    fn connected(&self, conn: &Arc<Connection>) -> BoxFuture<'static, Result<(), HubError>> {
        self.shared.manager.on_connected(&ConnectionHandle::new(conn.clone()));
        let hook = self.hub.clone().on_connected(self.context(conn, Scope::Connecting));
        async move {
            match std::panic::AssertUnwindSafe(hook).catch_unwind().await {
                Ok(result) => result,
                Err(_) => Err(HubError::exception("Exception", "on_connected panicked.")),
            }
        }
        .boxed()
    }

    fn disconnected(&self, conn: &Arc<Connection>, error: Option<HubError>) -> BoxFuture<'static, ()> {
        self.shared
            .manager
            .on_disconnected(&ConnectionHandle::new(conn.clone()));
        let hook = self
            .hub
            .clone()
            .on_disconnected(self.context(conn, Scope::Connection), error);
        async move {
            if std::panic::AssertUnwindSafe(hook).catch_unwind().await.is_err() {
                tracing::error!("on_disconnected panicked");
            }
        }
        .boxed()
    }

    fn prepare(&self, conn: &Arc<Connection>, invocation: Invocation, streaming: bool) -> Prepared {
        let target = invocation.target;
        let detailed = self.options.enable_detailed_errors;
        let binding_failure = |error: HubError| {
            Prepared::Fail(error.client_text(
                &format!("Failed to invoke '{target}' due to an error on the server."),
                detailed,
            ))
        };
        let Some(entry) = self.methods.find(&target) else {
            return binding_failure(HubError::new("Method does not exist."));
        };
        if invocation.arguments.len() != entry.arguments {
            let error = super::methods::BindError::count(invocation.arguments.len(), entry.arguments);
            return binding_failure(HubError::exception("InvalidDataException", error.message()));
        }
        match (entry.kind, streaming) {
            (MethodKind::Unary, true) => {
                return Prepared::Fail(format!(
                    "The client attempted to invoke the non-streaming '{target}' method with a streaming invocation."
                ));
            }
            (MethodKind::Stream, false) => {
                return Prepared::Fail(format!(
                    "The client attempted to invoke the streaming '{target}' method with a non-streaming invocation."
                ));
            }
            _ => {}
        }
        if invocation.stream_ids.len() != entry.streams {
            let error = HubError::new(format!(
                "Client sent {} stream(s), Hub method expects {}.",
                invocation.stream_ids.len(),
                entry.streams
            ));
            return Prepared::Fail(error.client_text(
                &format!("An unexpected error occurred invoking '{target}' on the server."),
                detailed,
            ));
        }
        let capacity = self.options.stream_buffer_capacity;
        let (senders, receivers): (Vec<_>, Vec<_>) =
            invocation.stream_ids.iter().map(|_| mpsc::channel(capacity)).unzip();
        let cancellation = conn.closing().child_token();
        let scope = Scope::Invocation {
            cancellation: cancellation.clone(),
            parallel: self.options.maximum_parallel_invocations_per_client > 1,
        };
        let mut binder = Binder::new(invocation.arguments, receivers);
        let invoked = match (entry.handler)(self.hub.clone(), self.context(conn, scope), &mut binder) {
            Ok(invoked) => invoked,
            Err(error) => return binding_failure(HubError::exception("InvalidDataException", error.message())),
        };
        for (id, sender) in invocation.stream_ids.iter().zip(senders) {
            conn.invocations().add_incoming(id.clone(), sender);
        }
        Prepared::Run(Started {
            invoked,
            cancellation,
            stream_ids: invocation.stream_ids,
        })
    }
}
