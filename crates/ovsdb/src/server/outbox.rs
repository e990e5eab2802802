//! Per-connection output queue with a byte bound.
//!
//! Notifications are queued while the database lock is held, so queuing must
//! never block: a client that stops reading lets its queue grow up to the
//! bound, after which it is disconnected and everyone else carries on.

use super::stream::Stream;
use crate::database::Sink;
use serde_json::Value;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Condvar, Mutex};

struct State {
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
    closed: bool,
    finishing: bool,
}

/// The output side of one connection.
pub struct Outbox {
    state: Mutex<State>,
    cv: Condvar,
    limit: usize,
    stream: Stream,
}

impl Outbox {
    /// An outbox over `stream` (a clone used for shutdown) holding at most `limit` bytes.
    pub fn new(stream: Stream, limit: usize) -> Self {
        Outbox {
            state: Mutex::new(State { queue: VecDeque::new(), bytes: 0, closed: false, finishing: false }),
            cv: Condvar::new(),
            limit,
            stream,
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a message; false if the connection is closed or just overflowed.
    pub fn send(&self, msg: &Value) -> bool {
        let bytes = msg.to_string().into_bytes();
        let mut st = self.st();
        if st.closed || st.finishing {
            return false;
        }
        if st.bytes + bytes.len() > self.limit {
            tracing::warn!(queued = st.bytes, limit = self.limit, "client not reading; disconnecting");
            st.closed = true;
            st.queue.clear();
            drop(st);
            self.stream.shutdown();
            self.cv.notify_all();
            return false;
        }
        st.bytes += bytes.len();
        st.queue.push_back(bytes);
        self.cv.notify_all();
        true
    }

    /// Closes immediately, dropping queued output.
    pub fn close(&self) {
        let mut st = self.st();
        st.closed = true;
        st.queue.clear();
        drop(st);
        self.stream.shutdown();
        self.cv.notify_all();
    }

    /// Sends what is queued, then closes.
    pub fn finish(&self) {
        self.st().finishing = true;
        self.cv.notify_all();
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.st().closed
    }

    /// The writer loop: runs on its own thread until the connection closes.
    pub fn run_writer(&self, mut out: Stream) {
        loop {
            let msg = {
                let mut st = self.st();
                loop {
                    if st.closed {
                        return;
                    }
                    if let Some(m) = st.queue.pop_front() {
                        st.bytes -= m.len();
                        break m;
                    }
                    if st.finishing {
                        st.closed = true;
                        drop(st);
                        self.stream.shutdown();
                        return;
                    }
                    st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
                }
            };
            if out.write_all(&msg).is_err() {
                self.close();
                return;
            }
        }
    }
}

impl Sink for Outbox {
    fn deliver(&self, msg: &Value) -> bool {
        self.send(msg)
    }
}
