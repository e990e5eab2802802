//! NAT for a zone in nat mode: many VM addresses behind the one address the VPN gave us
//! (RFC 3022 NAPT). TCP and UDP ports and ICMP echo identifiers are translated; ICMP errors
//! have their quoted datagram translated too (RFC 5508 REQ-3), so path-MTU discovery keeps
//! working through the NAT.
//!
//! Behaviour, in RFC 4787 terms: endpoint-independent mapping (REQ-1) with port preservation
//! when the VM's port is free, endpoint-independent filtering (REQ-8: the remote side is the
//! private network behind the tunnel, and transparency matters more there than a firewall
//! that the tunnel's peer already is). Fragments are dropped (`nat-fragment`): without
//! reassembly a later fragment carries no port to translate by.
//!
//! Table: at most `capacity` mappings; when full, expired mappings are swept and, if none
//! expired, the new flow is dropped (`nat-table-full`). Live mappings are never evicted.

mod rewrite;
mod table;

use std::net::Ipv4Addr;

use packet::{checksum, icmpv4, ipv4};

use crate::Millis;
use rewrite::{locate, rewrite_addr, End};
use table::Table;
pub use table::{Inside, Mapping, TcpState};

/// A translated transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP echo; the identifier plays the port.
    Icmp,
}

/// Idle timeouts in milliseconds. The defaults are the shortest the RFCs allow — shorter
/// would break applications that rely on them, longer only holds table slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// RFC 5382 REQ-5: an established connection's timer MUST NOT be under 2 h 4 min.
    pub tcp_established: Millis,
    /// RFC 5382 REQ-5: partially open or closing connections, at least 4 min.
    pub tcp_transitory: Millis,
    /// RFC 4787 REQ-5: MUST NOT expire in under 2 min, RECOMMENDED 5 min (what we use).
    pub udp: Millis,
    /// RFC 5508 REQ-1: an ICMP query mapping MUST NOT expire in under 60 s.
    pub icmp: Millis,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts { tcp_established: 7_440_000, tcp_transitory: 240_000, udp: 300_000, icmp: 60_000 }
    }
}

impl Timeouts {
    /// The timeout that applies to `m` now.
    pub fn of(&self, m: &Mapping) -> Millis {
        match (m.inside.proto, m.tcp) {
            (Proto::Tcp, TcpState::Established) => self.tcp_established,
            (Proto::Tcp, _) => self.tcp_transitory,
            (Proto::Udp, _) => self.udp,
            (Proto::Icmp, _) => self.icmp,
        }
    }
}

/// A NAT's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatConfig {
    /// The tunnel address every VM appears as.
    pub public: Ipv4Addr,
    /// Most mappings held at once (all protocols together).
    pub capacity: usize,
    /// Ports (and ICMP identifiers) handed out on `public`, inclusive.
    pub ports: (u16, u16),
    pub timeouts: Timeouts,
}

impl NatConfig {
    /// 16384 mappings on ports 1024-65535 with the default timeouts.
    pub fn new(public: Ipv4Addr) -> NatConfig {
        NatConfig { public, capacity: 16_384, ports: (1024, 65_535), timeouts: Timeouts::default() }
    }
}

/// Why a packet was not translated; the caller drops it (the NAT has counted it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NatDrop {
    #[error("nat-table-full")]
    TableFull,
    #[error("nat-no-mapping")]
    NoMapping,
    #[error("nat-fragment")]
    Fragment,
    #[error("nat-malformed")]
    Malformed,
    #[error("nat-unsupported")]
    Unsupported,
}

impl NatDrop {
    /// The counter name (also the `Display` text).
    pub fn name(self) -> &'static str {
        match self {
            NatDrop::TableFull => "nat-table-full",
            NatDrop::NoMapping => "nat-no-mapping",
            NatDrop::Fragment => "nat-fragment",
            NatDrop::Malformed => "nat-malformed",
            NatDrop::Unsupported => "nat-unsupported",
        }
    }
}

/// What the NAT did, for metrics and `rvsctl zones show`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatCounters {
    pub outbound: u64,
    pub inbound: u64,
    /// Mappings made, and removed by timeout.
    pub created: u64,
    pub expired: u64,
    pub table_full: u64,
    pub no_mapping: u64,
    pub fragment: u64,
    pub malformed: u64,
    pub unsupported: u64,
    /// Mappings dropped because the public address changed ([`Nat::readdress`]).
    pub readdressed: u64,
}

impl NatCounters {
    fn drop(&mut self, d: NatDrop) {
        let c = match d {
            NatDrop::TableFull => &mut self.table_full,
            NatDrop::NoMapping => &mut self.no_mapping,
            NatDrop::Fragment => &mut self.fragment,
            NatDrop::Malformed => &mut self.malformed,
            NatDrop::Unsupported => &mut self.unsupported,
        };
        *c += 1;
    }

    /// Packets the NAT would not translate, whatever the reason.
    pub fn refused(&self) -> u64 {
        self.drops().iter().map(|(_, n)| n).sum()
    }

    /// Every drop counter with its name.
    pub fn drops(&self) -> [(&'static str, u64); 5] {
        [
            (NatDrop::TableFull.name(), self.table_full),
            (NatDrop::NoMapping.name(), self.no_mapping),
            (NatDrop::Fragment.name(), self.fragment),
            (NatDrop::Malformed.name(), self.malformed),
            (NatDrop::Unsupported.name(), self.unsupported),
        ]
    }
}

/// One zone's NAT. Packets are IPv4 datagrams without a link header, rewritten in place.
#[derive(Debug)]
pub struct Nat {
    cfg: NatConfig,
    table: Table,
    counters: NatCounters,
}

impl Nat {
    /// A NAT with an empty table. A reversed port range is taken as the one port range it
    /// spells when swapped, so no config can make an empty one.
    pub fn new(mut cfg: NatConfig) -> Nat {
        if cfg.ports.0 > cfg.ports.1 {
            cfg.ports = (cfg.ports.1, cfg.ports.0);
        }
        Nat { table: Table::new(&cfg), cfg, counters: NatCounters::default() }
    }

    pub fn config(&self) -> &NatConfig {
        &self.cfg
    }

    pub fn counters(&self) -> NatCounters {
        NatCounters { expired: self.table.expired, created: self.table.created, ..self.counters }
    }

    /// Mappings held now (expired ones included until the next [`Nat::expire`]).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// The mappings, in no particular order (for `rvsctl zones show`).
    pub fn mappings(&self) -> impl Iterator<Item = &Mapping> {
        self.table.mappings()
    }

    /// The tunnel's address changed (a VPN client reconnected with a new one): new flows
    /// leave as `public`. Every mapping is dropped — each one is a port on the old address,
    /// which the far side can no longer reach us at, so its flow is dead whatever we keep —
    /// and counted `readdressed`; returns how many. The same address again changes nothing.
    pub fn readdress(&mut self, public: Ipv4Addr) -> usize {
        if public == self.cfg.public {
            return 0;
        }
        let (created, expired) = (self.table.created, self.table.expired);
        let dropped = self.table.len();
        self.cfg.public = public;
        self.table = Table::new(&self.cfg);
        (self.table.created, self.table.expired) = (created, expired);
        self.counters.readdressed += dropped as u64;
        dropped
    }

    /// Removes idle mappings; the caller runs it now and then (its timer, e.g. every second).
    pub fn expire(&mut self, now: Millis) -> usize {
        self.table.expire(&self.cfg, now)
    }

    /// Translates a datagram from a VM towards the tunnel: its source becomes the tunnel
    /// address and a mapped port. On `Err` the packet is unchanged and the drop counted.
    pub fn outbound(&mut self, pkt: &mut [u8], now: Millis) -> Result<(), NatDrop> {
        let r = self.translate_out(pkt, now);
        match r {
            Ok(()) => self.counters.outbound += 1,
            Err(d) => self.counters.drop(d),
        }
        r
    }

    /// Translates a datagram from the tunnel towards a VM; returns the VM's address (the
    /// gateway delivers by its IP binding). Without a live mapping: `Err(NoMapping)`.
    pub fn inbound(&mut self, pkt: &mut [u8], now: Millis) -> Result<Ipv4Addr, NatDrop> {
        let r = self.translate_in(pkt, now);
        match r {
            Ok(_) => self.counters.inbound += 1,
            Err(d) => self.counters.drop(d),
        }
        r
    }

    fn translate_out(&mut self, pkt: &mut [u8], now: Millis) -> Result<(), NatDrop> {
        let pkt = datagram(pkt)?;
        if let Some(quote) = icmp_error_quote(pkt) {
            return self.error_out(pkt, quote);
        }
        let site = locate(pkt, 0, End::Src, icmpv4::ECHO_REQUEST)?;
        let inside = Inside { proto: site.proto, addr: site.addr(pkt), port: site.port(pkt) };
        let m = self.table.outbound(&self.cfg, inside, now).ok_or(NatDrop::TableFull)?;
        m.last_seen = now;
        if let Some(flags) = site.tcp_flags {
            track(m, flags, End::Src);
        }
        let m = *m;
        self.table.note(&self.cfg, &m);
        site.rewrite(pkt, self.cfg.public, m.outside_port);
        Ok(())
    }

    fn translate_in(&mut self, pkt: &mut [u8], now: Millis) -> Result<Ipv4Addr, NatDrop> {
        let pkt = datagram(pkt)?;
        if rewrite::locate_addr(pkt, End::Dst) != self.cfg.public {
            return Err(NatDrop::NoMapping);
        }
        if let Some(quote) = icmp_error_quote(pkt) {
            return self.error_in(pkt, quote, now);
        }
        let site = locate(pkt, 0, End::Dst, icmpv4::ECHO_REPLY)?;
        let port = site.port(pkt);
        let m = self.table.inbound(&self.cfg, site.proto, port, now).ok_or(NatDrop::NoMapping)?;
        m.last_seen = now;
        if let Some(flags) = site.tcp_flags {
            track(m, flags, End::Dst);
        }
        let m = *m;
        self.table.note(&self.cfg, &m);
        let inside = m.inside;
        site.rewrite(pkt, inside.addr, inside.port);
        Ok(inside.addr)
    }

    /// An ICMP error from the far side about a datagram a VM sent: the quote's source is the
    /// mapping. The error itself neither makes nor refreshes a mapping (RFC 5508 REQ-2/4).
    fn error_in(&mut self, pkt: &mut [u8], quote: usize, now: Millis) -> Result<Ipv4Addr, NatDrop> {
        let site = locate(pkt, quote, End::Src, icmpv4::ECHO_REQUEST)?;
        if site.addr(pkt) != self.cfg.public {
            return Err(NatDrop::NoMapping);
        }
        let port = site.port(pkt);
        let inside = self.table.inbound(&self.cfg, site.proto, port, now).ok_or(NatDrop::NoMapping)?.inside;
        site.rewrite(pkt, inside.addr, inside.port);
        rewrite_addr(pkt, 0, End::Dst, inside.addr);
        fix_icmp_checksum(pkt);
        Ok(inside.addr)
    }

    /// An ICMP error from a VM about a datagram it received through us: the quote's
    /// destination is the VM's side of an existing mapping.
    fn error_out(&mut self, pkt: &mut [u8], quote: usize) -> Result<(), NatDrop> {
        let site = locate(pkt, quote, End::Dst, icmpv4::ECHO_REPLY)?;
        let inside = Inside { proto: site.proto, addr: site.addr(pkt), port: site.port(pkt) };
        let m = self.table.find_inside(&inside).ok_or(NatDrop::NoMapping)?;
        site.rewrite(pkt, self.cfg.public, m.outside_port);
        rewrite_addr(pkt, 0, End::Src, self.cfg.public);
        fix_icmp_checksum(pkt);
        Ok(())
    }
}

/// The datagram itself (without Ethernet padding), refusing what cannot be translated.
fn datagram(pkt: &mut [u8]) -> Result<&mut [u8], NatDrop> {
    let ip = ipv4::Frame::new_checked(&pkt[..]).map_err(|_| NatDrop::Malformed)?;
    let len = usize::from(ip.total_len());
    if len > pkt.len() {
        return Err(NatDrop::Malformed);
    }
    if ip.is_fragment() {
        return Err(NatDrop::Fragment);
    }
    Ok(&mut pkt[..len])
}

/// Where the quoted datagram of an ICMP error starts, if `pkt` is one.
fn icmp_error_quote(pkt: &[u8]) -> Option<usize> {
    let ip = ipv4::Frame::new_checked(pkt).ok()?;
    if ip.protocol() != ipv4::PROTO_ICMP {
        return None;
    }
    let l4 = ip.header_len();
    let m = icmpv4::Frame::new_checked(&pkt[l4..]).ok()?;
    m.is_error().then_some(l4 + icmpv4::field::QUOTE)
}

/// An error's quote changed in several places (address, port, two checksums): the ICMP
/// checksum is summed again over the whole message, which is small (≤ 576 bytes, RFC 1812).
fn fix_icmp_checksum(pkt: &mut [u8]) {
    let l4 = ipv4::Frame::new_unchecked(&pkt[..]).header_len();
    let c = l4 + icmpv4::field::CHECKSUM.start;
    pkt[c..c + 2].fill(0);
    let sum = checksum::internet(&pkt[l4..]);
    pkt[c..c + 2].copy_from_slice(&sum.to_be_bytes());
}

/// Moves a TCP mapping along its life (for the timeout that applies): a new SYN from the
/// inside opens; the outside's ACK answers; the inside's next ACK establishes; FIN or RST
/// closes.
fn track(m: &mut Mapping, flags: u8, from: End) {
    use packet::tcp::{ACK, FIN, RST, SYN};
    let out = from == End::Src;
    m.tcp = match m.tcp {
        _ if flags & (FIN | RST) != 0 => TcpState::Closing,
        _ if out && flags & SYN != 0 && flags & ACK == 0 => TcpState::Opening,
        TcpState::Opening if !out && flags & ACK != 0 => TcpState::Answered,
        TcpState::Answered if out && flags & ACK != 0 => TcpState::Established,
        s => s,
    };
}

#[cfg(test)]
mod tests;
