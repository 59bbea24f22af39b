//! A small bounded queue between tasks, for the per-connection queues (what a connection sends,
//! and what a transport hands its driver) and the server connections' outgoing records.
//!
//! It behaves like a bounded `tokio::sync::mpsc` channel (senders wait for room or fail when it
//! is full; the receiver sees the end once every sender is gone or it closed the queue) but
//! costs about a hundred bytes while idle: its buffer is a `VecDeque` that allocates on the
//! first message, where a tokio channel allocates a block of 32 slots up front. A server holds
//! one or two of these per connection, so this is most of the difference for idle memory.
//!
//! A queue of byte buffers ([`bytes_channel`]) is bounded in bytes as well as in count: a value
//! that would take the queued bytes past the bound waits (or is refused) until the queue
//! empties enough, except that an empty queue always takes one value, so a value larger than
//! the bound still passes alone.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

struct State<T> {
    items: VecDeque<T>,
    /// The bytes of the queued values, as `weigh` counts them.
    bytes: usize,
    /// The receiver closed the queue or went away: sends fail.
    closed: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// The bound of the queued bytes (`usize::MAX`: counted only).
    max_bytes: usize,
    /// What one value weighs in bytes.
    weigh: fn(&T) -> usize,
    senders: AtomicUsize,
    /// Something to receive (or the last sender left).
    readable: Notify,
    /// Room to send (or the queue closed).
    writable: Notify,
}

impl<T> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the first value, if any, and its bytes off the count.
    fn pop(&self, state: &mut State<T>) -> Option<T> {
        let value = state.items.pop_front()?;
        state.bytes = state.bytes.saturating_sub((self.weigh)(&value));
        Some(value)
    }
}

/// Why [`Sender::try_send`] did not queue a value; the value comes back.
#[derive(Debug)]
pub enum TrySendError<T> {
    /// The queue holds `capacity` values, or too many bytes to take this one.
    Full(T),
    /// The receiver closed the queue or went away.
    Closed(T),
}

/// Nothing to receive right now.
#[derive(Debug)]
pub struct Empty;

/// A bounded queue holding at most `capacity` values (at least one).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    weighed(capacity, usize::MAX, |_| 0)
}

/// A queue of byte buffers holding at most `capacity` of them (at least one) and, beyond the
/// first, at most `max_bytes` bytes in all.
pub fn bytes_channel(capacity: usize, max_bytes: usize) -> (Sender<Bytes>, Receiver<Bytes>) {
    weighed(capacity, max_bytes, Bytes::len)
}

fn weighed<T>(capacity: usize, max_bytes: usize, weigh: fn(&T) -> usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            bytes: 0,
            closed: false,
        }),
        capacity: capacity.max(1),
        max_bytes,
        weigh,
        senders: AtomicUsize::new(1),
        readable: Notify::new(),
        writable: Notify::new(),
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

/// The sending end; cheap to clone.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.readable.notify_one();
        }
    }
}

impl<T> Sender<T> {
    /// Queues `value` if there is room.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut state = self.shared.state();
        if state.closed {
            return Err(TrySendError::Closed(value));
        }
        let weight = (self.shared.weigh)(&value);
        let too_heavy = !state.items.is_empty() && state.bytes.saturating_add(weight) > self.shared.max_bytes;
        if state.items.len() >= self.shared.capacity || too_heavy {
            return Err(TrySendError::Full(value));
        }
        state.bytes += weight;
        state.items.push_back(value);
        drop(state);
        self.shared.readable.notify_one();
        Ok(())
    }

    /// Queues `value`, waiting for room; gives it back if the queue closes. Cancel-safe: a
    /// value is either queued or returned with the future.
    pub async fn send(&self, value: T) -> Result<(), T> {
        // Fast path: there is room, no need to register for a wake-up.
        let mut value = match self.try_send(value) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(back)) => return Err(back),
            Err(TrySendError::Full(back)) => back,
        };
        loop {
            let room = self.shared.writable.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(back),
                Err(TrySendError::Full(back)) => value = back,
            }
            room.await;
        }
    }
}

/// The receiving end.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> Receiver<T> {
    /// The next value, waiting for one; `None` once the queue is empty and every sender has
    /// gone (or it was closed). Cancel-safe.
    pub async fn recv(&mut self) -> Option<T> {
        // Fast path: something is queued, no need to register for a wake-up.
        if let Ok(value) = self.try_recv() {
            return Some(value);
        }
        loop {
            let ready = self.shared.readable.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut state = self.shared.state();
                if let Some(value) = self.shared.pop(&mut state) {
                    drop(state);
                    self.shared.writable.notify_one();
                    return Some(value);
                }
                if state.closed || self.shared.senders.load(Ordering::Acquire) == 0 {
                    return None;
                }
            }
            ready.await;
        }
    }

    /// The next value if one is queued.
    pub fn try_recv(&mut self) -> Result<T, Empty> {
        let value = {
            let mut state = self.shared.state();
            self.shared.pop(&mut state).ok_or(Empty)?
        };
        // Cheap when nobody waits for room (a permit is stored).
        self.shared.writable.notify_one();
        Ok(value)
    }

    /// Refuses further sends (waiting senders get their values back); what is queued can
    /// still be received.
    pub fn close(&mut self) {
        self.shared.state().closed = true;
        self.shared.writable.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_order_capacity_close_and_end() {
        let (sender, mut receiver) = channel::<u32>(2);
        sender.try_send(1).unwrap();
        sender.try_send(2).unwrap();
        assert!(matches!(sender.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(receiver.recv().await, Some(1));
        sender.try_send(3).unwrap();
        assert_eq!(receiver.try_recv().unwrap(), 2);
        assert_eq!(receiver.try_recv().unwrap(), 3);
        assert!(receiver.try_recv().is_err());

        // A waiting sender gets in once there is room.
        sender.try_send(4).unwrap();
        sender.try_send(5).unwrap();
        let waiting = {
            let sender = sender.clone();
            tokio::spawn(async move { sender.send(6).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(receiver.recv().await, Some(4));
        assert_eq!(waiting.await.unwrap(), Ok(()));
        assert_eq!(receiver.recv().await, Some(5));
        assert_eq!(receiver.recv().await, Some(6));

        // The receiver sees the end once the last sender has gone, after what was queued.
        sender.try_send(7).unwrap();
        drop(sender);
        assert_eq!(receiver.recv().await, Some(7));
        assert_eq!(receiver.recv().await, None);
    }

    #[tokio::test]
    async fn a_bytes_queue_is_bounded_in_bytes_and_takes_one_large_value_alone() {
        let (sender, mut receiver) = bytes_channel(100, 10);
        sender.try_send(Bytes::from_static(b"123456")).unwrap();
        sender.try_send(Bytes::from_static(b"7890")).unwrap();
        assert!(
            matches!(sender.try_send(Bytes::from_static(b"x")), Err(TrySendError::Full(_))),
            "11 bytes > 10"
        );
        assert_eq!(&receiver.recv().await.unwrap()[..], b"123456");
        sender.try_send(Bytes::from_static(b"abcdef")).unwrap();
        // A waiting sender gets in once the bytes have gone down.
        let waiting = {
            let sender = sender.clone();
            tokio::spawn(async move { sender.send(Bytes::from_static(b"zz")).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "4 + 6 + 2 bytes wait");
        assert_eq!(&receiver.try_recv().unwrap()[..], b"7890");
        assert_eq!(waiting.await.unwrap(), Ok(()));
        assert_eq!(&receiver.recv().await.unwrap()[..], b"abcdef");
        assert_eq!(&receiver.recv().await.unwrap()[..], b"zz");
        // Empty, it takes a value over the bound, alone.
        sender.try_send(Bytes::from(vec![0u8; 1000])).unwrap();
        assert!(matches!(
            sender.try_send(Bytes::from_static(b"y")),
            Err(TrySendError::Full(_))
        ));
        assert_eq!(receiver.recv().await.unwrap().len(), 1000);
        sender.try_send(Bytes::from_static(b"y")).unwrap();
    }

    #[tokio::test]
    async fn queue_close_refuses_senders_and_keeps_what_was_queued() {
        let (sender, mut receiver) = channel::<u32>(1);
        sender.try_send(1).unwrap();
        let waiting = {
            let sender = sender.clone();
            tokio::spawn(async move { sender.send(2).await })
        };
        tokio::task::yield_now().await;
        receiver.close();
        assert_eq!(waiting.await.unwrap(), Err(2), "a waiting sender gets its value back");
        assert!(matches!(sender.try_send(3), Err(TrySendError::Closed(3))));
        assert_eq!(receiver.recv().await, Some(1));
        assert_eq!(receiver.recv().await, None);
        drop(receiver);
        assert!(matches!(sender.try_send(4), Err(TrySendError::Closed(4))));
    }

    #[tokio::test]
    async fn queue_receiver_wakes_for_a_sender_on_another_task() {
        let (sender, mut receiver) = channel::<u32>(4);
        let task = tokio::spawn(async move {
            for i in 0..100 {
                sender.send(i).await.unwrap();
            }
        });
        for i in 0..100 {
            assert_eq!(receiver.recv().await, Some(i));
        }
        task.await.unwrap();
        assert_eq!(receiver.recv().await, None);
    }
}
