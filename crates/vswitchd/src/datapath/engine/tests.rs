//! The forwarding loop driven turn by turn over in-memory ports: attach, detach, topology
//! changes, vanished devices and VLAN isolation, without root and without a thread. Each turn
//! handles what is ready at that moment (a non-blocking epoll wait), so every assertion is
//! about a state the loop has reached, never about timing.

use std::collections::HashMap;
use std::sync::mpsc;

use netdev::memory::{MemoryHandle, MemoryPort};
use packet::MacAddr;
use packet::{ethernet_frame, FrameSpec};
use switch::{BridgeSettings, PortCounters, PortSpec, PortVlan};

use super::*;
use crate::datapath::{TopologyBridge, TopologyPort, TraceError};

const BROADCAST: [u8; 6] = [0xff; 6];

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

/// An untagged IPv4-typed frame from `src` to `dst`.
fn frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let spec = FrameSpec { dst: MacAddr(dst), src: MacAddr(src), vlan: None, ethertype: 0x0800 };
    let n = ethernet_frame(&mut buf, &spec, &[0x45; 46]).expect("frame fits");
    buf[..n].to_vec()
}

/// An engine with its command channel, and the links and counters of the ports it was given
/// (kept by name across topologies, as the reconciler keeps them).
struct Rig {
    engine: Engine,
    commands: mpsc::Sender<Command>,
    waker: Arc<EventFd>,
    links: HashMap<String, Arc<PortLink>>,
    counters: HashMap<String, Arc<PortCounters>>,
    events: crate::events::feed::EventFeed,
}

impl Rig {
    fn new() -> Rig {
        let (commands, rx) = mpsc::channel();
        let waker = Arc::new(EventFd::new().expect("eventfd"));
        let heartbeat = crate::service::watchdog::Heartbeat::new();
        let (event_tx, events) = crate::events::feed::channel();
        let parts = EngineParts { commands: rx, waker: waker.clone(), heartbeat, events: event_tx };
        let engine = Engine::new(parts, Duration::ZERO, 1, None).expect("engine");
        Rig { engine, commands, waker, links: HashMap::new(), counters: HashMap::new(), events }
    }

    /// One round of the forwarding loop without blocking; returns the frames received.
    fn turn(&mut self) -> usize {
        if self.engine.epoll_dirty {
            self.engine.rebuild_epoll();
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
        let n = self.engine.epoll.wait(&mut events, 0);
        self.engine.dispatch(&events[..n]).0
    }

    /// Sends `cmd` as the control plane does and lets the loop carry it out.
    fn command(&mut self, cmd: Command) {
        self.commands.send(cmd).expect("engine alive");
        self.waker.wake();
        self.turn();
    }

    /// Sets the layout: bridges with their ports (name, access VLAN).
    fn topology(&mut self, bridges: &[(&str, &[(&str, u16)])]) {
        let mut t = Topology::default();
        for (name, ports) in bridges {
            let ports = ports.iter().map(|(p, vlan)| self.port(p, *vlan)).collect();
            t.bridges.push(TopologyBridge {
                name: name.to_string(),
                settings: BridgeSettings::default(),
                ports,
                mirrors: Vec::new(),
            });
        }
        self.command(Command::Topology(Arc::new(t)));
    }

    fn port(&mut self, name: &str, vlan: u16) -> TopologyPort {
        let link = self.links.entry(name.to_string()).or_default().clone();
        let counters = self.counters.entry(name.to_string()).or_default().clone();
        TopologyPort { spec: PortSpec { counters, ..PortSpec::new(name, PortVlan::access(vlan)) }, link }
    }

    /// Hands a new memory device for `port` to the loop; returns the test's handle on it.
    fn attach(&mut self, port: &str) -> MemoryHandle {
        let (dev, handle) = MemoryPort::new(port).expect("memory port");
        self.command(Command::Attach { port: port.to_string(), dev: Box::new(dev) });
        handle
    }

    fn attached(&self, port: &str) -> bool {
        self.links[port].is_attached()
    }
}

/// Three ports on one bridge: a and b on VLAN 10, c on VLAN 20.
fn three_ports() -> (Rig, MemoryHandle, MemoryHandle, MemoryHandle) {
    let mut rig = Rig::new();
    rig.topology(&[("br0", &[("a", 10), ("b", 10), ("c", 20)])]);
    let (a, b, c) = (rig.attach("a"), rig.attach("b"), rig.attach("c"));
    (rig, a, b, c)
}

#[test]
fn attached_ports_are_marked_and_unknown_ones_dropped() {
    let mut rig = Rig::new();
    rig.topology(&[("br0", &[("a", 1)])]);
    assert!(!rig.attached("a"), "a new port starts detached");
    let a = rig.attach("a");
    assert!(rig.attached("a"));
    assert!(!a.is_closed());
    let stray = rig.attach("nope");
    assert!(stray.is_closed(), "a device for a port the layout does not know is closed");
}

#[test]
fn frames_cross_within_a_vlan_and_never_into_another() {
    let (mut rig, a, b, c) = three_ports();
    let hello = frame(mac(1), BROADCAST);
    a.inject(&hello);
    assert_eq!(rig.turn(), 1);
    assert_eq!(b.take_sent(), vec![hello.clone()], "flooded to the other VLAN 10 port");
    assert!(c.take_sent().is_empty(), "nothing leaks into VLAN 20");
    assert!(a.take_sent().is_empty(), "never back out of the ingress port");
    c.inject(&frame(mac(3), BROADCAST));
    c.inject(&frame(mac(3), mac(1)));
    assert_eq!(rig.turn(), 2);
    assert!(a.take_sent().is_empty() && b.take_sent().is_empty(), "VLAN 20 reaches no VLAN 10 port");
    assert_eq!(rig.counters["c"].snapshot().rx_packets, 2);
}

#[test]
fn learned_macs_and_devices_survive_a_topology_change() {
    let (mut rig, a, b, c) = three_ports();
    a.inject(&frame(mac(1), BROADCAST));
    rig.turn();
    b.take_sent();
    // A port joins VLAN 10 and c leaves: a and b keep their devices and what was learned.
    rig.topology(&[("br0", &[("a", 10), ("b", 10), ("d", 10)])]);
    let d = rig.attach("d");
    assert!(!a.is_closed() && !b.is_closed());
    assert!(rig.attached("a") && rig.attached("b"));
    assert!(c.is_closed(), "the removed port's device is closed");
    let (reply, answer) = mpsc::channel();
    rig.command(Command::Fdb { bridge: "br0".into(), reply });
    let fdb = answer.try_recv().expect("answered in the same turn").expect("br0 exists");
    assert_eq!(fdb.len(), 1, "{fdb:?}");
    let want = MacAddr(mac(1)).to_string();
    assert_eq!((fdb[0].mac.as_str(), fdb[0].port.as_str(), fdb[0].vlan), (want.as_str(), "a", 10));
    let reply = frame(mac(2), mac(1));
    b.inject(&reply);
    rig.turn();
    assert_eq!(a.take_sent(), vec![reply], "unicast to the MAC learned before the change");
    assert!(d.take_sent().is_empty(), "not flooded: the MAC table survived");
}

#[test]
fn a_detached_port_is_closed_and_its_macs_forgotten() {
    let mut rig = Rig::new();
    rig.topology(&[("br0", &[("a", 10), ("b", 10), ("d", 10)])]);
    let (a, b, d) = (rig.attach("a"), rig.attach("b"), rig.attach("d"));
    a.inject(&frame(mac(1), BROADCAST));
    rig.turn();
    d.take_sent();
    rig.command(Command::Detach { port: "a".into() });
    assert!(a.is_closed());
    assert!(!rig.attached("a"));
    // Were mac 1 still learned on a's slot, this would go there (and nowhere); forgotten, it
    // is flooded to d.
    let to_a = frame(mac(2), mac(1));
    b.inject(&to_a);
    rig.turn();
    assert_eq!(d.take_sent(), vec![to_a]);
}

#[test]
fn a_port_whose_device_vanished_on_receive_is_detached() {
    let (mut rig, a, b, _c) = three_ports();
    a.vanish();
    rig.turn();
    assert!(!rig.attached("a"), "PortLink cleared");
    assert!(a.is_closed(), "the dead device is dropped");
    assert!(rig.attached("b"));
    b.inject(&frame(mac(2), BROADCAST));
    assert_eq!(rig.turn(), 1, "the others keep forwarding");
}

#[test]
fn a_port_whose_device_vanished_on_send_is_detached() {
    let (mut rig, a, b, _c) = three_ports();
    b.vanish();
    // a's frame reaches the loop before b's own wakeup: the send to b finds it gone.
    a.inject(&frame(mac(1), BROADCAST));
    let a_slot = rig.engine.by_name["a"];
    rig.engine.service_port(a_slot.0, a_slot.1, 0);
    assert!(!rig.attached("b"));
    assert!(b.is_closed());
    assert!(rig.attached("a") && !a.is_closed());
}

#[test]
fn each_tick_beats_the_heart_and_counts_kernel_drops() {
    let (mut rig, a, _b, _c) = three_ports();
    a.drop_in_kernel(5);
    // A tick later (the loop's clock moved back instead of waiting a second).
    let earlier = rig.engine.start.checked_sub(Duration::from_millis(TICK_MS)).expect("clock");
    rig.engine.start = earlier;
    let beats = rig.engine.heartbeat.count();
    rig.engine.housekeeping();
    assert_eq!(rig.engine.heartbeat.count(), beats + 1, "the watchdog sees the loop turn");
    let drops = rig.counters["a"].snapshot().drops;
    assert_eq!(drops.values().sum::<u64>(), 5, "{drops:?}");
    assert_eq!(drops.len(), 1, "one reason: {drops:?}");
}

#[test]
fn tokens_round_trip() {
    for t in [
        Token { bridge: 0, slot: 0, queue: 0 },
        Token { bridge: 3, slot: 7, queue: 1 },
        Token { bridge: 1, slot: 0xffff_ffff, queue: 0xff },
        Token { bridge: 0xff_ffff, slot: 12, queue: 3 },
    ] {
        assert_eq!(Token::unpack(t.pack()), t);
    }
    // The layout is the one documented: fields do not bleed into each other.
    assert_eq!(Token { bridge: 1, slot: 2, queue: 3 }.pack(), (1 << 40) | (3 << 32) | 2);
}

/// Traces `f` on `port`, then injects it there and returns (traced outputs, ports it left by).
fn trace_then_send(
    rig: &mut Rig,
    ports: &[(&str, &MemoryHandle)],
    port: &str,
    f: &[u8],
) -> (Vec<String>, Vec<String>) {
    let (reply, answer) = mpsc::channel();
    rig.command(Command::Trace { bridge: "br0".into(), port: port.into(), frame: f.to_vec(), reply });
    let trace = answer.try_recv().expect("answered in the same turn").expect("traceable");
    let traced: Vec<String> = trace.outputs.iter().map(|o| o.port.clone()).collect();
    let ingress = ports.iter().find(|(n, _)| *n == port).expect("known port").1;
    ingress.inject(f);
    rig.turn();
    let sent = ports.iter().filter(|(_, h)| !h.take_sent().is_empty()).map(|(n, _)| n.to_string()).collect();
    (traced, sent)
}

#[test]
fn trace_says_what_the_datapath_then_does_and_learns_nothing() {
    let (mut rig, a, b, c) = three_ports();
    let ports = [("a", &a), ("b", &b), ("c", &c)];
    let flood = frame(mac(2), BROADCAST);
    assert_eq!(trace_then_send(&mut rig, &ports, "b", &flood), (vec!["a".into()], vec!["a".into()]));
    let unicast = frame(mac(1), mac(2));
    // The trace of a→b ran before anything from a was seen: it must not have taught the table a.
    assert_eq!(trace_then_send(&mut rig, &ports, "a", &unicast), (vec!["b".into()], vec!["b".into()]));
    let cross = frame(mac(3), mac(1));
    assert_eq!(trace_then_send(&mut rig, &ports, "c", &cross), (vec![], vec![]), "VLAN 20 to a VLAN 10 MAC");
    let (reply, answer) = mpsc::channel();
    rig.command(Command::Trace { bridge: "br0".into(), port: "zz".into(), frame: flood, reply });
    assert!(matches!(answer.try_recv().unwrap(), Err(TraceError::NoPort { .. })));
}

#[test]
fn fdb_flush_forgets_and_mac_stats_count() {
    let (mut rig, a, _b, _c) = three_ports();
    a.inject(&frame(mac(1), BROADCAST));
    rig.turn();
    let (reply, answer) = mpsc::channel();
    rig.command(Command::MacStats(reply));
    let stats = answer.try_recv().unwrap();
    assert_eq!((stats[0].0.as_str(), stats[0].1.entries, stats[0].1.learned), ("br0", 1, 1));
    let (reply, answer) = mpsc::channel();
    rig.command(Command::FdbFlush { bridge: Some("nope".into()), reply });
    assert!(!answer.try_recv().unwrap(), "unknown bridge");
    let (reply, answer) = mpsc::channel();
    rig.command(Command::FdbFlush { bridge: Some("br0".into()), reply });
    assert!(answer.try_recv().unwrap());
    let (reply, answer) = mpsc::channel();
    rig.command(Command::Fdb { bridge: "br0".into(), reply });
    assert_eq!(answer.try_recv().unwrap().unwrap(), vec![], "flushed");
}

/// A station seen on another port is reported to the event feed, with both ports named.
#[test]
fn a_mac_move_leaves_the_loop_as_an_event() {
    let (mut rig, a, b, _c) = three_ports();
    a.inject(&frame(mac(1), BROADCAST));
    rig.turn();
    b.inject(&frame(mac(1), BROADCAST));
    rig.turn();
    let got = rig.events.try_take();
    let want = ctl::protocol::EventKind::MacMove {
        mac: MacAddr(mac(1)).to_string(),
        vlan: 10,
        from_port: "a".into(),
    };
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].bridge.as_str(), got[0].port.as_str(), &got[0].kind), ("br0", "b", &want));
}
