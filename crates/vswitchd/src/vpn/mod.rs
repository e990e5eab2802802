//! A zone's gateway port (Interface `type=rvswitch-vpn`) with its uplink: the built-in
//! WireGuard (`options:wireguard`, boringtun over a UDP socket) or a tun device that another
//! VPN client holds (`options:tun`). To the datapath it is one more [`netdev::Netdev`]:
//! frames the bridge sends it go through the pure [`gateway::Gateway`] into the tunnel;
//! packets from the tunnel come back as frames for the zone. It has no kernel device on the
//! bridge and no other way out, so a zone whose only uplink it is can reach nothing but the
//! tunnel: the kill switch is the absence of a path. While the tunnel is down the gateway
//! routes nothing (`vpn-down`).

mod health;
mod mmsg;
mod open;
mod outbox;
mod port;
mod timer;
mod transport;
mod tun;
mod wireguard;

pub use open::{open, VpnOpenError};
pub use port::GatewayPort;
pub use transport::{Transport, TransportStats};
pub use tun::TunUplink;
pub use wireguard::WireGuard;

/// The gateway port with the built-in WireGuard.
pub type VpnPort = GatewayPort<WireGuard>;
/// The gateway port on a tun device.
pub type TunPort = GatewayPort<TunUplink>;

/// An opened gateway port, whatever its transport: the datapath's netdev and the status the
/// reconciler reads.
pub struct VpnDevice {
    pub port: Box<dyn netdev::Netdev>,
    pub shared: VpnShared,
}

impl<T: Transport + 'static> From<GatewayPort<T>> for VpnDevice {
    fn from(p: GatewayPort<T>) -> VpnDevice {
        VpnDevice { shared: p.shared(), port: Box::new(p) }
    }
}

use std::sync::{Arc, Mutex};

use ctl::protocol::VpnStatus;

/// The drop reason for super-frames the port cannot segment (UDP fragmentation offload, an
/// unknown GSO type), counted beside the gateway's own reasons.
pub const UNSEGMENTED: &str = "gso-unsegmented";
/// Encrypted datagrams the socket did not take (its buffer full, a send error).
pub const SEND_LOST: &str = "send-lost";

/// Every drop reason a VPN port reports: a fixed set, so metrics can export each one (zeros
/// included) with bounded cardinality.
pub fn drop_reasons() -> impl Iterator<Item = &'static str> {
    gateway::DropReason::ALL.iter().map(|r| r.as_str()).chain([UNSEGMENTED, SEND_LOST])
}

/// The port's status, written by the forwarding thread (every timer tick), read by the
/// reconciler for `rvsctl show` and the database.
#[derive(Clone, Debug, Default)]
pub struct VpnShared(Arc<Mutex<VpnStatus>>);

impl VpnShared {
    pub fn get(&self) -> VpnStatus {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, s: VpnStatus) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
}
