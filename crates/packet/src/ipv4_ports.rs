//! The first 24 bytes of an IPv4 datagram whose header has no options: the 20-byte header and
//! the transport's source and destination ports right behind it. One length check covers both,
//! so a per-frame check (port security's admit path) reads a source address, a protocol and a
//! UDP port without parsing the IPv4 and UDP headers one after the other.
//!
//! Whatever this view accepts, [`crate::ipv4::Frame::new_checked`] accepts too (version 4, a
//! header length the buffer holds, a total length that covers it). Headers with options, which
//! hosts almost never send, are refused: their ports are elsewhere, and callers fall back to
//! the full parsers.

use crate::view::{be16, be32, need, view};
use crate::PacketError;

/// Byte ranges of the view: IPv4's own fields (the same offsets as [`crate::ipv4::field`]),
/// then the transport ports, which UDP and TCP both put first.
pub mod field {
    pub use crate::ipv4::field::{FLAGS_FRAG, PROTOCOL, SRC, TOTAL_LEN, VER_IHL};
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 20..22;
    pub const DST_PORT: Range<usize> = 22..24;
}

/// Bytes the view needs: a header without options and the two ports.
pub const LEN: usize = field::DST_PORT.end;
/// The version/IHL byte of a header without options (version 4, 5 words).
const VER_IHL_NO_OPTIONS: u8 = 0x45;

view!("an IPv4 header without options and the transport ports behind it");

#[inline]
fn check(b: &[u8]) -> Result<(), PacketError> {
    need(b, LEN)?;
    if b[field::VER_IHL] != VER_IHL_NO_OPTIONS {
        return Err(PacketError::Malformed("not an IPv4 header without options"));
    }
    if usize::from(be16(b, field::TOTAL_LEN)) < crate::ipv4::MIN_HEADER_LEN {
        return Err(PacketError::Malformed("IPv4 total length below its header length"));
    }
    Ok(())
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// The source address as a number (`Ipv4Addr::to_bits`), for mask compares.
    #[inline]
    pub fn src_bits(&self) -> u32 {
        be32(self.as_bytes(), field::SRC)
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.as_bytes()[field::PROTOCOL]
    }

    /// A fragment other than the first: the bytes after the header are not a transport header.
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        be16(self.as_bytes(), field::FLAGS_FRAG) & 0x1fff != 0
    }

    /// The transport's source port (UDP or TCP). Meaningless for a later fragment, and for a
    /// datagram whose total length ends before it (then it is Ethernet padding).
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.as_bytes(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.as_bytes(), field::DST_PORT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4;

    /// UDP 198.18.0.1:68 → 198.18.0.2:67, 4 payload bytes (the UDP length and checksum are
    /// bytes 24..28, outside the view).
    const UDP: [u8; 32] = [
        0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 0, 68, 0, 67, 0, 12, 0, 0,
        0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn reads_fields() {
        let v = Frame::new_checked(&UDP[..]).unwrap();
        assert_eq!(v.src_bits(), u32::from_be_bytes([198, 18, 0, 1]));
        assert_eq!((v.protocol(), v.is_later_fragment()), (ipv4::PROTO_UDP, false));
        assert_eq!((v.src_port(), v.dst_port()), (68, 67));
        assert!(Frame::new_checked(&UDP[..LEN]).is_ok(), "24 bytes are enough");
        let mut frag = UDP;
        frag[7] = 1;
        assert!(Frame::new_checked(&frag[..]).unwrap().is_later_fragment());
        frag[6] = 0x20; // More Fragments alone: the first fragment, ports still there
        frag[7] = 0;
        assert!(!Frame::new_checked(&frag[..]).unwrap().is_later_fragment());
    }

    #[test]
    fn refuses_what_it_cannot_read_in_one_go() {
        assert!(matches!(Frame::new_checked(&UDP[..23]), Err(PacketError::Truncated { len: 23, need: 24 })));
        for ver_ihl in [0x46, 0x44, 0x65, 0x00] {
            let mut b = UDP;
            b[0] = ver_ihl;
            assert!(Frame::new_checked(&b[..]).is_err(), "{ver_ihl:#x}");
        }
        let mut short_total = UDP;
        short_total[3] = 19;
        assert!(Frame::new_checked(&short_total[..]).is_err());
        short_total[3] = 20; // a header alone: accepted; the "ports" are then padding
        assert!(Frame::new_checked(&short_total[..]).is_ok());
    }

    proptest::proptest! {
        /// The view never accepts what the IPv4 parser refuses, and reads the same fields.
        #[test]
        fn agrees_with_the_ipv4_parser(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), v45 in proptest::prelude::any::<bool>()) {
            let mut b = b;
            if let (true, Some(first)) = (v45, b.first_mut()) {
                *first = VER_IHL_NO_OPTIONS;
            }
            if let Ok(v) = Frame::new_checked(&b[..]) {
                let ip = ipv4::Frame::new_checked(&b[..]).expect("the IPv4 parser accepts it too");
                proptest::prop_assert_eq!(v.src_bits(), ip.src().to_bits());
                proptest::prop_assert_eq!(v.protocol(), ip.protocol());
                proptest::prop_assert_eq!(v.is_later_fragment(), ip.is_later_fragment());
                proptest::prop_assert_eq!(ip.header_len(), 20);
            }
        }
    }
}
