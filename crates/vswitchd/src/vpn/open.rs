//! Opening a VPN gateway port: for WireGuard read the wg-quick file (refusing a readable
//! key), resolve the peer, bind the UDP socket; for a tun uplink open the device. Then the
//! same gateway and services for both. Runs on the reconciler's thread (DNS may block), never
//! on the forwarding thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};

use boringtun::noise::Tunn;
use boringtun::x25519::{PublicKey, StaticSecret};
use gateway::{Gateway, GatewaySpec, Prefix, WgConfError};
use l3::dhcp::{DhcpConfig, DhcpConfigError, DhcpServer};
use l3::nat::{Nat, NatConfig};
use packet::MacAddr;
use tracing::{info, warn};

use super::{GatewayPort, Transport, TunPort, TunUplink, VpnDevice, VpnPort, WireGuard};
use crate::state::{DhcpOptions, VpnOptions, VpnUplink};

#[derive(Debug, thiserror::Error)]
pub enum VpnOpenError {
    #[error(transparent)]
    Config(#[from] WgConfError),
    #[error("{file}: Endpoint {endpoint}: {reason}")]
    Endpoint { file: String, endpoint: String, reason: String },
    #[error("VPN port {port}: DHCP: {0}", port = .1)]
    Dhcp(DhcpConfigError, String),
    #[error("{0}: options:nat=true needs an IPv4 address to translate to")]
    NoNatAddress(String),
    #[error("VPN port {port}: tun uplink: {source}")]
    Tun {
        port: String,
        #[source]
        source: netdev::NetdevError,
    },
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

/// Opens the VPN port `name` configured by `opts`; its DHCP leases (if it serves DHCP) are
/// kept in `state_dir` when there is one.
pub fn open(name: &str, opts: &VpnOptions, state_dir: Option<&Path>) -> Result<VpnDevice, VpnOpenError> {
    match &opts.uplink {
        VpnUplink::WireGuard(file) => open_wireguard(name, file, opts, state_dir).map(VpnDevice::from),
        VpnUplink::Tun(dev) => open_tun(name, dev, opts, state_dir).map(VpnDevice::from),
    }
}

/// What the tunnel tells the gateway: where it routes, its MTU, the address NAT translates
/// to, its DNS servers (wg-quick's `DNS` line: IPv4 for the zone's DHCP, IPv6 for its RAs);
/// `source` names it in errors.
struct TunnelFacts {
    source: String,
    allowed: Vec<Prefix>,
    mtu: u16,
    nat_address: Option<Ipv4Addr>,
    /// The NAT address follows a device (a tun): without one now, the port opens anyway and
    /// the zone's packets wait for it (`nat-no-address`).
    nat_follows_device: bool,
    dns: Vec<IpAddr>,
}

/// The built-in WireGuard: the wg-quick file (refusing a readable key), the peer resolved,
/// the UDP socket bound.
fn open_wireguard(
    name: &str,
    path: &Path,
    opts: &VpnOptions,
    state_dir: Option<&Path>,
) -> Result<VpnPort, VpnOpenError> {
    let conf = gateway::wgconf::load(path)?;
    let file = path.display().to_string();
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
    let facts = TunnelFacts {
        source: file,
        allowed: conf.peer.allowed_ips.clone(),
        mtu: conf.interface.mtu.unwrap_or(gateway::DEFAULT_TUNNEL_MTU),
        nat_address: conf.interface.addresses.iter().find_map(|p| ipv4(p.addr())),
        nat_follows_device: false,
        dns: conf.interface.dns.clone(),
    };
    let (gw, leases) = gateway(name, opts, facts, state_dir)?;
    let port = VpnPort::new(name, WireGuard::new(tunn, sock, endpoint), gw).map_err(io("epoll/timerfd"))?;
    Ok(with_leases(port, leases))
}

/// A VPN client's tun device `dev`: opened now if it exists (else at a later tick; the zone
/// is closed meanwhile). Everything goes into it (the client decides where); the MTU is the
/// device's, or [`gateway::DEFAULT_TUNNEL_MTU`] while it is absent; NAT translates to its
/// IPv4 address. Both are read again every tick (the port follows them), so a device that
/// is absent or has no address yet only delays the zone.
fn open_tun(
    name: &str,
    dev: &str,
    opts: &VpnOptions,
    state_dir: Option<&Path>,
) -> Result<TunPort, VpnOpenError> {
    let tun_err = |source| VpnOpenError::Tun { port: name.to_string(), source };
    let uplink = TunUplink::open(dev).map_err(tun_err)?;
    let info = netdev::interface_info(dev).map_err(tun_err)?;
    let facts = TunnelFacts {
        source: format!("tun uplink {dev}"),
        allowed: [IpAddr::from(Ipv4Addr::UNSPECIFIED), Ipv6Addr::UNSPECIFIED.into()]
            .into_iter()
            .filter_map(|a| Prefix::new(a, 0))
            .collect(),
        mtu: info.map_or(gateway::DEFAULT_TUNNEL_MTU, |i| u16::try_from(i.mtu).unwrap_or(u16::MAX)),
        nat_address: if opts.nat { netdev::ipv4_address(dev).map_err(tun_err)? } else { None },
        nat_follows_device: true,
        dns: Vec::new(),
    };
    let (gw, leases) = gateway(name, opts, facts, state_dir)?;
    let io = |source| VpnOpenError::Io { port: name.to_string(), op: "epoll/timerfd", source };
    let port = TunPort::new(name, uplink, gw).map_err(io)?;
    Ok(with_leases(port, leases))
}

fn with_leases<T: Transport>(port: GatewayPort<T>, leases: Option<PathBuf>) -> GatewayPort<T> {
    match leases {
        Some(path) => port.with_lease_file(path),
        None => port,
    }
}

fn ipv4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// The gateway with its services: MTU from the tunnel, NAT to its address, the DHCP server
/// with the leases restored from `state_dir/dhcp-NAME.leases` (and that path).
fn gateway(
    name: &str,
    opts: &VpnOptions,
    facts: TunnelFacts,
    state_dir: Option<&Path>,
) -> Result<(Gateway, Option<PathBuf>), VpnOpenError> {
    let spec = GatewaySpec {
        mac: gateway_mac(name),
        ip: opts.gateway,
        subnet: opts.subnet,
        allowed: facts.allowed,
        mtu: facts.mtu,
        v6: opts.v6,
    };
    let mut gw = Gateway::new(spec);
    let zone_dns = opts.dhcp.as_ref().map_or((&[][..], &[][..]), |d| (&d.dns[..], &d.dns6[..]));
    let (dns, dns6) = offered_dns(zone_dns, &facts.dns);
    if opts.v6.is_some() {
        gw = advertise_dns(gw, name, &facts.source, &dns6);
    }
    if opts.nat {
        let public = match facts.nat_address {
            Some(a) => a,
            // Unspecified: no address to translate to yet (see Gateway::set_nat_address).
            None if facts.nat_follows_device => Ipv4Addr::UNSPECIFIED,
            None => return Err(VpnOpenError::NoNatAddress(facts.source.clone())),
        };
        gw = gw.with_nat(Nat::new(NatConfig::new(public)));
    }
    let Some(d) = &opts.dhcp else { return Ok((gw, None)) };
    let mut server = dhcp_server(opts, d, dns, facts.mtu).map_err(|e| VpnOpenError::Dhcp(e, name.into()))?;
    let leases = state_dir.map(|dir| dir.join(format!("dhcp-{name}.leases")));
    if let Some(text) = leases.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        match server.restore(&text, now) {
            Ok(r) => {
                info!(port = name, restored = r.bindings.len(), skipped = r.skipped, "DHCP leases restored")
            }
            Err(e) => warn!(port = name, "DHCP lease file not used: {e}"),
        }
    }
    Ok((gw.with_dhcp(server), leases))
}

/// Router = the gateway, DNS = `dns` (the zones file's, else wg-quick's DNS line), MTU = the
/// tunnel's (the VMs then never send what the tunnel cannot carry).
fn dhcp_server(
    opts: &VpnOptions,
    d: &DhcpOptions,
    dns: Vec<Ipv4Addr>,
    mtu: u16,
) -> Result<DhcpServer, DhcpConfigError> {
    DhcpServer::new(DhcpConfig {
        server: opts.gateway,
        prefix_len: opts.subnet.len(),
        range: d.range,
        dns,
        mtu: Some(mtu),
        lease_secs: LEASE_SECS,
        statics: d.statics.clone(),
    })
}

/// The gateway whose RAs name `dns6` (RDNSS); says so when it had to leave some out.
fn advertise_dns(gw: Gateway, name: &str, source: &str, dns6: &[Ipv6Addr]) -> Gateway {
    let gw = gw.with_dns6(dns6);
    if gw.dns6().len() < dns6.len() {
        let (sent, max) = (gw.dns6(), l3::nd::MAX_RDNSS);
        warn!(port = name, "{source}: of the IPv6 DNS servers {dns6:?} the RAs name {sent:?} (none link-local, at most {max})");
    }
    gw
}

/// The DNS servers the zone offers, (IPv4 for DHCP, IPv6 for the RAs): the zones file's
/// `dhcp.dns` (`options:dhcp_dns`) if it names any, of either family, else the tunnel's own
/// (wg-quick's `DNS` line; a tun has none). One list replaces the other whole: a zones file
/// that names only an IPv4 resolver does not get the office's IPv6 one mixed in.
fn offered_dns(zone: (&[Ipv4Addr], &[Ipv6Addr]), tunnel: &[IpAddr]) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    if !zone.0.is_empty() || !zone.1.is_empty() {
        return (zone.0.to_vec(), zone.1.to_vec());
    }
    let v6 = tunnel.iter().filter_map(|a| match a {
        IpAddr::V6(a) => Some(*a),
        IpAddr::V4(_) => None,
    });
    (tunnel.iter().copied().filter_map(ipv4).collect(), v6.collect())
}

/// An hour, dnsmasq's default.
const LEASE_SECS: u32 = 3600;

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
    fn the_zones_dns_overrides_the_tunnels() {
        let (zone, wg) = (Ipv4Addr::new(198, 18, 60, 53), Ipv4Addr::new(198, 18, 61, 53));
        let (zone6, wg6): (Ipv6Addr, Ipv6Addr) =
            ("2001:db8:60::53".parse().unwrap(), "fd00::53".parse().unwrap());
        let tunnel = [wg.into(), wg6.into()];
        assert_eq!(offered_dns((&[zone], &[]), &tunnel), (vec![zone], vec![]), "the zones file's wins whole");
        assert_eq!(offered_dns((&[], &[zone6]), &tunnel), (vec![], vec![zone6]), "in either family");
        assert_eq!(offered_dns((&[], &[]), &tunnel), (vec![wg], vec![wg6]), "else wg-quick's DNS line");
        assert_eq!(offered_dns((&[], &[]), &[]), (vec![], vec![]), "a tun zone without dhcp.dns offers none");
    }

    #[test]
    fn endpoints_resolve_without_dns_for_literals() {
        assert_eq!(resolve("198.18.0.1:51820").unwrap(), "198.18.0.1:51820".parse().unwrap());
        assert_eq!(resolve("[fd00::1]:51820").unwrap(), "[fd00::1]:51820".parse().unwrap());
    }
}
