//! Test frames that carry a marker: a test sends frame N and then checks which markers arrived
//! where, with which VLAN tag, and how many times.

use packet::{ethernet_frame, EthernetHeader, FrameSpec, MacAddr, VlanTag};

/// The EtherType of marked frames (IEEE local experimental).
pub const ETHERTYPE_TEST: u16 = 0x88b5;

/// A minimum-size frame from `src` to `dst` (tagged with `vlan` if given) carrying `marker`.
pub fn marked_frame(src: MacAddr, dst: MacAddr, vlan: Option<VlanTag>, marker: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 128];
    let mut payload = [0u8; 46];
    payload[..4].copy_from_slice(&marker.to_be_bytes());
    let spec = FrameSpec { dst, src, vlan, ethertype: ETHERTYPE_TEST };
    let n = ethernet_frame(&mut buf, &spec, &payload).expect("128 bytes hold a marked frame");
    buf.truncate(n);
    buf
}

/// The marker and VLAN tag of every marked frame among `frames`, in order (others skipped).
pub fn markers_in(frames: &[Vec<u8>]) -> Vec<(u32, Option<VlanTag>)> {
    frames
        .iter()
        .filter_map(|f| {
            let h = EthernetHeader::parse(f).ok()?;
            let body: [u8; 4] = f.get(h.payload_offset..h.payload_offset + 4)?.try_into().ok()?;
            (h.ethertype == ETHERTYPE_TEST).then(|| (u32::from_be_bytes(body), h.vlan))
        })
        .collect()
}
