//! Exactly once at the device: with the socket filter on a slow-path receive socket of the
//! ingress port (as rvswitchd attaches it), every fast-pathed frame reaches its destination and
//! none reaches that socket; a frame the kernel does not know reaches the socket only. When the
//! loader goes away (daemon stopping; the socket may live on in the fd keeper) the filter hides
//! nothing any more.

mod common;

use std::time::Duration;

use common::{load, Vm};
use fastpath::maps::flow_val;
use fastpath::{FlowKey, PortConf};
use netdev::Netdev;
use packet::MacAddr;
use switch::PortVlan;
use testbed::{frame_capture, marked_frame, markers_in, send_frame};

fn frame(src: [u8; 6], dst: [u8; 6], marker: u32) -> Vec<u8> {
    marked_frame(MacAddr(src), MacAddr(dst), None, marker)
}

fn markers<P: Netdev + ?Sized>(port: &mut P) -> Vec<u32> {
    markers_in(&frame_capture(port, Duration::from_millis(300), 256)).into_iter().map(|(m, _)| m).collect()
}

#[test]
fn fast_pathed_frames_skip_the_slow_path_socket() {
    let Some(mut fp) = load("fast_pathed_frames_skip_the_slow_path_socket") else { return };
    let (a, b) = (Vm::new(20).unwrap(), Vm::new(21).unwrap());
    let mut slow = netdev::SystemPort::open(a.link.host_if()).unwrap();
    assert_eq!(slow.attach_rx_filter(fp.socket_filter()).unwrap(), Some(a.ifindex));
    let access = PortVlan::access(10);
    for vm in [&a, &b] {
        fp.attach(vm.link.host_if(), vm.ifindex).unwrap();
        fp.set_port(vm.ifindex, &PortConf::new(1, &access, 0)).unwrap();
        let val = flow_val(&access, 10, vm.ifindex).unwrap();
        fp.set_flow(&FlowKey::new(1, 10, MacAddr(vm.mac)), &val).unwrap();
    }
    let (mut ra, mut rb) = (a.ns.open_port("eth0").unwrap(), b.ns.open_port("eth0").unwrap());
    for m in 1..=20 {
        send_frame(&mut ra, &frame(a.mac, b.mac, m)).unwrap();
    }
    send_frame(&mut ra, &frame(a.mac, [2, 0, 0, 0, 0x13, 0xee], 99)).unwrap();
    assert_eq!(markers(&mut rb), (1..=20).collect::<Vec<_>>(), "each fast-pathed frame once");
    assert_eq!(markers(&mut slow), vec![99], "the slow path sees only what the kernel did not forward");
    assert_eq!(fp.counters(a.ifindex).rx_packets, 20);

    drop(fp);
    send_frame(&mut ra, &frame(a.mac, b.mac, 100)).unwrap();
    assert_eq!(markers(&mut slow), vec![100], "a stopped fast path hides nothing from the slow path");
    assert!(markers(&mut rb).is_empty(), "and forwards nothing");
}
