//! Which port owns which address: configured allowed-ips, MACs of secured ports (and their
//! EUI-64 link-locals), and DHCP leases snooped from trusted ports.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use packet::{dhcp, ipv4, ipv6, udp, EthernetHeader, MacAddr, ETHERTYPE_IPV4};

use super::config::{IpPrefix, PortSecurity};
use crate::{Millis, PortSpec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lease {
    ip: Ipv4Addr,
    until: Millis,
}

/// A DHCP lease as `rvsctl` may show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseEntry {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// Milliseconds left (`Millis::MAX`: infinite).
    pub remaining_ms: Millis,
}

/// Bridge-wide address ownership. Ports are referred to by slot; `rebuild` runs on every
/// reconfiguration. Leases are keyed by client MAC (one IPv4 lease per MAC, as one DHCP server
/// per VLAN hands out), so they survive a port being renumbered.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bindings {
    mac_owner: HashMap<MacAddr, usize>,
    claims: Vec<(usize, IpPrefix)>,
    leases: HashMap<MacAddr, Lease>,
    by_ip: HashMap<Ipv4Addr, MacAddr>,
    generation: u64,
}

impl Bindings {
    pub fn rebuild(&mut self, ports: &[PortSpec]) {
        self.mac_owner.clear();
        self.claims.clear();
        for (slot, p) in ports.iter().enumerate().filter(|(_, p)| p.security.checks_l2()) {
            self.mac_owner.extend(p.security.macs.iter().map(|m| (*m, slot)));
            self.claims.extend(p.security.ips.iter().map(|ip| (slot, *ip)));
        }
    }

    /// Whether any port is secured (nothing to snoop or check otherwise).
    pub fn active(&self) -> bool {
        !self.mac_owner.is_empty()
    }

    fn lease_ip(&self, mac: &MacAddr, now: Millis) -> Option<Ipv4Addr> {
        self.leases.get(mac).filter(|l| l.until > now).map(|l| l.ip)
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
            IpAddr::V6(v6) => ipv6::eui64_mac(v6).is_some_and(|m| other(self.mac_owner.get(&m))),
        }
    }

    /// Learns from a DHCPACK (binds) or DHCPNAK (unbinds) sent by a trusted port, when the
    /// client MAC belongs to a secured port on the frame's VLAN.
    pub fn snoop(&mut self, ports: &[PortSpec], eth: &EthernetHeader, frame: &[u8], vlan: u16, now: Millis) {
        let Some((mac, kind, ip, secs)) = dhcp_reply(eth, frame) else { return };
        let Some(&slot) = self.mac_owner.get(&mac) else { return };
        if ports.get(slot).and_then(|p| p.vlan.egress_vid(vlan)).is_none() {
            return; // a server on another VLAN cannot lease this VM an address
        }
        self.generation += 1;
        if let Some(old) = self.leases.remove(&mac) {
            self.by_ip.remove(&old.ip);
        }
        if kind == dhcp::ACK && !ip.is_unspecified() {
            let until =
                if secs == u32::MAX { Millis::MAX } else { now.saturating_add(u64::from(secs) * 1000) };
            if let Some(prev) = self.by_ip.insert(ip, mac) {
                self.leases.remove(&prev); // the server moved the address to a new client
            }
            self.leases.insert(mac, Lease { ip, until });
        }
    }

    /// Drops leases that ended.
    pub fn expire(&mut self, now: Millis) {
        let before = self.leases.len();
        self.leases.retain(|_, l| l.until > now);
        if self.leases.len() != before {
            self.generation += 1;
        }
        let leases = &self.leases;
        self.by_ip.retain(|ip, m| leases.get(m).is_some_and(|l| l.ip == *ip));
    }

    pub fn leases(&self, now: Millis) -> Vec<LeaseEntry> {
        let mut v: Vec<LeaseEntry> = self
            .leases
            .iter()
            .filter(|(_, l)| l.until > now)
            .map(|(mac, l)| LeaseEntry { mac: *mac, ip: l.ip, remaining_ms: l.until.saturating_sub(now) })
            .collect();
        v.sort_by_key(|e| e.ip);
        v
    }
}

/// (client MAC, message type, yiaddr, lease seconds) of a DHCPACK/NAK in `frame`.
fn dhcp_reply(eth: &EthernetHeader, frame: &[u8]) -> Option<(MacAddr, u8, Ipv4Addr, u32)> {
    if eth.ethertype != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = ipv4::Frame::new_checked(frame.get(eth.payload_offset..)?).ok()?;
    if ip.protocol() != ipv4::PROTO_UDP || ip.is_later_fragment() {
        return None;
    }
    let u = udp::Frame::new_checked(ip.payload()).ok()?;
    if (u.src_port(), u.dst_port()) != (udp::PORT_DHCP_SERVER, udp::PORT_DHCP_CLIENT) {
        return None;
    }
    let d = dhcp::Frame::new_checked(u.payload()).ok()?;
    let kind = d.message_type().filter(|t| matches!(*t, dhcp::ACK | dhcp::NAK))?;
    if d.op() != dhcp::OP_REPLY {
        return None;
    }
    // An ACK without a lease time (a reply to INFORM) binds nothing.
    let secs = if kind == dhcp::ACK { d.lease_secs()? } else { 0 };
    Some((d.client_mac(), kind, d.yiaddr(), secs))
}
