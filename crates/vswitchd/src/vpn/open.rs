//! Opening a VPN gateway port: read the wg-quick file (refusing a readable key), resolve the
//! peer, bind the UDP socket. Runs on the reconciler's thread (DNS may block), never on the
//! forwarding thread.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};

use boringtun::noise::Tunn;
use boringtun::x25519::{PublicKey, StaticSecret};
use gateway::{Gateway, GatewaySpec, WgConfError};
use packet::MacAddr;
use tracing::warn;

use super::port::VpnPort;
use crate::state::VpnOptions;

#[derive(Debug, thiserror::Error)]
pub enum VpnOpenError {
    #[error(transparent)]
    Config(#[from] WgConfError),
    #[error("{file}: Endpoint {endpoint}: {reason}")]
    Endpoint { file: String, endpoint: String, reason: String },
    #[error("VPN port {port}: {op} failed: {source}")]
    Io {
        port: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A locally administered, stable MAC for the gateway of port `name`, so VMs' ARP caches stay
/// right across restarts.
pub fn gateway_mac(name: &str) -> MacAddr {
    // FNV-1a over the name: stable, no dependency, good enough to tell gateways apart.
    let h =
        name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let b = h.to_be_bytes();
    MacAddr([0x02, b[3], b[4], b[5], b[6], b[7]])
}

/// Opens the VPN port `name` configured by `opts`.
pub fn open(name: &str, opts: &VpnOptions) -> Result<VpnPort, VpnOpenError> {
    let conf = gateway::wgconf::load(&opts.wireguard)?;
    let file = opts.wireguard.display().to_string();
    for (line, key) in &conf.ignored {
        warn!(port = name, "{file}:{line}: {key} is a wg-quick script setting; rvswitch does not run it");
    }
    let written = conf.peer.endpoint.clone().unwrap_or_default();
    let endpoint = resolve(&written).map_err(|reason| VpnOpenError::Endpoint {
        file: file.clone(),
        endpoint: written.clone(),
        reason,
    })?;
    let io = |op| move |source| VpnOpenError::Io { port: name.to_string(), op, source };
    let port = conf.interface.listen_port.unwrap_or(0);
    let bind: SocketAddr = match endpoint {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, port).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, port).into(),
    };
    let sock = UdpSocket::bind(bind).map_err(io("bind"))?;
    sock.set_nonblocking(true).map_err(io("set_nonblocking"))?;
    let tunn = Tunn::new(
        StaticSecret::from(conf.interface.private_key),
        PublicKey::from(conf.peer.public_key),
        conf.peer.preshared_key,
        conf.peer.persistent_keepalive,
        0,
        None,
    );
    let gw = Gateway::new(GatewaySpec {
        mac: gateway_mac(name),
        ip: opts.gateway,
        subnet: opts.subnet,
        allowed: conf.peer.allowed_ips.clone(),
    });
    VpnPort::new(name, tunn, gw, sock, endpoint).map_err(io("epoll/timerfd"))
}

/// `host:port` or `[v6]:port`, as the standard library parses them (a name goes to DNS).
fn resolve(endpoint: &str) -> Result<SocketAddr, String> {
    endpoint
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "resolves to no address".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_macs_are_local_unicast_and_stable() {
        let a = gateway_mac("vpn-intranet");
        assert_eq!(a, gateway_mac("vpn-intranet"));
        assert_ne!(a, gateway_mac("vpn-other"));
        assert_eq!(a.0[0] & 0x03, 0x02, "locally administered, unicast");
    }

    #[test]
    fn endpoints_resolve_without_dns_for_literals() {
        assert_eq!(resolve("198.18.0.1:51820").unwrap(), "198.18.0.1:51820".parse().unwrap());
        assert_eq!(resolve("[fd00::1]:51820").unwrap(), "[fd00::1]:51820".parse().unwrap());
    }
}
