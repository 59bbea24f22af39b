//! What a connection has in flight besides plain invocations: server-to-client streams (to
//! cancel), client-to-server streams (to feed), and client results (to await).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::protocol::{CompletionResult, RawValue};

/// What arrives for a client-to-server stream.
#[derive(Debug)]
pub(crate) enum StreamInput {
    Item(RawValue),
    /// The client completed the stream with an error.
    Error(String),
}

#[derive(Default)]
pub(crate) struct Invocations {
    outgoing_streams: Mutex<HashMap<String, CancellationToken>>,
    incoming_streams: Mutex<HashMap<String, mpsc::Sender<StreamInput>>>,
    results: Mutex<HashMap<String, oneshot::Sender<CompletionResult>>>,
    next_id: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Invocations {
    /// Registers a server-to-client stream; `false` if the id is already in use.
    pub fn start_outgoing(&self, id: &str, token: CancellationToken) -> bool {
        let mut streams = lock(&self.outgoing_streams);
        if streams.contains_key(id) {
            return false;
        }
        streams.insert(id.to_owned(), token);
        true
    }

    pub fn end_outgoing(&self, id: &str) {
        lock(&self.outgoing_streams).remove(id);
    }

    /// Cancels a server-to-client stream (CancelInvocation); unknown ids are ignored.
    pub fn cancel_outgoing(&self, id: &str) {
        if let Some(token) = lock(&self.outgoing_streams).get(id) {
            token.cancel();
        }
    }

    pub fn add_incoming(&self, id: String, sender: mpsc::Sender<StreamInput>) {
        lock(&self.incoming_streams).insert(id, sender);
    }

    pub fn incoming(&self, id: &str) -> Option<mpsc::Sender<StreamInput>> {
        lock(&self.incoming_streams).get(id).cloned()
    }

    /// Ends a client-to-server stream; later items for it are dropped.
    pub fn remove_incoming(&self, id: &str) -> Option<mpsc::Sender<StreamInput>> {
        lock(&self.incoming_streams).remove(id)
    }

    /// A new id for a server-to-client invocation that expects a result.
    pub fn next_result_id(&self) -> String {
        format!("s{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    pub fn expect_result(&self, id: String, sender: oneshot::Sender<CompletionResult>) {
        lock(&self.results).insert(id, sender);
    }

    pub fn forget_result(&self, id: &str) {
        lock(&self.results).remove(id);
    }

    /// Hands a Completion to whoever awaits it; `false` if nobody does.
    pub fn complete_result(&self, id: &str, result: CompletionResult) -> bool {
        match lock(&self.results).remove(id) {
            Some(sender) => {
                let _ = sender.send(result);
                true
            }
            None => false,
        }
    }

    /// Fails every client result awaited with `text`.
    pub fn fail_results(&self, text: &str) {
        for (_, sender) in lock(&self.results).drain() {
            let _ = sender.send(CompletionResult::Error(text.to_owned()));
        }
    }

    /// Stops every streaming method (their tokens are cancelled; each is forgotten once it
    /// has sent its completion) and ends the client streams feeding methods.
    pub fn cancel_streams(&self) {
        lock(&self.incoming_streams).clear();
        for token in lock(&self.outgoing_streams).values() {
            token.cancel();
        }
    }

    /// Whether a streaming method is still under way.
    pub fn has_outgoing_streams(&self) -> bool {
        !lock(&self.outgoing_streams).is_empty()
    }

    /// The connection ended: streams stop and pending results fail (their senders drop).
    pub fn close(&self) {
        for (_, token) in lock(&self.outgoing_streams).drain() {
            token.cancel();
        }
        lock(&self.incoming_streams).clear();
        lock(&self.results).clear();
    }
}
