//! Live migration across hosts: a VM's MAC that shows up on a tunnel port (its new host) is
//! re-learned there on its first frame (libvirt's RARP/gratuitous ARP after migration), so
//! traffic for it follows at once instead of waiting for the entry to age out. Tunnel ports are
//! ordinary ports of the bridge to the pipeline; this is the same code as a local MAC move.

use packet::{ethernet_frame, FrameSpec, MacAddr};
use switch::{Bridge, BridgeSettings, Output, PortSpec, PortVlan, Verdict};

const ETHERTYPE_RARP: u16 = 0x8035;

fn frame(dst: MacAddr, src: MacAddr, ethertype: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let spec = FrameSpec { dst, src, vlan: None, ethertype };
    let n = ethernet_frame(&mut buf, &spec, &[0; 46]).unwrap();
    buf.truncate(n);
    buf
}

fn slots(out: &[Output]) -> Vec<usize> {
    out.iter().map(|o| o.slot).collect()
}

/// Slot 0: the VM's local port; 1: another local VM; 2, 3: tunnels to hosts B and C; 4: a
/// tunnel on another VLAN. All access ports, as tunnel ports carry one VLAN each.
fn host_a() -> Bridge {
    let p = |name: &str, vlan: u16| PortSpec::new(name, PortVlan::access(vlan));
    Bridge::new(
        BridgeSettings::default(),
        vec![p("vnet0", 10), p("vnet1", 10), p("vx-b", 10), p("vx-c", 10), p("vx-other", 20)],
    )
}

#[test]
fn a_migrated_mac_is_relearned_on_the_tunnel_on_its_first_frame() {
    let (vm, remote) = (MacAddr([0x52, 0x54, 0, 0, 0, 9]), MacAddr([0x52, 0x54, 0, 0, 0, 2]));
    let mut br = host_a();
    let mut out = Vec::new();
    // Before: the VM runs here; a host-B station talks to it through vx-b.
    br.process(0, &frame(MacAddr::BROADCAST, vm, 0x0806), 0, &mut out);
    assert_eq!(slots(&out), vec![1, 2, 3], "head-end replication: every tunnel of VLAN 10");
    br.process(2, &frame(vm, remote, 0x0800), 10, &mut out);
    assert_eq!(slots(&out), vec![0]);

    // The VM moved to host C; its first frame there (libvirt's RARP) arrives on vx-c.
    let v = br.process(3, &frame(MacAddr::BROADCAST, vm, ETHERTYPE_RARP), 20, &mut out);
    assert!(matches!(v, Verdict::Forward { vlan: 10, flooded: true, .. }), "{v:?}");
    assert_eq!(slots(&out), vec![0, 1, 2], "never back into vx-c, never to VLAN 20");
    assert_eq!(br.lookup_slot(10, vm, 20), Some(3), "re-learned on the tunnel to host C");
    assert_eq!(br.mac_stats().moved, 1);

    // The very next frame for the VM goes to host C only: not to its old port, not flooded.
    let v = br.process(2, &frame(vm, remote, 0x0800), 21, &mut out);
    assert!(matches!(v, Verdict::Forward { flooded: false, .. }), "{v:?}");
    assert_eq!(slots(&out), vec![3]);
}
