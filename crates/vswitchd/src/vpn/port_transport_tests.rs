//! The gateway port over a scripted [`Transport`], the seam a tun uplink plugs into: nothing
//! enters a transport that says down (counted `vpn-down`), everything does once it is up, what
//! it delivers reaches the VM, a descriptor a tick reopens joins the poll set, and the port
//! announces the gateway to the zone; a transmit flushes the transport once, after all its packets.

use std::io::IoSlice;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gateway::{DropReason, Gateway, GatewaySpec};
use netdev::{Netdev, NetdevError, RxBatch, TxFrame, VnetHdr};
use packet::MacAddr;

use super::GatewayPort;
use crate::datapath::sys::EventFd;
use crate::vpn::{Transport, TransportStats};

const VM_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];

/// What the test tells the transport and what it saw.
#[derive(Default)]
struct Script {
    up: bool,
    sent: Vec<Vec<u8>>,
    /// How many packets had been sent at each flush.
    flushed_at: Vec<usize>,
    to_deliver: Vec<Vec<u8>>,
    /// A descriptor the next tick reports as reopened.
    reopened: Option<RawFd>,
    /// What the transport's device says (a tun's MTU and address).
    facts: Option<netdev::DeviceFacts>,
}

struct Scripted(Arc<Mutex<Script>>);

impl Transport for Scripted {
    fn poll_fd(&self) -> Option<RawFd> {
        None
    }
    fn tick(&mut self, _now: Instant) -> Option<RawFd> {
        self.0.lock().unwrap().reopened.take()
    }
    fn is_up(&self, _now: Instant) -> bool {
        self.0.lock().unwrap().up
    }
    fn send(&mut self, ip: &[u8], _now: Instant) {
        self.0.lock().unwrap().sent.push(ip.to_vec());
    }
    fn flush(&mut self) {
        let mut s = self.0.lock().unwrap();
        let n = s.sent.len();
        s.flushed_at.push(n);
    }
    fn recv(&mut self, room: usize, deliver: &mut dyn FnMut(&mut [u8])) -> Result<(), NetdevError> {
        let pending: Vec<Vec<u8>> = self.0.lock().unwrap().to_deliver.drain(..).collect();
        pending.into_iter().take(room).for_each(|mut p| deliver(&mut p));
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "tun"
    }
    fn endpoint(&self) -> String {
        "tun-test".into()
    }
    fn stats(&self) -> TransportStats {
        TransportStats { rx_bytes: 7, send_lost: 2, ..TransportStats::default() }
    }
    fn device_facts(&self) -> Option<netdev::DeviceFacts> {
        self.0.lock().unwrap().facts
    }
}

fn port() -> (GatewayPort<Scripted>, Arc<Mutex<Script>>) {
    port_with(|gw| gw)
}

/// The port over a gateway `build` may add services to.
fn port_with(build: impl FnOnce(Gateway) -> Gateway) -> (GatewayPort<Scripted>, Arc<Mutex<Script>>) {
    let script = Arc::new(Mutex::new(Script::default()));
    let gw = build(Gateway::new(GatewaySpec {
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        ip: Ipv4Addr::new(198, 18, 0, 1),
        subnet: "198.18.0.0/24".parse().unwrap(),
        allowed: vec!["0.0.0.0/0".parse().unwrap()],
        mtu: 1500,
        v6: None,
    }));
    (GatewayPort::new("vpn-test", Scripted(script.clone()), gw).unwrap(), script)
}

/// ICMP echo 198.18.0.2 → 198.18.9.10 to the gateway MAC (as in port_tests).
fn echo() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1];
    f.extend(VM_MAC);
    f.extend([0x08, 0x00, 0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 1, 0xa5, 0xaf, 198, 18, 0, 2, 198, 18, 9, 10]);
    f.extend([8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
    f
}

fn send(port: &mut GatewayPort<Scripted>, frame: &[u8]) {
    let parts = [IoSlice::new(frame)];
    port.transmit(&[TxFrame { vnet: VnetHdr::default(), parts: &parts }]).unwrap();
}

fn frames(port: &mut GatewayPort<Scripted>) -> Vec<Vec<u8>> {
    let mut batch = RxBatch::new(8);
    port.recv_batch(&mut batch).unwrap();
    (0..batch.len()).map(|i| batch.frame(i).to_vec()).collect()
}

#[test]
fn a_down_transport_gets_nothing_an_up_one_everything() {
    let (mut port, script) = port();
    send(&mut port, &echo());
    assert!(script.lock().unwrap().sent.is_empty(), "nothing into a tunnel that is down");
    assert_eq!(port.gw.drops().get(DropReason::VpnDown), 1);
    script.lock().unwrap().up = true;
    send(&mut port, &echo());
    let sent = script.lock().unwrap().sent.clone();
    assert_eq!(sent.len(), 1);
    assert_eq!((&sent[0][12..16], &sent[0][16..20]), (&[198, 18, 0, 2][..], &[198, 18, 9, 10][..]));
    assert_eq!(port.gw.drops().get(DropReason::VpnDown), 1, "no more drops once up");
}

#[test]
fn what_the_transport_delivers_reaches_the_vm_and_the_gateway_announces_itself() {
    let (mut port, script) = port();
    let first = frames(&mut port);
    // The gratuitous ARP queued when the port started: broadcast, sender = target = gateway.
    let garp = first.iter().find(|f| f.len() >= 42 && f[12..14] == [8, 6]).expect("an announcement");
    assert_eq!(
        (&garp[..6], &garp[28..32], &garp[38..42]),
        (&[0xff; 6][..], &[198, 18, 0, 1][..], &[198, 18, 0, 1][..])
    );
    send(&mut port, &echo()); // teaches the gateway the VM's MAC
    let mut back = vec![0x45, 0, 0, 28, 0, 2, 0, 0, 63, 1, 0xe6, 0xae, 198, 18, 9, 10, 198, 18, 0, 2];
    back.extend([0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    script.lock().unwrap().to_deliver.push(back);
    let got = frames(&mut port);
    let f = got.iter().find(|f| f.len() > 14 && f[12..14] == [8, 0]).expect("the reply as a frame");
    assert_eq!((&f[..6], &f[14 + 16..14 + 20]), (&VM_MAC[..], &[198, 18, 0, 2][..]));
    port.tick(Instant::now());
    let st = port.shared().get();
    assert_eq!((st.state.as_str(), st.endpoint.as_str(), st.rx_bytes), ("down", "tun-test", 7));
    assert_eq!(st.transport, "tun");
    assert_eq!(st.drops.get(crate::vpn::SEND_LOST), Some(&2), "the transport's losses: {st:?}");
}

/// A transport may batch: every packet of one transmit is sent before its one flush, and a
/// transmit flushes even when nothing entered the tunnel (the kill switch).
#[test]
fn one_flush_per_transmit_after_all_its_packets() {
    let (mut port, script) = port();
    script.lock().unwrap().up = true;
    let f = echo();
    let parts = [IoSlice::new(&f)];
    let frame = TxFrame { vnet: VnetHdr::default(), parts: &parts };
    assert_eq!(port.transmit(&[frame, frame, frame]).unwrap(), 3);
    send(&mut port, &f);
    script.lock().unwrap().up = false;
    send(&mut port, &f);
    assert_eq!(script.lock().unwrap().flushed_at, [3, 4, 4]);
}

#[test]
fn a_reopened_descriptor_joins_the_poll_set() {
    let (mut port, script) = port();
    let ev = EventFd::new().unwrap();
    script.lock().unwrap().reopened = Some(ev.raw());
    port.tick(Instant::now());
    ev.wake();
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
    let n = port.epoll.wait(&mut events, 1000);
    assert!(events[..n].iter().any(|e| e.u64 == super::TOKEN_TUNNEL), "the new fd is polled");
}

/// What the VPN client changes on its device reaches the gateway at the next tick: the MTU,
/// and the NAT's address (the old one's mappings dropped, counted in the status).
#[test]
fn the_devices_mtu_and_address_reach_the_gateway_at_the_next_tick() {
    let old = Ipv4Addr::new(198, 19, 0, 2);
    let nat = l3::nat::Nat::new(l3::nat::NatConfig::new(old));
    let (mut port, script) = port_with(|gw| gw.with_nat(nat));
    script.lock().unwrap().up = true;
    send(&mut port, &echo());
    assert_eq!(&script.lock().unwrap().sent[0][12..16], &old.octets(), "leaves as the address at open");
    let new = Ipv4Addr::new(198, 19, 0, 6);
    script.lock().unwrap().facts = Some(netdev::DeviceFacts { mtu: Some(1300), ipv4: Some(new) });
    send(&mut port, &echo());
    assert_eq!(port.gw.spec().mtu, 1500, "nothing changes between ticks");
    assert_eq!(port.shared().get().mtu, Some(1500), "published: the MTU at open");
    port.tick(Instant::now());
    assert_eq!(port.gw.spec().mtu, 1300);
    assert_eq!(port.shared().get().mtu, Some(1300), "published for rvsctl show and Interface mtu");
    send(&mut port, &echo());
    let sent = script.lock().unwrap().sent.clone();
    assert_eq!(
        (sent.len(), &sent[2][12..16]),
        (3, &new.octets()[..]),
        "a new flow leaves as the new address"
    );
    port.tick(Instant::now());
    assert_eq!(port.shared().get().services.get("nat-readdressed"), Some(&1), "the echo's mapping");
    script.lock().unwrap().facts = None;
    port.tick(Instant::now());
    assert_eq!(port.gw.spec().mtu, 1300, "no device: the last values stay");
}
