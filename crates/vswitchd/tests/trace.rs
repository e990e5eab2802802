//! `rvsctl trace` / `ovs-appctl ofproto/trace` against real traffic: for each frame the printed
//! verdict is compared with what the datapath then does with the same frame, injected from the
//! VM and captured at every other VM.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{bridge_config, wait_ports_up, Daemon, Launch, Vm};
use ctl::client;
use ctl::flow::to_hex;
use ctl::protocol::{Request, Trace};
use packet::{MacAddr, VlanTag};
use testbed::{frame_capture, marked_frame, markers_in, require_program, require_root, send_frame, unique};

/// The bridge's name, unique to this test process (its internal port is a host interface).
fn bridge() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| unique("br-tr"))
}

fn marked(dst: MacAddr, src: MacAddr, vid: Option<u16>, marker: u32) -> Vec<u8> {
    marked_frame(src, dst, vid.map(|v| VlanTag::vid(v).unwrap()), marker)
}

fn carries(frames: &[Vec<u8>], marker: u32) -> bool {
    markers_in(frames).iter().any(|(m, _)| *m == marker)
}

fn trace(d: &Daemon, from: &Vm, frame: &[u8]) -> Trace {
    let req = Request::Trace { bridge: bridge().into(), in_port: from.port.clone(), frame: to_hex(frame) };
    client::call(&d.socket, &req, Duration::from_secs(5)).expect("trace")
}

/// Traces `frame` from `from`, injects it there, and returns (ports the trace sends it to,
/// ports it was captured on): every other VM, and the bridge's own internal port (a trunk of
/// every VLAN, so floods reach it too).
fn traced_and_seen(
    d: &Daemon,
    from: &Vm,
    vms: &[&Vm],
    frame: &[u8],
    marker: u32,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let t = trace(d, from, frame);
    let traced = t.outputs.iter().map(|o| o.port.clone()).collect();
    let mut caps: Vec<(String, netdev::SystemPort)> =
        vms.iter().filter(|v| v.port != from.port).map(|v| (v.port.clone(), v.raw())).collect();
    caps.push((
        bridge().to_string(),
        netdev::SystemPort::open(bridge()).expect("capture on the internal port"),
    ));
    send_frame(&mut from.raw(), frame).expect("inject");
    let mut seen = BTreeSet::new();
    for (port, cap) in &mut caps {
        if carries(&frame_capture(cap, Duration::from_millis(400), 1000), marker) {
            seen.insert(port.clone());
        }
    }
    (traced, seen)
}

#[test]
fn trace_verdicts_match_the_datapath() {
    if !require_root("trace_verdicts_match_the_datapath") {
        return;
    }
    let (a, b, c, e) = (Vm::new(1), Vm::new(2), Vm::new(3), Vm::new(4));
    let ports = [(&a.port, "tag = 10"), (&b.port, "tag = 10"), (&c.port, "tag = 20"), (&e.port, "tag = 20")];
    let d = Daemon::start_with(
        Launch { ovs_compat: true, ..Launch::default() },
        &bridge_config(bridge(), &ports.map(|(p, t)| (p.as_str(), t))),
    );
    wait_ports_up(&d, &[&a.port, &b.port, &c.port, &e.port]);
    assert!(a.ping(&b, 2) && c.ping(&e, 2), "log:\n{}", d.log());
    let vms = [&a, &b, &c, &e];
    let set = |v: &[&Vm]| v.iter().map(|v| v.port.clone()).collect::<BTreeSet<_>>();
    let with_bridge = |v: &[&Vm]| set(v).into_iter().chain([bridge().to_string()]).collect::<BTreeSet<_>>();

    let unicast = marked(b.mac, a.mac, None, 0x7101);
    let t = trace(&d, &a, &unicast);
    assert_eq!(t.summary(), format!("forward to {} (learned port in VLAN 10)", b.port), "{t:#?}");
    assert_eq!(traced_and_seen(&d, &a, &vms, &unicast, 0x7101), (set(&[&b]), set(&[&b])));

    let flood = marked(MacAddr::BROADCAST, a.mac, None, 0x7102);
    assert_eq!(
        traced_and_seen(&d, &a, &vms, &flood, 0x7102),
        (with_bridge(&[&b]), with_bridge(&[&b])),
        "flood stays in VLAN 10"
    );

    // A frame tagged for VLAN 20 sent into an access port of VLAN 10, aimed at c.
    let cross = marked(c.mac, a.mac, Some(20), 0x7103);
    let t = trace(&d, &a, &cross);
    assert_eq!(t.summary(), "drop: vlan-not-allowed", "{t:#?}");
    assert_eq!(traced_and_seen(&d, &a, &vms, &cross, 0x7103), (set(&[]), set(&[])));

    // From VLAN 20 to a VLAN 10 address: unknown in VLAN 20, so flooded there (to e), never to a.
    let across = marked(a.mac, c.mac, None, 0x7104);
    assert_eq!(traced_and_seen(&d, &c, &vms, &across, 0x7104), (with_bridge(&[&e]), with_bridge(&[&e])));

    if require_program("ofproto/trace with ovs-appctl", "ovs-appctl", "--version", "openvswitch-common") {
        let flow = format!("in_port={},dl_src={},dl_dst={}", a.port, a.mac, b.mac);
        let out = std::process::Command::new("ovs-appctl")
            .env("OVS_RUNDIR", &d.dir)
            .args(["-t", "ovs-vswitchd", "ofproto/trace", bridge(), &flow])
            .output()
            .expect("ovs-appctl");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(&format!("Datapath actions: {}\n", b.port)), "{text}");
    }
}
