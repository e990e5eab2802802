//! The frame parsers (`packet`) and the switch pipeline (`switch::Bridge::process`).
//!
//! Input: one settings byte, then records `[ctl, len, frame bytes...]` (see [`Record`]), so one
//! input is a sequence of frames through one bridge and MAC learning, aging, table eviction and
//! reconfiguration all happen. Oracle, per frame, against [`crate::frames_model`]:
//! - the verdict: runts, multicast sources, VLANs the ingress port does not carry and reserved
//!   multicast are dropped; everything else is forwarded on the VLAN the model computes;
//! - isolation: every copy leaves a port that carries the frame's VLAN, never the ingress port,
//!   at most once, tagged exactly as that port's rules say; a flood reaches every such port;
//! - the bytes: the frame rebuilt from `egress_parts` is byte for byte the ingress frame with
//!   its tag replaced by the one the egress port's rules call for.

use packet::{EthernetHeader, ETHERTYPE_VLAN};
use switch::{egress_parts, Bridge, BridgeSettings, DropReason, Encap, Output, PortSpec, Verdict};

use crate::frames_model::{ModelPort, PORTS};

/// One frame of the input, decoded from `ctl`: bits 0-3 the ingress slot (out-of-range slots
/// included), bits 4-6 the time advance in 500 ms steps, bit 7 "reconfigure first" (then the
/// next byte is a mask of which [`PORTS`] the bridge keeps, in order).
struct Record<'a> {
    slot: usize,
    advance_ms: u64,
    reconfigure: Option<u8>,
    frame: &'a [u8],
}

fn records(mut data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let (&ctl, rest) = data.split_first()?;
        let mut rest = rest;
        let reconfigure = if ctl & 0x80 != 0 {
            let (&mask, r) = rest.split_first()?;
            rest = r;
            Some(mask)
        } else {
            None
        };
        let (&len, r) = rest.split_first()?;
        let n = usize::from(len).min(r.len());
        let (frame, r) = r.split_at(n);
        data = r;
        Some(Record {
            slot: usize::from(ctl & 0x0f),
            advance_ms: u64::from((ctl >> 4) & 7) * 500,
            reconfigure,
            frame,
        })
    })
}

fn settings(b: u8) -> BridgeSettings {
    BridgeSettings {
        mac_aging_ms: 1000 * (1 + u64::from(b >> 4)),
        mac_table_size: 1 + usize::from((b >> 1) & 7),
        forward_bpdu: b & 1 != 0,
    }
}

fn specs(ports: &[ModelPort]) -> Vec<PortSpec> {
    ports
        .iter()
        // Port security off (trusted): this target checks the VLAN rules alone.
        .map(|p| PortSpec::new(p.name, p.port_vlan()))
        .collect()
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let settings = settings(first);
    let mut ports: Vec<ModelPort> = PORTS.to_vec();
    let mut bridge = Bridge::new(settings.clone(), specs(&ports));
    let mut now = 0u64;
    let mut out = Vec::new();
    for rec in records(rest) {
        now += rec.advance_ms;
        if let Some(mask) = rec.reconfigure {
            ports = PORTS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, p)| p.clone())
                .collect();
            bridge.reconfigure(settings.clone(), specs(&ports));
            bridge.expire(now);
            assert!(bridge.mac_count() <= settings.mac_table_size, "MAC table over its limit");
            for e in bridge.fdb(now) {
                assert!(ports.iter().any(|p| p.name == e.port), "fdb names a removed port {:?}", e.port);
            }
        }
        let verdict = bridge.process(rec.slot, rec.frame, now, &mut out);
        check(&ports, &settings, rec.slot, rec.frame, verdict, &out);
    }
}

/// What the model says must happen before any MAC lookup: a drop, or forwarding on a VLAN.
fn expected(
    ports: &[ModelPort],
    settings: &BridgeSettings,
    slot: usize,
    f: &[u8],
) -> Result<u16, DropReason> {
    let port = ports.get(slot).ok_or(DropReason::VlanNotAllowed)?;
    let tagged = f.len() >= 14 && u16::from_be_bytes([f[12], f[13]]) == ETHERTYPE_VLAN;
    if f.len() < 14 || (tagged && f.len() < 18) {
        return Err(DropReason::Runt);
    }
    if f[6] & 1 != 0 {
        return Err(DropReason::MulticastSource);
    }
    let vid = tagged.then(|| u16::from_be_bytes([f[14], f[15]]) & 0x0fff);
    let vlan = port.ingress(vid).ok_or(DropReason::VlanNotAllowed)?;
    if f[..5] == [0x01, 0x80, 0xc2, 0, 0] && f[5] <= 0x0f && !settings.forward_bpdu {
        return Err(DropReason::ReservedMulticast);
    }
    Ok(vlan)
}

fn check(ports: &[ModelPort], s: &BridgeSettings, slot: usize, f: &[u8], v: Verdict, out: &[Output]) {
    let want = expected(ports, s, slot, f);
    let (vlan, flooded) = match (want, v) {
        (Err(reason), Verdict::Drop(got)) => return assert_eq!(got, reason, "wrong drop reason"),
        (Ok(_), Verdict::Drop(DropReason::DestinationOnIngress)) if f[0] & 1 == 0 => {
            return assert!(out.is_empty(), "dropped frame still has outputs")
        }
        (Ok(want), Verdict::Forward { vlan, flooded, .. }) => {
            assert_eq!(vlan, want, "frame bound to the wrong VLAN");
            (vlan, flooded)
        }
        (want, got) => panic!("model says {want:?}, bridge says {got:?}"),
    };
    let mut seen = vec![false; ports.len()];
    for o in out {
        assert_ne!(o.slot, slot, "frame sent back out of its ingress port");
        let port =
            ports.get(o.slot).unwrap_or_else(|| panic!("output to slot {} of {}", o.slot, ports.len()));
        assert!(!std::mem::replace(&mut seen[o.slot], true), "two copies to {}", port.name);
        let encap = port.egress(vlan).unwrap_or_else(|| panic!("VLAN {vlan} leaked out of {}", port.name));
        check_bytes(f, vlan, encap, o.encap);
    }
    if flooded {
        for (i, p) in ports.iter().enumerate() {
            let must = i != slot && p.egress(vlan).is_some();
            assert_eq!(
                seen[i], must,
                "flood on VLAN {vlan} and port {}: sent {} expected {must}",
                p.name, seen[i]
            );
        }
    } else {
        assert!(out.len() <= 1 && f[0] & 1 == 0, "learned forwarding must be unicast to one port");
    }
}

/// Rebuilds the frame as it leaves and compares it with the bytes the port's rules call for:
/// the addresses, then the port's tag (priority carried over, DEI cleared) if it wants one,
/// then everything after the ingress tag (so a popped outer tag may expose an inner one).
fn check_bytes(f: &[u8], vlan: u16, want: Option<u16>, encap: Encap) {
    let ingress = EthernetHeader::parse(f).expect("forwarded frames parse");
    let tag = encap.tag_bytes();
    let (parts, n) = egress_parts(f, ingress.vlan.is_some(), encap, &tag);
    let bytes: Vec<u8> = parts[..n].concat();
    let mut expect = f[..12].to_vec();
    if let Some(vid) = want {
        let pcp = ingress.vlan.map_or(0, |t| u16::from(t.pcp));
        expect.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        expect.extend_from_slice(&((pcp << 13) | vid).to_be_bytes());
    }
    expect.extend_from_slice(&f[if ingress.vlan.is_some() { 16 } else { 12 }..]);
    // Byte equality is the whole rule: the result need not parse again (an 18-byte double-tagged
    // frame whose outer tag is popped leaves as a 14-byte frame announcing a tag it lacks, as
    // on any 802.1Q bridge).
    assert!(bytes == expect, "VLAN {vlan}, {encap:?}: sent {bytes:02x?}, expected {expect:02x?}");
}
