//! Writing a reply: the BOOTP fixed part echoed from the request (RFC 2131 table 3), our
//! options, then IPv4/UDP around it addressed as RFC 2131 §4.1 says.

use std::net::Ipv4Addr;

use packet::dhcp::{self, field};
use packet::{checksum, ipv4, udp, MacAddr};

use super::{DhcpConfig, DhcpReply};

/// BOOTP's minimum message (RFC 1542 §2.1): some clients and relays drop shorter ones.
const MIN_MESSAGE: usize = 300;

/// What differs between the replies.
pub(crate) struct Spec {
    pub(crate) msg_type: u8,
    pub(crate) yiaddr: Ipv4Addr,
    /// Options 51/58/59 (OFFER and ACK to a REQUEST; not INFORM, not NAK).
    pub(crate) lease: bool,
}

/// The reply to `req` (a checked DHCP message) as an IPv4 packet and its Ethernet destination.
pub(crate) fn build(cfg: &DhcpConfig, req: &dhcp::Frame<&[u8]>, s: &Spec) -> DhcpReply {
    let msg = message(cfg, req, s);
    let (dst_ip, dst_mac) = destination(req, s);
    let len = udp::HEADER_LEN + msg.len();
    let mut p = vec![0u8; ipv4::MIN_HEADER_LEN + len];
    let h = ipv4::Header {
        src: cfg.server,
        dst: dst_ip,
        protocol: ipv4::PROTO_UDP,
        ttl: 64,
        ident: 0,
        dont_fragment: true,
        payload_len: len,
    };
    // A DHCP message is a few hundred bytes: the header always fits.
    let _ = ipv4::write_header(&mut p, &h);
    let u = &mut p[ipv4::MIN_HEADER_LEN..];
    u[udp::field::SRC_PORT].copy_from_slice(&udp::PORT_DHCP_SERVER.to_be_bytes());
    u[udp::field::DST_PORT].copy_from_slice(&udp::PORT_DHCP_CLIENT.to_be_bytes());
    u[udp::field::LENGTH].copy_from_slice(&(len as u16).to_be_bytes());
    u[udp::HEADER_LEN..].copy_from_slice(&msg);
    let sum =
        checksum::finish(checksum::pseudo_v4(cfg.server, dst_ip, ipv4::PROTO_UDP, len) + checksum::sum(u));
    u[udp::field::CHECKSUM].copy_from_slice(&if sum == 0 { 0xffff } else { sum }.to_be_bytes());
    DhcpReply { packet: p, dst_mac }
}

/// RFC 2131 §4.1 (no relay): a NAK or a client that asked for broadcast gets broadcast; one
/// that has an address (ciaddr: renewing, INFORM) gets unicast to it; otherwise unicast to the
/// offered address at the client's MAC, which a client accepts before it configures it.
fn destination(req: &dhcp::Frame<&[u8]>, s: &Spec) -> (Ipv4Addr, MacAddr) {
    let broadcast = s.msg_type == dhcp::NAK || req.flags() & dhcp::FLAG_BROADCAST != 0;
    if broadcast {
        (Ipv4Addr::BROADCAST, MacAddr::BROADCAST)
    } else if !req.ciaddr().is_unspecified() {
        (req.ciaddr(), req.client_mac())
    } else if !s.yiaddr.is_unspecified() {
        (s.yiaddr, req.client_mac())
    } else {
        (Ipv4Addr::BROADCAST, MacAddr::BROADCAST)
    }
}

fn message(cfg: &DhcpConfig, req: &dhcp::Frame<&[u8]>, s: &Spec) -> Vec<u8> {
    let r = req.as_bytes();
    let mut m = vec![0u8; field::OPTIONS];
    m[field::OP] = dhcp::OP_REPLY;
    m[field::HTYPE] = r[field::HTYPE];
    m[field::HLEN] = r[field::HLEN];
    m[field::XID].copy_from_slice(&r[field::XID]);
    m[field::FLAGS].copy_from_slice(&r[field::FLAGS]);
    if s.msg_type == dhcp::ACK {
        m[field::CIADDR].copy_from_slice(&r[field::CIADDR]);
    }
    m[field::YIADDR].copy_from_slice(&s.yiaddr.octets());
    m[field::GIADDR].copy_from_slice(&r[field::GIADDR]);
    m[field::CHADDR_FULL].copy_from_slice(&r[field::CHADDR_FULL]);
    m[field::MAGIC].copy_from_slice(&dhcp::MAGIC_COOKIE.to_be_bytes());
    options(cfg, s, &mut m);
    m.push(dhcp::OPT_END);
    m.resize(m.len().max(MIN_MESSAGE), dhcp::OPT_PAD);
    m
}

fn options(cfg: &DhcpConfig, s: &Spec, m: &mut Vec<u8>) {
    let mut opt = |code: u8, value: &[u8]| {
        m.extend_from_slice(&[code, value.len() as u8]);
        m.extend_from_slice(value);
    };
    opt(dhcp::OPT_MESSAGE_TYPE, &[s.msg_type]);
    opt(dhcp::OPT_SERVER_ID, &cfg.server.octets());
    if s.msg_type == dhcp::NAK {
        return;
    }
    if s.lease {
        let t = cfg.lease_secs;
        opt(dhcp::OPT_LEASE_TIME, &t.to_be_bytes());
        // RFC 2131 §4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease.
        opt(dhcp::OPT_RENEWAL_TIME, &(t / 2).to_be_bytes());
        opt(dhcp::OPT_REBINDING_TIME, &((u64::from(t) * 7 / 8) as u32).to_be_bytes());
    }
    opt(dhcp::OPT_SUBNET_MASK, &cfg.netmask().octets());
    opt(dhcp::OPT_ROUTER, &cfg.server.octets());
    // At most 63 servers fit one option's 255 bytes; more would be nonsense anyway.
    let dns: Vec<u8> = cfg.dns.iter().take(63).flat_map(|a| a.octets()).collect();
    if !dns.is_empty() {
        opt(dhcp::OPT_DNS, &dns);
    }
    if let Some(mtu) = cfg.mtu {
        opt(dhcp::OPT_MTU, &mtu.to_be_bytes());
    }
}
