//! The tun transport: the zone's IP packets go to and come from an existing L3 device that
//! some VPN client holds (OpenVPN, wireguard-go, strongSwan...), through [`L3Uplink`]; the
//! host stack never routes them and never sees what arrives (the uplink's shield).
//!
//! The kill switch follows the device: up only while it exists, is admin-up and has carrier
//! (a tun has carrier while a process holds it). Gone (the client exited, or restarted and
//! deleted it) closes the uplink; a device by the same name is opened afresh (a new ifindex)
//! at the next tick. The state is read once per tick, not per packet; so are the device's
//! MTU and IPv4 address, which the client may change while it runs (the port makes the zone
//! follow them: [`Transport::device_facts`]).

use std::os::fd::RawFd;
use std::time::Instant;

use netdev::{DeviceFacts, L3Uplink, LinkState, NetdevError, L3_MAX_BATCH};
use tracing::{debug, info, warn};

use super::transport::{Transport, TransportStats};

/// Receive buffers: a tun's packets are at most its MTU (no offloads on the AF_PACKET side);
/// 16 KiB covers jumbo MTUs, bigger ones are cut and counted by the uplink.
const RX_BUF: usize = 16 * 1024;
/// Packets per receive call (one `recvmmsg`).
const RX_BATCH: usize = 32;

pub struct TunUplink {
    /// The device's name (the one constant: its ifindex changes when the client recreates it).
    dev: String,
    link: Option<L3Uplink>,
    /// The link state as of the last tick (Gone while there is no device).
    state: LinkState,
    /// Why the last open failed, so a device that stays away is logged once, not every tick.
    last_error: Option<String>,
    rx_bytes: u64,
    tx_bytes: u64,
    /// The device's MTU and address as of the last tick (what the VPN client set).
    facts: DeviceFacts,
    /// Non-IP and cut packets of uplinks already closed (the open one counts its own).
    closed_bad: u64,
    /// Zone packets the devices of uplinks already closed did not take (the open one counts
    /// its own `tx_dropped`): part of `send-lost`.
    closed_lost: u64,
    /// Sends that failed otherwise (an error the uplink does not count): `send-lost` too.
    send_errors: u64,
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
}

impl TunUplink {
    /// The uplink on device `dev`, opened now if it exists (an absent device is not an error:
    /// the zone stays closed until it appears). Refuses a device that is not L3 (Ethernet,
    /// loopback), which would never work.
    pub fn open(dev: &str) -> Result<TunUplink, NetdevError> {
        let mut t = TunUplink {
            dev: dev.to_string(),
            link: None,
            state: LinkState::Gone,
            last_error: None,
            rx_bytes: 0,
            tx_bytes: 0,
            facts: DeviceFacts::default(),
            closed_bad: 0,
            closed_lost: 0,
            send_errors: 0,
            bufs: vec![vec![0; RX_BUF]; RX_BATCH.min(L3_MAX_BATCH)],
            lens: vec![0; RX_BATCH.min(L3_MAX_BATCH)],
        };
        match L3Uplink::open(dev) {
            Ok(link) => t.adopt(link),
            Err(NetdevError::NoSuchDevice(_)) => {
                info!(dev, "tun uplink: no such device yet; the zone stays closed until it appears");
                t.last_error = Some("absent".into());
            }
            Err(e) => return Err(e),
        }
        Ok(t)
    }

    fn adopt(&mut self, mut link: L3Uplink) {
        self.state = link.state();
        self.facts = link.facts();
        let (mtu, ipv4) = (self.facts.mtu, self.facts.ipv4);
        info!(dev = self.dev, ifindex = link.ifindex(), state = ?self.state, ?mtu, ?ipv4, "tun uplink opened");
        self.link = Some(link);
        self.last_error = None;
    }

    /// Forgets a deleted device (closing the socket also takes it out of the poll set).
    fn close(&mut self) {
        if let Some(link) = self.link.take() {
            let d = link.drops();
            self.closed_bad += d.rx_not_ip + d.rx_truncated;
            self.closed_lost += d.tx_dropped;
            info!(
                dev = self.dev,
                ifindex = link.ifindex(),
                "tun uplink gone; waiting for the device to return"
            );
        }
        self.state = LinkState::Gone;
    }

    /// Tries to open the device again; logs a failure only when it differs from the last.
    fn reopen(&mut self) -> Option<RawFd> {
        match L3Uplink::open(&self.dev) {
            Ok(link) => {
                let fd = link.raw_fd();
                self.adopt(link);
                Some(fd)
            }
            Err(e) => {
                let why = match e {
                    NetdevError::NoSuchDevice(_) => "absent".to_string(),
                    other => other.to_string(),
                };
                if self.last_error.as_deref() != Some(why.as_str()) {
                    warn!(dev = self.dev, "tun uplink cannot be opened: {why}");
                    self.last_error = Some(why);
                }
                None
            }
        }
    }
}

impl Transport for TunUplink {
    fn poll_fd(&self) -> Option<RawFd> {
        self.link.as_ref().map(L3Uplink::raw_fd)
    }

    fn tick(&mut self, _now: Instant) -> Option<RawFd> {
        if let Some(link) = &mut self.link {
            self.state = link.state();
            if self.state != LinkState::Gone {
                self.facts = link.facts();
            }
        }
        if self.state == LinkState::Gone {
            self.close();
            return self.reopen();
        }
        None
    }

    fn is_up(&self, _now: Instant) -> bool {
        self.link.is_some() && self.state == LinkState::Up
    }

    fn send(&mut self, ip: &[u8], _now: Instant) {
        let Some(link) = &mut self.link else { return };
        match link.send_ip(ip) {
            Ok(true) => self.tx_bytes += ip.len() as u64,
            Ok(false) => {}
            Err(NetdevError::DeviceGone(_)) => self.close(),
            Err(e) => {
                self.send_errors += 1;
                debug!(dev = self.dev, "tun uplink send failed: {e}");
            }
        }
    }

    fn recv(&mut self, room: usize, deliver: &mut dyn FnMut(&mut [u8])) -> Result<(), NetdevError> {
        let Some(link) = &mut self.link else { return Ok(()) };
        let want = room.min(self.bufs.len());
        let n = match link.recv_ip(&mut self.bufs[..want], &mut self.lens[..want]) {
            Ok(n) => n,
            Err(NetdevError::DeviceGone(_)) => {
                self.close();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for (buf, &len) in self.bufs.iter_mut().zip(&self.lens).take(n) {
            self.rx_bytes += len as u64;
            deliver(&mut buf[..len]);
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "tun"
    }

    fn endpoint(&self) -> String {
        self.dev.clone()
    }

    fn stats(&self) -> TransportStats {
        let open = self.link.as_ref().map(L3Uplink::drops).unwrap_or_default();
        TransportStats {
            since_handshake: None,
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            bad_datagrams: self.closed_bad + open.rx_not_ip + open.rx_truncated,
            send_lost: self.closed_lost + open.tx_dropped + self.send_errors,
        }
    }

    fn device_facts(&self) -> Option<DeviceFacts> {
        self.link.as_ref().map(|_| self.facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_device_opens_closed_and_loopback_is_refused() {
        // The AF_PACKET socket needs CAP_NET_RAW; without it opening fails before the lookup.
        match TunUplink::open("rvsnotun0") {
            Ok(t) => {
                assert!(!t.is_up(Instant::now()), "no device, no tunnel");
                assert_eq!((t.endpoint().as_str(), t.poll_fd()), ("rvsnotun0", None));
            }
            Err(NetdevError::Io { op, .. }) => assert_eq!(op, "socket(AF_PACKET)"),
            Err(e) => panic!("unexpected: {e}"),
        }
        assert!(TunUplink::open("lo").is_err(), "loopback is no VPN device");
        assert!(matches!(TunUplink::open("a/b"), Err(NetdevError::InvalidName { .. })));
    }

    /// A real device in a namespace of the test's own: a persistent tun nobody holds, left
    /// admin-down, so the kernel refuses every send (ENETDOWN) — what a full queue (ENOBUFS)
    /// is to the transport too. Those are the port's `send-lost`; the MTU and address the
    /// "VPN client" sets are read at the next tick.
    #[test]
    fn refused_sends_are_send_lost_and_the_devices_mtu_and_address_are_read_each_tick() {
        if !testbed::require_root(
            "refused_sends_are_send_lost_and_the_devices_mtu_and_address_are_read_each_tick",
        ) {
            return;
        }
        let ns = testbed::Netns::new("tunu").expect("netns");
        let dev = testbed::unique("tu");
        ns.exec(&["ip", "tuntap", "add", "dev", &dev, "mode", "tun"]).expect("ip tuntap add");
        ns.exec(&["ip", "link", "set", "dev", &dev, "mtu", "1400"]).unwrap();
        let mut t = ns.run_in(|| TunUplink::open(&dev)).unwrap().expect("open the tun");
        let now = Instant::now();
        assert!(!t.is_up(now), "admin-down and held by no process");
        assert_eq!(t.device_facts(), Some(DeviceFacts { mtu: Some(1400), ipv4: None }));
        // IPv4, 20 bytes, 198.18.77.2 → 198.18.60.10 (the uplink only checks the version).
        let ip = [0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 77, 2, 198, 18, 60, 10];
        for _ in 0..3 {
            t.send(&ip, now);
        }
        let st = t.stats();
        assert_eq!((st.send_lost, st.tx_bytes), (3, 0), "{st:?}");

        ns.exec(&["ip", "link", "set", "dev", &dev, "mtu", "1300"]).unwrap();
        ns.exec(&["ip", "addr", "add", "198.18.77.1/32", "dev", &dev]).unwrap();
        assert_eq!(t.tick(now), None);
        let want = DeviceFacts { mtu: Some(1300), ipv4: Some(std::net::Ipv4Addr::new(198, 18, 77, 1)) };
        assert_eq!(t.device_facts(), Some(want), "read again at the tick");

        ns.exec(&["ip", "link", "del", "dev", &dev]).unwrap();
        t.tick(now);
        assert_eq!(t.device_facts(), None, "no device, nothing to follow");
        assert_eq!(t.stats().send_lost, 3, "the closed uplink's count is kept");
    }
}
