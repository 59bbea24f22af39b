//! What a connection shares between its handles and its tasks, and the tasks themselves: the
//! reader that dispatches the server's messages, and the supervisor that reconnects.
//!
//! Each link's handshake, keep-alive and server timeout are its
//! [`ClientCore`](crate::protocol::client_core::ClientCore)'s: the reader is its async shell
//! (it feeds it the socket's frames and the clock, and carries out what it decides), and the
//! writer tells it when it sent.
//!
//! One *session* runs from a successful start to the final close; it may span several
//! WebSockets (*links*) when it reconnects. Pending invocations and streams belong to the
//! link they were sent on and fail when it ends; handlers belong to the connection and are
//! kept across links and sessions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::SplitStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use super::endpoint::Endpoint;
use super::transport::{self, Opened, Outbound, Socket, now, sleep_until};
use super::{ClientError, ClientOptions, ConnectionState};
use crate::protocol::client_core::{ClientClosing, ClientCore, ClientOutput};
use crate::protocol::{CompletionResult, HubMessage, Invocation, RawValue};

/// Records waiting for the writer of one link.
const QUEUE_CAPACITY: usize = 256;

/// How long a stopping connection waits for the server to close the WebSocket.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The answer to an invocation with an id when no handler is registered for its method.
pub(crate) const NO_RESULT: &str = "Client didn't provide a result.";

/// A registered handler, type-erased: it takes the raw arguments and the invocation id,
/// and resolves to the framed Completion to send back (for invocations with an id).
pub(crate) type Handler = Arc<dyn Fn(Vec<RawValue>, Option<String>) -> BoxFuture<'static, Option<Bytes>> + Send + Sync>;

/// What waits for the server's answer.
pub(crate) enum Pending {
    /// An invocation, waiting for its Completion.
    Invoke(oneshot::Sender<Result<CompletionResult, ClientError>>),
    /// A server-to-client stream, waiting for its items and its Completion.
    Stream(mpsc::UnboundedSender<Result<RawValue, ClientError>>),
}

/// The WebSocket currently connected, as senders see it.
#[derive(Clone)]
pub(crate) struct Link {
    /// The writer's queue.
    pub queue: mpsc::Sender<Outbound>,
    connection_id: Option<String>,
}

struct State {
    phase: ConnectionState,
    link: Option<Link>,
    pending: HashMap<String, Pending>,
    session: Option<CancellationToken>,
}

/// A connection's state, shared by its handles, its streams and its tasks.
pub(crate) struct Shared {
    pub endpoint: Endpoint,
    pub options: ClientOptions,
    /// Handlers by lowercase method name.
    pub handlers: RwLock<HashMap<String, Handler>>,
    next_id: AtomicU64,
    state: Mutex<State>,
    /// `None` while a session runs; then how it ended.
    closed: watch::Sender<Option<Option<ClientError>>>,
}

/// How one link ended.
enum Ended {
    /// The server sent a Close message.
    Closed {
        error: Option<String>,
        allow_reconnect: bool,
    },
    /// The link broke, timed out, or closed without a Close message; or it was stopped.
    Lost(Option<ClientError>),
}

impl From<ClientClosing> for Ended {
    fn from(closing: ClientClosing) -> Self {
        match transport::outcome(closing) {
            Ok((error, allow_reconnect)) => Ended::Closed { error, allow_reconnect },
            Err(error) => Ended::Lost(Some(error)),
        }
    }
}

/// A connected link, as its reader holds it.
struct Running {
    stream: SplitStream<Socket>,
    /// The link's core, which the writer tells when it sent.
    core: Arc<Mutex<ClientCore>>,
    queue: mpsc::Sender<Outbound>,
    writer: JoinHandle<bool>,
    shutdown: CancellationToken,
    /// Fire-and-forget handler calls, run one after another in arrival order (as the .NET
    /// and TypeScript clients call them); calls that answer a client result run on their own.
    in_order: mpsc::UnboundedSender<BoxFuture<'static, ()>>,
}

fn lock_core(core: &Mutex<ClientCore>) -> MutexGuard<'_, ClientCore> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ends the session of a start whose future was dropped before it finished.
struct StartGuard<'a>(Option<&'a Shared>);

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        if let Some(shared) = self.0 {
            shared.finish(None);
        }
    }
}

impl Shared {
    pub(crate) fn new(endpoint: Endpoint, options: ClientOptions) -> Self {
        Self {
            endpoint,
            options,
            handlers: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            state: Mutex::new(State {
                phase: ConnectionState::Disconnected,
                link: None,
                pending: HashMap::new(),
                session: None,
            }),
            closed: watch::Sender::new(Some(None)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next invocation or stream id: `"0"`, `"1"`, …
    pub(crate) fn next_id(&self) -> String {
        self.next_id.fetch_add(1, Ordering::Relaxed).to_string()
    }

    pub(crate) fn phase(&self) -> ConnectionState {
        self.lock().phase
    }

    pub(crate) fn connection_id(&self) -> Option<String> {
        self.lock().link.as_ref().and_then(|l| l.connection_id.clone())
    }

    /// The current link, or the error of a connection that is not connected.
    pub(crate) fn link(&self) -> Result<Link, ClientError> {
        self.lock().link.clone().ok_or_else(ClientError::not_connected)
    }

    /// Registers what waits for the answer to `id`, on the current link.
    pub(crate) fn register(&self, id: &str, pending: Pending) -> Result<Link, ClientError> {
        let mut state = self.lock();
        let link = state.link.clone().ok_or_else(ClientError::not_connected)?;
        state.pending.insert(id.to_owned(), pending);
        Ok(link)
    }

    /// Forgets what waits for `id`; returns the current link if it was still waiting.
    pub(crate) fn forget(&self, id: &str) -> Option<Link> {
        let mut state = self.lock();
        state.pending.remove(id)?;
        state.link.clone()
    }

    /// Starts a session: negotiate, WebSocket, handshake; then the tasks that run it.
    pub(crate) async fn start(self: &Arc<Self>) -> Result<(), ClientError> {
        let session = {
            let mut state = self.lock();
            if state.phase != ConnectionState::Disconnected {
                return Err(ClientError::config(
                    "Cannot start a HubConnection that is not in the 'Disconnected' state.",
                ));
            }
            state.phase = ConnectionState::Connecting;
            let session = CancellationToken::new();
            state.session = Some(session.clone());
            self.closed.send_replace(None);
            session
        };
        // If the caller drops the start before it is done, the session ends there.
        let mut abandoned = StartGuard(Some(self));
        let opened = tokio::select! {
            opened = transport::open(&self.endpoint, &self.options) => opened,
            () = session.cancelled() => Err(ClientError::disconnected("The connection was stopped during negotiation.")),
        };
        abandoned.0 = None;
        match opened.and_then(|opened| self.attach(opened, &session)) {
            Ok(running) => {
                tokio::spawn(self.clone().supervise(running, session));
                Ok(())
            }
            Err(error) => {
                // A start that stop() interrupted ends without an error.
                self.finish((!session.is_cancelled()).then(|| error.clone()));
                Err(error)
            }
        }
    }

    /// Stops the session: a Close message and a WebSocket close if connected (the reader
    /// asks its writer for them), the end of reconnect attempts otherwise. Returns once the
    /// session has ended.
    pub(crate) async fn stop(&self) {
        let Some(session) = self.lock().session.clone() else {
            return;
        };
        session.cancel();
        let mut closed = self.closed.subscribe();
        let _ = closed.wait_for(Option::is_some).await;
    }

    /// Stops the session without waiting (the last handle is gone).
    pub(crate) fn abandon(&self) {
        if let Some(session) = &self.lock().session {
            session.cancel();
        }
    }

    /// Waits for the end of the current session (at once if none runs).
    pub(crate) async fn closed(&self) -> Option<ClientError> {
        let mut closed = self.closed.subscribe();
        let outcome = match closed.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        };
        outcome.flatten()
    }

    /// Makes an opened WebSocket the current link and starts its writer.
    fn attach(&self, opened: Opened, session: &CancellationToken) -> Result<Running, ClientError> {
        let (sink, stream) = opened.socket.split();
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let shutdown = CancellationToken::new();
        let protocol = opened.core.protocol();
        let core = Arc::new(Mutex::new(opened.core));
        let writer = tokio::spawn(transport::write_loop(
            sink,
            receiver,
            protocol,
            core.clone(),
            shutdown.clone(),
        ));
        let mut state = self.lock();
        if session.is_cancelled() {
            let _ = queue.try_send(Outbound::Stop);
            return Err(ClientError::disconnected(
                "The connection was stopped while connecting.",
            ));
        }
        state.link = Some(Link {
            queue: queue.clone(),
            connection_id: opened.connection_id,
        });
        state.phase = ConnectionState::Connected;
        let (in_order, mut calls) = mpsc::unbounded_channel::<BoxFuture<'static, ()>>();
        tokio::spawn(async move {
            while let Some(call) = calls.recv().await {
                // A panicking handler must not stop the calls after it.
                let _ = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(call)).await;
            }
        });
        Ok(Running {
            stream,
            core,
            queue,
            writer,
            shutdown,
            in_order,
        })
    }

    /// Ends the current link: no new sends, and everything waiting on it fails.
    fn detach(&self, next: ConnectionState) {
        let pending = {
            let mut state = self.lock();
            state.link = None;
            state.phase = next;
            std::mem::take(&mut state.pending)
        };
        for (_, waiting) in pending {
            match waiting {
                Pending::Invoke(sender) => {
                    let _ = sender.send(Err(ClientError::connection_closed()));
                }
                Pending::Stream(sender) => {
                    let _ = sender.send(Err(ClientError::connection_closed()));
                }
            }
        }
    }

    /// Ends the session.
    fn finish(&self, error: Option<ClientError>) {
        self.detach(ConnectionState::Disconnected);
        self.lock().session = None;
        self.closed.send_replace(Some(error));
    }

    /// Runs links one after the other until the session ends.
    async fn supervise(self: Arc<Self>, mut running: Running, session: CancellationToken) {
        loop {
            let ended = self.run(running, &session).await;
            if session.is_cancelled() {
                return self.finish(None);
            }
            let (cause, may_reconnect) = match ended {
                Ended::Closed { error, allow_reconnect } => (error.map(ClientError::server_closed), allow_reconnect),
                Ended::Lost(error) => (error, true),
            };
            let delays = match &self.options.reconnect_delays {
                Some(delays) if may_reconnect && !delays.is_empty() => delays.clone(),
                _ => return self.finish(cause),
            };
            self.detach(ConnectionState::Reconnecting);
            tracing::debug!(error = ?cause, "connection lost; reconnecting");
            let mut last = cause;
            let mut next = None;
            for delay in delays {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = session.cancelled() => return self.finish(None),
                }
                let opened = tokio::select! {
                    opened = transport::open(&self.endpoint, &self.options) => opened,
                    () = session.cancelled() => return self.finish(None),
                };
                match opened.and_then(|opened| self.attach(opened, &session)) {
                    Ok(reconnected) => {
                        next = Some(reconnected);
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "reconnect attempt failed");
                        last = Some(error);
                    }
                }
            }
            match next {
                Some(reconnected) => running = reconnected,
                None => return self.finish(last),
            }
        }
    }

    /// Reads one link until it ends, dispatching what arrives.
    async fn run(&self, mut running: Running, session: &CancellationToken) -> Ended {
        let ended = self.read(&mut running, session).await;
        running.shutdown.cancel();
        self.detach(self.phase());
        ended
    }

    async fn read(&self, running: &mut Running, session: &CancellationToken) -> Ended {
        // What came with the handshake response first.
        if let Some(ended) = self.dispatch(running) {
            return ended;
        }
        // Once stopping, only how long the server may take to close the WebSocket counts.
        let mut stopping: Option<std::time::Instant> = None;
        let mut writer_done = false;
        let mut close_error = None;
        loop {
            let deadline = stopping.or_else(|| lock_core(&running.core).poll_timeout());
            tokio::select! {
                next = running.stream.next() => {
                    let now = now();
                    lock_core(&running.core).note_received(now);
                    match next {
                        Some(Ok(Message::Text(text))) => lock_core(&running.core).handle_input(now, text.as_bytes()),
                        Some(Ok(Message::Binary(bytes))) => lock_core(&running.core).handle_input(now, &bytes),
                        Some(Ok(Message::Close(frame))) => {
                            close_error = frame.filter(|f| f.code != CloseCode::Normal).map(|f| {
                                ClientError::disconnected(format!(
                                    "WebSocket closed with status code: {} ({}).",
                                    u16::from(f.code),
                                    f.reason
                                ))
                            });
                            continue;
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            return Ended::Lost(Some(ClientError::disconnected(format!("WebSocket closed with an error: {e}"))));
                        }
                        None => return Ended::Lost(close_error),
                    }
                    if let Some(ended) = self.dispatch(running) {
                        return ended;
                    }
                }
                () = sleep_until(deadline) => {
                    if stopping.is_some() {
                        return Ended::Lost(None);
                    }
                    lock_core(&running.core).handle_timeout(now());
                    if let Some(ended) = self.dispatch(running) {
                        return ended;
                    }
                }
                () = session.cancelled(), if stopping.is_none() => {
                    // Close gracefully, after whatever is queued; then wait for the server's
                    // side of the WebSocket close, for a while.
                    stopping = Some(now() + STOP_TIMEOUT);
                    let queue = running.queue.clone();
                    tokio::spawn(async move {
                        let _ = queue.send(Outbound::Stop).await;
                    });
                }
                failed = &mut running.writer, if !writer_done => {
                    writer_done = true;
                    if failed.unwrap_or(true) && stopping.is_none() {
                        return Ended::Lost(Some(ClientError::disconnected("WebSocket closed: a write failed.")));
                    }
                }
            }
        }
    }

    /// Carries out what the core decided, and handles every message of the bytes it was
    /// fed; says if the link must end.
    fn dispatch(&self, running: &mut Running) -> Option<Ended> {
        loop {
            let output = lock_core(&running.core).poll_output();
            let message = match output? {
                ClientOutput::Message(message) => message,
                // A full queue already has data to send.
                ClientOutput::KeepAlive(ping) => {
                    let _ = running.queue.try_send(Outbound::Records(ping));
                    continue;
                }
                ClientOutput::Close(closing) => return Some(closing.into()),
                ClientOutput::Handshake(_) | ClientOutput::Opened => continue,
            };
            match message {
                HubMessage::Invocation(invocation) => self.call_handler(invocation, &running.queue, &running.in_order),
                HubMessage::StreamItem(item) => {
                    if let Some(Pending::Stream(sender)) = self.lock().pending.get(&item.invocation_id) {
                        let _ = sender.send(Ok(item.item));
                    }
                }
                HubMessage::Completion(completion) => {
                    let waiting = self.lock().pending.remove(&completion.invocation_id);
                    match waiting {
                        Some(Pending::Invoke(sender)) => {
                            let _ = sender.send(Ok(completion.result));
                        }
                        Some(Pending::Stream(sender)) => {
                            if let CompletionResult::Error(error) = completion.result {
                                let _ = sender.send(Err(ClientError::hub(error)));
                            }
                        }
                        None => {}
                    }
                }
                // The client has no use for the rest.
                _ => {}
            }
        }
    }

    /// Calls the handler of a server-to-client invocation (in arrival order), and runs the
    /// future it returns on its own task, sending its Completion when there is one.
    fn call_handler(
        &self,
        invocation: Invocation,
        queue: &mpsc::Sender<Outbound>,
        in_order: &mpsc::UnboundedSender<BoxFuture<'static, ()>>,
    ) {
        let fire_and_forget = invocation.invocation_id.is_none();
        let handler = self
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&invocation.target.to_lowercase())
            .cloned();
        let answer: BoxFuture<'static, Option<Bytes>> = match handler {
            Some(handler) => handler(invocation.arguments, invocation.invocation_id),
            None => {
                tracing::warn!(method = %invocation.target, "no client method with this name is registered");
                let Some(id) = invocation.invocation_id else {
                    return;
                };
                let mut out = Vec::new();
                let _ = self.options.protocol.write_completion::<()>(
                    &mut out,
                    &id,
                    CompletionResult::Error(NO_RESULT.to_owned()),
                );
                Box::pin(std::future::ready(Some(Bytes::from(out))))
            }
        };
        let queue = queue.clone();
        let call = async move {
            if let Some(completion) = answer.await {
                let _ = queue.send(Outbound::Records(completion)).await;
            }
        };
        if fire_and_forget {
            let _ = in_order.send(Box::pin(call));
        } else {
            tokio::spawn(call);
        }
    }
}
