//! The translation table: bounded, with per-protocol idle timeouts, and a lazy sweep so that a
//! full table does not rescan itself for every new flow.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::{NatConfig, Proto};
use crate::Millis;

/// The VM side of a mapping: protocol, address, port (the echo identifier for ICMP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Inside {
    pub proto: Proto,
    pub addr: Ipv4Addr,
    pub port: u16,
}

/// Where a TCP connection is, for its timeout (RFC 5382 REQ-5): only an established one gets
/// the long timer; a half-open or closing one the transitory one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    /// Seen from the inside only (a SYN, or a connection picked up mid-stream).
    Opening,
    /// The outside answered with ACK; established on the inside's next ACK.
    Answered,
    Established,
    /// FIN or RST seen.
    Closing,
}

/// One mapping: the VM's endpoint and the port it has on the tunnel address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub inside: Inside,
    pub outside_port: u16,
    pub last_seen: Millis,
    pub tcp: TcpState,
}

#[derive(Debug)]
pub(crate) struct Table {
    by_inside: HashMap<Inside, u16>,
    by_outside: HashMap<(Proto, u16), Mapping>,
    /// No mapping expires before this: a sweep before it would find nothing.
    next_expiry: Millis,
    cursor: u16,
    /// Mappings removed by timeout so far (by a sweep the caller asked for or a lazy one).
    pub(crate) expired: u64,
    /// Mappings made so far.
    pub(crate) created: u64,
}

impl Table {
    pub(crate) fn new(cfg: &NatConfig) -> Table {
        Table {
            by_inside: HashMap::new(),
            by_outside: HashMap::new(),
            next_expiry: Millis::MAX,
            cursor: cfg.ports.0,
            expired: 0,
            created: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_outside.len()
    }

    pub(crate) fn mappings(&self) -> impl Iterator<Item = &Mapping> {
        self.by_outside.values()
    }

    /// The live mapping that `(proto, port)` on the tunnel address leads to; an expired one
    /// is removed and not returned.
    pub(crate) fn inbound(
        &mut self,
        cfg: &NatConfig,
        proto: Proto,
        port: u16,
        now: Millis,
    ) -> Option<&mut Mapping> {
        let m = *self.by_outside.get(&(proto, port))?;
        if expired(cfg, &m, now) {
            self.remove(proto, port);
            return None;
        }
        self.by_outside.get_mut(&(proto, port))
    }

    /// The mapping of `inside`, made if there is none and the table has room. `None` when
    /// full: live mappings are never evicted — cutting an established connection to admit a
    /// new flow hurts more than refusing the new one, whose sender retries.
    pub(crate) fn outbound(&mut self, cfg: &NatConfig, inside: Inside, now: Millis) -> Option<&mut Mapping> {
        if let Some(&port) = self.by_inside.get(&inside) {
            return self.by_outside.get_mut(&(inside.proto, port));
        }
        if self.len() >= cfg.capacity {
            self.expire(cfg, now);
            if self.len() >= cfg.capacity {
                return None;
            }
        }
        let port = self.free_port(cfg, inside)?;
        let m = Mapping { inside, outside_port: port, last_seen: now, tcp: TcpState::Opening };
        self.by_inside.insert(inside, port);
        self.created += 1;
        self.next_expiry = self.next_expiry.min(deadline(cfg, &m));
        self.by_outside.entry((inside.proto, port)).or_insert(m).into()
    }

    /// The VM's own port when free (port preservation, RFC 4787 REQ-4 allows it and it keeps
    /// ICMP echo identifiers readable), else the next free one after a rotating cursor.
    fn free_port(&mut self, cfg: &NatConfig, inside: Inside) -> Option<u16> {
        let (lo, hi) = cfg.ports;
        let free = |t: &Table, p: u16| !t.by_outside.contains_key(&(inside.proto, p));
        if (lo..=hi).contains(&inside.port) && free(self, inside.port) {
            return Some(inside.port);
        }
        let span = u32::from(hi - lo) + 1;
        for _ in 0..span {
            let p = self.cursor;
            self.cursor = if p >= hi { lo } else { p + 1 };
            if free(self, p) {
                return Some(p);
            }
        }
        None
    }

    /// The mapping of `inside`, if it has one (it is not made: ICMP errors never make one).
    pub(crate) fn find_inside(&self, inside: &Inside) -> Option<&Mapping> {
        self.by_outside.get(&(inside.proto, *self.by_inside.get(inside)?))
    }

    fn remove(&mut self, proto: Proto, port: u16) {
        if let Some(m) = self.by_outside.remove(&(proto, port)) {
            self.by_inside.remove(&m.inside);
        }
    }

    /// Drops every mapping idle past its timeout; returns how many. Cheap when nothing can
    /// have expired yet.
    pub(crate) fn expire(&mut self, cfg: &NatConfig, now: Millis) -> usize {
        if now < self.next_expiry {
            return 0;
        }
        let dead: Vec<(Proto, u16)> =
            self.by_outside.iter().filter(|(_, m)| expired(cfg, m, now)).map(|(k, _)| *k).collect();
        for (proto, port) in &dead {
            self.remove(*proto, *port);
        }
        // The earliest deadline left is a lower bound as long as every change that brings a
        // deadline forward (a TCP connection closing) reports it through `note`.
        self.next_expiry = self.by_outside.values().map(|m| deadline(cfg, m)).min().unwrap_or(Millis::MAX);
        self.expired += dead.len() as u64;
        dead.len()
    }

    /// Tells the table that `m` (changed by the caller) now expires at its new deadline.
    pub(crate) fn note(&mut self, cfg: &NatConfig, m: &Mapping) {
        self.next_expiry = self.next_expiry.min(deadline(cfg, m));
    }
}

fn deadline(cfg: &NatConfig, m: &Mapping) -> Millis {
    m.last_seen.saturating_add(cfg.timeouts.of(m))
}

fn expired(cfg: &NatConfig, m: &Mapping, now: Millis) -> bool {
    now >= deadline(cfg, m)
}
