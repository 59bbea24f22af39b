//! Stateful reconnect: the numbering, buffering and acknowledging that let a connection
//! survive its transport dropping.
//!
//! Each side numbers the tracked messages it sends (Invocation, StreamItem, Completion,
//! StreamInvocation, CancelInvocation) from 1, keeps them until the peer acknowledges them
//! (Ack), and acknowledges what it received about once a second. After a new transport is
//! attached, each side first sends Sequence (the number of its oldest unacknowledged
//! message) and replays what the peer may have missed; the receiver skips what it already
//! processed.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;

use crate::protocol::Protocol;
use tokio::sync::Notify;

/// Why a peer's Sequence cannot be honoured.
pub(crate) const SEQUENCE_TOO_LARGE: &str = "Sequence ID greater than amount of messages we've received.";

#[derive(Default)]
struct State {
    /// The handshake agreed on version 2.
    active: bool,
    /// Sent and not acknowledged: (sequence id, frame).
    unacked: VecDeque<(u64, Bytes)>,
    unacked_bytes: usize,
    next_out: u64,
    /// Tracked messages received and processed.
    processed: u64,
    /// The number of the last tracked message seen on the current transport.
    incoming: u64,
    /// After a reconnect, tracked messages are dropped until the peer's Sequence arrives.
    awaiting_sequence: bool,
    acked_up_to: u64,
    /// Set for a raw connection carrying records of this protocol.
    raw_protocol: Option<Protocol>,
}

pub(crate) struct Stateful {
    state: Mutex<State>,
    space: Notify,
    /// Holds a permit after each new transport takes over, for whoever forwards the
    /// connection's bytes (a relay) to tell the peer that numbers them.
    reattached: Notify,
    limit: usize,
}

impl Stateful {
    pub fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(State {
                next_out: 1,
                ..State::default()
            }),
            space: Notify::new(),
            reattached: Notify::new(),
            limit,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The handshake asked for version 2: the connection may reconnect.
    pub fn activate(&self) {
        self.state().active = true;
    }

    /// The connection may reconnect, and carries hub-protocol records it does not parse (a
    /// raw connection relaying them): the transport and the raw connection split the bytes
    /// into records of `protocol` to number, acknowledge and replay them.
    pub fn activate_raw(&self, protocol: Protocol) {
        let mut state = self.state();
        state.active = true;
        state.raw_protocol = Some(protocol);
    }

    /// The protocol of the records a raw connection carries (see [`Stateful::activate_raw`]).
    pub fn raw_protocol(&self) -> Option<Protocol> {
        self.state().raw_protocol
    }

    /// Resolves once a new transport has taken over since the last call.
    pub async fn reattached(&self) {
        self.reattached.notified().await;
    }

    pub fn is_active(&self) -> bool {
        self.state().active
    }

    /// Whether the send buffer has room; senders wait for acknowledgements otherwise.
    pub fn has_room(&self) -> bool {
        self.state().unacked_bytes < self.limit
    }

    /// Resolves after the next acknowledgement (which may make room).
    pub async fn acknowledged(&self) {
        self.space.notified().await;
    }

    /// Numbers and keeps a tracked frame that is about to be sent.
    pub fn sent(&self, frame: &Bytes) {
        let mut state = self.state();
        let id = state.next_out;
        state.next_out += 1;
        state.unacked_bytes += frame.len();
        state.unacked.push_back((id, frame.clone()));
    }

    /// The peer acknowledged everything up to `id`.
    pub fn on_ack(&self, id: u64) {
        let mut state = self.state();
        while state.unacked.front().is_some_and(|(seq, _)| *seq <= id) {
            if let Some((_, frame)) = state.unacked.pop_front() {
                state.unacked_bytes -= frame.len();
            }
        }
        drop(state);
        self.space.notify_waiters();
    }

    /// What a new transport must send first: the number of the oldest unacknowledged
    /// message, and the messages to replay.
    pub fn replay(&self) -> (u64, Vec<Bytes>) {
        let state = self.state();
        let first = state.unacked.front().map_or(state.next_out, |(seq, _)| *seq);
        (first, state.unacked.iter().map(|(_, frame)| frame.clone()).collect())
    }

    /// A new transport is attached: tracked messages wait for the peer's Sequence.
    pub fn reconnected(&self) {
        self.state().awaiting_sequence = true;
        self.reattached.notify_one();
    }

    /// The peer resumes at `id`.
    pub fn on_sequence(&self, id: u64) -> Result<(), &'static str> {
        let mut state = self.state();
        if id > state.processed + 1 {
            return Err(SEQUENCE_TOO_LARGE);
        }
        state.incoming = id.saturating_sub(1);
        state.awaiting_sequence = false;
        Ok(())
    }

    /// A tracked message arrived: whether to process it (not a duplicate, not before the
    /// peer's Sequence).
    pub fn accept(&self) -> bool {
        let mut state = self.state();
        if !state.active {
            return true;
        }
        if state.awaiting_sequence {
            return false;
        }
        state.incoming += 1;
        if state.incoming <= state.processed {
            return false;
        }
        state.processed = state.incoming;
        true
    }

    /// The id to acknowledge, if something arrived since the last acknowledgement.
    pub fn ack_due(&self) -> Option<u64> {
        let mut state = self.state();
        (state.processed > state.acked_up_to).then(|| {
            state.acked_up_to = state.processed;
            state.processed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stateful_numbering_acks_and_replay() {
        let s = Stateful::new(10);
        s.activate();
        for frame in [&b"abcd"[..], b"efgh", b"ijkl"] {
            assert!(s.has_room());
            s.sent(&Bytes::copy_from_slice(frame));
        }
        assert!(!s.has_room(), "12 bytes kept, over the 10-byte limit");
        s.on_ack(1);
        assert!(s.has_room());
        let (first, frames) = s.replay();
        assert_eq!((first, frames.len()), (2, 2));
        s.on_ack(3);
        assert_eq!(s.replay(), (4, vec![]));
    }

    #[test]
    fn stateful_incoming_duplicates_are_skipped() {
        let s = Stateful::new(100);
        s.activate();
        assert!(s.accept() && s.accept() && s.accept());
        assert_eq!(s.ack_due(), Some(3));
        assert_eq!(s.ack_due(), None);
        s.reconnected();
        assert!(!s.accept(), "nothing before the peer's Sequence");
        assert_eq!(s.on_sequence(5), Err(SEQUENCE_TOO_LARGE));
        // The peer replays from 2: 2 and 3 were processed already.
        s.on_sequence(2).unwrap();
        assert!(!s.accept());
        assert!(!s.accept());
        assert!(s.accept());
        assert_eq!(s.ack_due(), Some(4));
    }
}
