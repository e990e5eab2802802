//! The program forwards between two namespaces with maps written by the test alone (no
//! rvswitchd, no slow path): known unicast crosses, VLAN tags are pushed and popped, removing
//! an entry stops the flow, and counters and last-seen stamps move.

mod common;

use common::{load, Vm};
use fastpath::maps::{flow_val, PORT_STANDALONE};
use fastpath::{Binding, FlowKey, PortConf};
use std::time::Duration;

use packet::{MacAddr, VlanTag};
use switch::{parse_allowed_ips, PortSecurity, PortVlan, VlanMode};
use testbed::{frame_capture, marked_frame, markers_in, send_frame};

const BRIDGE: u32 = 1;

fn wire(fp: &mut fastpath::FastPath, vm: &Vm, port: &PortVlan, vlan: u16) {
    fp.attach(vm.link.host_if(), vm.ifindex).unwrap();
    fp.set_port(vm.ifindex, &PortConf::new(BRIDGE, port, PORT_STANDALONE)).unwrap();
    let val = flow_val(port, vlan, vm.ifindex).expect("port carries the VLAN");
    fp.set_flow(&FlowKey::new(BRIDGE, vlan, MacAddr(vm.mac)), &val).unwrap();
}

/// VMs `n` and `m` that know each other's MAC, both wired as access ports of VLAN 10; `check`
/// runs before the wiring.
fn access_pair(fp: &mut fastpath::FastPath, n: u8, m: u8, check: impl FnOnce(&Vm, &Vm)) -> (Vm, Vm) {
    let (a, b) = (Vm::new(n).unwrap(), Vm::new(m).unwrap());
    a.knows(&b).unwrap();
    b.knows(&a).unwrap();
    check(&a, &b);
    wire(fp, &a, &PortVlan::access(10), 10);
    wire(fp, &b, &PortVlan::access(10), 10);
    (a, b)
}

#[test]
fn forwards_known_unicast_between_namespaces() {
    let Some(mut fp) = load("forwards_known_unicast_between_namespaces") else { return };
    let (a, b) = access_pair(&mut fp, 1, 2, |a, b| {
        assert!(!a.ns.ping(&b.ip, 1), "nothing forwards before the program is attached");
    });
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

/// A secured VM (port-security `on`, bound by allowed-ips) pings through the kernel; without
/// its binding, or with a binding that has expired, the same ping no longer crosses (standalone
/// mode has no slow path: what the program does not forward is lost).
#[test]
fn secured_port_forwards_only_from_its_bound_address() {
    let Some(mut fp) = load("secured_port_forwards_only_from_its_bound_address") else { return };
    let (a, b) = access_pair(&mut fp, 6, 7, |_, _| {});
    let access = PortVlan::access(10);
    let sec = PortSecurity { ips: parse_allowed_ips(&a.ip).unwrap(), ..PortSecurity::vm(MacAddr(a.mac)) };
    fp.set_port(a.ifindex, &PortConf::secured(BRIDGE, &access, PORT_STANDALONE, &sec)).unwrap();
    assert!(!a.ns.ping(&b.ip, 1), "no binding in the map yet: the kernel does not forward A's IPv4");
    let bound = Binding::new(a.ifindex, &a.ip.parse().unwrap()).unwrap();
    fp.set_binding(&bound, u64::MAX).unwrap();
    assert!(a.ns.ping(&b.ip, 3), "A's bound address crosses the kernel");
    fp.set_binding(&bound, fastpath::kernel_now_ns()).unwrap();
    assert!(!a.ns.ping(&b.ip, 1), "an expired binding is not honoured");
    fp.set_binding(&bound, u64::MAX).unwrap();
    let other = PortSecurity { macs: vec![MacAddr([2, 0, 0, 0, 0x13, 0x99])], ..sec };
    fp.set_port(a.ifindex, &PortConf::secured(BRIDGE, &access, PORT_STANDALONE, &other)).unwrap();
    assert!(!a.ns.ping(&b.ip, 1), "A's MAC is not the port's allowed MAC");
}
