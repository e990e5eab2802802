//! The server's one I/O thread: every listener and client on one `mio` poll (epoll).
//!
//! A thread per client cost ~2 threads and their stacks per idle connection and, with a cap to
//! keep that bounded, let 1024 idle sockets lock everyone else out. Here an idle client costs a
//! socket, a session entry and a few hundred bytes; the loop wakes for readiness, for its
//! doorbell (queued output, a commit while transactions wait, shutdown) and for a timer tick
//! that runs the inactivity probe.
//!
//! Group commit: the transactions of one turn are logged without fsync, then one fsync covers
//! them all before any reply of the turn is written. One fsync per transaction on this single
//! thread cost 3.6x the throughput of the old thread-per-client server under 100 clients on a
//! busy 2-CPU machine (each fsync is a sleep, and each wake-up waited ~0.7 ms for a CPU); one per
//! turn gave 2.1x its throughput instead (tests/load.rs: 2862 → 22330 transactions in 10 s,
//! thread-per-client 10481).

use super::client::{Client, Turn};
use super::conn::{Conn, Ctx};
use super::liveness::Timeouts;
use super::outbox::{Doorbell, Outbox};
use super::stream::Stream;
use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token};
use std::collections::{HashMap, HashSet};
use std::io::{self, ErrorKind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const WAKER: Token = Token(0);
const UNIX: Token = Token(1);
const TCP: Token = Token(2);
const FIRST_CLIENT: usize = 3;
/// Bytes read per `read` call (one buffer for the whole loop).
const READ_BUF: usize = 64 << 10;

/// What the loop shares with the [`super::ServerHandle`].
pub(crate) struct Shared {
    pub bell: Arc<Doorbell>,
    pub stop: AtomicBool,
    pub clients: AtomicUsize,
}

/// Clients dropped since the last summary line, by reason (one log line per tick, not per client).
#[derive(Default)]
struct Dropped(HashMap<&'static str, usize>);

/// The event loop's state (owned by its thread).
pub(crate) struct EventLoop {
    poll: Poll,
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    unix: UnixListener,
    tcp: Option<TcpListener>,
    clients: HashMap<Token, Client>,
    next: usize,
    /// Clients whose turn ended with work left.
    again: Vec<Token>,
    /// Clients with events this turn: written to after the turn's group commit.
    touched: Vec<Token>,
    /// An accept failed for want of resources; retried on the tick.
    accept_retry: bool,
    waits: WaitState,
    timeouts: Timeouts,
    tick: Duration,
    next_tick: Instant,
    dropped: Dropped,
    buf: Vec<u8>,
}

/// Which clients hold blocked transactions, and when they are next worth a look.
#[derive(Default)]
struct WaitState {
    clients: HashSet<Token>,
    seen: (u64, u64),
    due: Option<Instant>,
    /// A wait was added since the last pass.
    added: bool,
}

impl EventLoop {
    /// Registers the listeners; the doorbell's waker must belong to `poll`.
    pub fn new(
        poll: Poll,
        ctx: Arc<Ctx>,
        shared: Arc<Shared>,
        mut unix: UnixListener,
        mut tcp: Option<TcpListener>,
    ) -> io::Result<EventLoop> {
        poll.registry().register(&mut unix, UNIX, Interest::READABLE)?;
        if let Some(t) = tcp.as_mut() {
            poll.registry().register(t, TCP, Interest::READABLE)?;
        }
        let l = ctx.limits;
        let timeouts = Timeouts { probe: l.probe_interval, stall: l.stall_timeout };
        let shortest = l.probe_interval.unwrap_or(l.stall_timeout).min(l.stall_timeout);
        let tick = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        Ok(EventLoop {
            poll,
            ctx,
            shared,
            unix,
            tcp,
            clients: HashMap::new(),
            next: FIRST_CLIENT,
            again: Vec::new(),
            touched: Vec::new(),
            accept_retry: false,
            waits: WaitState::default(),
            timeouts,
            tick,
            next_tick: Instant::now() + tick,
            dropped: Dropped::default(),
            buf: vec![0; READ_BUF],
        })
    }

    /// Runs until the handle asks it to stop; then every client is disconnected.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.shared.stop.load(Ordering::Acquire) {
            let timeout = self.timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "OVSDB event loop failed; disconnecting everyone");
                break;
            }
            for ev in events.iter() {
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                self.event(ev.token(), readable);
            }
            self.service(Instant::now());
        }
        let tokens: Vec<Token> = self.clients.keys().copied().collect();
        for t in tokens {
            self.drop_client(t, "server stopping");
        }
    }

    /// How long poll may sleep: not at all with work left, until the next tick or wait deadline
    /// otherwise, and indefinitely with no client at all (an idle daemon does not wake up).
    fn timeout(&self, now: Instant) -> Option<Duration> {
        if !self.again.is_empty() || self.waits.added {
            return Some(Duration::ZERO);
        }
        if self.clients.is_empty() && !self.accept_retry {
            return None;
        }
        let mut until = self.next_tick;
        if let Some(d) = self.waits.due {
            until = until.min(d);
        }
        Some(until.saturating_duration_since(now))
    }

    fn event(&mut self, t: Token, readable: bool) {
        match t {
            WAKER => {}
            // Once asked to stop, accept nobody: a socket handed to the next process keeps
            // its backlog for it.
            UNIX | TCP if !self.shared.stop.load(Ordering::Acquire) => self.accept(t),
            UNIX | TCP => {}
            _ => {
                if readable {
                    self.read(t);
                }
                self.touched.push(t);
            }
        }
    }

    /// Everything that is not a readiness event: leftover turns, timers, waits; then the turn's
    /// commits are made durable and every client with output is written to.
    fn service(&mut self, now: Instant) {
        for t in std::mem::take(&mut self.again) {
            self.read(t);
            self.touched.push(t);
        }
        if now >= self.next_tick {
            self.next_tick = now + self.tick;
            if std::mem::take(&mut self.accept_retry) {
                self.accept(UNIX);
                self.accept(TCP);
            }
            self.check_timeouts(now);
        }
        self.retry_waits(now);
        self.commit_and_flush();
    }

    fn read(&mut self, t: Token) {
        let Some(c) = self.clients.get_mut(&t) else { return };
        let turn = c.read(&mut self.buf, Instant::now());
        if c.conn().waiting() > 0 && self.waits.clients.insert(t) {
            self.waits.added = true;
        }
        match turn {
            Turn::Idle => {}
            Turn::More => self.again.push(t),
            Turn::Close(why) => self.drop_client(t, why),
        }
    }

    /// Group commit: the transactions of this turn were logged without fsync; one fsync now
    /// makes them all durable, and only then are their replies written. If it fails, nobody
    /// with output from this turn gets it: they are disconnected, unacknowledged.
    fn commit_and_flush(&mut self) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.extend(self.shared.bell.take_ready());
        touched.sort_unstable();
        touched.dedup();
        if let Err(e) = self.ctx.main.sync() {
            tracing::error!(error = %e, "database log fsync failed; disconnecting the clients it would answer");
            for t in touched {
                self.drop_client(t, "database fsync failed");
            }
            return;
        }
        for t in touched {
            self.settle(t);
        }
    }

    /// Writes what is queued and drops the client if it is done.
    fn settle(&mut self, t: Token) {
        let Some(c) = self.clients.get_mut(&t) else { return };
        let why = match c.flush() {
            Turn::Close(why) => Some(why),
            Turn::More => {
                self.again.push(t);
                c.done()
            }
            Turn::Idle => c.done(),
        };
        if let Some(why) = why {
            self.drop_client(t, why);
        }
    }

    fn accept(&mut self, which: Token) {
        loop {
            let accepted = match which {
                UNIX => self.unix.accept().map(|(s, _)| Stream::Unix(s)),
                _ => match self.tcp.as_ref() {
                    Some(l) => l.accept().map(|(s, _)| {
                        let _ = s.set_nodelay(true);
                        Stream::Tcp(s)
                    }),
                    None => return,
                },
            };
            match accepted {
                Ok(s) => self.add(s),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::ConnectionAborted) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Out of descriptors: make room at the expense of the longest-idle client
                    // rather than leave a new one (perhaps libvirt) hanging in the backlog.
                    if !self.evict_idlest("out of file descriptors") {
                        self.accept_retry = true;
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "OVSDB accept failed; retrying shortly");
                    self.accept_retry = true;
                    return;
                }
            }
        }
    }

    fn add(&mut self, mut s: Stream) {
        if self.clients.len() >= self.ctx.limits.max_connections {
            self.evict_idlest("connection limit reached");
        }
        let t = Token(self.next);
        self.next += 1;
        if let Err(e) = s.register(self.poll.registry(), t) {
            tracing::warn!(error = %e, "cannot watch a new OVSDB client; closing it");
            return;
        }
        let out = Arc::new(Outbox::new(t, self.ctx.limits.max_output, self.shared.bell.clone()));
        let conn = Conn::new(self.ctx.clone(), out);
        self.clients.insert(t, Client::new(s, conn, self.ctx.limits.max_message, Instant::now()));
        self.shared.clients.store(self.clients.len(), Ordering::Relaxed);
    }

    /// Drops the client that has been silent longest; false if there is none.
    fn evict_idlest(&mut self, why: &'static str) -> bool {
        let Some(t) = self.clients.iter().min_by_key(|(_, c)| c.last_rx()).map(|(t, _)| *t) else {
            return false;
        };
        self.drop_client(t, why);
        true
    }

    fn drop_client(&mut self, t: Token, why: &'static str) {
        let Some(mut c) = self.clients.remove(&t) else { return };
        c.stream().deregister(self.poll.registry());
        if self.waits.clients.remove(&t) {
            self.waits.added = true;
        }
        tracing::debug!(reason = why, "OVSDB client disconnected");
        if why != "closed" {
            *self.dropped.0.entry(why).or_default() += 1;
        }
        self.shared.clients.store(self.clients.len(), Ordering::Relaxed);
    }

    fn check_timeouts(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for (t, c) in self.clients.iter_mut() {
            if let Some(why) = c.check(now, &self.timeouts) {
                gone.push((*t, why));
            }
        }
        for (t, why) in gone {
            self.drop_client(t, why);
        }
        for (why, n) in std::mem::take(&mut self.dropped.0) {
            tracing::info!(clients = n, reason = why, "dropped OVSDB clients");
        }
    }

    /// Re-attempts blocked transactions once a database committed or a deadline passed.
    fn retry_waits(&mut self, now: Instant) {
        if self.waits.clients.is_empty() {
            self.shared.bell.set_waits(0);
            return;
        }
        let gens = (self.ctx.main.generation(), self.ctx.server_db.generation());
        let due = self.waits.due.is_some_and(|d| d <= now);
        if gens == self.waits.seen && !due && !self.waits.added {
            return;
        }
        (self.waits.seen, self.waits.due, self.waits.added) = (gens, None, false);
        let mut total = 0;
        for t in self.waits.clients.clone() {
            let Some(c) = self.clients.get_mut(&t) else {
                self.waits.clients.remove(&t);
                continue;
            };
            let next = c.conn().retry_waits(now);
            let left = c.conn().waiting();
            if let Some(d) = next {
                self.waits.due = Some(self.waits.due.map_or(d, |cur| cur.min(d)));
            }
            total += left;
            if left == 0 {
                self.waits.clients.remove(&t);
            }
            self.touched.push(t);
        }
        self.shared.bell.set_waits(total);
    }
}
