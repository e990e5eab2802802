//! Events an operator wants to hear about — port up/down, a VPN tunnel up/down, a MAC that moved to another port, a
//! port-security drop — go to the log and into a bounded ring that `rvsctl events` reads and
//! follows. The forwarding thread hands its events over through a bounded channel it never
//! waits on ([`feed`]); link and tunnel changes come from the control loop's tick ([`links`], [`vpn`]).

pub mod feed;
pub mod links;
pub mod vpn;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ctl::protocol::{Event, EventKind, EventsReply, MAX_EVENT_WAIT_MS};
use tracing::{info, warn};

/// Events the ring keeps; older ones are overwritten (a reader that fell behind is told).
pub const RING_CAPACITY: usize = 1024;

/// An event before it has a number and a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub bridge: String,
    pub port: String,
    pub kind: EventKind,
}

#[derive(Default)]
struct Inner {
    events: VecDeque<Event>,
    /// The sequence number the next event gets (the first is 1).
    next: u64,
}

/// The daemon's recent events.
pub struct EventRing {
    inner: Mutex<Inner>,
    news: Condvar,
    capacity: usize,
    /// Events the forwarding thread lost (its queue was full), shared with the feed.
    dropped: Arc<AtomicU64>,
}

impl EventRing {
    pub fn new(capacity: usize, dropped: Arc<AtomicU64>) -> Arc<EventRing> {
        let inner = Inner { events: VecDeque::with_capacity(capacity), next: 1 };
        Arc::new(EventRing {
            inner: Mutex::new(inner),
            news: Condvar::new(),
            capacity: capacity.max(1),
            dropped,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events the forwarding thread could not hand over (queue full, rate limits) so far.
    pub fn lost(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Logs `p`, numbers and stamps it, keeps it, and wakes followers.
    pub fn push(&self, p: Pending) {
        log(&p);
        let time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut inner = self.lock();
        if inner.events.len() >= self.capacity {
            inner.events.pop_front();
        }
        let seq = inner.next;
        inner.next += 1;
        inner.events.push_back(Event { seq, time_ms, bridge: p.bridge, port: p.port, kind: p.kind });
        drop(inner);
        self.news.notify_all();
    }

    /// The events numbered `from` or later; when there are none, waits up to `wait` (capped)
    /// for the first.
    pub fn read(&self, from: u64, wait: Duration) -> EventsReply {
        let wait = wait.min(Duration::from_millis(MAX_EVENT_WAIT_MS));
        let inner = self.lock();
        let (inner, _) =
            self.news.wait_timeout_while(inner, wait, |i| i.next <= from).unwrap_or_else(|e| e.into_inner());
        let oldest = inner.events.front().map_or(inner.next, |e| e.seq);
        let events: Vec<Event> = inner.events.iter().filter(|e| e.seq >= from).cloned().collect();
        EventsReply {
            events,
            next: inner.next,
            missed: oldest.saturating_sub(from.max(1)),
            dropped: self.lost(),
        }
    }
}

fn log(p: &Pending) {
    let (bridge, port) = (p.bridge.as_str(), p.port.as_str());
    match &p.kind {
        EventKind::PortUp => info!(bridge, port, "port up"),
        EventKind::PortDown => warn!(bridge, port, "port down"),
        EventKind::VpnUp { endpoint } => info!(bridge, port, endpoint, "VPN tunnel up"),
        EventKind::VpnDown { endpoint } => warn!(bridge, port, endpoint, "VPN tunnel down"),
        EventKind::MacMove { mac, vlan, from_port } => {
            info!(bridge, port, mac, vlan, from_port, "MAC moved to another port")
        }
        EventKind::SecurityDrop { reason, mac, ip, suppressed } => {
            let ip = ip.as_deref().unwrap_or("-");
            warn!(bridge, port, reason, mac, ip, suppressed, "port security dropped a frame")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(port: &str) -> Pending {
        Pending { bridge: "br0".into(), port: port.into(), kind: EventKind::PortUp }
    }

    #[test]
    fn numbered_bounded_and_read_from_a_sequence_number() {
        let ring = EventRing::new(3, Arc::default());
        for p in ["a", "b", "c", "d"] {
            ring.push(up(p));
        }
        let all = ring.read(0, Duration::ZERO);
        let ports: Vec<_> = all.events.iter().map(|e| (e.seq, e.port.as_str())).collect();
        assert_eq!(ports, vec![(2, "b"), (3, "c"), (4, "d")]);
        assert_eq!((all.next, all.missed), (5, 1), "event 1 was overwritten");
        let later = ring.read(4, Duration::ZERO);
        assert_eq!((later.events.len(), later.missed), (1, 0));
        assert!(ring.read(5, Duration::ZERO).events.is_empty());
    }

    #[test]
    fn a_follower_wakes_up_for_a_new_event() {
        let ring = EventRing::new(8, Arc::default());
        let r = ring.clone();
        let reader = std::thread::spawn(move || r.read(1, Duration::from_secs(10)));
        ring.push(up("a"));
        let got = reader.join().unwrap();
        assert_eq!(got.events.len(), 1, "the event pushed after the reader started waiting");
    }
}
