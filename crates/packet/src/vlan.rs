use crate::PacketError;

/// Bytes an 802.1Q tag occupies (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tci_round_trip() {
        let t = VlanTag { pcp: 5, dei: true, vid: 4095 };
        assert_eq!(VlanTag::from_tci(t.tci()), t);
        assert_eq!(VlanTag::vid(10).unwrap().to_bytes(), [0x81, 0, 0, 10]);
        assert!(VlanTag::vid(4096).is_err());
    }
}
