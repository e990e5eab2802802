use crate::PacketError;

/// Bytes an 802.1Q tag occupies (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;

/// Bytes of the two MAC addresses, after which a tag is pushed or from which one is popped.
pub const ADDRS_LEN: usize = 12;

/// The tag control information of an 802.1Q header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VlanTag {
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN ID, 0..=4095 (0 = priority tag only).
    pub vid: u16,
}

impl VlanTag {
    /// A tag carrying only a VLAN ID.
    pub fn vid(vid: u16) -> Result<VlanTag, PacketError> {
        if vid > 4095 {
            return Err(PacketError::BadVid(vid));
        }
        Ok(VlanTag { pcp: 0, dei: false, vid })
    }

    pub fn from_tci(tci: u16) -> VlanTag {
        VlanTag { pcp: (tci >> 13) as u8, dei: tci & 0x1000 != 0, vid: tci & 0x0fff }
    }

    pub fn tci(&self) -> u16 {
        (u16::from(self.pcp & 7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }

    /// The four wire bytes (TPID 0x8100 + TCI).
    pub fn to_bytes(&self) -> [u8; VLAN_TAG_LEN] {
        let t = self.tci().to_be_bytes();
        [0x81, 0x00, t[0], t[1]]
    }
}

/// The pieces of `frame` as it must leave when its outer 802.1Q tag (if `tagged`) is replaced
/// by `push` (or removed when `None`): up to three slices — addresses, new tag, rest — pointing
/// into `frame` and `push`, so re-tagging copies nothing. Returns the slices and how many are
/// used. A frame too short to hold the tag it claims leaves whole.
pub fn retag_parts<'a>(
    frame: &'a [u8],
    tagged: bool,
    push: Option<&'a [u8; VLAN_TAG_LEN]>,
) -> ([&'a [u8]; 3], usize) {
    let rest_at = if tagged { ADDRS_LEN + VLAN_TAG_LEN } else { ADDRS_LEN };
    if frame.len() < rest_at {
        return ([frame, &[], &[]], 1);
    }
    match push {
        None if !tagged => ([frame, &[], &[]], 1),
        None => ([&frame[..ADDRS_LEN], &frame[rest_at..], &[]], 2),
        Some(tag) => ([&frame[..ADDRS_LEN], &tag[..], &frame[rest_at..]], 3),
    }
}

/// How many bytes longer (positive) or shorter a frame gets when [`retag_parts`] re-tags it,
/// for offsets (checksum start, GSO header length) measured from the frame's start.
pub fn retag_delta(tagged: bool, push: bool) -> i32 {
    const TAG: i32 = VLAN_TAG_LEN as i32;
    match (tagged, push) {
        (false, true) => TAG,
        (true, false) => -TAG,
        _ => 0,
    }
}

/// Re-inserts a tag `(tpid, tci)` a NIC or the kernel stripped, in place: the frame starts at
/// `at` in `buf`, with [`VLAN_TAG_LEN`] bytes of headroom before it; only the addresses move
/// back. Returns where the tagged frame starts, or `None` (nothing changed) when there is no
/// headroom or the frame is shorter than its addresses (such a frame cannot have had a tag).
pub fn insert_tag(buf: &mut [u8], at: usize, tpid: u16, tci: u16) -> Option<usize> {
    let start = at.checked_sub(VLAN_TAG_LEN)?;
    if buf.len().saturating_sub(at) < ADDRS_LEN {
        return None;
    }
    buf.copy_within(at..at + ADDRS_LEN, start);
    let tag = &mut buf[start + ADDRS_LEN..start + ADDRS_LEN + VLAN_TAG_LEN];
    tag[..2].copy_from_slice(&tpid.to_be_bytes());
    tag[2..].copy_from_slice(&tci.to_be_bytes());
    Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dst 1s, src 2s, EtherType 0x0800, payload aa bb.
    const UNTAGGED: [u8; 16] = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x08, 0x00, 0xaa, 0xbb];
    const TAGGED: [u8; 20] =
        [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00, 0xaa, 0xbb];
    const TAG20: [u8; 4] = [0x81, 0x00, 0x00, 0x14];

    fn joined(parts: ([&[u8]; 3], usize)) -> Vec<u8> {
        parts.0[..parts.1].concat()
    }

    #[test]
    fn retag_push_pop_swap_keep() {
        let mut pushed = UNTAGGED[..12].to_vec();
        pushed.extend_from_slice(&TAG20);
        pushed.extend_from_slice(&UNTAGGED[12..]);
        assert_eq!(joined(retag_parts(&UNTAGGED, false, Some(&TAG20))), pushed);
        assert_eq!(joined(retag_parts(&TAGGED, true, None)), UNTAGGED);
        assert_eq!(joined(retag_parts(&TAGGED, true, Some(&TAG20))), pushed);
        assert_eq!(retag_parts(&UNTAGGED, false, None).1, 1, "untouched: one slice");
        assert_eq!(retag_parts(&TAGGED[..15], true, None).1, 1, "a runt leaves whole");
        assert_eq!((retag_delta(false, true), retag_delta(true, false), retag_delta(true, true)), (4, -4, 0));
    }

    #[test]
    fn insert_tag_in_headroom() {
        let mut buf = [0u8; 20];
        buf[4..].copy_from_slice(&UNTAGGED);
        assert_eq!(insert_tag(&mut buf, 4, 0x8100, 10), Some(0));
        assert_eq!(buf, TAGGED);
        assert_eq!(insert_tag(&mut buf, 3, 0x8100, 10), None, "no headroom");
        let mut short = [0u8; 15];
        assert_eq!(insert_tag(&mut short, 4, 0x8100, 10), None, "11 bytes hold no addresses");
    }

    #[test]
    fn tci_round_trip() {
        let t = VlanTag { pcp: 5, dei: true, vid: 4095 };
        assert_eq!(VlanTag::from_tci(t.tci()), t);
        assert_eq!(VlanTag::vid(10).unwrap().to_bytes(), [0x81, 0, 0, 10]);
        assert!(VlanTag::vid(4096).is_err());
    }
}
