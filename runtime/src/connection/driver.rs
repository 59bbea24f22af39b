//! The life of a connection after its transport is up: the handshake (whose response is the
//! first thing sent), then reading records as they arrive, dispatching them, keep-alive pings,
//! the client timeout, and the end (on_disconnected).
//!
//! The driver reads and dispatches; the transport's writer drains the outbound queue. Hub
//! methods run in their own tasks, so a slow method never stops reading, and at most
//! `maximum_parallel_invocations_per_client` non-streaming invocations run at once (further
//! ones wait, in order, as with the reference server).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::sync::Semaphore;

use super::{CloseReason, Connection};
use crate::HubError;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use super::invocations::StreamInput;
use crate::hub::dispatch::{Dispatcher, Prepared, Started};
use crate::hub::methods::{Invoked, ItemStream};
use crate::protocol::handshake::{self, HANDSHAKE_CANCELED, UNEXPECTED_HANDSHAKE_ERROR};
use crate::protocol::{
    Close, CompletionResult, HubMessage, Protocol, ProtocolError, StreamItem, TransferFormat, framing,
};
use crate::transport::Inbound;

const TICK: Duration = Duration::from_secs(1);

enum HandshakeOutcome {
    Accepted(Protocol),
    Refused,
    TransportClosed,
}

/// Runs a connection until it ends. `format` is what the transport can carry.
pub(crate) async fn run(
    conn: Arc<Connection>,
    mut input: Inbound,
    format_supported: fn(TransferFormat) -> bool,
    dispatcher: Arc<dyn Dispatcher>,
) {
    let mut buf = BytesMut::new();
    // The handshake and message handling run in boxed futures: a connection's task then holds
    // only what an idle connection needs between messages, not the largest state of either.
    let protocol = match Box::pin(handshake(&conn, &mut input, &mut buf, format_supported, &*dispatcher)).await {
        HandshakeOutcome::Accepted(protocol) => protocol,
        HandshakeOutcome::Refused | HandshakeOutcome::TransportClosed => {
            conn.close(CloseReason::transport_closed());
            return;
        }
    };
    conn.mark_received();

    let options = dispatcher.options();
    let detailed = options.enable_detailed_errors;
    if let Err(error) = dispatcher.connected(&conn).await {
        let text = error.client_text("Connection closed with an error.", detailed);
        let mut reason = CloseReason::error(text, error);
        reason.allow_reconnect = false;
        conn.close(reason);
        dispatcher.disconnected(&conn, None).await;
        return;
    }

    let mut ping = Vec::new();
    let _ = protocol.write_message(&mut ping, &HubMessage::Ping);
    let ping = Bytes::from(ping);
    let permits = Arc::new(Semaphore::new(options.maximum_parallel_invocations_per_client));
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let closing = conn.closing().clone();

    // Bytes that came with the handshake are already hub messages.
    let mut unread = !buf.is_empty();
    'read: loop {
        while unread {
            let record = match protocol.split_record(&mut buf, options.maximum_receive_message_size) {
                Ok(Some(record)) => record,
                Ok(None) => {
                    unread = false;
                    break;
                }
                Err(error) => {
                    protocol_failure(&conn, error, detailed);
                    break 'read;
                }
            };
            let message = match protocol.parse_record(record) {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(error) => {
                    protocol_failure(&conn, error, detailed);
                    break 'read;
                }
            };
            if !Box::pin(handle(
                &conn,
                message,
                &*dispatcher,
                &permits,
                &mut ticker,
                options,
                &ping,
            ))
            .await
            {
                break 'read;
            }
        }
        tokio::select! {
            biased;
            _ = closing.cancelled() => break,
            _ = ticker.tick() => tick(&conn, options, &ping),
            chunk = input.next() => {
                let Some(chunk) = chunk else {
                    conn.close(CloseReason::transport_closed());
                    break;
                };
                conn.mark_received();
                buf.extend_from_slice(&chunk);
                unread = true;
            }
        }
    }

    conn.invocations().close();
    let reason = conn.close_reason();
    dispatcher
        .disconnected(&conn, reason.and_then(|r| r.disconnect_error))
        .await;
}

/// Keep-alive, client timeout and transport loss, checked once a second.
fn tick(conn: &Connection, options: &crate::HubOptions, ping: &Bytes) {
    if conn
        .transport_lost_ms()
        .is_some_and(|ms| ms >= options.disconnect_timeout.as_millis() as u64)
    {
        conn.close(CloseReason::transport_closed());
        return;
    }
    // Long polling needs no keep-alive: every poll is one.
    if conn.transport() != crate::options::TransportType::LongPolling
        && conn.idle_sending_ms() >= options.keep_alive_interval.as_millis() as u64
    {
        conn.try_send_ping(ping.clone());
    }
    let (idle, armed) = conn.idle_receiving_ms();
    if armed && idle >= options.client_timeout_interval.as_millis() as u64 {
        let error = HubError::exception(
            "OperationCanceledException",
            "Client hasn't sent a message/ping within the configured ClientTimeoutInterval.",
        );
        let text = error.client_text("Connection closed with an error.", options.enable_detailed_errors);
        conn.close(CloseReason::error(text, error));
    }
}

fn protocol_failure(conn: &Connection, error: ProtocolError, detailed: bool) {
    tracing::debug!(connection = %conn.id(), %error, "closing after a protocol error");
    let error = HubError::from(error);
    let text = error.client_text("Connection closed with an error.", detailed);
    conn.close(CloseReason::error(text, error));
}

/// Reads and answers the handshake.
async fn handshake(
    conn: &Connection,
    input: &mut Inbound,
    buf: &mut BytesMut,
    format_supported: fn(TransferFormat) -> bool,
    dispatcher: &dyn Dispatcher,
) -> HandshakeOutcome {
    let options = dispatcher.options();
    let refuse = |text: String| {
        conn.send_frame(handshake::write_response(Some(&text)));
        HandshakeOutcome::Refused
    };
    let read = async {
        loop {
            match handshake::read_request(buf, options.maximum_receive_message_size) {
                Ok(Some(request)) => return Ok(Some(request)),
                Ok(None) => {}
                Err(error) => return Err(error),
            }
            match input.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    };
    let request = match tokio::time::timeout(options.handshake_timeout, read).await {
        Err(_) | Ok(Err(ProtocolError::MessageTooLarge { .. })) => return refuse(HANDSHAKE_CANCELED.to_owned()),
        Ok(Err(error)) => {
            let text = if options.enable_detailed_errors {
                format!("{UNEXPECTED_HANDSHAKE_ERROR} {}: {error}", error.exception_type())
            } else {
                UNEXPECTED_HANDSHAKE_ERROR.to_owned()
            };
            return refuse(text);
        }
        Ok(Ok(None)) => return HandshakeOutcome::TransportClosed,
        Ok(Ok(Some(request))) => request,
    };
    let protocol = match Protocol::from_name(&request.protocol) {
        Some(p) if options.supported_protocols.contains(&p) => p,
        _ => return refuse(format!("The protocol '{}' is not supported.", request.protocol)),
    };
    if request.version > protocol.version() {
        return refuse(format!(
            "The server does not support version {} of the '{}' protocol.",
            request.version,
            protocol.name()
        ));
    }
    if !format_supported(protocol.transfer_format()) {
        return refuse(format!(
            "Cannot use the '{}' protocol on the current transport. The transport does not support '{}' transfer format.",
            protocol.name(),
            protocol.transfer_format().as_str()
        ));
    }
    conn.set_protocol(protocol);
    conn.send_frame(handshake::write_response(None));
    // Stateful reconnect needs version 2; an older client just does not get it.
    if request.version >= 2
        && let Some(stateful) = conn.stateful()
    {
        stateful.activate();
    }
    HandshakeOutcome::Accepted(protocol)
}

/// Handles one message. Returns false when the connection must stop reading.
async fn handle(
    conn: &Arc<Connection>,
    message: HubMessage,
    dispatcher: &dyn Dispatcher,
    permits: &Arc<Semaphore>,
    ticker: &mut tokio::time::Interval,
    options: &crate::HubOptions,
    ping: &Bytes,
) -> bool {
    if framing::is_tracked(message.type_id())
        && let Some(stateful) = conn.stateful()
        && !stateful.accept()
    {
        // A duplicate replayed after a reconnect, or a message before the client's Sequence.
        return true;
    }
    match message {
        HubMessage::Invocation(invocation) => {
            invoke(conn, invocation, false, dispatcher, permits, ticker, options, ping).await
        }
        HubMessage::StreamInvocation(invocation) => {
            invoke(conn, invocation, true, dispatcher, permits, ticker, options, ping).await
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
        HubMessage::Ping => {
            conn.mark_client_pinged();
            true
        }
        HubMessage::Close(Close { error, .. }) => {
            let mut reason = CloseReason::graceful();
            reason.disconnect_error = error.map(HubError::new);
            conn.close(reason);
            false
        }
        HubMessage::Ack { sequence_id } => {
            if let Some(stateful) = conn.stateful() {
                stateful.on_ack(sequence_id);
            }
            true
        }
        HubMessage::Sequence { sequence_id } => {
            let Some(stateful) = conn.stateful() else { return true };
            match stateful.on_sequence(sequence_id) {
                Ok(()) => true,
                Err(text) => {
                    let error = HubError::exception("InvalidOperationException", text);
                    let text = error.client_text("Connection closed with an error.", options.enable_detailed_errors);
                    let mut reason = CloseReason::error(text, error);
                    reason.allow_reconnect = false;
                    conn.close(reason);
                    false
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn invoke(
    conn: &Arc<Connection>,
    invocation: crate::protocol::Invocation,
    streaming: bool,
    dispatcher: &dyn Dispatcher,
    permits: &Arc<Semaphore>,
    ticker: &mut tokio::time::Interval,
    options: &crate::HubOptions,
    ping: &Bytes,
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
                conn.invocations().end_outgoing(&id);
                forget_streams(&conn, &stream_ids);
                let result = error.map_or(CompletionResult::Void, CompletionResult::Error);
                send_completion(&conn, &id, result).await;
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
                _ = ticker.tick() => tick(conn, options, ping),
            }
        }
    } else {
        None
    };
    let conn = conn.clone();
    let mut body = Box::pin(async move {
        let outcome = AssertUnwindSafe(future).catch_unwind().await;
        drop(permit);
        forget_streams(&conn, &stream_ids);
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
            _ = cancellation.cancelled() => return None,
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
