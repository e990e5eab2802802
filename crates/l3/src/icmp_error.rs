//! "Too big" errors for packets that do not fit the tunnel: ICMPv4 destination unreachable /
//! fragmentation needed with the next-hop MTU (RFC 792, RFC 1191) for IPv4 with DF set, and
//! ICMPv6 Packet Too Big (RFC 4443 §3.2) for IPv6, which routers never fragment. Without them
//! path-MTU discovery cannot learn the tunnel's MTU and large transfers stall.
//!
//! Errors are rate-limited by a token bucket (RFC 4443 §2.4(f) MUST, RFC 1812 §4.3.2.8
//! SHOULD) and never sent about what RFC 1122 §3.2.2 / RFC 4443 §2.4(e) exclude.

use std::net::{Ipv4Addr, Ipv6Addr};

use packet::{checksum, icmpv4, icmpv6, ipv4, ipv6};

use crate::ratelimit::TokenBucket;
use crate::Millis;

/// An ICMPv4 error is at most 576 bytes, quote included (RFC 1812 §4.3.2.3).
pub const ICMPV4_ERROR_MAX: usize = 576;
/// An ICMPv6 error fits the minimum IPv6 MTU (RFC 4443 §2.4(c)).
pub const ICMPV6_ERROR_MAX: usize = 1280;
const TTL: u8 = 64;

/// What to do with a packet that may not fit the tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Oversize {
    /// It fits: forward it.
    Fits,
    /// IPv4 without DF: it may be fragmented ([`crate::frag::fragment_v4`]).
    Fragmentable,
    /// Drop it and send this error packet back to its source.
    Reply(Vec<u8>),
    /// Drop it without an error.
    Drop(IcmpDrop),
}

/// Why an oversize packet got no error back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IcmpDrop {
    #[error("icmp-rate-limited")]
    RateLimited,
    /// The RFCs forbid an error about it (an ICMP error, a non-unicast source, ...).
    #[error("icmp-not-eligible")]
    NotEligible,
    #[error("malformed")]
    Malformed,
}

/// Counters of [`IcmpErrors`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpCounters {
    pub sent: u64,
    pub rate_limited: u64,
    pub not_eligible: u64,
    pub malformed: u64,
}

/// The gateway's source of too-big errors: its own addresses and a rate limit.
#[derive(Clone, Debug)]
pub struct IcmpErrors {
    /// The gateway's IPv4 address (errors come from it).
    pub v4: Ipv4Addr,
    /// The gateway's IPv6 address (link-local is fine: errors go to on-link VMs).
    pub v6: Ipv6Addr,
    bucket: TokenBucket,
    counters: IcmpCounters,
}

impl IcmpErrors {
    /// Burst 50, then 100 errors a second: Linux's global ICMP budget is 1000/s with a burst
    /// of 50 for a whole host; one zone's gateway needs a fraction of that.
    pub fn new(v4: Ipv4Addr, v6: Ipv6Addr, now: Millis) -> IcmpErrors {
        IcmpErrors::with_rate(v4, v6, 50, 100, now)
    }

    pub fn with_rate(v4: Ipv4Addr, v6: Ipv6Addr, burst: u32, per_sec: u32, now: Millis) -> IcmpErrors {
        IcmpErrors {
            v4,
            v6,
            bucket: TokenBucket::new(burst, per_sec, now),
            counters: IcmpCounters::default(),
        }
    }

    pub fn counters(&self) -> IcmpCounters {
        self.counters
    }

    /// Judges the IP packet `pkt` (no link header) against a path of MTU `mtu`.
    pub fn check(&mut self, pkt: &[u8], mtu: u16, now: Millis) -> Oversize {
        let r = match pkt.first().map(|b| b >> 4) {
            Some(4) => self.check_v4(pkt, mtu, now),
            Some(6) => self.check_v6(pkt, mtu, now),
            _ => Oversize::Drop(IcmpDrop::Malformed),
        };
        let c = &mut self.counters;
        match r {
            Oversize::Reply(_) => c.sent += 1,
            Oversize::Drop(IcmpDrop::RateLimited) => c.rate_limited += 1,
            Oversize::Drop(IcmpDrop::NotEligible) => c.not_eligible += 1,
            Oversize::Drop(IcmpDrop::Malformed) => c.malformed += 1,
            Oversize::Fits | Oversize::Fragmentable => {}
        }
        r
    }

    fn check_v4(&mut self, pkt: &[u8], mtu: u16, now: Millis) -> Oversize {
        let Ok(ip) = ipv4::Frame::new_checked(pkt) else { return Oversize::Drop(IcmpDrop::Malformed) };
        if ip.total_len() <= mtu {
            return Oversize::Fits;
        }
        if !ip.dont_fragment() {
            return Oversize::Fragmentable;
        }
        let from = self.v4;
        self.reply(eligible_v4(&ip), now, || frag_needed_v4(pkt, mtu, from))
    }

    fn check_v6(&mut self, pkt: &[u8], mtu: u16, now: Millis) -> Oversize {
        let Ok(ip) = ipv6::Frame::new_checked(pkt) else { return Oversize::Drop(IcmpDrop::Malformed) };
        if ipv6::HEADER_LEN + ip.payload().len() <= usize::from(mtu) {
            return Oversize::Fits;
        }
        let from = self.v6;
        self.reply(eligible_v6(&ip), now, || packet_too_big_v6(pkt, u32::from(mtu), from))
    }

    /// The error, if the packet may have one and the bucket has a token (only then is one
    /// taken: ineligible packets do not use up the budget).
    fn reply(&mut self, eligible: bool, now: Millis, build: impl FnOnce() -> Option<Vec<u8>>) -> Oversize {
        if !eligible {
            Oversize::Drop(IcmpDrop::NotEligible)
        } else if !self.bucket.take(now) {
            Oversize::Drop(IcmpDrop::RateLimited)
        } else {
            // The callers parsed the packet already, so building cannot fail here.
            build().map_or(Oversize::Drop(IcmpDrop::Malformed), Oversize::Reply)
        }
    }
}

/// RFC 1122 §3.2.2 / RFC 1812 §4.3.2.7: no error about an ICMP error, a non-first fragment,
/// a broadcast or multicast destination, or a source that is not one host.
fn eligible_v4<T: AsRef<[u8]>>(ip: &ipv4::Frame<T>) -> bool {
    let (src, dst) = (ip.src(), ip.dst());
    let one_host = !(src.is_unspecified() || src.is_broadcast() || src.is_multicast() || src.is_loopback());
    let icmp_error = ip.protocol() == ipv4::PROTO_ICMP
        && icmpv4::Frame::new_checked(ip.payload())
            .is_ok_and(|m| m.is_error() || matches!(m.msg_type(), 4 | 5));
    one_host && !dst.is_broadcast() && !dst.is_multicast() && !ip.is_later_fragment() && !icmp_error
}

/// RFC 4443 §2.4(e): no error about an ICMPv6 error or from a non-unicast source; unlike
/// other errors, Packet Too Big may answer a multicast destination. A packet whose header
/// chain cannot be read could hide an ICMPv6 error, so it gets none either.
fn eligible_v6<T: AsRef<[u8]>>(ip: &ipv6::Frame<T>) -> bool {
    let src = ip.src();
    let one_host = !(src.is_unspecified() || src.is_multicast() || src.is_loopback());
    let icmp_error = match ip.upper_layer() {
        Ok(ipv6::Upper::Protocol(ipv6::NEXT_ICMPV6, m)) => m.first().is_none_or(|t| *t < 128),
        Ok(_) => false,
        Err(_) => true,
    };
    one_host && !icmp_error
}

/// Type 3 code 4 with `mtu` as the next-hop MTU (RFC 1191 §4), from `from` to the packet's
/// source, quoting as much of `pkt` as fits in 576 bytes (RFC 1812 §4.3.2.3; RFC 792's
/// minimum is the header and 8 bytes). `None` when `pkt` is no IPv4 packet.
pub fn frag_needed_v4(pkt: &[u8], mtu: u16, from: Ipv4Addr) -> Option<Vec<u8>> {
    let ip = ipv4::Frame::new_checked(pkt).ok()?;
    let end = usize::from(ip.total_len()).min(pkt.len());
    let quote = &pkt[..end.min(ICMPV4_ERROR_MAX - ipv4::MIN_HEADER_LEN - icmpv4::HEADER_LEN)];
    let mut b = vec![0u8; ipv4::MIN_HEADER_LEN + icmpv4::HEADER_LEN + quote.len()];
    let (hdr, msg) = b.split_at_mut(ipv4::MIN_HEADER_LEN);
    msg[icmpv4::field::TYPE] = icmpv4::DEST_UNREACHABLE;
    msg[icmpv4::field::CODE] = icmpv4::CODE_FRAG_NEEDED;
    msg[icmpv4::field::NEXT_HOP_MTU].copy_from_slice(&mtu.to_be_bytes());
    msg[icmpv4::field::QUOTE..].copy_from_slice(quote);
    let c = checksum::internet(msg);
    msg[icmpv4::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    let h = ipv4::Header {
        src: from,
        dst: ip.src(),
        protocol: ipv4::PROTO_ICMP,
        ttl: TTL,
        ident: 0,
        dont_fragment: true,
        payload_len: msg.len(),
    };
    ipv4::write_header(hdr, &h).ok()?;
    Some(b)
}

/// Packet Too Big (type 2 code 0, RFC 4443 §3.2) with `mtu`, from `from` to the packet's
/// source, quoting as much of `pkt` as fits in 1280 bytes. `None` when `pkt` is no IPv6
/// packet.
pub fn packet_too_big_v6(pkt: &[u8], mtu: u32, from: Ipv6Addr) -> Option<Vec<u8>> {
    let ip = ipv6::Frame::new_checked(pkt).ok()?;
    let end = (ipv6::HEADER_LEN + ip.payload().len()).min(pkt.len());
    let quote = &pkt[..end.min(ICMPV6_ERROR_MAX - ipv6::HEADER_LEN - icmpv6::ERROR_HEADER_LEN)];
    let mut b = vec![0u8; ipv6::HEADER_LEN + icmpv6::ERROR_HEADER_LEN + quote.len()];
    let (hdr, msg) = b.split_at_mut(ipv6::HEADER_LEN);
    msg[icmpv6::field::TYPE] = icmpv6::PACKET_TOO_BIG;
    msg[icmpv6::field::MTU].copy_from_slice(&mtu.to_be_bytes());
    msg[icmpv6::ERROR_HEADER_LEN..].copy_from_slice(quote);
    let pseudo = checksum::pseudo_v6(from, ip.src(), ipv6::NEXT_ICMPV6, msg.len());
    let c = checksum::finish(pseudo + checksum::sum(msg));
    msg[icmpv6::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    ipv6::write_header(hdr, (from, ip.src()), ipv6::NEXT_ICMPV6, TTL, msg.len()).ok()?;
    Some(b)
}

#[cfg(test)]
mod tests;
