//! The lease table: who holds which address until when, which addresses are declined, and
//! the choice of an address for a client.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use packet::MacAddr;

use super::{Binding, BindingEvent, DhcpConfig, UnixSecs};

/// An offer is held briefly; a bound lease is what the client was ACKed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    Offered,
    Bound,
}

/// One client's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub expires: UnixSecs,
    pub state: LeaseState,
}

impl Lease {
    fn live(&self, now: UnixSecs) -> bool {
        now < self.expires
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Pool {
    by_mac: BTreeMap<MacAddr, Lease>,
    by_ip: BTreeMap<Ipv4Addr, MacAddr>,
    declined: BTreeMap<Ipv4Addr, UnixSecs>,
}

fn in_range(cfg: &DhcpConfig, ip: Ipv4Addr) -> bool {
    (cfg.range.0..=cfg.range.1).contains(&ip)
}

impl Pool {
    pub(crate) fn lease(&self, mac: MacAddr) -> Option<&Lease> {
        self.by_mac.get(&mac)
    }

    pub(crate) fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.by_mac.values()
    }

    /// `ip` may be given to `mac` now: a host address of the subnet, not declined, not another
    /// MAC's static address, not held (offered or leased, unexpired) by another MAC. The
    /// client's own static address is always free for it.
    pub(crate) fn free_for(&self, cfg: &DhcpConfig, ip: Ipv4Addr, mac: MacAddr, now: UnixSecs) -> bool {
        if cfg.static_for(mac) == Some(ip) {
            return true;
        }
        let other_static = cfg.statics.iter().any(|(m, s)| *s == ip && *m != mac);
        let declined = self.declined.get(&ip).is_some_and(|until| now < *until);
        let held =
            self.by_ip.get(&ip).and_then(|m| self.by_mac.get(m)).is_some_and(|l| l.mac != mac && l.live(now));
        cfg.usable(ip) && !other_static && !declined && !held
    }

    /// The address to offer `mac`: its static one; else the one it holds; else the one it
    /// asks for, if in the range and free; else the lowest free one in the range.
    pub(crate) fn choose(
        &self,
        cfg: &DhcpConfig,
        mac: MacAddr,
        asked: Option<Ipv4Addr>,
        now: UnixSecs,
    ) -> Option<Ipv4Addr> {
        if let Some(ip) = cfg.static_for(mac) {
            return Some(ip);
        }
        let dynamic_ok = |ip: Ipv4Addr| in_range(cfg, ip) && self.free_for(cfg, ip, mac, now);
        let held = self.by_mac.get(&mac).map(|l| l.ip);
        if let Some(ip) = held.into_iter().chain(asked).find(|ip| dynamic_ok(*ip)) {
            return Some(ip);
        }
        (u32::from(cfg.range.0)..=u32::from(cfg.range.1)).map(Ipv4Addr::from).find(|ip| dynamic_ok(*ip))
    }

    /// True when `mac` may be ACKed `ip`: its static address, or a free one (a client with a
    /// static address gets only that one).
    pub(crate) fn grantable(&self, cfg: &DhcpConfig, mac: MacAddr, ip: Ipv4Addr, now: UnixSecs) -> bool {
        match cfg.static_for(mac) {
            Some(s) => s == ip,
            None => {
                (in_range(cfg, ip) || self.lease(mac).is_some_and(|l| l.ip == ip))
                    && self.free_for(cfg, ip, mac, now)
            }
        }
    }

    /// Records `lease`, replacing the client's previous one and any expired record of its
    /// address by another client.
    pub(crate) fn set(&mut self, lease: Lease) {
        if let Some(old) = self.by_mac.insert(lease.mac, lease) {
            if old.ip != lease.ip && self.by_ip.get(&old.ip) == Some(&lease.mac) {
                self.by_ip.remove(&old.ip);
            }
        }
        if let Some(prev) = self.by_ip.insert(lease.ip, lease.mac) {
            if prev != lease.mac {
                self.by_mac.remove(&prev);
            }
        }
    }

    pub(crate) fn remove(&mut self, mac: MacAddr) -> Option<Lease> {
        let l = self.by_mac.remove(&mac)?;
        if self.by_ip.get(&l.ip) == Some(&mac) {
            self.by_ip.remove(&l.ip);
        }
        Some(l)
    }

    pub(crate) fn decline(&mut self, ip: Ipv4Addr, until: UnixSecs) {
        self.declined.insert(ip, until);
    }

    pub(crate) fn bindings(&self, now: UnixSecs) -> Vec<Binding> {
        self.by_mac
            .values()
            .filter(|l| l.state == LeaseState::Bound && l.live(now))
            .map(|l| Binding { mac: l.mac, ip: l.ip, expires: l.expires })
            .collect()
    }

    /// Removes leases and offers past their time (bound ones reported) and old declines.
    pub(crate) fn expire(&mut self, now: UnixSecs) -> Vec<BindingEvent> {
        let dead: Vec<Lease> = self.by_mac.values().filter(|l| !l.live(now)).copied().collect();
        self.declined.retain(|_, until| now < *until);
        dead.into_iter()
            .filter_map(|l| {
                self.remove(l.mac);
                (l.state == LeaseState::Bound).then_some(BindingEvent::Ended { mac: l.mac, ip: l.ip })
            })
            .collect()
    }
}
