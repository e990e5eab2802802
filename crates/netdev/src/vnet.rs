//! The virtio-net header (`struct virtio_net_hdr`, legacy 10-byte form) that AF_PACKET
//! (`PACKET_VNET_HDR`) and tap (`IFF_VNET_HDR`) put before every frame. It carries the offload
//! state of a frame — "checksum still to be filled in from csum_start" and "this is a TCP/UDP
//! super-frame of gso_size segments" — so 64 KiB super-frames cross the switch whole instead of
//! being segmented and checksummed in software (or failing, as they do without it).

/// Bytes of the header on the wire.
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum is partial; complete it at csum_start/offset.
pub const VNET_F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already verified.
pub const VNET_F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const VNET_GSO_NONE: u8 = 0;

/// Offload metadata of one frame. All-zero (the default) means a plain, complete frame.
/// Fields are in host byte order (this is the legacy virtio header, which is native-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub fn from_bytes(b: &[u8; VNET_HDR_LEN]) -> VnetHdr {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// True for a GSO super-frame (more than one segment's worth of payload).
    pub fn is_gso(&self) -> bool {
        self.gso_type & 0x7f != VNET_GSO_NONE
    }

    /// The same frame after `delta` bytes were inserted (+4: VLAN tag pushed) or removed (−4:
    /// popped) right after the MAC addresses: offsets into the frame past that point move.
    #[must_use]
    pub fn shifted(mut self, delta: i32) -> VnetHdr {
        let shift = |v: u16| (i32::from(v) + delta).clamp(0, i32::from(u16::MAX)) as u16;
        if self.flags & VNET_F_NEEDS_CSUM != 0 {
            self.csum_start = shift(self.csum_start);
        }
        if self.is_gso() && self.hdr_len != 0 {
            self.hdr_len = shift(self.hdr_len);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        let h =
            VnetHdr { flags: 1, gso_type: 1, hdr_len: 66, gso_size: 1448, csum_start: 34, csum_offset: 16 };
        assert_eq!(VnetHdr::from_bytes(&h.to_bytes()), h);
        assert_eq!(VnetHdr::default().to_bytes(), [0; 10]);
    }

    #[test]
    fn shifting_moves_offsets_only_when_meaningful() {
        let h = VnetHdr {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: 1,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let pushed = h.shifted(4);
        assert_eq!(
            (pushed.csum_start, pushed.hdr_len, pushed.csum_offset, pushed.gso_size),
            (38, 70, 16, 1448)
        );
        assert_eq!(pushed.shifted(-4), h);
        let plain = VnetHdr::default();
        assert_eq!(plain.shifted(4), plain, "no offsets to move in a plain frame");
    }
}
