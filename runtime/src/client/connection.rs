//! [`HubConnection`]: the public face of a client connection.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use super::arguments::{ArgumentList, decode_arguments};
use super::driver::{Handler, Pending, Shared};
use super::endpoint::Endpoint;
use super::stream::ClientStream;
use super::transport::Outbound;
use super::{ClientError, ClientOptions, ConnectionState};
use crate::protocol::{CompletionResult, Protocol, RawValue};

/// A connection to a hub. Clone is cheap: clones share the connection.
///
/// Dropping the last clone stops the connection (handlers that capture a clone keep it
/// alive: call [`stop`](HubConnection::stop) then).
#[derive(Clone)]
pub struct HubConnection {
    handle: Arc<Handle>,
}

/// Stops the connection when the last [`HubConnection`] goes away.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.abandon();
    }
}

/// An invocation ready to send.
struct Prepared {
    id: String,
    stream_id: Option<String>,
    invocation: Bytes,
}

/// Forgets a pending invocation if its caller stops waiting.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: &'a str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.forget(self.id);
    }
}

fn frame(write: impl FnOnce(&mut Vec<u8>) -> Result<(), crate::protocol::ProtocolError>) -> Result<Bytes, ClientError> {
    let mut out = Vec::new();
    write(&mut out)?;
    Ok(Bytes::from(out))
}

/// The value of a Completion, decoded into `T` (a void Completion decodes as null).
fn decode_completion<T: DeserializeOwned>(
    protocol: Protocol,
    method: &str,
    result: CompletionResult,
) -> Result<T, ClientError> {
    let decoded = match result {
        CompletionResult::Error(error) => return Err(ClientError::hub(error)),
        CompletionResult::Value(raw) => raw.decode::<T>(),
        CompletionResult::Void => match protocol {
            Protocol::Json => protocol.decode_value::<T>(b"null"),
            Protocol::MessagePack => protocol.decode_value::<T>(&[0xc0]),
        },
    };
    decoded.map_err(|e| ClientError::protocol(format!("Failed to decode the result of '{method}': {e}")))
}

/// The framed Completion answering a client-result invocation.
fn completion<R: Serialize>(protocol: Protocol, id: &str, outcome: Result<R, String>) -> Bytes {
    let mut out = Vec::new();
    let written = match &outcome {
        Ok(value) => protocol.write_completion(&mut out, id, CompletionResult::Value(value)),
        Err(error) => protocol.write_completion::<()>(&mut out, id, CompletionResult::Error(error.clone())),
    };
    if let Err(error) = written {
        out.clear();
        let text = format!("Failed to encode the result: {error}");
        let _ = protocol.write_completion::<()>(&mut out, id, CompletionResult::Error(text));
    }
    Bytes::from(out)
}

impl HubConnection {
    /// A connection to the hub at `url` (`http://` or `ws://`), not started yet: register
    /// handlers with [`on`](HubConnection::on), then [`start`](HubConnection::start) it, so
    /// that no message the server sends right after the handshake is missed.
    pub fn new(url: &str, options: ClientOptions) -> Result<HubConnection, ClientError> {
        let endpoint = Endpoint::parse(url)?;
        Ok(HubConnection {
            handle: Arc::new(Handle {
                shared: Arc::new(Shared::new(endpoint, options)),
            }),
        })
    }

    /// Connects to the hub at `url`: negotiate (unless skipped), the WebSocket, the handshake.
    ///
    /// Shorthand for [`new`](HubConnection::new) and [`start`](HubConnection::start).
    pub async fn connect(url: &str, options: ClientOptions) -> Result<HubConnection, ClientError> {
        let connection = HubConnection::new(url, options)?;
        connection.start().await?;
        Ok(connection)
    }

    /// Starts (or restarts, after [`stop`](HubConnection::stop) or a final close) the
    /// connection. A failed start is not retried.
    pub async fn start(&self) -> Result<(), ClientError> {
        self.shared().start().await
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The connection id the server gave in negotiate; `None` when not connected, or
    /// when negotiation was skipped. A reconnect brings a new one.
    pub fn connection_id(&self) -> Option<String> {
        self.shared().connection_id()
    }

    /// Invokes `method` and waits for its Completion; `arguments` is a tuple (or `()`),
    /// serialized once. A void Completion decodes as null (into `()` or an `Option`).
    pub async fn invoke<T: DeserializeOwned>(
        &self,
        method: &str,
        arguments: impl Serialize + Send + 'static,
    ) -> Result<T, ClientError> {
        let prepared = self.prepare(method, arguments, false);
        self.call(method, prepared?, None::<futures_util::stream::Empty<()>>)
            .await
    }

    /// Sends an Invocation without an id (fire and forget): resolves once it is queued for
    /// the WebSocket.
    pub async fn send(&self, method: &str, arguments: impl Serialize + Send + 'static) -> Result<(), ClientError> {
        let protocol = self.shared().options.protocol;
        let invocation =
            frame(|out| protocol.write_invocation(out, false, None, method, &ArgumentList::new(arguments), &[]))?;
        let link = self.shared().link()?;
        link.queue
            .send(Outbound::Records(invocation))
            .await
            .map_err(|_| ClientError::not_connected())
    }

    /// Calls a streaming method (StreamInvocation). Dropping the stream before its end sends
    /// CancelInvocation.
    pub fn stream<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        arguments: impl Serialize + Send + 'static,
    ) -> ClientStream<T> {
        let protocol = self.shared().options.protocol;
        let id = self.shared().next_id();
        let invocation =
            frame(|out| protocol.write_invocation(out, true, Some(&id), method, &ArgumentList::new(arguments), &[]));
        ClientStream::new(self.shared().clone(), id, invocation)
    }

    /// Invokes a method that takes ONE client-to-server stream after its positional
    /// arguments: the items of `upload` are sent as StreamItems, then a Completion ends the
    /// stream; resolves with the method's Completion (which may come before the upload
    /// ends: the rest of the upload is then not sent).
    pub async fn invoke_with_upload<T, I>(
        &self,
        method: &str,
        arguments: impl Serialize + Send + 'static,
        upload: impl Stream<Item = I> + Send + 'static,
    ) -> Result<T, ClientError>
    where
        T: DeserializeOwned,
        I: Serialize + Send + 'static,
    {
        let prepared = self.prepare(method, arguments, true);
        self.call(method, prepared?, Some(upload)).await
    }

    /// Allocates the ids of an invocation (and of its upload stream) and frames it.
    fn prepare<A: Serialize + Send + 'static>(
        &self,
        method: &str,
        arguments: A,
        upload: bool,
    ) -> Result<Prepared, ClientError> {
        let shared = self.shared();
        let protocol = shared.options.protocol;
        let id = shared.next_id();
        let stream_id = upload.then(|| shared.next_id());
        let invocation = frame(|out| {
            protocol.write_invocation(
                out,
                false,
                Some(&id),
                method,
                &ArgumentList::new(arguments),
                stream_id.as_slice(),
            )
        })?;
        Ok(Prepared {
            id,
            stream_id,
            invocation,
        })
    }

    /// Sends a prepared invocation, then the upload if any, and waits for the Completion.
    async fn call<T, I>(
        &self,
        method: &str,
        prepared: Prepared,
        upload: Option<impl Stream<Item = I> + Send>,
    ) -> Result<T, ClientError>
    where
        T: DeserializeOwned,
        I: Serialize,
    {
        let shared = self.shared();
        let protocol = shared.options.protocol;
        let Prepared {
            id,
            stream_id,
            invocation,
        } = prepared;
        let (sender, mut receiver) = oneshot::channel();
        let link = shared.register(&id, Pending::Invoke(sender))?;
        let _guard = PendingGuard { shared, id: &id };
        link.queue
            .send(Outbound::Records(invocation))
            .await
            .map_err(|_| ClientError::connection_closed())?;
        if let (Some(upload), Some(stream_id)) = (upload, stream_id) {
            let pump = async {
                let mut upload = std::pin::pin!(upload);
                let mut end = CompletionResult::Void;
                while let Some(item) = upload.next().await {
                    let record = match frame(|out| protocol.write_stream_item(out, &stream_id, &item)) {
                        Ok(record) => record,
                        Err(error) => {
                            end = CompletionResult::Error(error.to_string());
                            break;
                        }
                    };
                    if link.queue.send(Outbound::Records(record)).await.is_err() {
                        return;
                    }
                }
                if let Ok(record) = frame(|out| protocol.write_completion::<()>(out, &stream_id, end)) {
                    let _ = link.queue.send(Outbound::Records(record)).await;
                }
            };
            tokio::select! {
                biased;
                result = &mut receiver => return Self::completed(protocol, method, result),
                () = pump => {}
            }
        }
        Self::completed(protocol, method, receiver.await)
    }

    fn completed<T: DeserializeOwned>(
        protocol: Protocol,
        method: &str,
        received: Result<Result<CompletionResult, ClientError>, oneshot::error::RecvError>,
    ) -> Result<T, ClientError> {
        let result = received.map_err(|_| ClientError::connection_closed())??;
        decode_completion(protocol, method, result)
    }

    /// Registers the handler of a server-to-client method (names matched ignoring case;
    /// registering again replaces the handler). The handler gets the arguments as a tuple
    /// type `A` (`()` takes any arguments; extra arguments are ignored).
    ///
    /// Its return value answers client-result invocations (invocations with an id); for
    /// fire-and-forget invocations it is ignored. An `Err(text)` answers with a Completion
    /// error `text`; so do arguments that do not decode into `A`, and a handler that panics.
    /// An invocation with an id for a method with no handler is answered with the error
    /// "Client didn't provide a result."
    ///
    /// Handlers are called in the order their invocations arrive; the futures they return
    /// run concurrently, each on its own task.
    pub fn on<A, F, Fut, R>(&self, method: &str, handler: F)
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, String>> + Send + 'static,
        R: Serialize + Send + 'static,
    {
        let protocol = self.shared().options.protocol;
        let name = method.to_owned();
        let erased: Handler = Arc::new(move |arguments: Vec<RawValue>, id: Option<String>| {
            let started = match decode_arguments::<A>(arguments) {
                Ok(arguments) => std::panic::catch_unwind(AssertUnwindSafe(|| handler(arguments)))
                    .map_err(|_| format!("The handler of '{name}' panicked.")),
                Err(error) => Err(format!("Failed to bind the arguments of '{name}': {error}")),
            };
            let name = name.clone();
            async move {
                let outcome = match started {
                    Ok(running) => AssertUnwindSafe(running)
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| Err(format!("The handler of '{name}' panicked."))),
                    Err(error) => Err(error),
                };
                match id {
                    Some(id) => Some(completion(protocol, &id, outcome)),
                    None => {
                        if let Err(error) = outcome {
                            tracing::warn!(method = %name, %error, "a client method failed");
                        }
                        None
                    }
                }
            }
            .boxed()
        });
        self.shared()
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(method.to_lowercase(), erased);
    }

    /// Removes the handler of a server-to-client method.
    pub fn off(&self, method: &str) {
        self.shared()
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&method.to_lowercase());
    }

    /// Closes gracefully (a Close message, then a WebSocket close), or ends reconnect
    /// attempts; returns once the connection is closed. Pending invocations and streams fail.
    pub async fn stop(&self) {
        self.shared().stop().await
    }

    /// Resolves when the connection has closed for good (after reconnect attempts, if any),
    /// with the error if it ended with one: a Close message with an error (the server's
    /// text in [`ClientError::message`]), a lost connection with reconnect off, or the last
    /// failed reconnect attempt. Resolves at once if the connection is not running.
    pub async fn closed(&self) -> Option<ClientError> {
        self.shared().closed().await
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> ConnectionState {
        self.shared().phase()
    }
}

impl std::fmt::Debug for HubConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnection")
            .field("state", &self.state())
            .field("connection_id", &self.connection_id())
            .finish_non_exhaustive()
    }
}
