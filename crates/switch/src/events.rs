//! What the pipeline noticed that an operator wants to hear about: a station that moved to
//! another port, and port-security drops. Pure like the rest: [`Bridge::process`] records into
//! a bounded queue (no allocation once it reached its capacity), the caller drains it after a
//! batch. Security drops are rate-limited per port, with the time as an argument: a VM that
//! spoofs at line rate yields one event per [`SECURITY_EVENT_INTERVAL_MS`], which says how many
//! were folded into it.
//!
//! [`Bridge::process`]: crate::Bridge::process

use std::net::{IpAddr, Ipv4Addr};

use packet::{arp, ipv4, ipv6, EthernetHeader, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

use crate::{DropReason, Millis};

/// Most events one bridge holds between two drains (one batch); more are counted, not kept.
pub const MAX_PENDING: usize = 64;
/// At most one port-security event per port per this long.
pub const SECURITY_EVENT_INTERVAL_MS: Millis = 1000;
/// At most this many MAC-move events per bridge per second: a bridging loop flaps addresses
/// thousands of times a second, and the log must not drown in it (the excess is counted).
pub const MAX_MOVES_PER_SECOND: u32 = 20;

/// One thing the pipeline noticed. Ports are slots of the bridge at the time of the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchEvent {
    /// `mac` on `vlan`, learned on slot `from`, was seen on slot `to`.
    MacMoved { vlan: u16, mac: MacAddr, from: usize, to: usize },
    /// Port security dropped a frame from `slot`: its source MAC and (when the frame carried one)
    /// the IP address it claimed. `suppressed`: drops on this port since the previous event that
    /// the rate limit folded into this one.
    SecurityDrop { slot: usize, reason: DropReason, mac: MacAddr, ip: Option<IpAddr>, suppressed: u64 },
}

/// Per port: when its last security event was recorded, and the drops folded since.
#[derive(Clone, Copy, Debug, Default)]
struct Limit {
    last: Option<Millis>,
    suppressed: u64,
}

/// The bounded queue of a bridge's events.
#[derive(Clone, Debug, Default)]
pub(crate) struct EventQueue {
    pending: Vec<SwitchEvent>,
    /// Events lost because the queue was full or the move rate limit was hit.
    overflow: u64,
    limits: Vec<Limit>,
    /// The current one-second window of move events: its start and how many it had.
    moves: (Millis, u32),
}

impl EventQueue {
    /// The port list changed: rate limits start over (slots may mean other ports now).
    pub fn reset_ports(&mut self, ports: usize) {
        self.limits = vec![Limit::default(); ports];
    }

    fn push(&mut self, e: SwitchEvent) {
        if self.pending.len() < MAX_PENDING {
            self.pending.push(e);
        } else {
            self.overflow += 1;
        }
    }

    /// A station moved at `now`, rate-limited per bridge.
    pub fn mac_moved(&mut self, vlan: u16, mac: MacAddr, from: usize, to: usize, now: Millis) {
        if now.saturating_sub(self.moves.0) >= 1000 {
            self.moves = (now, 0);
        }
        if self.moves.1 >= MAX_MOVES_PER_SECOND {
            self.overflow += 1;
            return;
        }
        self.moves.1 += 1;
        self.push(SwitchEvent::MacMoved { vlan, mac, from, to });
    }

    /// A port-security drop of `frame` (parsed as `eth`) from `slot` at `now`, rate-limited.
    pub fn security_drop(
        &mut self,
        slot: usize,
        reason: DropReason,
        eth: &EthernetHeader,
        frame: &[u8],
        now: Millis,
    ) {
        let Some(limit) = self.limits.get_mut(slot) else { return };
        if limit.last.is_some_and(|t| now.saturating_sub(t) < SECURITY_EVENT_INTERVAL_MS) {
            limit.suppressed += 1;
            return;
        }
        let suppressed = std::mem::take(&mut limit.suppressed);
        limit.last = Some(now);
        let ip = claimed_ip(eth, frame);
        self.push(SwitchEvent::SecurityDrop { slot, reason, mac: eth.src, ip, suppressed });
    }

    /// Hands every pending event to `f`, oldest first; returns the events lost to a full queue
    /// since the last drain.
    pub fn drain(&mut self, f: impl FnMut(SwitchEvent)) -> u64 {
        self.pending.drain(..).for_each(f);
        std::mem::take(&mut self.overflow)
    }
}

/// The source address a frame claims: ARP's sender IP, or the IPv4/IPv6 source.
fn claimed_ip(eth: &EthernetHeader, frame: &[u8]) -> Option<IpAddr> {
    let l3 = frame.get(eth.payload_offset..)?;
    match eth.ethertype {
        ETHERTYPE_ARP => arp::Frame::new_checked(l3).ok().map(|a| IpAddr::V4(a.sender_ip())),
        ETHERTYPE_IPV4 => ipv4::Frame::new_checked(l3).ok().map(|ip| IpAddr::V4(ip.src())),
        ETHERTYPE_IPV6 => ipv6::Frame::new_checked(l3).ok().map(|ip| IpAddr::V6(ip.src())),
        _ => None,
    }
    .filter(|ip| *ip != IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use packet::{ipv4_udp, FrameSpec};

    fn eth(frame: &[u8]) -> EthernetHeader {
        EthernetHeader::parse(frame).unwrap()
    }

    #[test]
    fn security_drops_are_rate_limited_per_port_and_carry_the_claimed_ip() {
        let mut q = EventQueue::default();
        q.reset_ports(2);
        let src = MacAddr([2, 0, 0, 0, 0, 9]);
        let spec = FrameSpec { dst: MacAddr::BROADCAST, src, vlan: None, ethertype: 0 };
        let mut buf = [0u8; 64];
        let n = ipv4_udp(&mut buf, &spec, [198, 18, 0, 9], [198, 18, 0, 1], (1, 2), b"x").unwrap();
        let frame = &buf[..n];
        let e = eth(frame);
        q.security_drop(0, DropReason::SpoofedIp, &e, frame, 1000);
        q.security_drop(0, DropReason::SpoofedIp, &e, frame, 1500);
        q.security_drop(0, DropReason::SpoofedIp, &e, frame, 1900);
        q.security_drop(1, DropReason::SpoofedMac, &e, frame, 1900);
        q.security_drop(0, DropReason::SpoofedIp, &e, frame, 2000);
        q.security_drop(5, DropReason::SpoofedIp, &e, frame, 2000);
        let mut got = Vec::new();
        assert_eq!(q.drain(|e| got.push(e)), 0);
        let ip = Some("198.18.0.9".parse().unwrap());
        assert_eq!(
            got,
            vec![
                SwitchEvent::SecurityDrop {
                    slot: 0,
                    reason: DropReason::SpoofedIp,
                    mac: src,
                    ip,
                    suppressed: 0
                },
                SwitchEvent::SecurityDrop {
                    slot: 1,
                    reason: DropReason::SpoofedMac,
                    mac: src,
                    ip,
                    suppressed: 0
                },
                SwitchEvent::SecurityDrop {
                    slot: 0,
                    reason: DropReason::SpoofedIp,
                    mac: src,
                    ip,
                    suppressed: 2
                },
            ]
        );
    }

    #[test]
    fn a_full_queue_counts_what_it_loses() {
        let mut q = EventQueue::default();
        q.reset_ports(1);
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let frame = [0u8; 60];
        let e = EthernetHeader { src: mac, ..eth(&frame) };
        for i in 0..MAX_PENDING + 3 {
            // Each a second apart: one event each.
            q.security_drop(0, DropReason::SpoofedMac, &e, &frame, i as u64 * 1000);
        }
        let mut n = 0;
        assert_eq!(q.drain(|_| n += 1), 3);
        assert_eq!(n, MAX_PENDING);
        assert_eq!(q.drain(|_| n += 1), 0, "the loss is reported once");
    }

    #[test]
    fn a_flapping_address_is_rate_limited_per_second() {
        let mut q = EventQueue::default();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        for i in 0..30 {
            q.mac_moved(1, mac, i % 2, (i + 1) % 2, 5000 + i as u64);
        }
        let mut n = 0;
        assert_eq!(q.drain(|_| n += 1), 10);
        assert_eq!(n, MAX_MOVES_PER_SECOND as usize);
        q.mac_moved(1, mac, 0, 1, 6000);
        assert_eq!((q.drain(|_| n += 1), n), (0, 21), "a new second, a new allowance");
    }
}
