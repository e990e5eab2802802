//! Why the gateway dropped a packet, counted per reason (the kill switch's `vpn-down` among
//! them), as a plain struct of counters that the shell reads (Firecracker's metrics style).

/// Every reason a packet stops at the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The tunnel is down: the kill switch.
    VpnDown,
    /// The destination is outside the peer's AllowedIPs.
    NoRoute,
    /// Neither IPv4, IPv6 nor ARP.
    NotIp,
    /// A frame the bridge flooded that is not addressed to the gateway.
    NotForGateway,
    /// A zone packet whose source is not in the zone's subnet.
    BadSource,
    /// A tunnel packet whose source is outside the peer's AllowedIPs (cryptokey routing).
    NotAllowedSource,
    /// A tunnel packet for an address outside the zone's subnet.
    NotInSubnet,
    /// The destination VM's MAC is not known yet (an ARP request went out instead).
    NoNeighbour,
    /// TTL / hop limit would reach zero.
    TtlExpired,
    /// Addressed to the gateway itself (it has no IP stack to answer with).
    ToGateway,
    /// IPv6 in a zone without `subnet6` (from the VMs or the tunnel).
    Ipv6Unsupported,
    /// Truncated or inconsistent headers.
    Malformed,
    /// Bigger than the tunnel MTU and not fragmentable (DF, IPv6): an ICMP error went back
    /// unless the rate limit or the RFCs forbade one.
    TooBig,
    /// The NAT refused it (table full, no mapping, a fragment; `l3::nat` counts which).
    Nat,
    /// A DHCP message the zone's server gave no answer to (a RELEASE, a malformed or foreign one).
    DhcpNoReply,
    /// IPv6 in a NAT zone: the NAT translates IPv4 only, and untranslated IPv6 would leak
    /// the VMs' own addresses.
    NatIpv6,
    /// A NAT zone's packet while its tun device has no IPv4 address to translate to (the VPN
    /// client took it away, or has not set one yet).
    NatNoAddress,
}

impl DropReason {
    pub const ALL: [DropReason; 17] = [
        DropReason::VpnDown,
        DropReason::NoRoute,
        DropReason::NotIp,
        DropReason::NotForGateway,
        DropReason::BadSource,
        DropReason::NotAllowedSource,
        DropReason::NotInSubnet,
        DropReason::NoNeighbour,
        DropReason::TtlExpired,
        DropReason::ToGateway,
        DropReason::Ipv6Unsupported,
        DropReason::Malformed,
        DropReason::TooBig,
        DropReason::Nat,
        DropReason::DhcpNoReply,
        DropReason::NatIpv6,
        DropReason::NatNoAddress,
    ];

    /// The name in status and statistics (`drop-vpn-down`...).
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::VpnDown => "vpn-down",
            DropReason::NoRoute => "no-route",
            DropReason::NotIp => "not-ip",
            DropReason::NotForGateway => "not-for-gateway",
            DropReason::BadSource => "bad-source",
            DropReason::NotAllowedSource => "not-allowed-source",
            DropReason::NotInSubnet => "not-in-subnet",
            DropReason::NoNeighbour => "no-neighbour",
            DropReason::TtlExpired => "ttl-expired",
            DropReason::ToGateway => "to-gateway",
            DropReason::Ipv6Unsupported => "ipv6-unsupported",
            DropReason::Malformed => "malformed",
            DropReason::TooBig => "too-big",
            DropReason::Nat => "nat",
            DropReason::DhcpNoReply => "dhcp-no-reply",
            DropReason::NatIpv6 => "nat-ipv6",
            DropReason::NatNoAddress => "nat-no-address",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Drop counters, one per reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drops([u64; DropReason::ALL.len()]);

impl Drops {
    pub fn count(&mut self, r: DropReason) {
        self.0[r.index()] += 1;
    }

    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r.index()]
    }

    /// (name, count) for every reason, zeros included, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (r.as_str(), self.get(*r)))
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_at_its_index() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
        let mut d = Drops::default();
        d.count(DropReason::VpnDown);
        d.count(DropReason::VpnDown);
        d.count(DropReason::Malformed);
        assert_eq!(d.get(DropReason::VpnDown), 2);
        assert_eq!(d.total(), 3);
        assert_eq!(d.iter().next(), Some(("vpn-down", 2)));
    }
}
