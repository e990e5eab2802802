//! Which port owns which address: configured allowed-ips, MACs of secured ports (and their
//! EUI-64 link-locals), and DHCP (v4) and DHCPv6 leases snooped from trusted ports.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use packet::{dhcp, dhcpv6, ipv6, EthernetHeader, MacAddr};

use super::config::{IpPrefix, PortSecurity};
use super::snoop;
use crate::{Millis, PortSpec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lease {
    ip: Ipv4Addr,
    until: Millis,
}

/// One IA_NA address a DHCPv6 server leased to a client MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lease6 {
    mac: MacAddr,
    until: Millis,
}

/// A DHCP or DHCPv6 lease as `rvsctl` may show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseEntry {
    pub mac: MacAddr,
    pub ip: IpAddr,
    /// Milliseconds left (`Millis::MAX`: infinite).
    pub remaining_ms: Millis,
}

/// Bridge-wide address ownership. Ports are referred to by slot; `rebuild` runs on every
/// reconfiguration. Leases are keyed by client MAC (one IPv4 lease per MAC, as one DHCP server
/// per VLAN hands out), so they survive a port being renumbered. DHCPv6 leases are keyed by
/// address: a client may hold several (one per IA_NA, or several in one), each with its own
/// valid lifetime.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bindings {
    mac_owner: HashMap<MacAddr, usize>,
    claims: Vec<(usize, IpPrefix)>,
    leases: HashMap<MacAddr, Lease>,
    by_ip: HashMap<Ipv4Addr, MacAddr>,
    leases6: HashMap<Ipv6Addr, Lease6>,
    generation: u64,
    /// A live lease of each slot's MACs (any one), so the per-frame fast path finds a VM's
    /// leased address by slot without hashing. Recomputed whenever leases or ports change.
    by_slot: Vec<Option<Lease>>,
}

impl Bindings {
    pub fn rebuild(&mut self, ports: &[PortSpec]) {
        self.mac_owner.clear();
        self.claims.clear();
        for (slot, p) in ports.iter().enumerate().filter(|(_, p)| p.security.checks_l2()) {
            self.mac_owner.extend(p.security.macs.iter().map(|m| (*m, slot)));
            self.claims.extend(p.security.ips.iter().map(|ip| (slot, *ip)));
        }
        self.index_slots(ports.len());
    }

    fn index_slots(&mut self, slots: usize) {
        self.by_slot.clear();
        self.by_slot.resize(slots, None);
        for (mac, lease) in &self.leases {
            if let Some(s) = self.mac_owner.get(mac).and_then(|s| self.by_slot.get_mut(*s)) {
                *s = Some(*lease);
            }
        }
    }

    /// The IPv4 address (as bits) leased to one of `slot`'s MACs, if that lease is live.
    pub fn slot_lease(&self, slot: usize, now: Millis) -> Option<u32> {
        let l = self.by_slot.get(slot)?.as_ref()?;
        (l.until > now).then_some(l.ip.to_bits())
    }

    /// Whether any port is secured (nothing to snoop or check otherwise).
    pub fn active(&self) -> bool {
        !self.mac_owner.is_empty()
    }

    fn lease_ip(&self, mac: &MacAddr, now: Millis) -> Option<Ipv4Addr> {
        self.leases.get(mac).filter(|l| l.until > now).map(|l| l.ip)
    }

    fn lease6_live(&self, ip: Ipv6Addr, now: Millis) -> Option<MacAddr> {
        self.leases6.get(&ip).filter(|l| l.until > now).map(|l| l.mac)
    }

    /// `ip` is one of the port's own IPv6 addresses (configured or leased by DHCPv6).
    pub fn bound_v6(&self, sec: &PortSecurity, ip: Ipv6Addr, now: Millis) -> bool {
        sec.allows_ip(IpAddr::V6(ip)) || self.lease6_live(ip, now).is_some_and(|m| sec.macs.contains(&m))
    }

    /// The port has an IPv6 binding, so its IPv6 sources are checked. A walk over the DHCPv6
    /// leases: only IPv6 frames that the per-frame fast path left to the full checks ask.
    pub fn has_v6_binding(&self, sec: &PortSecurity, now: Millis) -> bool {
        sec.has_v6_config() || self.leases6.values().any(|l| l.until > now && sec.macs.contains(&l.mac))
    }

    /// `ip` is one of the port's own IPv4 addresses (configured or leased).
    pub fn bound_v4(&self, sec: &PortSecurity, ip: Ipv4Addr, now: Millis) -> bool {
        sec.allows_ip(IpAddr::V4(ip)) || sec.macs.iter().any(|m| self.lease_ip(m, now) == Some(ip))
    }

    /// Every IPv4 prefix `sec`'s port may use as a source and until when (configured
    /// allowed-ips: `Millis::MAX`; leases: their end), for a fast path that mirrors
    /// [`Bindings::bound_v4`].
    pub fn v4_of(&self, sec: &PortSecurity, now: Millis) -> Vec<(IpPrefix, Millis)> {
        let configured = sec.ips.iter().filter(|p| p.is_ipv4()).map(|p| (*p, Millis::MAX));
        let leased = sec.macs.iter().filter_map(|m| {
            let l = self.leases.get(m).filter(|l| l.until > now)?;
            Some((IpPrefix::host(IpAddr::V4(l.ip)), l.until))
        });
        configured.chain(leased).collect()
    }

    /// How many times the leases changed (bind, unbind, expiry): a mirror of them compares
    /// this to know when to copy them again.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The port has an IPv4 binding, so its IPv4 sources are checked.
    pub fn has_v4_binding(&self, sec: &PortSecurity, now: Millis) -> bool {
        sec.has_v4_config() || sec.macs.iter().any(|m| self.lease_ip(m, now).is_some())
    }

    /// Some port other than `slot` owns `ip`. Callers ask only after `slot`'s own bindings said
    /// no, so an address two ports may use (a keepalived VIP) stays usable by both.
    pub fn owned_by_other(&self, slot: usize, ip: IpAddr, now: Millis) -> bool {
        let other = |owner: Option<&usize>| owner.is_some_and(|o| *o != slot);
        if self.claims.iter().any(|(s, p)| *s != slot && p.contains(ip)) {
            return true;
        }
        match ip {
            IpAddr::V4(v4) => self
                .by_ip
                .get(&v4)
                .filter(|m| self.lease_ip(m, now) == Some(v4))
                .is_some_and(|m| other(self.mac_owner.get(m))),
            IpAddr::V6(v6) => ipv6::eui64_mac(v6)
                .or_else(|| self.lease6_live(v6, now))
                .is_some_and(|m| other(self.mac_owner.get(&m))),
        }
    }

    /// Learns from a DHCPACK (binds) or DHCPNAK (unbinds), or a DHCPv6 REPLY, sent by a
    /// trusted port, when the client MAC belongs to a secured port on the frame's VLAN.
    pub fn snoop(&mut self, ports: &[PortSpec], eth: &EthernetHeader, frame: &[u8], vlan: u16, now: Millis) {
        if let Some(r) = snoop::dhcp_reply(eth, frame) {
            if self.client_on(ports, r.mac, vlan) {
                self.bind_v4(r, now);
                self.index_slots(ports.len());
            }
        } else if let Some(m) = snoop::dhcpv6_reply(eth, frame) {
            // The REPLY goes to the client's link-local unicast address, so to its MAC: the
            // frame's destination says whose addresses these are without a DUID to map back
            // or a transaction to remember (see README, DHCPv6 snooping).
            if self.client_on(ports, eth.dst, vlan) {
                self.bind_v6(eth.dst, &m, now);
            }
        }
    }

    /// `mac` is a secured port's, and that port is on `vlan`: a server on another VLAN cannot
    /// lease this VM an address.
    fn client_on(&self, ports: &[PortSpec], mac: MacAddr, vlan: u16) -> bool {
        let slot = self.mac_owner.get(&mac);
        slot.and_then(|s| ports.get(*s)).and_then(|p| p.vlan.egress_vid(vlan)).is_some()
    }

    fn bind_v4(&mut self, r: snoop::Reply4, now: Millis) {
        self.generation += 1;
        if let Some(old) = self.leases.remove(&r.mac) {
            self.by_ip.remove(&old.ip);
        }
        if r.kind == dhcp::ACK && !r.ip.is_unspecified() {
            let until = lease_end(now, r.secs);
            if let Some(prev) = self.by_ip.insert(r.ip, r.mac) {
                self.leases.remove(&prev); // the server moved the address to a new client
            }
            self.leases.insert(r.mac, Lease { ip: r.ip, until });
        }
    }

    /// Each IA_NA address with a valid lifetime binds to `mac` (taking it from a client the
    /// server gave it to before); a lifetime of 0 ends `mac`'s lease of it. Addresses that
    /// are not global unicast (link-local, multicast, `::`) are no lease to take.
    fn bind_v6(&mut self, mac: MacAddr, m: &dhcpv6::Frame<&[u8]>, now: Millis) {
        for (ip, secs) in m.ia_na_addresses() {
            if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() || ip.is_unicast_link_local() {
                continue;
            }
            self.generation += 1;
            if secs > 0 {
                self.leases6.insert(ip, Lease6 { mac, until: lease_end(now, secs) });
            } else if self.leases6.get(&ip).is_some_and(|l| l.mac == mac) {
                self.leases6.remove(&ip);
            }
        }
    }

    /// A client's RELEASE or DECLINE from its own port (`src`, past the port's checks): the
    /// addresses it gives back stop being its binding at once. Only its own leases go.
    pub fn snoop_release(&mut self, eth: &EthernetHeader, frame: &[u8]) {
        let Some(m) = snoop::dhcpv6_release(eth, frame) else { return };
        for (ip, _) in m.ia_na_addresses() {
            if self.leases6.get(&ip).is_some_and(|l| l.mac == eth.src) {
                self.leases6.remove(&ip);
                self.generation += 1;
            }
        }
    }

    /// Whether any DHCPv6 lease is held (a RELEASE could change something).
    pub fn has_v6_leases(&self) -> bool {
        !self.leases6.is_empty()
    }

    /// Drops leases that ended.
    pub fn expire(&mut self, now: Millis) {
        let before = (self.leases.len(), self.leases6.len());
        self.leases.retain(|_, l| l.until > now);
        self.leases6.retain(|_, l| l.until > now);
        if (self.leases.len(), self.leases6.len()) != before {
            self.generation += 1;
        }
        let leases = &self.leases;
        self.by_ip.retain(|ip, m| leases.get(m).is_some_and(|l| l.ip == *ip));
        self.index_slots(self.by_slot.len());
    }

    pub fn leases(&self, now: Millis) -> Vec<LeaseEntry> {
        let entry = |mac: MacAddr, ip: IpAddr, until: Millis| LeaseEntry {
            mac,
            ip,
            remaining_ms: if until == Millis::MAX { Millis::MAX } else { until.saturating_sub(now) },
        };
        let v4 = self
            .leases
            .iter()
            .filter(|(_, l)| l.until > now)
            .map(|(m, l)| entry(*m, IpAddr::V4(l.ip), l.until));
        let v6 = self
            .leases6
            .iter()
            .filter(|(_, l)| l.until > now)
            .map(|(ip, l)| entry(l.mac, IpAddr::V6(*ip), l.until));
        let mut v: Vec<LeaseEntry> = v4.chain(v6).collect();
        v.sort_by_key(|e| e.ip);
        v
    }
}

/// When a lease of `secs` seconds granted at `now` ends (`u32::MAX`: never).
fn lease_end(now: Millis, secs: u32) -> Millis {
    if secs == u32::MAX {
        Millis::MAX
    } else {
        now.saturating_add(u64::from(secs) * 1000)
    }
}
