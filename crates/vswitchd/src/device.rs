//! A port's device, opened afresh or adopted from the descriptors a previous rvswitchd kept
//! (see `fdstore`), behind one type so the reconciler treats both alike.

use std::os::fd::OwnedFd;

use netdev::{Labelled, Netdev, NetdevError, SystemPort, TapPort, TunnelEndpoints, TunnelPort};
use tracing::info;

use crate::state::{PortKind, VpnOptions};
use crate::vpn::{VpnDevice, VpnOpenError};

/// An open device of any backend.
pub enum Device {
    System(SystemPort),
    Tap(TapPort),
    /// A VXLAN or Geneve tunnel port: no kernel device, a share of a UDP socket.
    Tunnel(TunnelPort),
    /// A VPN gateway port: no kernel device of its own; a UDP socket to the WireGuard peer,
    /// or a VPN client's tun device.
    Vpn(VpnDevice),
}

impl Device {
    /// Opens (system, tunnel) or creates (tap, internal) the device of port `name`. With the
    /// kernel fast path (`fast_path`) a system port's slow path carries only what the kernel
    /// does not forward (first frames of a flow, broadcast, what port security must see), so it
    /// receives without a ring (see [`SystemPort::open_per_cpu_copying`]). Tunnel ports share
    /// the UDP sockets in `endpoints`.
    pub fn open(
        name: &str,
        kind: PortKind,
        rx_queues: usize,
        fast_path: bool,
        endpoints: &TunnelEndpoints,
    ) -> Result<Device, NetdevError> {
        let open_system = if fast_path { SystemPort::open_per_cpu_copying } else { SystemPort::open_per_cpu };
        match kind {
            PortKind::System => open_system(name, rx_queues).map(|p| {
                if p.rx_queues() < rx_queues {
                    info!(port = name, "per-CPU receive queues refused by the kernel; one queue");
                }
                Device::System(p)
            }),
            PortKind::Tap => TapPort::create(name).map(Device::Tap),
            PortKind::Internal => TapPort::create_internal(name).map(Device::Tap),
            PortKind::Tunnel(cfg) => TunnelPort::open(name, cfg, endpoints).map(Device::Tunnel),
            PortKind::Vpn => Err(no_descriptors(name)),
        }
    }

    /// Opens the VPN gateway port `name` (reads its wg-quick file and binds its socket, or
    /// opens its tun device).
    pub fn open_vpn(
        name: &str,
        opts: &VpnOptions,
        state_dir: Option<&std::path::Path>,
    ) -> Result<Device, VpnOpenError> {
        crate::vpn::open(name, opts, state_dir).map(Device::Vpn)
    }

    /// Rebuilds the device of port `name` from kept descriptors.
    pub fn adopt(name: &str, kind: PortKind, fds: Vec<(String, OwnedFd)>) -> Result<Device, NetdevError> {
        match kind {
            PortKind::System => SystemPort::adopt(name, fds).map(Device::System),
            PortKind::Tap | PortKind::Internal => TapPort::adopt(name, fds).map(Device::Tap),
            // Nothing is kept for tunnels (see `descriptors`): a fresh socket is opened.
            PortKind::Tunnel(_) => Err(NetdevError::StaleDescriptors {
                dev: name.to_string(),
                reason: "tunnel ports are reopened".into(),
            }),
            PortKind::Vpn => Err(no_descriptors(name)),
        }
    }

    /// The kernel device's ifindex; None for a tunnel or VPN port, which have none.
    pub fn ifindex(&self) -> Option<u32> {
        match self {
            Device::System(p) => Some(p.ifindex()),
            Device::Tap(p) => Some(p.ifindex()),
            Device::Tunnel(_) | Device::Vpn(_) => None,
        }
    }

    /// The descriptors to keep for a restart.
    pub fn descriptors(&self) -> Vec<Labelled<'_>> {
        match self {
            Device::System(p) => p.descriptors(),
            Device::Tap(p) => p.descriptors(),
            Device::Tunnel(p) => p.descriptors(),
            // A fresh UDP socket and a fresh handshake (or the tun opened anew) serve a
            // restart as well.
            Device::Vpn(_) => Vec::new(),
        }
    }

    pub fn into_netdev(self) -> Box<dyn Netdev> {
        match self {
            Device::System(p) => Box::new(p),
            Device::Tap(p) => Box::new(p),
            Device::Tunnel(p) => Box::new(p),
            Device::Vpn(v) => v.port,
        }
    }

    /// What Interface `error` should say about a device that works but not fully (a tunnel
    /// whose underlay MTU is too small for 1500-byte inner packets).
    pub fn warning(&self) -> Option<String> {
        match self {
            Device::Tunnel(p) => p.underlay_problem(),
            _ => None,
        }
    }
}

/// A VPN port is opened from its options ([`Device::open_vpn`]), never by name alone, and
/// keeps no descriptors across a restart.
fn no_descriptors(name: &str) -> NetdevError {
    NetdevError::StaleDescriptors {
        dev: name.to_string(),
        reason: "a VPN port is opened from its options".into(),
    }
}
