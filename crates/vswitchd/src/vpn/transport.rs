//! The seam between a zone's gateway port and the tunnel it routes into: the port (gateway,
//! DHCP leases, segmentation, status, kill switch) is the same for every uplink; only how IP
//! packets reach the remote network differs — boringtun over UDP ([`super::wireguard`]) or a
//! tun device some VPN client holds ([`super::tun`]).

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use netdev::{DeviceFacts, NetdevError};

/// One tunnel as the gateway port drives it. Everything runs on the forwarding thread and must
/// not block.
pub trait Transport: Send {
    /// The descriptor the port polls for packets from the tunnel, if there is one now.
    fn poll_fd(&self) -> Option<RawFd>;

    /// About every 250 ms: the tunnel's timers, reconnects. Returns a descriptor that was
    /// opened since (a tun device reopened), which the port must add to its poll set.
    fn tick(&mut self, now: Instant) -> Option<RawFd>;

    /// The kill switch's one input: may the zone's packets enter the tunnel now? Called per
    /// packet, so it must be cheap (no syscall).
    fn is_up(&self, now: Instant) -> bool;

    /// One IP packet from the zone into the tunnel (only while [`Transport::is_up`]). A
    /// transport may queue it until [`Transport::flush`].
    fn send(&mut self, ip: &[u8], now: Instant);

    /// Pushes out what [`Transport::send`] queued: the port calls it once at the end of every
    /// transmit, so a batch of the zone's frames leaves in as few syscalls as the transport
    /// can manage. Transports that send at once have nothing to do.
    fn flush(&mut self) {}

    /// Takes what the tunnel has for the zone without blocking: at most `room` IP packets,
    /// each handed to `deliver` (which may rewrite it, e.g. NAT).
    fn recv(&mut self, room: usize, deliver: &mut dyn FnMut(&mut [u8])) -> Result<(), NetdevError>;

    /// What carries the tunnel, for status: `wireguard` or `tun`.
    fn kind(&self) -> &'static str;

    /// Where the tunnel goes, for status and logs (a peer's host:port, a device name).
    fn endpoint(&self) -> String;

    /// Counters and handshake age for `rvsctl show`.
    fn stats(&self) -> TransportStats;

    /// The MTU and IPv4 address of the tunnel's device as of the last [`Transport::tick`],
    /// for a transport whose device the VPN client may change under us (a tun: OpenVPN sets
    /// its MTU, a reconnect may bring a new address). The port makes the zone follow them
    /// (MTU, MSS clamp, ICMP errors, DHCP's MTU option; the NAT's address). None: fixed by
    /// configuration (WireGuard's wg-quick file), or no device now (the last values stay).
    fn device_facts(&self) -> Option<DeviceFacts> {
        None
    }
}

/// What a transport reports beside up/down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Since the last completed handshake (None: never, or the tunnel has no handshake).
    pub since_handshake: Option<Duration>,
    /// Payload bytes from / into the tunnel.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// What arrived from the tunnel's side and was refused (did not authenticate; not IP).
    pub bad_datagrams: u64,
    /// Packets of the zone the tunnel's socket did not take (its buffer full, a send error):
    /// the `send-lost` drop reason.
    pub send_lost: u64,
}
