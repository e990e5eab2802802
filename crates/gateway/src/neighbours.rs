//! The zone's IP → MAC table (IPv4 and IPv6 in one, bounded together), learned from the VMs'
//! own ARP, neighbor discovery and IP traffic, so replies from the tunnel reach the VM that
//! holds the address.

use std::collections::HashMap;
use std::net::IpAddr;

use packet::MacAddr;

/// Most neighbours kept; a zone is a few VMs, and a flood of forged sources must not grow
/// memory without bound.
pub const MAX_NEIGHBOURS: usize = 4096;

#[derive(Clone, Debug, Default)]
pub struct Neighbours {
    map: HashMap<IpAddr, MacAddr>,
}

impl Neighbours {
    /// Records that `ip` is at `mac`; a known address moves, a new one is refused when full.
    pub fn learn(&mut self, ip: impl Into<IpAddr>, mac: MacAddr) {
        let ip = ip.into();
        if mac.is_multicast() || ip.is_unspecified() || ip.is_multicast() {
            return;
        }
        if self.map.len() < MAX_NEIGHBOURS || self.map.contains_key(&ip) {
            self.map.insert(ip, mac);
        }
    }

    pub fn get(&self, ip: impl Into<IpAddr>) -> Option<MacAddr> {
        self.map.get(&ip.into()).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn bounded_and_moves() {
        let mut n = Neighbours::default();
        let a = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        let b = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
        n.learn(Ipv4Addr::new(198, 18, 0, 2), a);
        n.learn(Ipv4Addr::new(198, 18, 0, 2), b);
        assert_eq!(n.get(Ipv4Addr::new(198, 18, 0, 2)), Some(b));
        n.learn(Ipv4Addr::new(198, 18, 0, 3), MacAddr::BROADCAST);
        assert_eq!(n.len(), 1, "a group MAC is no neighbour");
        for i in 0..(MAX_NEIGHBOURS as u32 + 10) {
            n.learn(Ipv4Addr::from(0x0a00_0000 + i), a);
        }
        assert_eq!(n.len(), MAX_NEIGHBOURS);
        n.learn(Ipv4Addr::new(198, 18, 0, 2), a);
        assert_eq!(n.get(Ipv4Addr::new(198, 18, 0, 2)), Some(a), "a known one still moves when full");
        n.learn("2001:db8::2".parse::<std::net::Ipv6Addr>().unwrap(), a);
        assert_eq!(n.len(), MAX_NEIGHBOURS, "IPv6 shares the bound");
    }

    #[test]
    fn ipv6_neighbours() {
        let mut n = Neighbours::default();
        let a = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        let ip: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
        n.learn(ip, a);
        n.learn("ff02::1".parse::<std::net::Ipv6Addr>().unwrap(), a);
        assert_eq!((n.get(ip), n.len()), (Some(a), 1), "no multicast address either");
    }
}
