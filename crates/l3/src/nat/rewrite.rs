//! Where an endpoint (address, port) sits in an IPv4 packet or in the datagram an ICMP error
//! quotes, and the in-place rewrite of it with RFC 1624 checksum updates. Offsets come from
//! the `packet` crate; this file only composes them.

use std::net::Ipv4Addr;
use std::ops::Range;

use packet::{icmpv4, ipv4, tcp, udp};

use super::{NatDrop, Proto};
use crate::csum::{adjust, get16, put16};

/// Which end of the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Src,
    Dst,
}

/// One endpoint of a datagram at some offset of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Site {
    pub(crate) proto: Proto,
    /// The IPv4 header checksum that covers the address.
    ip_csum: Range<usize>,
    addr: Range<usize>,
    port: Range<usize>,
    /// The transport checksum, when present in the buffer and in use (UDP 0 = none).
    l4_csum: Option<Range<usize>>,
    /// The transport checksum covers the address too (TCP/UDP pseudo-header; not ICMP).
    pseudo: bool,
    /// UDP: a computed 0 is sent as 0xffff (RFC 768), since 0 means "no checksum".
    udp: bool,
    /// TCP flags, where the datagram is a TCP segment with its flags in the buffer.
    pub(crate) tcp_flags: Option<u8>,
}

impl Site {
    pub(crate) fn addr(&self, b: &[u8]) -> Ipv4Addr {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[self.addr.clone()]);
        Ipv4Addr::from(a)
    }

    pub(crate) fn port(&self, b: &[u8]) -> u16 {
        get16(b, self.port.clone())
    }

    /// Writes `addr` and `port` and updates every checksum that covers them.
    pub(crate) fn rewrite(&self, b: &mut [u8], addr: Ipv4Addr, port: u16) {
        let (old_addr, new_addr) = (self.addr(b).octets(), addr.octets());
        let (old_port, new_port) = (self.port(b).to_be_bytes(), port.to_be_bytes());
        adjust(b, self.ip_csum.clone(), &old_addr, &new_addr);
        if let Some(c) = self.l4_csum.clone() {
            if self.pseudo {
                adjust(b, c.clone(), &old_addr, &new_addr);
            }
            adjust(b, c.clone(), &old_port, &new_port);
            if self.udp && get16(b, c.clone()) == 0 {
                put16(b, c, 0xffff);
            }
        }
        b[self.addr.clone()].copy_from_slice(&new_addr);
        b[self.port.clone()].copy_from_slice(&new_port);
    }
}

/// Rewrites only the address at `end` of the IPv4 header at `ip` (the outer header of an ICMP
/// error, whose own checksum the caller recomputes).
pub(crate) fn rewrite_addr(b: &mut [u8], ip: usize, end: End, addr: Ipv4Addr) {
    let r = addr_range(ip, end);
    let mut old = [0u8; 4];
    old.copy_from_slice(&b[r.clone()]);
    adjust(b, shift(ip, ipv4::field::CHECKSUM), &old, &addr.octets());
    b[r].copy_from_slice(&addr.octets());
}

fn addr_range(ip: usize, end: End) -> Range<usize> {
    shift(ip, if end == End::Src { ipv4::field::SRC } else { ipv4::field::DST })
}

fn shift(at: usize, r: Range<usize>) -> Range<usize> {
    at + r.start..at + r.end
}

/// The endpoint at `end` of the IPv4 datagram starting at `ip` in `b`. `b` may end early (an
/// ICMP quote): the ports must be there, a checksum beyond the end is left alone. ICMP counts
/// only as `echo` (the request going out, the reply coming in), whose identifier is the port.
pub(crate) fn locate(b: &[u8], ip: usize, end: End, echo: u8) -> Result<Site, NatDrop> {
    let h = ipv4::Frame::new_checked(b.get(ip..).unwrap_or_default()).map_err(|_| NatDrop::Malformed)?;
    if h.is_later_fragment() {
        return Err(NatDrop::Fragment);
    }
    let l4 = ip + h.header_len();
    let have = |r: &Range<usize>| r.end <= b.len();
    let (proto, port, csum, pseudo) = match h.protocol() {
        ipv4::PROTO_TCP => {
            let port = if end == End::Src { tcp::field::SRC_PORT } else { tcp::field::DST_PORT };
            (Proto::Tcp, shift(l4, port), shift(l4, tcp::field::CHECKSUM), true)
        }
        ipv4::PROTO_UDP => {
            let port = if end == End::Src { udp::field::SRC_PORT } else { udp::field::DST_PORT };
            (Proto::Udp, shift(l4, port), shift(l4, udp::field::CHECKSUM), true)
        }
        ipv4::PROTO_ICMP if b.get(l4 + icmpv4::field::TYPE) == Some(&echo) => {
            (Proto::Icmp, shift(l4, icmpv4::field::IDENT), shift(l4, icmpv4::field::CHECKSUM), false)
        }
        ipv4::PROTO_ICMP => return Err(NatDrop::Unsupported),
        _ => return Err(NatDrop::Unsupported),
    };
    // A quote may stop after the ports; the datagram itself must hold its checksum.
    if !have(&port) || (ip == 0 && !have(&csum)) {
        return Err(NatDrop::Malformed);
    }
    let udp = proto == Proto::Udp;
    let l4_csum = Some(csum).filter(|c| have(c) && !(udp && get16(b, c.clone()) == 0));
    let flags = l4 + tcp::field::FLAGS;
    let tcp_flags = (proto == Proto::Tcp).then(|| b.get(flags).copied()).flatten();
    let ip_csum = shift(ip, ipv4::field::CHECKSUM);
    Ok(Site { proto, ip_csum, addr: addr_range(ip, end), port, l4_csum, pseudo, udp, tcp_flags })
}

/// The address at `end` of the IPv4 header at the start of `b` (already checked by the caller).
pub(crate) fn locate_addr(b: &[u8], end: End) -> Ipv4Addr {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[addr_range(0, end)]);
    Ipv4Addr::from(a)
}
