//! Per-connection output queue with a byte bound, and the doorbell that tells the event loop
//! which queues have something to write.
//!
//! Notifications are queued while the database lock is held, often from another thread (the
//! daemon's in-process session commits status), so queuing must never block: it appends, rings
//! the loop's waker (an eventfd write) the first time a queue becomes non-empty, and returns. A
//! client that stops reading lets its queue grow up to the bound, after which it is disconnected
//! and everyone else carries on.

use crate::database::{CommitWatch, Sink};
use mio::{Token, Waker};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Wakes the event loop and tells it why: queues to flush, blocked transactions to retry.
pub(crate) struct Doorbell {
    waker: Waker,
    ready: Mutex<Vec<Token>>,
    /// Blocked transactions on the loop; commits wake it only while there are some.
    waits: AtomicUsize,
}

impl Doorbell {
    pub fn new(waker: Waker) -> Self {
        Doorbell { waker, ready: Mutex::new(Vec::new()), waits: AtomicUsize::new(0) }
    }

    /// Wakes the loop (shutdown, or anything it must look at now).
    pub fn ring(&self) {
        if let Err(e) = self.waker.wake() {
            tracing::warn!(error = %e, "cannot wake the OVSDB event loop");
        }
    }

    fn flag(&self, t: Token) {
        lock(&self.ready).push(t);
        self.ring();
    }

    /// The connections whose queues were flagged since the last call.
    pub fn take_ready(&self) -> Vec<Token> {
        std::mem::take(&mut *lock(&self.ready))
    }

    /// Sets how many blocked transactions the loop holds.
    pub fn set_waits(&self, n: usize) {
        self.waits.store(n, Ordering::Relaxed);
    }
}

impl CommitWatch for Doorbell {
    fn committed(&self) {
        if self.waits.load(Ordering::Relaxed) > 0 {
            self.ring();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a push or a swap: nothing is left half-done by a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct State {
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
    closed: bool,
    finishing: bool,
    /// Already on the doorbell's ready list (flag once per flush).
    flagged: bool,
}

/// The output side of one connection.
pub struct Outbox {
    state: Mutex<State>,
    limit: usize,
    token: Token,
    bell: Arc<Doorbell>,
}

impl Outbox {
    /// An outbox for connection `token` holding at most `limit` bytes.
    pub(crate) fn new(token: Token, limit: usize, bell: Arc<Doorbell>) -> Self {
        let state =
            State { queue: VecDeque::new(), bytes: 0, closed: false, finishing: false, flagged: false };
        Outbox { state: Mutex::new(state), limit, token, bell }
    }

    /// Queues a message; false if the connection is closed or just overflowed.
    pub fn send(&self, msg: &Value) -> bool {
        let bytes = msg.to_string().into_bytes();
        let mut st = lock(&self.state);
        if st.closed || st.finishing {
            return false;
        }
        if st.bytes + bytes.len() > self.limit {
            tracing::warn!(queued = st.bytes, limit = self.limit, "client not reading; disconnecting");
            self.close_locked(st);
            return false;
        }
        st.bytes += bytes.len();
        st.queue.push_back(bytes);
        self.flag_locked(st);
        true
    }

    fn flag_locked(&self, mut st: MutexGuard<'_, State>) {
        if !st.flagged {
            st.flagged = true;
            drop(st);
            self.bell.flag(self.token);
        }
    }

    fn close_locked(&self, mut st: MutexGuard<'_, State>) {
        st.closed = true;
        st.queue.clear();
        st.bytes = 0;
        self.flag_locked(st);
    }

    /// Accepts nothing more; what is queued is still written.
    pub fn finish(&self) {
        let mut st = lock(&self.state);
        st.finishing = true;
        self.flag_locked(st);
    }

    /// True once closed (overflow or [`Outbox::close`]).
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Moves queued messages to the end of `buf`, up to about `max` bytes (at least one message
    /// if any), and clears the flag so the next send rings again. True if the queue is now empty.
    pub(crate) fn drain_into(&self, buf: &mut Vec<u8>, max: usize) -> bool {
        let mut st = lock(&self.state);
        st.flagged = false;
        while let Some(m) = st.queue.pop_front() {
            if !buf.is_empty() && buf.len() + m.len() > max {
                st.queue.push_front(m);
                break;
            }
            st.bytes -= m.len();
            buf.extend_from_slice(&m);
        }
        st.queue.is_empty()
    }

    /// True once finishing and nothing is left to write.
    pub(crate) fn finished(&self) -> bool {
        let st = lock(&self.state);
        st.finishing && st.queue.is_empty()
    }
}

impl Sink for Outbox {
    fn deliver(&self, msg: &Value) -> bool {
        self.send(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outbox(limit: usize) -> (mio::Poll, Arc<Doorbell>, Outbox) {
        let poll = mio::Poll::new().expect("poll");
        let bell = Arc::new(Doorbell::new(Waker::new(poll.registry(), Token(0)).expect("waker")));
        let out = Outbox::new(Token(7), limit, bell.clone());
        (poll, bell, out)
    }

    #[test]
    fn rings_once_per_flush_and_drains_in_order() {
        let (_poll, bell, out) = outbox(1 << 20);
        assert!(out.send(&json!([1])) && out.send(&json!([2])));
        assert_eq!(bell.take_ready(), vec![Token(7)], "flagged once for two sends");
        let mut buf = Vec::new();
        assert!(out.drain_into(&mut buf, 1 << 20));
        assert_eq!(buf, b"[1][2]");
        assert!(out.send(&json!([3])));
        assert_eq!(bell.take_ready(), vec![Token(7)], "flagged again after the drain");
    }

    #[test]
    fn drain_takes_at_least_one_message_and_at_most_about_max() {
        let (_poll, _bell, out) = outbox(1 << 20);
        for i in 0..10 {
            out.send(&json!([i]));
        }
        let mut buf = Vec::new();
        assert!(!out.drain_into(&mut buf, 7));
        assert_eq!(buf, b"[0][1]");
        let mut one = Vec::new();
        assert!(!out.drain_into(&mut one, 1));
        assert_eq!(one, b"[2]");
    }

    #[test]
    fn overflow_closes_and_drops_the_queue() {
        let (_poll, bell, out) = outbox(10);
        assert!(out.send(&json!(["abc"])));
        assert!(!out.send(&json!(["defgh"])), "over the bound");
        assert!(out.is_closed());
        assert!(!out.send(&json!([1])), "closed for good");
        let mut buf = Vec::new();
        out.drain_into(&mut buf, 100);
        assert!(buf.is_empty());
        assert_eq!(bell.take_ready(), vec![Token(7)]);
    }

    #[test]
    fn finish_keeps_what_is_queued_and_refuses_more() {
        let (_poll, _bell, out) = outbox(100);
        out.send(&json!([1]));
        out.finish();
        assert!(!out.send(&json!([2])));
        assert!(!out.finished(), "one message still queued");
        let mut buf = Vec::new();
        out.drain_into(&mut buf, 100);
        assert_eq!(buf, b"[1]");
        assert!(out.finished());
    }
}
