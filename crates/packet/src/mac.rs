use std::fmt;
use std::str::FromStr;

use crate::PacketError;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Reads six bytes; `None` when the slice is shorter.
    #[inline]
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        b.get(..6).map(|s| {
            let mut a = [0u8; 6];
            a.copy_from_slice(s);
            MacAddr(a)
        })
    }

    /// The six bytes as one 48-bit word (first byte lowest, as they lie in memory on a
    /// little-endian machine), for a compare or a hash key in one operation. Not the address
    /// order: compare `MacAddr`s themselves to sort.
    #[inline]
    pub fn key(self) -> u64 {
        let [a, b, c, d, e, f] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
    }

    /// Group bit set: broadcast or multicast. Such an address may never be a *source*.
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    #[inline]
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// 01:80:c2:00:00:00–0f: link-local control protocols (STP, LACP, LLDP, 802.1X) that a bridge
    /// must not forward unless told to (OvS `other_config:forward-bpdu`).
    #[inline]
    pub fn is_reserved_link_local(&self) -> bool {
        self.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && self.0[5] <= 0x0f
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", a[0], a[1], a[2], a[3], a[4], a[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = PacketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let p = parts.next().ok_or(PacketError::BadMac("need six ':'-separated bytes"))?;
            if p.is_empty() || p.len() > 2 {
                return Err(PacketError::BadMac("each byte is one or two hex digits"));
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| PacketError::BadMac("not hex"))?;
        }
        if parts.next().is_some() {
            return Err(PacketError::BadMac("more than six bytes"));
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_one_word() {
        assert_eq!(MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]).key(), 0x5634_1200_5452);
        assert_eq!(MacAddr::BROADCAST.key(), 0xffff_ffff_ffff);
        assert_ne!(MacAddr([1, 0, 0, 0, 0, 0]).key(), MacAddr([0, 0, 0, 0, 0, 1]).key());
    }

    #[test]
    fn parse_and_print_round_trip() {
        let m: MacAddr = "52:54:00:12:34:5a".parse().unwrap();
        assert_eq!(m.0, [0x52, 0x54, 0, 0x12, 0x34, 0x5a]);
        assert_eq!(m.to_string(), "52:54:00:12:34:5a");
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["", "52:54:00:12:34", "52:54:00:12:34:56:78", "zz:54:00:12:34:56", "525:4:00:12:34:56"] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn classes() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]).is_reserved_link_local());
        assert!(!MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x10]).is_reserved_link_local());
        assert!(!MacAddr([0x52, 0x54, 0, 0, 0, 1]).is_multicast());
    }
}
