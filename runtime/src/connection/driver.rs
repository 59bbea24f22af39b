//! The life of a hub connection after its transport is up: the handshake (whose response is
//! the first thing sent), then reading records as they arrive, dispatching them, keep-alive
//! pings, the client timeout, and the end (on_disconnected). This is the async shell of the
//! connection's [`ConnectionCore`](crate::protocol::connection_core::ConnectionCore): it feeds
//! it the transport's bytes and the clock, and carries out what it decides.
//!
//! The driver reads and dispatches; the transport's writer drains the outbound queue. Hub
//! methods run in their own tasks, so a slow method never stops reading, and at most
//! `maximum_parallel_invocations_per_client` non-streaming invocations run at once (further
//! ones wait, in order, as with the reference server).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::sync::Semaphore;

use super::{CloseReason, Connection};
use crate::HubError;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use super::dispatcher::{Dispatcher, Invoked, ItemStream, Prepared, Started};
use super::invocations::StreamInput;
use crate::connection::inbound::Inbound;
use crate::protocol::connection_core::Output;
use crate::protocol::{CompletionResult, HubMessage, Protocol, StreamItem, TransferFormat};

/// How often the timers are checked, as the reference server does.
const TICK: Duration = Duration::from_secs(1);

/// Runs a connection until it ends. `format` is what the transport can carry.
pub(crate) async fn run(
    conn: Arc<Connection>,
    mut input: Inbound,
    format_supported: fn(TransferFormat) -> bool,
    dispatcher: Arc<dyn Dispatcher>,
) {
    let options = dispatcher.options();
    let config = dispatcher.core_config(conn.transport(), format_supported);
    conn.core().start_hub(Instant::now(), config);
    // The handshake and message handling run in boxed futures: a connection's task then holds
    // only what an idle connection needs between messages, not the largest state of either.
    let Some(_protocol) = Box::pin(handshake(&conn, &mut input)).await else {
        conn.close(CloseReason::transport_closed());
        return;
    };

    let detailed = options.enable_detailed_errors;
    if let Err(error) = dispatcher.connected(&conn).await {
        let text = error.client_text("Connection closed with an error.", detailed);
        let mut reason = CloseReason::error(text, error);
        reason.allow_reconnect = false;
        conn.close(reason);
        dispatcher.disconnected(&conn, None).await;
        return;
    }

    let permits = Arc::new(Semaphore::new(options.maximum_parallel_invocations_per_client));
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let closing = conn.closing().clone();

    'read: loop {
        // What the core has decided, and the messages of the bytes read so far (those that
        // came with the handshake first).
        loop {
            let output = conn.core().poll_output();
            match output {
                None => break,
                Some(Output::Message(message)) => {
                    if !Box::pin(handle(&conn, message, &*dispatcher, &permits, &mut ticker, options)).await {
                        break 'read;
                    }
                }
                Some(output) => {
                    if !apply(&conn, output, detailed) {
                        break 'read;
                    }
                }
            }
        }
        tokio::select! {
            biased;
            _ = closing.cancelled() => break,
            _ = ticker.tick() => tick(&conn, detailed),
            chunk = input.next() => {
                let Some(chunk) = chunk else {
                    if conn.is_draining() {
                        Box::pin(drain(&conn, &permits, options)).await;
                    }
                    conn.close(CloseReason::transport_closed());
                    break;
                };
                conn.core().handle_input(Instant::now(), &chunk);
            }
        }
    }

    conn.invocations().close();
    let reason = conn.close_reason();
    dispatcher
        .disconnected(&conn, reason.and_then(|r| r.disconnect_error))
        .await;
}

/// The most a connection moving to another app server waits for its invocations under way.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// What a client result awaited on a connection that moves away fails with.
pub(crate) const MOVED_RESULT: &str =
    "The connection moved to another server before the client answered; the client result is lost.";

/// What a stream of a connection that moves away ends with.
const MOVED_STREAM: &str = "The connection moved to another server; the stream ended.";

/// A connection that moves to another app server (its input ended here, at a message
/// boundary): client results awaited fail, streams end with an error, and the unary
/// invocations under way finish and send their results, within [`DRAIN_LIMIT`].
async fn drain(conn: &Arc<Connection>, permits: &Arc<Semaphore>, options: &crate::HubOptions) {
    conn.invocations().fail_results(MOVED_RESULT);
    conn.invocations().cancel_streams();
    let all = u32::try_from(options.maximum_parallel_invocations_per_client).unwrap_or(u32::MAX);
    let finished = async {
        let _unary = permits.acquire_many(all).await;
        while conn.invocations().has_outgoing_streams() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(DRAIN_LIMIT, finished).await.is_err() {
        tracing::warn!(connection = %conn.id(), "invocations still under way when the connection moved away");
    }
}

/// Carries out one of the core's decisions (not a message to dispatch). Returns false when
/// the connection must stop reading.
fn apply(conn: &Connection, output: Output, detailed: bool) -> bool {
    match output {
        Output::Transmit(frame) => conn.send_frame(frame),
        Output::KeepAlive(ping) => conn.try_send_ping(ping),
        Output::Opened(protocol) => conn.set_protocol(protocol),
        Output::Acknowledged => conn.notify_acknowledged(),
        Output::Close(closing) => {
            if let crate::protocol::connection_core::Closing::Failed { message, .. } = &closing {
                tracing::debug!(connection = %conn.id(), error = %message, "closing after an error");
            }
            conn.close(CloseReason::from_closing(closing, detailed));
            return false;
        }
        // A hub connection's messages are dispatched by the read loop.
        Output::Message(_) | Output::Received(_) => {}
    }
    true
}

/// Keep-alive, client timeout and transport loss, checked once a second.
fn tick(conn: &Connection, detailed: bool) {
    conn.check_timers(Instant::now());
    loop {
        let output = conn.core().poll_queued();
        match output {
            Some(output) => {
                apply(conn, output, detailed);
            }
            None => return,
        }
    }
}

/// Reads the handshake, until the core accepts or refuses it (or its timeout passes).
/// Returns the chosen protocol, or `None` when the connection ends here.
async fn handshake(conn: &Connection, input: &mut Inbound) -> Option<Protocol> {
    let mut chosen = None;
    loop {
        loop {
            let output = conn.core().poll_queued();
            match output {
                None => break,
                Some(Output::Opened(protocol)) => {
                    conn.set_protocol(protocol);
                    chosen = Some(protocol);
                }
                Some(Output::Transmit(frame)) => conn.send_frame(frame),
                Some(Output::Close(_)) => return None,
                Some(_) => {}
            }
        }
        if chosen.is_some() {
            return chosen;
        }
        let deadline = conn.core().poll_timeout();
        let timeout = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            chunk = input.next() => match chunk {
                Some(chunk) => conn.core().handle_input(Instant::now(), &chunk),
                None => return None,
            },
            () = timeout => conn.check_timers(Instant::now()),
        }
    }
}

/// Dispatches one hub message. Returns false when the connection must stop reading.
async fn handle(
    conn: &Arc<Connection>,
    message: HubMessage,
    dispatcher: &dyn Dispatcher,
    permits: &Arc<Semaphore>,
    ticker: &mut tokio::time::Interval,
    options: &crate::HubOptions,
) -> bool {
    match message {
        HubMessage::Invocation(invocation) => {
            invoke(conn, invocation, false, dispatcher, permits, ticker, options).await
        }
        HubMessage::StreamInvocation(invocation) => {
            invoke(conn, invocation, true, dispatcher, permits, ticker, options).await
        }
        HubMessage::StreamItem(item) => {
            // Items for a stream nobody reads any more (or never did) are dropped.
            if let Some(sender) = conn.invocations().incoming(&item.invocation_id) {
                let delivered = tokio::select! {
                    biased;
                    _ = conn.closing().cancelled() => return false,
                    sent = sender.send(StreamInput::Item(item.item)) => sent.is_ok(),
                };
                if !delivered {
                    conn.invocations().remove_incoming(&item.invocation_id);
                }
            }
            true
        }
        HubMessage::Completion(completion) => {
            let id = completion.invocation_id;
            if conn.invocations().complete_result(&id, completion.result.clone()) {
                return true;
            }
            // The end of a client stream; an error reaches the method as an `Err` item.
            if let Some(sender) = conn.invocations().remove_incoming(&id)
                && let CompletionResult::Error(error) = completion.result
            {
                tokio::select! {
                    biased;
                    _ = conn.closing().cancelled() => return false,
                    _ = sender.send(StreamInput::Error(error)) => {}
                }
            }
            true
        }
        HubMessage::CancelInvocation { invocation_id, .. } => {
            conn.invocations().cancel_outgoing(&invocation_id);
            true
        }
        // Pings, Ack, Sequence and Close are the core's; the rest means nothing to a server.
        _ => true,
    }
}

async fn invoke(
    conn: &Arc<Connection>,
    invocation: crate::protocol::Invocation,
    streaming: bool,
    dispatcher: &dyn Dispatcher,
    permits: &Arc<Semaphore>,
    ticker: &mut tokio::time::Interval,
    options: &crate::HubOptions,
) -> bool {
    let id = invocation.invocation_id.clone();
    let target = invocation.target.clone();
    let detailed = options.enable_detailed_errors;
    let started = match dispatcher.prepare(conn, invocation, streaming) {
        Prepared::Fail(text) => {
            if let Some(id) = id {
                send_completion(conn, &id, CompletionResult::Error(text)).await;
            }
            return true;
        }
        Prepared::Run(started) => started,
    };
    let Started {
        invoked,
        cancellation,
        stream_ids,
    } = started;
    let future = match invoked {
        Invoked::Stream(future) => {
            // A StreamInvocation always has an id.
            let id = id.unwrap_or_default();
            if !conn.invocations().start_outgoing(&id, cancellation.clone()) {
                let text = format!("Invocation ID '{id}' is already in use.");
                send_completion(conn, &id, CompletionResult::Error(text)).await;
                return true;
            }
            let conn = conn.clone();
            tokio::spawn(async move {
                let error = stream_items(&conn, &id, &target, future, &cancellation, detailed).await;
                forget_streams(&conn, &stream_ids);
                let result = error.map_or(CompletionResult::Void, CompletionResult::Error);
                send_completion(&conn, &id, result).await;
                conn.invocations().end_outgoing(&id);
            });
            return true;
        }
        Invoked::Unary(future) => future,
    };
    // Methods fed by client streams run at once (the driver must keep reading their items);
    // others wait for a free slot, still answering the clock.
    let permit = if stream_ids.is_empty() {
        loop {
            tokio::select! {
                biased;
                _ = conn.closing().cancelled() => return false,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => break Some(permit),
                    Err(_) => return false,
                },
                _ = ticker.tick() => tick(conn, options.enable_detailed_errors),
            }
        }
    } else {
        None
    };
    let conn = conn.clone();
    let mut body = Box::pin(async move {
        let outcome = AssertUnwindSafe(future).catch_unwind().await;
        forget_streams(&conn, &stream_ids);
        // The slot is given back once the result is queued (a connection that moves away
        // waits for every slot: every result is then on its way).
        let Some(id) = id else { return };
        let prefix = || format!("An unexpected error occurred invoking '{target}' on the server.");
        let result = match outcome {
            Ok(Ok(value)) => CompletionResult::Value(value),
            Ok(Err(error)) => CompletionResult::Error(error.client_text(&prefix(), detailed)),
            Err(_) => {
                tracing::error!(connection = %conn.id(), method = %target, "hub method panicked");
                CompletionResult::Error(panicked().client_text(&prefix(), detailed))
            }
        };
        send_completion(&conn, &id, result).await;
        drop(permit);
    });
    // Most methods finish without waiting for anything: run them here, once, and hand only
    // those that wait over to a task of their own (so reading goes on meanwhile).
    let finished = std::future::poll_fn(|cx| std::task::Poll::Ready(body.as_mut().poll(cx).is_ready())).await;
    if !finished {
        tokio::spawn(body);
    }
    true
}

fn panicked() -> HubError {
    HubError::exception("Exception", "The hub method panicked.")
}

/// Later items for these client streams are dropped.
fn forget_streams(conn: &Connection, stream_ids: &[String]) {
    for stream_id in stream_ids {
        conn.invocations().remove_incoming(stream_id);
    }
}

/// Sends a streaming method's items until it ends, fails or is cancelled; returns the
/// error text for the Completion, if any.
async fn stream_items(
    conn: &Connection,
    id: &str,
    target: &str,
    future: BoxFuture<'static, Result<ItemStream, HubError>>,
    cancellation: &tokio_util::sync::CancellationToken,
    detailed: bool,
) -> Option<String> {
    // The method runs even when cancelled before it started, as the reference server does, so
    // that it can see the cancellation (through its token) and react.
    let started = AssertUnwindSafe(future).catch_unwind().await;
    let prefix = format!("An unexpected error occurred invoking '{target}' on the server.");
    let mut items = match started {
        Ok(Ok(items)) => items,
        Ok(Err(error)) => return Some(error.client_text(&prefix, detailed)),
        Err(_) => return Some(panicked().client_text(&prefix, detailed)),
    };
    let protocol = conn.protocol();
    loop {
        let next = tokio::select! {
            biased;
            _ = cancellation.cancelled() => return conn.is_draining().then(|| MOVED_STREAM.to_owned()),
            next = AssertUnwindSafe(items.next()).catch_unwind() => next,
        };
        let item = match next {
            Ok(Some(Ok(item))) => item,
            Ok(None) => return None,
            Ok(Some(Err(error))) => {
                return Some(error.client_text("An error occurred on the server while streaming results.", detailed));
            }
            Err(_) => {
                return Some(
                    panicked().client_text("An error occurred on the server while streaming results.", detailed),
                );
            }
        };
        let message = HubMessage::StreamItem(StreamItem {
            headers: Default::default(),
            invocation_id: id.to_owned(),
            item,
        });
        let mut out = Vec::new();
        if let Err(error) = protocol.write_message(&mut out, &message) {
            return Some(
                HubError::from(error).client_text("An error occurred on the server while streaming results.", detailed),
            );
        }
        if !conn.send_frame_wait(Bytes::from(out)).await {
            return None;
        }
    }
}

async fn send_completion(conn: &Connection, id: &str, result: CompletionResult) {
    // The record's size, near enough: the value or error, the id, and the framing around them.
    let size = 48
        + id.len()
        + match &result {
            CompletionResult::Value(value) => value.bytes().len(),
            CompletionResult::Error(text) => text.len(),
            CompletionResult::Void => 0,
        };
    let message = HubMessage::Completion(crate::protocol::Completion {
        headers: Default::default(),
        invocation_id: id.to_owned(),
        result,
    });
    let mut out = Vec::with_capacity(size);
    match conn.protocol().write_message(&mut out, &message) {
        Ok(()) => {
            conn.send_frame_wait(Bytes::from(out)).await;
        }
        Err(error) => tracing::error!(connection = %conn.id(), %error, "could not encode a completion"),
    }
}
