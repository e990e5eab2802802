//! TCP with the namespaces' default offloads left on: veth and tap hand the switch 64 KiB GSO
//! super-frames with partial checksums. They must cross whole (virtio-net header carried end to
//! end, offsets moved when a VLAN tag is pushed or popped) — without that, TCP stalls.

mod common;
use common::{bridge_config, iperf_tcp, wait_ports_up, Daemon, Vm};
use testbed::{require_root, run, unique, Netns};

fn have_iperf3() -> bool {
    testbed::require_program("iperf3 tests", "iperf3", "--version", "iperf3")
}

#[test]
fn tcp_super_frames_cross_vlan_push_and_pop() {
    if !require_root("tcp_super_frames_cross_vlan_push_and_pop") || !have_iperf3() {
        return;
    }
    // a ─ access 10 ─ [br-x] ─ trunk ═ veth ═ trunk ─ [br-y] ─ access 10 ─ b
    let (a, b) = (Vm::new(1), Vm::new(2));
    let (tx, ty) = (unique("tx"), unique("ty"));
    run("ip", &["link", "add", &tx, "type", "veth", "peer", "name", &ty]).unwrap();
    let _cable = LinkGuard(tx.clone());
    let trunk = "vlan_mode = \"trunk\"\ntrunks = [10]";
    let config = bridge_config(&unique("br-ox"), &[(&a.port, "tag = 10"), (&tx, trunk)])
        + &bridge_config(&unique("br-oy"), &[(&b.port, "tag = 10"), (&ty, trunk)]);
    let d = Daemon::start(&config);
    wait_ports_up(&d, &[&a.port, &b.port, &tx, &ty]);
    assert!(a.ping(&b, 3));

    let bytes = iperf_tcp(&a.ns, &b.ns, &b.ip)
        .unwrap_or_else(|e| panic!("TCP through the switch failed: {e}\n{}", d.log()));
    assert!(bytes > 10 << 20, "only {bytes} bytes in 2 s");
    // Proof the frames were super-frames, not MTU-sized: average frame on a's port > 1514 bytes.
    let st = d.port(&a.port).statistics;
    let avg = st.rx_bytes / st.rx_packets.max(1);
    assert!(avg > 1514, "average frame {avg} bytes: offloads were not carried through");
    let trunk_tx = d.port(&tx).statistics;
    assert_eq!(trunk_tx.drops.get("tx-failed"), None, "{trunk_tx:?}");
}

#[test]
fn tcp_between_a_tap_and_a_veth() {
    if !require_root("tcp_between_a_tap_and_a_veth") || !have_iperf3() {
        return;
    }
    let a = Vm::new(1);
    let tap = unique("tap");
    let d = Daemon::start(&bridge_config(&unique("br-ot"), &[(&a.port, ""), (&tap, "type = \"tap\"")]));
    wait_ports_up(&d, &[&a.port, &tap]);
    let vm = Netns::new("tv").unwrap();
    run("ip", &["link", "set", &tap, "netns", vm.name()]).unwrap();
    vm.addr_up(&tap, "198.18.0.9/24").unwrap();
    assert!(a.ns.ping("198.18.0.9", 3));
    for (client, server, ip) in [(&a.ns, &vm, "198.18.0.9"), (&vm, &a.ns, a.ip.as_str())] {
        let bytes = iperf_tcp(client, server, ip)
            .unwrap_or_else(|e| panic!("TCP tap<->veth failed: {e}\n{}", d.log()));
        assert!(bytes > 10 << 20, "only {bytes} bytes in 2 s");
    }
}

/// Deletes a root-namespace link on drop.
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.0]);
    }
}
