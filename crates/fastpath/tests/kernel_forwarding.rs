//! The program forwards between two namespaces with maps written by the test alone (no
//! rvswitchd, no slow path): known unicast crosses, VLAN tags are pushed and popped, removing
//! an entry stops the flow, and counters and last-seen stamps move.

mod common;

use common::{load, Vm};
use fastpath::maps::{flow_val, PORT_STANDALONE};
use fastpath::{FlowKey, PortConf};
use std::time::Duration;

use packet::{MacAddr, VlanTag};
use switch::{PortVlan, VlanMode};
use testbed::{frame_capture, marked_frame, markers_in, send_frame};

const BRIDGE: u32 = 1;

fn wire(fp: &mut fastpath::FastPath, vm: &Vm, port: &PortVlan, vlan: u16) {
    fp.attach(vm.link.host_if(), vm.ifindex).unwrap();
    fp.set_port(vm.ifindex, &PortConf::new(BRIDGE, port, PORT_STANDALONE)).unwrap();
    let val = flow_val(port, vlan, vm.ifindex).expect("port carries the VLAN");
    fp.set_flow(&FlowKey::new(BRIDGE, vlan, MacAddr(vm.mac)), &val).unwrap();
}

#[test]
fn forwards_known_unicast_between_namespaces() {
    let Some(mut fp) = load("forwards_known_unicast_between_namespaces") else { return };
    let (a, b) = (Vm::new(1).unwrap(), Vm::new(2).unwrap());
    a.knows(&b).unwrap();
    b.knows(&a).unwrap();
    assert!(!a.ns.ping(&b.ip, 1), "nothing forwards before the program is attached");
    let access = PortVlan::access(10);
    wire(&mut fp, &a, &access, 10);
    wire(&mut fp, &b, &access, 10);
    assert!(a.ns.ping(&b.ip, 3), "ping through the kernel fast path");
    let (ca, cb) = (fp.counters(a.ifindex), fp.counters(b.ifindex));
    assert!(ca.rx_packets >= 3 && ca.tx_packets >= 3, "{ca:?}");
    assert!(cb.rx_packets >= 3 && cb.tx_packets >= 3, "{cb:?}");
    let seen = fp.flow(&FlowKey::new(BRIDGE, 10, MacAddr(a.mac))).unwrap().seen_ns;
    assert!(seen > 0, "the source's last-seen stamp is refreshed");

    fp.remove_flow(&FlowKey::new(BRIDGE, 10, MacAddr(b.mac)));
    assert!(!a.ns.ping(&b.ip, 1), "without the destination entry the kernel does not forward");
}

/// Sends frame `marker` from `from` (tagged with `vid` or not) and returns the tags of the
/// copies `to` received.
fn cross(from: &Vm, to: &Vm, vid: Option<u16>, marker: u32) -> Vec<Option<VlanTag>> {
    let (mut tx, mut rx) = (from.ns.open_port("eth0").unwrap(), to.ns.open_port("eth0").unwrap());
    let vlan = vid.map(|v| VlanTag::vid(v).unwrap());
    send_frame(&mut tx, &marked_frame(MacAddr(from.mac), MacAddr(to.mac), vlan, marker)).unwrap();
    let got = markers_in(&frame_capture(&mut rx, Duration::from_millis(300), 16));
    got.into_iter().filter(|(m, _)| *m == marker).map(|(_, tag)| tag).collect()
}

#[test]
fn pushes_and_pops_vlan_tags() {
    let Some(mut fp) = load("pushes_and_pops_vlan_tags") else { return };
    let (t, a, n) = (Vm::new(3).unwrap(), Vm::new(4).unwrap(), Vm::new(5).unwrap());
    let trunk = PortVlan::new(Some(VlanMode::Trunk), None, &[20]).unwrap();
    let native = PortVlan::new(Some(VlanMode::NativeTagged), Some(20), &[]).unwrap();
    wire(&mut fp, &t, &trunk, 20);
    wire(&mut fp, &a, &PortVlan::access(20), 20);
    wire(&mut fp, &n, &native, 20);
    let vid = |tags: Vec<Option<VlanTag>>| tags.into_iter().map(|t| t.map(|t| t.vid)).collect::<Vec<_>>();
    assert_eq!(vid(cross(&t, &a, Some(20), 1)), vec![None], "trunk → access pops the tag");
    assert_eq!(vid(cross(&a, &t, None, 2)), vec![Some(20)], "access → trunk pushes VLAN 20");
    assert_eq!(vid(cross(&a, &n, None, 3)), vec![Some(20)], "native-tagged: native VLAN leaves tagged");
    assert_eq!(vid(cross(&n, &t, None, 4)), vec![Some(20)], "untagged on native-tagged is VLAN 20");
    assert_eq!(vid(cross(&t, &a, Some(21), 5)), vec![], "VLAN 21 is not on the trunk: no copy");
    assert_eq!(vid(cross(&a, &t, Some(20), 6)), vec![], "a tagged frame on an access port: no copy");
    // On another VLAN the same MACs are unknown: nothing crosses.
    fp.set_port(a.ifindex, &PortConf::new(BRIDGE, &PortVlan::access(21), PORT_STANDALONE)).unwrap();
    assert_eq!(vid(cross(&a, &t, None, 7)), vec![], "an access port on VLAN 21 reaches no entry of VLAN 20");
}
