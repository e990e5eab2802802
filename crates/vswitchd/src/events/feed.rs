//! The forwarding thread's way out for events: a bounded channel it only `try_send`s on, so a
//! slow collector costs a counted loss, never a stall. Events are rare (moves, rate-limited
//! security drops), so the names they carry are allocated here without harm to the batch path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;

use ctl::protocol::EventKind;
use switch::{Bridge, SwitchEvent};

use super::{EventRing, Pending};

/// Events in flight between the forwarding thread and the collector.
pub const QUEUE: usize = 256;

/// The forwarding thread's end.
pub struct EventTx {
    tx: SyncSender<Pending>,
    dropped: Arc<AtomicU64>,
}

/// The collector's end: the events, and the count of those lost on the way.
pub struct EventFeed {
    rx: Receiver<Pending>,
    pub dropped: Arc<AtomicU64>,
}

pub fn channel() -> (EventTx, EventFeed) {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    (EventTx { tx, dropped: dropped.clone() }, EventFeed { rx, dropped })
}

impl EventFeed {
    /// What is queued now, without waiting (for tests and a final drain).
    pub fn try_take(&self) -> Vec<Pending> {
        self.rx.try_iter().collect()
    }
}

impl EventTx {
    fn send(&self, p: Pending) {
        if self.tx.try_send(p).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Hands what `bridge` (named `name`) recorded during the last batch to the collector.
    pub fn drain(&self, name: &str, bridge: &mut Bridge) {
        let mut out = Vec::new();
        let lost = bridge.drain_events(|e| out.push(e));
        if lost > 0 {
            self.dropped.fetch_add(lost, Relaxed);
        }
        let port = |slot: usize| bridge.ports().get(slot).map_or_else(String::new, |p| p.name.clone());
        for e in out {
            self.send(pending(name, e, port));
        }
    }
}

/// The wire form of a pipeline event; `port` names a slot.
fn pending(bridge: &str, e: SwitchEvent, port: impl Fn(usize) -> String) -> Pending {
    let (slot, kind) = match e {
        SwitchEvent::MacMoved { vlan, mac, from, to } => {
            (to, EventKind::MacMove { mac: mac.to_string(), vlan, from_port: port(from) })
        }
        SwitchEvent::SecurityDrop { slot, reason, mac, ip, suppressed } => (
            slot,
            EventKind::SecurityDrop {
                reason: reason.as_str().to_string(),
                mac: mac.to_string(),
                ip: ip.map(|ip| ip.to_string()),
                suppressed,
            },
        ),
    };
    Pending { bridge: bridge.to_string(), port: port(slot), kind }
}

/// Moves events from the forwarding thread into `ring` until the thread's end goes away.
pub fn collect(feed: EventFeed, ring: Arc<EventRing>) -> std::io::Result<()> {
    std::thread::Builder::new().name("events".into()).spawn(move || {
        for p in feed.rx {
            ring.push(p);
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use packet::MacAddr;
    use switch::{BridgeSettings, PortSpec, PortVlan};

    #[test]
    fn a_full_queue_is_counted_not_waited_on() {
        let (tx, feed) = channel();
        let t = PortVlan::new(Some(switch::VlanMode::Trunk), None, &[]).unwrap();
        let ports = vec![PortSpec::new("p0", t.clone()), PortSpec::new("p1", t)];
        let mut br = Bridge::new(BridgeSettings::default(), ports);
        let mut frame = vec![0xffu8; 6];
        frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
        frame.resize(60, 0);
        let mut out = Vec::new();
        // Every frame after the first moves the station: QUEUE + 10 events.
        for i in 0..QUEUE + 11 {
            // A second apart, so the pipeline's own move rate limit lets each through.
            br.process(i % 2, &frame, i as u64 * 1000, &mut out);
            tx.drain("br0", &mut br);
        }
        assert_eq!(feed.dropped.load(Relaxed), 10);
        let first = feed.rx.try_recv().unwrap();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]).to_string();
        let want = EventKind::MacMove { mac, vlan: 0, from_port: "p0".into() };
        assert_eq!(first, Pending { bridge: "br0".into(), port: "p1".into(), kind: want });
    }
}
