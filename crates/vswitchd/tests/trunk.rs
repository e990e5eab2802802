//! 802.1Q push/pop in software: the test crafts tagged and untagged frames with AF_PACKET inside
//! the VMs' namespaces and checks what arrives where, with which tag, for access, trunk,
//! native-tagged and native-untagged ports.

mod common;

use std::time::Duration;

use common::{bridge_config, wait_ports_up, Daemon, Vm};
use netdev::SystemPort;
use packet::{ethernet_frame, EthernetHeader, FrameSpec, MacAddr, VlanTag};
use testbed::{frame_capture, require_root, send_frame, unique};

const ETHERTYPE_TEST: u16 = 0x88b5;

struct Station {
    vm: Vm,
    raw: SystemPort,
}

fn frame(src: MacAddr, tag: Option<VlanTag>, marker: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 128];
    let mut payload = [0u8; 46];
    payload[..4].copy_from_slice(&marker.to_be_bytes());
    let spec = FrameSpec { dst: MacAddr::BROADCAST, src, vlan: tag, ethertype: ETHERTYPE_TEST };
    let n = ethernet_frame(&mut buf, &spec, &payload).unwrap();
    buf.truncate(n);
    buf
}

/// What a station received of frame `marker`: `None` = nothing; `Some(tag)` = one copy, with the
/// tag it carried. More than one copy fails the test.
fn received(st: &mut Station, marker: u32) -> Option<Option<VlanTag>> {
    let frames = frame_capture(&mut st.raw, Duration::from_millis(300), 100);
    let hits: Vec<Option<VlanTag>> = frames
        .iter()
        .filter_map(|f| {
            let h = EthernetHeader::parse(f).ok()?;
            let body = f.get(h.payload_offset..h.payload_offset + 4)?;
            (h.ethertype == ETHERTYPE_TEST && body == marker.to_be_bytes()).then_some(h.vlan)
        })
        .collect();
    assert!(hits.len() <= 1, "{} got {} copies of frame {marker}", st.vm.port, hits.len());
    hits.first().copied()
}

fn tag(vid: u16) -> Option<VlanTag> {
    Some(VlanTag::vid(vid).unwrap())
}

#[test]
fn tags_are_pushed_and_popped_per_vlan_mode() {
    if !require_root("tags_are_pushed_and_popped_per_vlan_mode") {
        return;
    }
    let vms: Vec<Vm> = (1..=5).map(Vm::new).collect();
    let modes = [
        "tag = 10",                                                 // A: access 10
        "tag = 20",                                                 // B: access 20
        "vlan_mode = \"trunk\"\ntrunks = [10, 20]",                 // T: trunk 10,20
        "vlan_mode = \"native-untagged\"\ntag = 10\ntrunks = [20]", // N: native-untagged 10 (+20)
        "vlan_mode = \"native-tagged\"\ntag = 10\ntrunks = [20]",   // M: native-tagged 10 (+20)
    ];
    let ports: Vec<(&str, &str)> = vms.iter().zip(modes).map(|(vm, m)| (vm.port.as_str(), m)).collect();
    let d = Daemon::start(&bridge_config(&unique("br-tr"), &ports));
    let names: Vec<&str> = vms.iter().map(|v| v.port.as_str()).collect();
    wait_ports_up(&d, &names);
    let mut st: Vec<Station> = vms.into_iter().map(|vm| Station { raw: vm.raw(), vm }).collect();
    let (a, b, t, n, m) = (0, 1, 2, 3, 4);
    let mac = |st: &Vec<Station>, i: usize| st[i].vm.mac;

    // Sends frame `marker` from station `from` and checks every other station's reception.
    let case = |st: &mut Vec<Station>,
                from: usize,
                sent: Option<VlanTag>,
                marker: u32,
                expect: [Option<Option<VlanTag>>; 5]| {
        let f = frame(mac(st, from), sent, marker);
        send_frame(&mut st[from].raw, &f).unwrap();
        for (i, want) in expect.iter().enumerate() {
            let got = received(&mut st[i], marker);
            assert_eq!(
                got, *want,
                "frame {marker} from station {from}: station {i} ({}) got {got:?}, want {want:?}",
                st[i].vm.port
            );
        }
    };
    const NONE: Option<Option<VlanTag>> = None;
    const UNTAGGED: Option<Option<VlanTag>> = Some(None);
    let tagged = |vid| Some(tag(vid));

    // Trunk → VLAN 10: popped for access and native-untagged, kept for native-tagged.
    case(&mut st, t, tag(10), 1, [UNTAGGED, NONE, NONE, UNTAGGED, tagged(10)]);
    // Access 10 → pushed on the trunk and the native-tagged port.
    case(&mut st, a, None, 2, [NONE, NONE, tagged(10), UNTAGGED, tagged(10)]);
    // Trunk → VLAN 20: popped for access 20; tagged for native ports that trunk 20.
    case(&mut st, t, tag(20), 3, [NONE, UNTAGGED, NONE, tagged(20), tagged(20)]);
    // Untagged on native-untagged = native VLAN 10.
    case(&mut st, n, None, 4, [UNTAGGED, NONE, tagged(10), NONE, tagged(10)]);
    // Native VLAN arriving tagged on native-tagged is accepted too.
    case(&mut st, m, tag(10), 5, [UNTAGGED, NONE, tagged(10), UNTAGGED, NONE]);
    // Access 20 → trunk tagged 20.
    case(&mut st, b, None, 6, [NONE, NONE, tagged(20), tagged(20), tagged(20)]);
    // Priority tag (VID 0) on an access port counts as untagged; the PCP is carried onto the trunk.
    let prio = Some(VlanTag { pcp: 5, dei: false, vid: 0 });
    case(
        &mut st,
        a,
        prio,
        7,
        [
            NONE,
            NONE,
            Some(Some(VlanTag { pcp: 5, dei: false, vid: 10 })),
            UNTAGGED,
            Some(Some(VlanTag { pcp: 5, dei: false, vid: 10 })),
        ],
    );

    // Drops, each counted with its reason on the ingress port.
    let drops_before: Vec<u64> = st.iter().map(|s| d.port(&s.vm.port).statistics.total_drops()).collect();
    case(&mut st, t, None, 8, [NONE; 5]); // untagged = VLAN 0, not in trunks [10, 20]
    case(&mut st, t, tag(30), 9, [NONE; 5]); // VLAN 30 not trunked
    case(&mut st, a, tag(10), 10, [NONE; 5]); // access ports take no tagged frames
    case(&mut st, n, tag(30), 11, [NONE; 5]);
    let reasons = |i: usize| d.port(&st[i].vm.port).statistics;
    assert_eq!(reasons(t).total_drops() - drops_before[t], 2, "{:?}", reasons(t));
    assert_eq!(reasons(a).total_drops() - drops_before[a], 1);
    assert_eq!(reasons(n).total_drops() - drops_before[n], 1);
    assert!(reasons(t).drops.get("vlan-not-allowed").copied().unwrap_or(0) >= 2);

    // The show output reports the VLAN settings as configured.
    let show_t = d.port(&st[t].vm.port);
    assert_eq!((show_t.vlan_mode.as_str(), show_t.trunks.clone()), ("trunk", vec![10, 20]));
    let show_n = d.port(&st[n].vm.port);
    assert_eq!((show_n.vlan_mode.as_str(), show_n.tag), ("native-untagged", Some(10)));
}
