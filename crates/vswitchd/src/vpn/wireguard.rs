//! The built-in WireGuard transport: boringtun's `Tunn` over one non-blocking UDP socket to
//! the peer; up and down by [`Health`] (handshake age, unanswered data).

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use boringtun::noise::{Tunn, TunnResult};
use netdev::{NetdevError, MAX_FRAME};
use tracing::debug;

use super::health::Health;
use super::transport::{Transport, TransportStats};

/// Room for WireGuard's header and tag around a packet (and for a 148-byte handshake).
const OVERHEAD: usize = 64;

pub struct WireGuard {
    pub(super) tunn: Tunn,
    pub(super) sock: UdpSocket,
    endpoint: SocketAddr,
    health: Health,
    /// Datagrams that did not authenticate.
    pub(super) bad_datagrams: u64,
    /// Scratch: a datagram received, boringtun's output.
    rx: Vec<u8>,
    out: Vec<u8>,
}

impl WireGuard {
    pub fn new(tunn: Tunn, sock: UdpSocket, endpoint: SocketAddr) -> WireGuard {
        WireGuard {
            tunn,
            sock,
            endpoint,
            health: Health::default(),
            bad_datagrams: 0,
            rx: vec![0; MAX_FRAME + OVERHEAD],
            out: vec![0; MAX_FRAME + OVERHEAD],
        }
    }

    /// One datagram from the network: handshake traffic answered, data decrypted and handed
    /// to `deliver`.
    fn datagram(&mut self, len: usize, from: SocketAddr, deliver: &mut dyn FnMut(&mut [u8])) {
        let res = self.tunn.decapsulate(Some(from.ip()), &self.rx[..len], &mut self.out);
        let packet = match res {
            TunnResult::Err(e) => {
                debug!(%from, "dropped a datagram: {e:?}");
                self.bad_datagrams += 1;
                return;
            }
            TunnResult::Done => None,
            TunnResult::WriteToNetwork(p) => {
                // A handshake answer (or cookie) goes back where the message came from.
                send(&self.sock, p, from);
                self.flush_queued();
                None
            }
            TunnResult::WriteToTunnelV4(p, _) | TunnResult::WriteToTunnelV6(p, _) => Some(p),
        };
        self.health.heard(Instant::now());
        let Some(packet) = packet else { return };
        // Roaming (whitepaper §2.1): the peer is where its last authenticated data came from.
        self.endpoint = from;
        deliver(packet);
    }

    /// After a handshake completes boringtun hands back the packets it queued meanwhile.
    fn flush_queued(&mut self) {
        for _ in 0..1024 {
            match self.tunn.decapsulate(None, &[], &mut self.out) {
                TunnResult::WriteToNetwork(p) => send(&self.sock, p, self.endpoint),
                _ => break,
            }
        }
    }
}

impl Transport for WireGuard {
    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.sock.as_raw_fd())
    }

    /// boringtun's timers (rekey, keepalive), a handshake while down or idle.
    fn tick(&mut self, now: Instant) -> Option<RawFd> {
        if let TunnResult::WriteToNetwork(p) = self.tunn.update_timers(&mut self.out) {
            send(&self.sock, p, self.endpoint);
        }
        let up = self.is_up(now);
        // Down: retry a handshake every 5 s; up but silent: probe with one (see `health`).
        let retry = self.health.initiate(now, up);
        let probe = !retry && self.health.probe(now, up);
        if probe {
            debug!("the peer has been silent for 25 s: probing it with a handshake");
        }
        if retry || probe {
            if let TunnResult::WriteToNetwork(p) = self.tunn.format_handshake_initiation(&mut self.out, true)
            {
                send(&self.sock, p, self.endpoint);
            }
        }
        None
    }

    fn is_up(&self, now: Instant) -> bool {
        self.health.is_up(now, self.tunn.time_since_last_handshake())
    }

    fn send(&mut self, ip: &[u8], now: Instant) {
        if let TunnResult::WriteToNetwork(p) = self.tunn.encapsulate(ip, &mut self.out) {
            send(&self.sock, p, self.endpoint);
        }
        self.health.sent(now);
    }

    fn recv(&mut self, room: usize, deliver: &mut dyn FnMut(&mut [u8])) -> Result<(), NetdevError> {
        for _ in 0..room {
            match self.sock.recv_from(&mut self.rx) {
                Ok((len, from)) => self.datagram(len, from, deliver),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => break,
                Err(e) => return Err(NetdevError::Io { op: "recvfrom", dev: self.endpoint(), source: e }),
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "wireguard"
    }

    fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    fn stats(&self) -> TransportStats {
        let (since, tx, rx, ..) = self.tunn.stats();
        TransportStats {
            since_handshake: since,
            rx_bytes: rx as u64,
            tx_bytes: tx as u64,
            bad_datagrams: self.bad_datagrams,
        }
    }
}

/// Sends one datagram; a full socket buffer or an unreachable peer loses it, as a wire would
/// (WireGuard's timers recover).
fn send(sock: &UdpSocket, p: &[u8], to: SocketAddr) {
    if let Err(e) = sock.send_to(p, to) {
        if e.kind() != ErrorKind::WouldBlock {
            debug!(%to, "WireGuard send failed: {e}");
        }
    }
}
