//! Stateful reconnect's bookkeeping, sans-IO: the numbering, buffering and acknowledging that
//! let a connection survive its transport dropping.
//!
//! Each side numbers the tracked messages it sends (Invocation, StreamItem, Completion,
//! StreamInvocation, CancelInvocation) from 1, keeps them until the peer acknowledges them
//! (Ack), and acknowledges what it received about once a second. After a new transport is
//! attached, each side first sends Sequence (the number of its oldest unacknowledged
//! message) and replays what the peer may have missed; the receiver skips what it already
//! processed.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{HubMessage, Protocol, framing};

/// Why a peer's Sequence cannot be honoured.
pub(crate) const SEQUENCE_TOO_LARGE: &str = "Sequence ID greater than amount of messages we've received.";

/// What one connection that may reconnect statefully has sent and received.
#[derive(Debug)]
pub(crate) struct ReplayBuffer {
    /// The handshake agreed on version 2 (or a raw connection accepted stateful reconnect).
    active: bool,
    /// Sent and not acknowledged: (sequence id, frame).
    unacked: VecDeque<(u64, Bytes)>,
    unacked_bytes: usize,
    /// The most bytes kept before senders wait for acknowledgements.
    limit: usize,
    next_out: u64,
    /// Tracked messages received and processed.
    processed: u64,
    /// The number of the last tracked message seen on the current transport.
    incoming: u64,
    /// After a reconnect, tracked messages are dropped until the peer's Sequence arrives.
    awaiting_sequence: bool,
    acked_up_to: u64,
}

impl ReplayBuffer {
    /// An inactive buffer that keeps up to `limit` bytes once active.
    pub fn new(limit: usize) -> Self {
        Self {
            active: false,
            unacked: VecDeque::new(),
            unacked_bytes: 0,
            limit,
            next_out: 1,
            processed: 0,
            incoming: 0,
            awaiting_sequence: false,
            acked_up_to: 0,
        }
    }

    /// The connection reconnects statefully from now on.
    pub fn activate(&mut self) {
        self.active = true;
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Whether the send buffer has room; senders wait for acknowledgements otherwise.
    pub fn has_room(&self) -> bool {
        self.unacked_bytes < self.limit
    }

    /// Numbers and keeps one tracked frame that is about to be sent.
    pub fn sent(&mut self, frame: &Bytes) {
        let id = self.next_out;
        self.next_out += 1;
        self.unacked_bytes += frame.len();
        self.unacked.push_back((id, frame.clone()));
    }

    /// Numbers and keeps the tracked records of a payload of `protocol` about to be sent (a
    /// payload may hold several records, each numbered on its own).
    pub fn sent_records(&mut self, protocol: Protocol, payload: &Bytes) {
        for record in framing::FramedRecords::new(protocol, payload.clone()) {
            if framing::record_type(protocol, &record).is_some_and(framing::is_tracked) {
                self.sent(&record);
            }
        }
    }

    /// The peer acknowledged everything up to `id`.
    pub fn on_ack(&mut self, id: u64) {
        while self.unacked.front().is_some_and(|(seq, _)| *seq <= id) {
            if let Some((_, frame)) = self.unacked.pop_front() {
                self.unacked_bytes -= frame.len();
            }
        }
    }

    /// What a new transport must send first: the number of the oldest unacknowledged
    /// message, and the messages to replay.
    pub fn replay(&self) -> (u64, Vec<Bytes>) {
        let first = self.unacked.front().map_or(self.next_out, |(seq, _)| *seq);
        (first, self.unacked.iter().map(|(_, frame)| frame.clone()).collect())
    }

    /// The Sequence message and the replayed records, encoded in `protocol`: what a new
    /// transport sends first.
    pub fn resume(&self, protocol: Protocol) -> Bytes {
        let (first, frames) = self.replay();
        let mut out = Vec::new();
        let _ = protocol.write_message(&mut out, &HubMessage::Sequence { sequence_id: first });
        frames.iter().for_each(|frame| out.extend_from_slice(frame));
        Bytes::from(out)
    }

    /// A new transport is attached: tracked messages wait for the peer's Sequence.
    pub fn reconnected(&mut self) {
        self.awaiting_sequence = true;
    }

    /// The peer resumes at `id`.
    pub fn on_sequence(&mut self, id: u64) -> Result<(), &'static str> {
        if id > self.processed + 1 {
            return Err(SEQUENCE_TOO_LARGE);
        }
        self.incoming = id.saturating_sub(1);
        self.awaiting_sequence = false;
        Ok(())
    }

    /// A tracked message arrived: whether to process it (not a duplicate, not before the
    /// peer's Sequence).
    pub fn accept(&mut self) -> bool {
        if !self.active {
            return true;
        }
        if self.awaiting_sequence {
            return false;
        }
        self.incoming += 1;
        if self.incoming <= self.processed {
            return false;
        }
        self.processed = self.incoming;
        true
    }

    /// The id to acknowledge, if something arrived since the last acknowledgement.
    pub fn ack_due(&mut self) -> Option<u64> {
        (self.processed > self.acked_up_to).then(|| {
            self.acked_up_to = self.processed;
            self.processed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_numbered_acks_trim_and_replay_starts_at_the_oldest() {
        let mut s = ReplayBuffer::new(10);
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
        assert_eq!(&frames[0][..], b"efgh");
        s.on_ack(3);
        assert_eq!(s.replay(), (4, vec![]));
        // An Ack for what is already released, or past what was sent, changes nothing more.
        s.on_ack(2);
        s.on_ack(100);
        assert_eq!(s.replay(), (4, vec![]));
    }

    #[test]
    fn buffer_limit_is_reached_by_the_record_that_crosses_it() {
        // A record is kept even when it takes the buffer past its limit; only then do
        // senders wait.
        let mut s = ReplayBuffer::new(8);
        s.activate();
        s.sent(&Bytes::from_static(b"1234567"));
        assert!(s.has_room(), "7 of 8 bytes");
        s.sent(&Bytes::from_static(b"abcdefghij"));
        assert!(!s.has_room(), "17 of 8 bytes");
        s.on_ack(1);
        assert!(!s.has_room(), "10 of 8 bytes");
        s.on_ack(2);
        assert!(s.has_room());
    }

    #[test]
    fn only_tracked_records_of_a_payload_are_numbered() {
        let mut s = ReplayBuffer::new(1000);
        s.activate();
        let payload = Bytes::from_static(b"{\"type\":1,\"target\":\"a\",\"arguments\":[]}\x1e{\"type\":6}\x1e{\"type\":3,\"invocationId\":\"1\"}\x1e");
        s.sent_records(Protocol::Json, &payload);
        let (first, frames) = s.replay();
        assert_eq!(first, 1);
        assert_eq!(frames.len(), 2, "the ping is not kept");
        assert_eq!(&frames[1][..], b"{\"type\":3,\"invocationId\":\"1\"}\x1e");
        let resume = s.resume(Protocol::Json);
        assert!(
            resume.starts_with(b"{\"type\":9,\"sequenceId\":1}\x1e{\"type\":1,"),
            "{resume:?}"
        );
    }

    #[test]
    fn incoming_duplicates_after_a_sequence_are_skipped() {
        let mut s = ReplayBuffer::new(100);
        assert!(s.accept(), "inactive: everything is processed");
        let mut s = ReplayBuffer::new(100);
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
        // A Sequence just past what was received is the next message, not an error.
        s.reconnected();
        assert_eq!(s.on_sequence(5), Ok(()));
        assert!(s.accept());
        assert_eq!(s.ack_due(), Some(5));
    }
}
