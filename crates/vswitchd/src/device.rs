//! A port's device, opened afresh or adopted from the descriptors a previous rvswitchd kept
//! (see `fdstore`), behind one type so the reconciler treats both alike.

use std::os::fd::OwnedFd;

use netdev::{Labelled, Netdev, NetdevError, SystemPort, TapPort, TunnelEndpoints, TunnelPort};
use tracing::info;

use crate::state::PortKind;

/// An open device of either backend.
pub enum Device {
    System(SystemPort),
    Tap(TapPort),
    Tunnel(TunnelPort),
}

impl Device {
    /// Opens (system, tunnel) or creates (tap, internal) the device of port `name`. Tunnel
    /// ports share the UDP sockets in `endpoints`.
    pub fn open(
        name: &str,
        kind: PortKind,
        rx_queues: usize,
        endpoints: &TunnelEndpoints,
    ) -> Result<Device, NetdevError> {
        match kind {
            PortKind::System => SystemPort::open_per_cpu(name, rx_queues).map(|p| {
                if p.rx_queues() < rx_queues {
                    info!(port = name, "per-CPU receive queues refused by the kernel; one queue");
                }
                Device::System(p)
            }),
            PortKind::Tap => TapPort::create(name).map(Device::Tap),
            PortKind::Internal => TapPort::create_internal(name).map(Device::Tap),
            PortKind::Tunnel(cfg) => TunnelPort::open(name, cfg, endpoints).map(Device::Tunnel),
        }
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
        }
    }

    pub fn ifindex(&self) -> u32 {
        match self {
            Device::System(p) => p.ifindex(),
            Device::Tap(p) => p.ifindex(),
            Device::Tunnel(_) => 0,
        }
    }

    /// The descriptors to keep for a restart.
    pub fn descriptors(&self) -> Vec<Labelled<'_>> {
        match self {
            Device::System(p) => p.descriptors(),
            Device::Tap(p) => p.descriptors(),
            Device::Tunnel(p) => p.descriptors(),
        }
    }

    pub fn into_netdev(self) -> Box<dyn Netdev> {
        match self {
            Device::System(p) => Box::new(p),
            Device::Tap(p) => Box::new(p),
            Device::Tunnel(p) => Box::new(p),
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
