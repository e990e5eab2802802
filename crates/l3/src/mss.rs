//! TCP MSS clamping: a SYN or SYN-ACK crossing the gateway has its Maximum Segment Size
//! option lowered to what fits the tunnel, so the two ends never send segments that would
//! need fragmenting (or, with DF, be lost to a path-MTU black hole). Only lowered, never
//! raised; a SYN without the option is left alone (its default, 536 bytes for IPv4 and 1220
//! for IPv6 per RFC 9293 §3.7.1, already fits any tunnel rvswitch accepts).

use packet::{ipv4, ipv6, tcp};

use crate::csum::{adjust, get16, put16};

/// IPv4 header + TCP header without options.
pub const IPV4_OVERHEAD: u16 = 40;
/// IPv6 header + TCP header without options.
pub const IPV6_OVERHEAD: u16 = 60;

/// What [`clamp`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clamp {
    /// Not a TCP SYN (or not readable as one): nothing to do.
    NotSyn,
    /// A SYN whose MSS already fits, or without the option.
    Fits,
    /// The MSS was lowered (the checksum updated with it).
    Lowered { from: u16, to: u16 },
}

/// The largest MSS for a path whose MTU is `mtu`.
pub fn mss_for(mtu: u16, ipv6: bool) -> u16 {
    mtu.saturating_sub(if ipv6 { IPV6_OVERHEAD } else { IPV4_OVERHEAD })
}

/// Clamps the MSS of a SYN in the IPv4 or IPv6 packet `pkt` (no link header) to fit a tunnel
/// of MTU `tunnel_mtu`. The TCP checksum must be complete: the gateway finishes a virtio
/// `NEEDS_CSUM` one first (`packet::csum::complete_partial` on the vpn branch).
pub fn clamp(pkt: &mut [u8], tunnel_mtu: u16) -> Clamp {
    let Some((l4, v6)) = tcp_offset(pkt) else { return Clamp::NotSyn };
    let Ok(seg) = tcp::Frame::new_checked(&pkt[l4..]) else { return Clamp::NotSyn };
    if seg.flags() & tcp::SYN == 0 {
        return Clamp::NotSyn;
    }
    let Some(at) = seg.mss_offset().map(|o| l4 + o) else { return Clamp::Fits };
    let (from, to) = (get16(pkt, at..at + 2), mss_for(tunnel_mtu, v6));
    if from <= to {
        return Clamp::Fits;
    }
    let c = l4 + tcp::field::CHECKSUM.start;
    adjust(pkt, c..c + 2, &from.to_be_bytes(), &to.to_be_bytes());
    put16(pkt, at..at + 2, to);
    Clamp::Lowered { from, to }
}

/// Where the TCP header starts, and whether the packet is IPv6; `None` for anything else,
/// including fragments after the first (which hold no TCP header).
fn tcp_offset(pkt: &[u8]) -> Option<(usize, bool)> {
    match pkt.first()? >> 4 {
        4 => {
            let ip = ipv4::Frame::new_checked(pkt).ok()?;
            (ip.protocol() == ipv4::PROTO_TCP && !ip.is_later_fragment()).then(|| (ip.header_len(), false))
        }
        6 => match ipv6::Frame::new_checked(pkt).ok()?.transport().ok()?? {
            (ipv6::NEXT_TCP, at) => Some((at, true)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::{self, addr, checksums_ok};

    /// NOP, NOP, MSS 1460, SACK-permitted, NOP, NOP.
    const OPTS: [u8; 12] = [1, 1, 2, 4, 0x05, 0xb4, 4, 2, 1, 1, 1, 1];

    fn syn(flags: u8) -> Vec<u8> {
        testpkt::tcp((addr("198.18.0.10"), 40000), (addr("198.19.9.9"), 443), flags, &OPTS, &[])
    }

    #[test]
    fn lowers_the_mss_of_syn_and_syn_ack() {
        for flags in [tcp::SYN, tcp::SYN | tcp::ACK] {
            let mut p = syn(flags);
            // WireGuard over IPv4 on a 1500 link: tunnel MTU 1420, MSS 1380.
            assert_eq!(clamp(&mut p, 1420), Clamp::Lowered { from: 1460, to: 1380 });
            assert_eq!(&p[20 + 22..20 + 26], &[2, 4, 0x05, 0x64]);
            assert!(checksums_ok(&p));
            assert_eq!(clamp(&mut p, 1420), Clamp::Fits, "idempotent");
        }
    }

    #[test]
    fn leaves_others_alone() {
        let mut p = syn(tcp::SYN);
        assert_eq!(clamp(&mut p, 1500), Clamp::Fits, "1460 fits 1500");
        let mut ack = syn(tcp::ACK);
        let before = ack.clone();
        assert_eq!(clamp(&mut ack, 1280), Clamp::NotSyn);
        assert_eq!(ack, before);
        let mut bare = testpkt::tcp((addr("198.18.0.10"), 1), (addr("198.19.9.9"), 2), tcp::SYN, &[], &[]);
        assert_eq!(clamp(&mut bare, 1280), Clamp::Fits, "no option: the default fits");
        let mut udp = testpkt::udp((addr("198.18.0.10"), 1), (addr("198.19.9.9"), 2), &[0; 20]);
        assert_eq!(clamp(&mut udp, 1280), Clamp::NotSyn);
        assert_eq!(clamp(&mut [0x45, 0, 0], 1280), Clamp::NotSyn);
        let mut cut = syn(tcp::SYN);
        cut.truncate(20 + 24);
        assert_eq!(clamp(&mut cut, 1280), Clamp::NotSyn, "options cut short");
    }

    /// IPv6 SYN 2001:db8::10 → 2001:db8::1, MSS 1440, TCP checksum 0x9ebb (computed outside
    /// this code base, over the pseudo-header and the 24 bytes of TCP).
    const SYN6: [u8; 64] = [
        0x60, 0, 0, 0, 0, 24, 6, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x20,
        0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0,
        0, 0x60, 0x02, 0xff, 0xff, 0x9e, 0xbb, 0, 0, 2, 4, 0x05, 0xa0,
    ];

    #[test]
    fn ipv6_uses_the_60_byte_overhead() {
        let mut p = SYN6;
        assert_eq!(tcp6_sum(&p), 0, "the literal is right");
        // WireGuard over IPv6: tunnel MTU 1500 - 80 = 1420, MSS 1360.
        assert_eq!(clamp(&mut p, 1420), Clamp::Lowered { from: 1440, to: 1360 });
        assert_eq!(tcp6_sum(&p), 0);
    }

    fn tcp6_sum(p: &[u8]) -> u16 {
        let ip = ipv6::Frame::new_checked(p).unwrap();
        let pseudo = packet::checksum::pseudo_v6(ip.src(), ip.dst(), 6, ip.payload().len());
        packet::checksum::finish(pseudo + packet::checksum::sum(ip.payload()))
    }
}
