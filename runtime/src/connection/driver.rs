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
use crate::hub::dispatch::{Dispatcher, Prepared};
use crate::protocol::handshake::{self, HANDSHAKE_CANCELED, UNEXPECTED_HANDSHAKE_ERROR};
use crate::protocol::{Close, CompletionResult, HubMessage, Protocol, ProtocolError, TransferFormat};
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
    let protocol = match handshake(&conn, &mut input, &mut buf, format_supported, &*dispatcher).await {
        HandshakeOutcome::Accepted(protocol) => protocol,
        HandshakeOutcome::Refused | HandshakeOutcome::TransportClosed => {
            conn.close(CloseReason::transport_closed());
            return;
        }
    };
    conn.mark_received();

    let options = dispatcher.options().clone();
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
            if !handle(&conn, message, &*dispatcher, &permits, &mut ticker, &options, &ping).await {
                break 'read;
            }
        }
        tokio::select! {
            biased;
            _ = closing.cancelled() => break,
            _ = ticker.tick() => tick(&conn, &options, &ping),
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
    match message {
        HubMessage::Invocation(invocation) => {
            invoke(conn, invocation, false, dispatcher, permits, ticker, options, ping).await
        }
        HubMessage::StreamInvocation(invocation) => {
            invoke(conn, invocation, true, dispatcher, permits, ticker, options, ping).await
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
        // Stray completions, stream items for unknown streams, cancellations of unknown
        // invocations, and acknowledgements without stateful reconnect are ignored.
        HubMessage::Completion(_)
        | HubMessage::StreamItem(_)
        | HubMessage::CancelInvocation { .. }
        | HubMessage::Ack { .. }
        | HubMessage::Sequence { .. } => true,
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
    let future = match dispatcher.prepare(conn, invocation, streaming) {
        Prepared::Fail(text) => {
            if let Some(id) = id {
                send_completion(conn, &id, CompletionResult::Error(text));
            }
            return true;
        }
        Prepared::Run(future) => future,
    };
    // Wait for a free slot, still answering the clock, and giving up if the connection ends.
    let permit = loop {
        tokio::select! {
            biased;
            _ = conn.closing().cancelled() => return false,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => break permit,
                Err(_) => return false,
            },
            _ = ticker.tick() => tick(conn, options, ping),
        }
    };
    let conn = conn.clone();
    tokio::spawn(async move {
        let outcome = AssertUnwindSafe(future).catch_unwind().await;
        drop(permit);
        let Some(id) = id else { return };
        let prefix = format!("An unexpected error occurred invoking '{target}' on the server.");
        let result = match outcome {
            Ok(Ok(value)) => CompletionResult::Value(value),
            Ok(Err(error)) => CompletionResult::Error(error.client_text(&prefix, detailed)),
            Err(_) => {
                tracing::error!(connection = %conn.id(), method = %target, "hub method panicked");
                CompletionResult::Error(
                    HubError::exception("Exception", "The hub method panicked.").client_text(&prefix, detailed),
                )
            }
        };
        send_completion(&conn, &id, result);
    });
    true
}

fn send_completion(conn: &Connection, id: &str, result: CompletionResult) {
    let message = HubMessage::Completion(crate::protocol::Completion {
        headers: Default::default(),
        invocation_id: id.to_owned(),
        result,
    });
    let mut out = Vec::new();
    match conn.protocol().write_message(&mut out, &message) {
        Ok(()) => conn.send_frame(Bytes::from(out)),
        Err(error) => tracing::error!(connection = %conn.id(), %error, "could not encode a completion"),
    }
}
