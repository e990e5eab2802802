//! The TCP header (RFC 9293): ports, flags, and the options MSS clamping rewrites.

use crate::view::{be16, need, view};
use crate::PacketError;

/// Byte ranges of the header (public for in-place rewriting, as in [`crate::ipv4::field`]).
pub mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const OPTIONS: usize = 20;
}

pub const HEADER_LEN: usize = field::OPTIONS;
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_MSS_LEN: u8 = 4;

view!("a TCP segment");

/// A data offset of at least 5 words whose header the buffer holds.
fn check(b: &[u8]) -> Result<(), PacketError> {
    need(b, HEADER_LEN)?;
    let hl = usize::from(b[field::DATA_OFFSET] >> 4) * 4;
    if hl < HEADER_LEN {
        return Err(PacketError::Malformed("TCP data offset below 5"));
    }
    need(b, hl)
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn src_port(&self) -> u16 {
        be16(self.as_bytes(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.as_bytes(), field::DST_PORT)
    }

    pub fn flags(&self) -> u8 {
        self.as_bytes()[field::FLAGS]
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.as_bytes()[field::DATA_OFFSET] >> 4) * 4
    }

    /// Where the two value bytes of the Maximum Segment Size option sit in the segment, or
    /// `None` when there is none (or the options are malformed before it). Offsets, not a
    /// value, because the caller rewrites it in place.
    pub fn mss_offset(&self) -> Option<usize> {
        let b = self.as_bytes();
        let end = self.header_len();
        let mut at = field::OPTIONS;
        // Each round moves `at` forward by at least one byte, so this ends.
        while at < end {
            match b[at] {
                OPT_END => return None,
                OPT_NOP => at += 1,
                kind => {
                    let len = usize::from(*b.get(at + 1).filter(|_| at + 1 < end)?);
                    if len < 2 || at + len > end {
                        return None;
                    }
                    if kind == OPT_MSS && len == usize::from(OPT_MSS_LEN) {
                        return Some(at + 2);
                    }
                    at += len;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN 40000 → 80 with options NOP, NOP, MSS 1460, SACK-permitted, EOL, pad.
    const SYN_MSS: [u8; 32] = [
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x80, SYN, 0xff, 0xff, 0, 0, 0, 0, 1, 1, 2, 4, 0x05, 0xb4,
        4, 2, 0, 0, 0, 0,
    ];

    #[test]
    fn reads_fields_and_finds_mss() {
        let t = Frame::new_checked(&SYN_MSS[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port(), t.flags(), t.header_len()), (40000, 80, SYN, 32));
        assert_eq!(t.mss_offset(), Some(24));
        let mut no_mss = SYN_MSS;
        no_mss[22] = 3; // window scale would need len 3: the walk stops at the bad length
        assert_eq!(Frame::new_checked(&no_mss[..]).unwrap().mss_offset(), None);
        let mut eol_first = SYN_MSS;
        eol_first[20] = 0;
        assert_eq!(Frame::new_checked(&eol_first[..]).unwrap().mss_offset(), None);
    }

    #[test]
    fn refuses_bad_headers() {
        assert!(Frame::new_checked(&SYN_MSS[..19]).is_err());
        assert!(Frame::new_checked(&SYN_MSS[..31]).is_err(), "options cut");
        let mut small = SYN_MSS;
        small[12] = 0x40;
        assert!(Frame::new_checked(&small[..]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn option_walk_never_panics(opts in proptest::collection::vec(proptest::num::u8::ANY, 40)) {
            let mut b = SYN_MSS.to_vec();
            b.truncate(20);
            b.extend(opts);
            b[12] = 0xf0;
            if let Ok(t) = Frame::new_checked(&b[..]) {
                if let Some(at) = t.mss_offset() { proptest::prop_assert!(at + 2 <= t.header_len()); }
            }
        }
    }
}
