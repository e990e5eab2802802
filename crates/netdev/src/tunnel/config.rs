//! What a tunnel port is configured with (Open vSwitch's Interface `options`, already parsed by
//! the daemon), and the underlay numbers derived from it.

use std::net::Ipv4Addr;

pub use packet::tunnel::TunnelProto;
use packet::tunnel::{OUTER_LEN, OVERHEAD};

/// A ToS or TTL for the outer header: a fixed value, or copied from the inner IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outer {
    Fixed(u8),
    Inherit,
}

/// One tunnel port: where its frames go and how they are wrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TunnelConfig {
    pub proto: TunnelProto,
    pub remote: Ipv4Addr,
    /// The address to send from and to receive on; None: any (the route's source).
    pub local: Option<Ipv4Addr>,
    /// The VNI, sent and required on receipt.
    pub vni: u32,
    pub dst_port: u16,
    /// UDP checksum on outgoing packets.
    pub csum: bool,
    pub tos: Outer,
    pub ttl: Outer,
    /// Don't Fragment on the outer header.
    pub df: bool,
}

/// The TTL the outer header gets when `ttl=inherit` meets a frame that is not IP (Linux's
/// default `ip_default_ttl`).
pub const DEFAULT_TTL: u8 = 64;

/// An inner IP packet of this size must fit, or the underlay is called too small.
const STANDARD_INNER_MTU: u32 = 1500;

impl TunnelConfig {
    /// The defaults Open vSwitch uses: its protocol's IANA port, ToS 0, system TTL, DF set, no
    /// checksum, any local address.
    pub fn new(proto: TunnelProto, remote: Ipv4Addr, vni: u32) -> TunnelConfig {
        TunnelConfig {
            proto,
            remote,
            local: None,
            vni,
            dst_port: proto.default_port(),
            csum: false,
            tos: Outer::Fixed(0),
            ttl: Outer::Fixed(DEFAULT_TTL),
            df: true,
        }
    }

    /// The outer ToS and TTL for `inner`. The ECN bits always come from the inner packet (as in
    /// OvS); `inherit` takes its DSCP (ToS) or TTL too.
    pub fn outer_tos_ttl(&self, inner: &[u8]) -> (u8, u8) {
        let ip = packet::tunnel::inner_tos_ttl(inner);
        let inner_tos = ip.map_or(0, |(t, _)| t);
        let dscp = match self.tos {
            Outer::Fixed(t) => t & 0xfc,
            Outer::Inherit => inner_tos & 0xfc,
        };
        let ttl = match self.ttl {
            Outer::Fixed(t) => t,
            Outer::Inherit => ip.map_or(DEFAULT_TTL, |(_, t)| t),
        };
        (dscp | (inner_tos & 0x03), ttl)
    }
}

/// The largest inner Ethernet frame an underlay path of `mtu` bytes carries.
pub fn max_inner_frame(mtu: u32) -> usize {
    (mtu as usize).saturating_sub(OUTER_LEN)
}

/// Why the underlay is too small for standard 1500-byte inner packets, as Interface `error`
/// says it; None when it is large enough.
pub fn underlay_mtu_problem(proto: TunnelProto, mtu: u32) -> Option<String> {
    let need = STANDARD_INNER_MTU + OVERHEAD as u32;
    (mtu < need).then(|| {
        format!(
            "underlay MTU {mtu} leaves {} bytes for inner IP packets ({} adds {OVERHEAD} bytes): \
             larger frames are dropped (too-big-for-underlay); set the underlay MTU to {need} or \
             the VMs' MTU to {}",
            (mtu as usize).saturating_sub(OVERHEAD),
            proto.as_str(),
            (mtu as usize).saturating_sub(OVERHEAD),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_frame(tos: u8, ttl: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        f.extend_from_slice(&[0x45, tos, 0, 20, 0, 0, 0, 0, ttl, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
        f
    }

    #[test]
    fn tos_and_ttl_follow_ovs() {
        let mut c = TunnelConfig::new(TunnelProto::Vxlan, Ipv4Addr::new(198, 18, 0, 2), 100);
        assert_eq!(c.dst_port, 4789);
        assert_eq!(c.outer_tos_ttl(&ipv4_frame(0xb9, 7)), (0x01, 64), "ECN inherited, DSCP not");
        c.tos = Outer::Fixed(0x28);
        assert_eq!(c.outer_tos_ttl(&ipv4_frame(0x02, 7)).0, 0x2a);
        c.tos = Outer::Inherit;
        c.ttl = Outer::Inherit;
        assert_eq!(c.outer_tos_ttl(&ipv4_frame(0xb8, 7)), (0xb8, 7));
        assert_eq!(c.outer_tos_ttl(&[0u8; 14]), (0, DEFAULT_TTL), "not IP: system TTL");
        assert_eq!(TunnelConfig::new(TunnelProto::Geneve, c.remote, 1).dst_port, 6081);
    }

    #[test]
    fn mtu_accounting() {
        assert_eq!(max_inner_frame(1500), 1464, "1450 bytes of IP + 14 of Ethernet");
        assert_eq!(underlay_mtu_problem(TunnelProto::Vxlan, 1550), None);
        let e = underlay_mtu_problem(TunnelProto::Vxlan, 1500).unwrap();
        assert!(e.contains("leaves 1450 bytes") && e.contains("1550"), "{e}");
    }
}
