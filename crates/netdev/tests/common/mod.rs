//! Frame builders shared by the root tests. Frames use locally administered MACs and the IEEE
//! "local experimental" EtherType 0x88b5, plus a per-test marker so a capture can pick out our
//! frames from any other traffic.

#![allow(dead_code)] // each test file uses a different subset

pub mod ip;

use std::time::Duration;

use netdev::Netdev;

pub const DST: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0, 0x02];
pub const SRC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0, 0x01];
pub const EXPERIMENTAL: u16 = 0x88b5;

/// Untagged frame carrying `marker` then filler up to 60 bytes.
pub fn untagged(marker: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend(DST);
    f.extend(SRC);
    f.extend(EXPERIMENTAL.to_be_bytes());
    f.extend(marker);
    while f.len() < 60 {
        f.push(0x5a);
    }
    f
}

/// `untagged(marker)` with a VLAN tag `(tpid, pcp, vid)` inserted after the MACs.
pub fn tagged(marker: &[u8], tpid: u16, pcp: u8, vid: u16) -> Vec<u8> {
    let mut f = untagged(marker);
    let tci = (u16::from(pcp) << 13) | (vid & 0x0fff);
    let mut tag = tpid.to_be_bytes().to_vec();
    tag.extend(tci.to_be_bytes());
    f.splice(12..12, tag);
    f
}

/// Frames in `frames` that contain `marker`.
pub fn with_marker<'a>(frames: &'a [Vec<u8>], marker: &[u8]) -> Vec<&'a Vec<u8>> {
    frames.iter().filter(|f| f.windows(marker.len()).any(|w| w == marker)).collect()
}

/// Captures on `port` until a frame containing `marker` shows up (or 2 s pass).
pub fn expect_one<P: Netdev + ?Sized>(port: &mut P, marker: &[u8]) -> Vec<u8> {
    for _ in 0..20 {
        let got = testbed::frame_capture(port, Duration::from_millis(100), 64);
        if let Some(f) = with_marker(&got, marker).first() {
            return f.to_vec();
        }
    }
    panic!("no frame with marker {marker:?} arrived");
}
