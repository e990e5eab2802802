use crate::{MacAddr, PacketError, VlanTag, VLAN_TAG_LEN};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const TYPE: Range<usize> = 12..14;
    pub const TCI: Range<usize> = 14..16;
    pub const INNER_TYPE: Range<usize> = 16..18;
}

/// The L2 header of a frame as the switch needs it: addresses, an optional outer 802.1Q tag,
/// and where the payload starts. Only TPID 0x8100 counts as a VLAN tag; an 802.1ad (0x88a8)
/// outer header is treated as an opaque EtherType, as a plain 802.1Q bridge does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub vlan: Option<VlanTag>,
    /// EtherType after the tag (if any).
    pub ethertype: u16,
    /// Offset of the first payload byte.
    pub payload_offset: usize,
}

impl EthernetHeader {
    /// Parses the header of `frame`. Fails on runts (< 14 bytes, or a tag without its EtherType).
    pub fn parse(frame: &[u8]) -> Result<EthernetHeader, PacketError> {
        if frame.len() < HEADER_LEN {
            return Err(PacketError::Truncated { len: frame.len(), need: HEADER_LEN });
        }
        let be16 = |r: std::ops::Range<usize>| u16::from_be_bytes([frame[r.start], frame[r.start + 1]]);
        // Length checked above, so these cannot fail.
        let dst = MacAddr::from_slice(&frame[field::DST]).unwrap_or_default();
        let src = MacAddr::from_slice(&frame[field::SRC]).unwrap_or_default();
        let outer = be16(field::TYPE);
        if outer != ETHERTYPE_VLAN {
            return Ok(EthernetHeader { dst, src, vlan: None, ethertype: outer, payload_offset: HEADER_LEN });
        }
        let need = HEADER_LEN + VLAN_TAG_LEN;
        if frame.len() < need {
            return Err(PacketError::Truncated { len: frame.len(), need });
        }
        Ok(EthernetHeader {
            dst,
            src,
            vlan: Some(VlanTag::from_tci(be16(field::TCI))),
            ethertype: be16(field::INNER_TYPE),
            payload_offset: need,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] =
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, 0x08, 0x06, 0xaa, 0xbb];
    const TAGGED: [u8; 20] =
        [0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1, 0x81, 0x00, 0x60, 0x0a, 0x08, 0x00, 0x45, 0];

    #[test]
    fn untagged() {
        let h = EthernetHeader::parse(&UNTAGGED).unwrap();
        assert!(h.dst.is_broadcast());
        assert_eq!(h.src.to_string(), "52:54:00:00:00:01");
        assert_eq!(h.vlan, None);
        assert_eq!(h.ethertype, ETHERTYPE_ARP);
        assert_eq!(h.payload_offset, 14);
    }

    #[test]
    fn tagged() {
        let h = EthernetHeader::parse(&TAGGED).unwrap();
        assert_eq!(h.vlan, Some(VlanTag { pcp: 3, dei: false, vid: 10 }));
        assert_eq!(h.ethertype, ETHERTYPE_IPV4);
        assert_eq!(h.payload_offset, 18);
    }

    #[test]
    fn runts() {
        assert!(EthernetHeader::parse(&UNTAGGED[..13]).is_err());
        assert!(EthernetHeader::parse(&TAGGED[..17]).is_err());
        assert!(EthernetHeader::parse(&[]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = EthernetHeader::parse(&bytes);
        }
    }
}
