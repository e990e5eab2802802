//! One connection's I/O on the event loop: non-blocking reads into the JSON-RPC [`Splitter`],
//! writes from the [`Outbox`] when the socket takes them, and the liveness rules.
//!
//! Memory per client is bounded by `max_message` (one partial message in the splitter),
//! `max_output` (the outbox) and one write chunk; nothing else is buffered per client.

use super::conn::Conn;
use super::liveness::{Liveness, Timeouts, Verdict};
use super::stream::Stream;
use crate::error::OvsdbError;
use crate::jsonrpc::{error_reply, Splitter};
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::time::Instant;

/// Reads (or writes) per turn before other clients get theirs.
const TURN_BUDGET: usize = 16;
/// Bytes moved from the outbox per write.
const WRITE_CHUNK: usize = 256 << 10;
/// A write buffer that grew past this is given back once drained (idle clients stay small).
const KEEP_CAPACITY: usize = 16 << 10;

/// What became of a turn of I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Nothing more to do until the next readiness event.
    Idle,
    /// The turn's budget ran out with work left: come back without waiting for an event.
    More,
    /// Disconnect, for this reason.
    Close(&'static str),
}

/// A connected client.
pub(crate) struct Client {
    stream: Stream,
    conn: Conn,
    splitter: Splitter,
    live: Liveness,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Since when the client is only being sent its last replies (EOF or a protocol error).
    closing: Option<Instant>,
}

impl Client {
    pub fn new(stream: Stream, conn: Conn, max_message: usize, now: Instant) -> Client {
        Client {
            stream,
            conn,
            splitter: Splitter::new(max_message),
            live: Liveness::new(now),
            wbuf: Vec::new(),
            wpos: 0,
            closing: None,
        }
    }

    pub fn stream(&mut self) -> &mut Stream {
        &mut self.stream
    }

    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// When the client last sent anything.
    pub fn last_rx(&self) -> Instant {
        self.live.last_rx()
    }

    /// Reads what the socket has (up to a budget) and handles every complete message.
    pub fn read(&mut self, buf: &mut [u8], now: Instant) -> Turn {
        for _ in 0..TURN_BUDGET {
            if self.closing.is_some() {
                return Turn::Idle;
            }
            match self.stream.read(buf) {
                Ok(0) => self.finish(now),
                Ok(n) => self.input(&buf[..n], now),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Turn::Idle,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Turn::Close("read failed"),
            }
        }
        Turn::More
    }

    fn input(&mut self, data: &[u8], now: Instant) {
        let mut msgs = Vec::new();
        let framed = self.splitter.feed(data, &mut |m| msgs.push(m));
        self.live.received(now, !msgs.is_empty(), self.splitter.in_message());
        for m in msgs {
            // One thread serves everyone: a bug that panics on one request must cost only its
            // client (as it did with a thread per client), not the whole server.
            let conn = &mut self.conn;
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conn.handle(&m)));
            if !handled.unwrap_or_else(|_| {
                tracing::error!("OVSDB request handler panicked; closing its client");
                false
            }) {
                self.finish(now);
                return;
            }
        }
        if let Err(e) = framed {
            self.conn.out().send(&error_reply(&Value::Null, OvsdbError::syntax(e.to_string()).to_json()));
            self.finish(now);
        }
    }

    /// Reads nothing more; the queued replies are still written, then the client is dropped.
    fn finish(&mut self, now: Instant) {
        if self.closing.is_none() {
            self.closing = Some(now);
            self.conn.out().finish();
        }
    }

    /// Writes queued output until the socket is full, the queue is empty or the budget is spent.
    pub fn flush(&mut self) -> Turn {
        for _ in 0..TURN_BUDGET {
            if self.wpos == self.wbuf.len() {
                self.refill();
                if self.wbuf.is_empty() {
                    return Turn::Idle;
                }
            }
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Turn::Close("write failed"),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Turn::Idle,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Turn::Close("write failed"),
            }
        }
        Turn::More
    }

    fn refill(&mut self) {
        self.wpos = 0;
        if self.wbuf.capacity() > KEEP_CAPACITY {
            self.wbuf = Vec::new();
        } else {
            self.wbuf.clear();
        }
        self.conn.out().drain_into(&mut self.wbuf, WRITE_CHUNK);
    }

    /// Why the client must go now, if it must: its output overflowed, or it finished and
    /// everything was written.
    pub fn done(&self) -> Option<&'static str> {
        let out = self.conn.out();
        if out.is_closed() {
            Some("output queue over its bound")
        } else if self.closing.is_some() && self.wpos == self.wbuf.len() && out.finished() {
            Some("closed")
        } else {
            None
        }
    }

    /// Applies the timeouts at `now`: probes an idle client, or says why to drop it.
    pub fn check(&mut self, now: Instant, t: &Timeouts) -> Option<&'static str> {
        if let Some(since) = self.closing {
            let stuck = now.saturating_duration_since(since) >= t.stall;
            return stuck.then_some("did not take its last replies");
        }
        match self.live.check(now, t) {
            Verdict::Fine => None,
            Verdict::Probe => {
                self.conn.out().send(&json!({"method": "echo", "params": [], "id": "echo"}));
                None
            }
            Verdict::Drop(why) => Some(why),
        }
    }
}
