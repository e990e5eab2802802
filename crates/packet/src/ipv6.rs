//! The IPv6 header (RFC 8200) and a bounded walk over its extension headers to the transport.

use std::net::Ipv6Addr;

use crate::view::{be16, ipv6, need, view};
use crate::PacketError;

/// Byte ranges of the header (public for in-place rewriting, as in [`crate::ipv4::field`]).
pub mod field {
    use std::ops::Range;
    pub const VERSION: usize = 0;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

pub const HEADER_LEN: usize = field::DST.end;
pub const NEXT_TCP: u8 = 6;
pub const NEXT_ICMPV6: u8 = 58;
pub const NEXT_UDP: u8 = 17;
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST_OPTIONS: u8 = 60;
/// More extension headers than any sane packet carries; a longer chain is refused.
const MAX_EXTENSIONS: usize = 8;

view!("an IPv6 header and its payload");

fn check(b: &[u8]) -> Result<(), PacketError> {
    need(b, HEADER_LEN)?;
    if b[field::VERSION] >> 4 != 6 {
        return Err(PacketError::Malformed("IPv6 version is not 6"));
    }
    Ok(())
}

/// What follows the extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upper<'a> {
    /// The transport protocol number and its bytes.
    Protocol(u8, &'a [u8]),
    /// A fragment other than the first: no transport header to read.
    LaterFragment,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// The DSCP and ECN bits (they straddle the first two bytes).
    pub fn traffic_class(&self) -> u8 {
        let b = self.as_bytes();
        (b[0] << 4) | (b[1] >> 4)
    }

    pub fn hop_limit(&self) -> u8 {
        self.as_bytes()[field::HOP_LIMIT]
    }

    pub fn next_header(&self) -> u8 {
        self.as_bytes()[field::NEXT_HEADER]
    }

    pub fn src(&self) -> Ipv6Addr {
        ipv6(self.as_bytes(), field::SRC)
    }

    pub fn dst(&self) -> Ipv6Addr {
        ipv6(self.as_bytes(), field::DST)
    }

    /// The payload: up to the payload length, or to the end of a truncated buffer.
    pub fn payload(&self) -> &[u8] {
        payload_of(self.as_bytes())
    }

    /// Skips hop-by-hop, routing, destination-options and fragment headers to the transport.
    /// An error when the chain is truncated or longer than [`MAX_EXTENSIONS`]: a receiver could
    /// not read it either, and an RA or NA must not hide behind it (RFC 7112, RFC 7113).
    pub fn upper_layer(&self) -> Result<Upper<'_>, PacketError> {
        Ok(match self.transport()? {
            Some((proto, at)) => Upper::Protocol(proto, &self.payload()[at - HEADER_LEN..]),
            None => Upper::LaterFragment,
        })
    }

    /// The transport protocol and the offset of its header from the start of the packet (for
    /// rewriting in place); `None` for a later fragment. Errors as [`Frame::upper_layer`].
    pub fn transport(&self) -> Result<Option<(u8, usize)>, PacketError> {
        let (mut next, rest) = (self.next_header(), self.payload());
        let mut at = 0;
        for _ in 0..MAX_EXTENSIONS {
            let rest = &rest[at..];
            let len = match next {
                HOP_BY_HOP | ROUTING | DEST_OPTIONS => {
                    need(rest, 2)?;
                    (usize::from(rest[1]) + 1) * 8
                }
                FRAGMENT => {
                    need(rest, 8)?;
                    if be16(rest, 2..4) & 0xfff8 != 0 {
                        return Ok(None);
                    }
                    8
                }
                proto => return Ok(Some((proto, HEADER_LEN + at))),
            };
            need(rest, len)?;
            next = rest[0];
            at += len;
        }
        Err(PacketError::Malformed("too many IPv6 extension headers"))
    }
}

/// Writes a 40-byte header (traffic class and flow label 0) into `out[..40]`.
pub fn write_header(
    out: &mut [u8],
    (src, dst): (Ipv6Addr, Ipv6Addr),
    next_header: u8,
    hop_limit: u8,
    payload_len: usize,
) -> Result<(), PacketError> {
    let len = u16::try_from(payload_len).map_err(|_| PacketError::Malformed("IPv6 payload over 65535"))?;
    let have = out.len();
    let out = out.get_mut(..HEADER_LEN).ok_or(PacketError::BufferTooSmall { have, need: HEADER_LEN })?;
    out[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    out[field::PAYLOAD_LEN].copy_from_slice(&len.to_be_bytes());
    out[field::NEXT_HEADER] = next_header;
    out[field::HOP_LIMIT] = hop_limit;
    out[field::SRC].copy_from_slice(&src.octets());
    out[field::DST].copy_from_slice(&dst.octets());
    Ok(())
}

/// The modified EUI-64 link-local address of `mac` (RFC 4291 appendix A), as SLAAC forms it.
pub fn eui64_link_local(mac: crate::MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
}

/// The MAC an EUI-64 link-local address was formed from; `None` for other addresses.
pub fn eui64_mac(addr: Ipv6Addr) -> Option<crate::MacAddr> {
    let o = addr.octets();
    let link_local = o[..8] == [0xfe, 0x80, 0, 0, 0, 0, 0, 0];
    (link_local && o[11] == 0xff && o[12] == 0xfe)
        .then(|| crate::MacAddr([o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]]))
}

impl<'a> Frame<&'a [u8]> {
    /// [`Frame::upper_layer`] with the buffer's lifetime, so a parser can return it.
    pub fn into_upper_layer(self) -> Result<Upper<'a>, PacketError> {
        let transport = self.transport()?;
        let payload = payload_of(self.into_inner());
        Ok(match transport {
            Some((proto, at)) => Upper::Protocol(proto, &payload[at - HEADER_LEN..]),
            None => Upper::LaterFragment,
        })
    }
}

/// The payload of the (length-checked) packet `b`: up to the payload length, or to the end of
/// a truncated buffer.
fn payload_of(b: &[u8]) -> &[u8] {
    let end = (HEADER_LEN + usize::from(be16(b, field::PAYLOAD_LEN))).min(b.len());
    &b[HEADER_LEN..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fe80::5054:ff:fe00:1 → ff02::1, hop-by-hop (8 bytes) then ICMPv6 (4 bytes).
    const HBH_ICMP: [u8; 52] = [
        0x60, 0, 0, 0, 0, 12, 0, 255, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0, 0xff, 0xfe, 0, 0, 1, 0xff,
        0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 58, 0, 5, 2, 0, 0, 1, 0, 134, 0, 0, 0,
    ];

    #[test]
    fn reads_fields_and_walks_extensions() {
        let ip = Frame::new_checked(&HBH_ICMP[..]).unwrap();
        assert_eq!(ip.next_header(), HOP_BY_HOP);
        assert_eq!(ip.src(), "fe80::5054:ff:fe00:1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ip.dst(), "ff02::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ip.upper_layer(), Ok(Upper::Protocol(NEXT_ICMPV6, &[134, 0, 0, 0][..])));
        assert_eq!(ip.transport(), Ok(Some((NEXT_ICMPV6, 48))));
    }

    #[test]
    fn truncated_chains_and_fragments() {
        let mut short = HBH_ICMP;
        short[41] = 1; // hop-by-hop claims 16 bytes, only 12 follow
        assert!(Frame::new_checked(&short[..]).unwrap().upper_layer().is_err());
        let mut frag = HBH_ICMP;
        frag[40] = 58;
        frag[6] = FRAGMENT;
        frag[42] = 0x01; // offset 32
        assert_eq!(Frame::new_checked(&frag[..]).unwrap().upper_layer(), Ok(Upper::LaterFragment));
        assert!(Frame::new_checked(&HBH_ICMP[..39]).is_err());
    }

    #[test]
    fn eui64() {
        let mac = crate::MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        assert_eq!(eui64_link_local(mac), "fe80::5054:ff:fe00:1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(eui64_mac(eui64_link_local(mac)), Some(mac));
        assert_eq!(eui64_mac("fe80::1".parse().unwrap()), None);
        assert_eq!(eui64_mac("2001:db8::5054:ff:fe00:1".parse().unwrap()), None, "not link-local");
    }

    proptest::proptest! {
        #[test]
        fn walk_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 40..120)) {
            let mut bytes = bytes;
            bytes[0] = 0x60;
            if let Ok(f) = Frame::new_checked(&bytes[..]) { let _ = f.upper_layer(); }
        }
    }
}
