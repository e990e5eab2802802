//! A zone's DHCPv4 server (RFC 2131/2132): the gateway hands it each DHCP packet a VM sends
//! and sends back what it returns. It offers an address from the zone's range (or the VM's
//! static one), the subnet mask, the gateway as router, the VPN's DNS servers, the interface
//! MTU (option 26) and a lease time; and it reports every binding so that port security can
//! bind the VM's MAC to its address.
//!
//! It is the one server of its zone, so it is authoritative: a request for an address it
//! cannot give gets a NAK at once, not silence. Relayed requests (giaddr set) are refused:
//! a zone is one link. Clients are told apart by `chaddr` alone (not option 61), which is
//! what the static leases of the zones file name.
//!
//! Time is wall-clock seconds ([`UnixSecs`]) passed in by the caller, not the monotonic
//! [`crate::Millis`] the rest of this crate uses: leases are persisted ([`persist`]) and must
//! keep their meaning across a restart or a reboot, as dnsmasq's lease file does.

mod handle;
pub mod persist;
mod pool;
mod reply;

use std::net::Ipv4Addr;

use packet::MacAddr;

use pool::Pool;
pub use pool::{Lease, LeaseState};

/// Seconds since the Unix epoch, from the caller's wall clock.
pub type UnixSecs = u64;

/// The largest dynamic range accepted (a /16): allocation walks the range.
pub const MAX_RANGE: u32 = 1 << 16;
/// Most DNS servers a zone's server offers (option 6 could carry 63; resolvers use the
/// first three): the zones file and the Interface options both hold to it.
pub const MAX_DNS: usize = 8;
/// How long an offered address is held for the client it was offered to.
pub const OFFER_HOLD_SECS: u64 = 60;
/// How long a declined address (RFC 2131 §3.1.5: someone else uses it) is not offered.
pub const DECLINE_HOLD_SECS: u64 = 600;

/// Why `ip` cannot be a DNS server a zone's VMs ask, if it cannot: the rule the zones file and
/// the daemon's options share (IPv6's is [`crate::nd::dns_server_problem`]).
pub fn dns_server_problem(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        Some("is not a unicast address")
    } else if ip.is_loopback() {
        Some("is a loopback address: each VM would ask itself")
    } else {
        None
    }
}

/// A zone's DHCP settings, from the zones file and the VPN's wg-quick file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpConfig {
    /// The gateway's address: server identifier (option 54) and router (option 3).
    pub server: Ipv4Addr,
    /// The zone subnet's prefix length (option 1 is derived from it).
    pub prefix_len: u8,
    /// The dynamic range, inclusive.
    pub range: (Ipv4Addr, Ipv4Addr),
    /// Option 6, in order; empty sends none.
    pub dns: Vec<Ipv4Addr>,
    /// Option 26 (the zone MTU, tunnel overhead already subtracted); `None` sends none.
    pub mtu: Option<u16>,
    /// Option 51.
    pub lease_secs: u32,
    /// Fixed addresses by MAC (the zones file's `[[vm]]` entries); they may lie outside the
    /// dynamic range but must be in the subnet.
    pub statics: Vec<(MacAddr, Ipv4Addr)>,
}

/// Why a [`DhcpConfig`] cannot serve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DhcpConfigError {
    #[error("prefix length {0} is not 1..=30")]
    Prefix(u8),
    #[error("range {0}-{1} is reversed")]
    Reversed(Ipv4Addr, Ipv4Addr),
    #[error("range {0}-{1} holds more than {MAX_RANGE} addresses")]
    TooLarge(Ipv4Addr, Ipv4Addr),
    #[error("{0} is outside the gateway's subnet {1}/{2}")]
    OutsideSubnet(Ipv4Addr, Ipv4Addr, u8),
    #[error("{0} is the gateway, the subnet's network or its broadcast address")]
    Reserved(Ipv4Addr),
    #[error("static address {0} is given to two MACs")]
    StaticTwice(Ipv4Addr),
    #[error("MAC {0} has two static addresses")]
    MacTwice(MacAddr),
    #[error("lease time 0")]
    ZeroLease,
}

impl DhcpConfig {
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0))
    }

    /// True when `ip` is a host address of the subnet other than the gateway's.
    pub fn usable(&self, ip: Ipv4Addr) -> bool {
        let (mask, net) = (u32::from(self.netmask()), u32::from(self.server) & u32::from(self.netmask()));
        let a = u32::from(ip);
        a & mask == net && a != net && a != net | !mask && ip != self.server
    }

    /// Every rule that [`DhcpServer::new`] relies on.
    pub fn validate(&self) -> Result<(), DhcpConfigError> {
        if !(1..=30).contains(&self.prefix_len) {
            return Err(DhcpConfigError::Prefix(self.prefix_len));
        }
        let (first, last) = self.range;
        check_range(first, last)?;
        if self.lease_secs == 0 {
            return Err(DhcpConfigError::ZeroLease);
        }
        let statics = self.statics.iter().map(|(_, ip)| *ip);
        for ip in [first, last].into_iter().chain(statics) {
            self.check_addr(ip)?;
        }
        self.statics_unique()
    }

    fn check_addr(&self, ip: Ipv4Addr) -> Result<(), DhcpConfigError> {
        let net = Ipv4Addr::from(u32::from(self.server) & u32::from(self.netmask()));
        if u32::from(ip) & u32::from(self.netmask()) != u32::from(net) {
            return Err(DhcpConfigError::OutsideSubnet(ip, net, self.prefix_len));
        }
        if !self.usable(ip) {
            return Err(DhcpConfigError::Reserved(ip));
        }
        Ok(())
    }

    fn statics_unique(&self) -> Result<(), DhcpConfigError> {
        let (mut ips, mut macs) = (std::collections::HashSet::new(), std::collections::HashSet::new());
        for (mac, ip) in &self.statics {
            if !macs.insert(*mac) {
                return Err(DhcpConfigError::MacTwice(*mac));
            }
            if !ips.insert(*ip) {
                return Err(DhcpConfigError::StaticTwice(*ip));
            }
        }
        Ok(())
    }

    /// The static address of `mac`, if it has one.
    pub fn static_for(&self, mac: MacAddr) -> Option<Ipv4Addr> {
        self.statics.iter().find(|(m, _)| *m == mac).map(|(_, ip)| *ip)
    }
}

/// The rules of a dynamic range on its own (the zones file checks them too): in order and at
/// most [`MAX_RANGE`] addresses.
pub fn check_range(first: Ipv4Addr, last: Ipv4Addr) -> Result<(), DhcpConfigError> {
    if first > last {
        return Err(DhcpConfigError::Reversed(first, last));
    }
    if u32::from(last) - u32::from(first) >= MAX_RANGE {
        return Err(DhcpConfigError::TooLarge(first, last));
    }
    Ok(())
}

/// A VM's address as port security needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Binding {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// When the lease ends, in [`UnixSecs`].
    pub expires: UnixSecs,
}

impl Binding {
    /// Seconds left at `now` (port security keeps leases on the monotonic clock: it takes
    /// `remaining_secs * 1000` as the lease's remaining milliseconds).
    pub fn remaining_secs(&self, now: UnixSecs) -> u64 {
        self.expires.saturating_sub(now)
    }
}

/// A change of bindings the gateway passes on to port security.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingEvent {
    /// An ACK gave or renewed this binding.
    Bound(Binding),
    /// A RELEASE, DECLINE or expiry ended it.
    Ended { mac: MacAddr, ip: Ipv4Addr },
}

/// A reply to send to the VM: an IPv4/UDP packet and the Ethernet destination for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpReply {
    /// The IPv4 packet (UDP 67 → 68).
    pub packet: Vec<u8>,
    /// The client's MAC, or broadcast when the client cannot take unicast yet.
    pub dst_mac: MacAddr,
}

/// What one incoming packet led to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub reply: Option<DhcpReply>,
    pub event: Option<BindingEvent>,
}

/// Why an incoming packet got no answer (counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DhcpDrop {
    /// Not an IPv4/UDP packet to port 67 holding a BOOTREQUEST from an Ethernet client.
    #[error("dhcp-malformed")]
    Malformed,
    #[error("dhcp-relayed")]
    Relayed,
    /// A message type a server does not take, or none.
    #[error("dhcp-unexpected")]
    Unexpected,
    /// The client chose another server, or released/declined what it does not hold.
    #[error("dhcp-not-ours")]
    NotOurs,
    /// No free address left in the range.
    #[error("dhcp-pool-exhausted")]
    PoolExhausted,
}

/// Counters of a [`DhcpServer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DhcpCounters {
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub releases: u64,
    pub declines: u64,
    pub informs: u64,
    pub malformed: u64,
    pub relayed: u64,
    pub unexpected: u64,
    pub not_ours: u64,
    pub pool_exhausted: u64,
}

/// One zone's DHCP server.
#[derive(Clone, Debug)]
pub struct DhcpServer {
    cfg: DhcpConfig,
    pool: Pool,
    counters: DhcpCounters,
}

impl DhcpServer {
    pub fn new(cfg: DhcpConfig) -> Result<DhcpServer, DhcpConfigError> {
        cfg.validate()?;
        Ok(DhcpServer { cfg, pool: Pool::default(), counters: DhcpCounters::default() })
    }

    pub fn config(&self) -> &DhcpConfig {
        &self.cfg
    }

    pub fn counters(&self) -> DhcpCounters {
        self.counters
    }

    /// The MTU offered from now on (option 26): the tunnel's changed. Leases already given
    /// learn it when they renew.
    pub fn set_mtu(&mut self, mtu: Option<u16>) {
        self.cfg.mtu = mtu;
    }

    /// Bound, unexpired leases: what port security should hold now.
    pub fn bindings(&self, now: UnixSecs) -> Vec<Binding> {
        self.pool.bindings(now)
    }

    /// Ends leases past their time; the gateway passes the events on (call it now and then).
    pub fn expire(&mut self, now: UnixSecs) -> Vec<BindingEvent> {
        self.pool.expire(now)
    }
}

#[cfg(test)]
mod tests;
