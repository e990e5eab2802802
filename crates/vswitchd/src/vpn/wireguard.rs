//! The built-in WireGuard transport: boringtun's `Tunn` over one non-blocking UDP socket to
//! the peer; up and down by [`Health`] (handshake age, unanswered data). Both directions are
//! batched: the zone's packets are encrypted straight into the [`Outbox`] and leave with one
//! `sendmmsg` per transmit (UDP GSO runs) at [`Transport::flush`]; datagrams come in with
//! `recvmmsg` and are decrypted in turn.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use boringtun::noise::{Tunn, TunnResult};
use netdev::{NetdevError, MAX_FRAME};
use tracing::debug;

use super::health::Health;
use super::mmsg::{UdpReceiver, UdpSender};
use super::outbox::Outbox;
use super::transport::{Transport, TransportStats};

/// Room for WireGuard's header and tag around a packet (and for a 148-byte handshake).
const OVERHEAD: usize = 64;
/// boringtun's data overhead (16-byte header, 16-byte tag) and the size its handshake
/// initiation needs, which `encapsulate` may write instead of the packet.
const DATA_OVERHEAD: usize = 32;
const HANDSHAKE_LEN: usize = 148;
/// Datagrams one `recvmmsg` takes (the caller's room bounds it further).
const RX_SLOTS: usize = 32;
/// `recvmmsg` calls per receive while the room lasts (each datagram gives at most one packet).
const RX_ROUNDS: usize = 4;

pub struct WireGuard {
    pub(super) tunn: Tunn,
    pub(super) sock: UdpSocket,
    endpoint: SocketAddr,
    health: Health,
    /// Datagrams that did not authenticate (or were cut short).
    pub(super) bad_datagrams: u64,
    /// Encrypted datagrams the socket did not take.
    send_lost: u64,
    /// Datagrams received in one call; encrypted ones waiting to be sent, and their sender.
    rx: UdpReceiver,
    outbox: Outbox,
    sender: UdpSender,
    /// Scratch: boringtun's output.
    out: Vec<u8>,
}

impl WireGuard {
    pub fn new(tunn: Tunn, sock: UdpSocket, endpoint: SocketAddr) -> WireGuard {
        let sender = UdpSender::new(sock.as_raw_fd());
        WireGuard {
            tunn,
            sock,
            endpoint,
            health: Health::default(),
            bad_datagrams: 0,
            send_lost: 0,
            rx: UdpReceiver::new(RX_SLOTS, MAX_FRAME + OVERHEAD),
            outbox: Outbox::default(),
            sender,
            out: vec![0; MAX_FRAME + OVERHEAD],
        }
    }

    /// One datagram from the network: handshake traffic answered, data decrypted and handed
    /// to `deliver`.
    fn datagram(&mut self, datagram: &[u8], from: SocketAddr, deliver: &mut dyn FnMut(&mut [u8])) {
        let res = self.tunn.decapsulate(Some(from.ip()), datagram, &mut self.out);
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

    /// One `recvmmsg` of up to `room` datagrams, each handled in turn; false when fewer than
    /// asked waited (the socket is drained).
    fn recv_datagrams(
        &mut self,
        room: usize,
        deliver: &mut dyn FnMut(&mut [u8]),
    ) -> Result<bool, NetdevError> {
        let want = room.min(RX_SLOTS);
        // Taken out for the loop: its datagrams are borrowed while `self` decrypts them.
        let mut rx = std::mem::replace(&mut self.rx, UdpReceiver::new(0, 0));
        let n = match rx.recv(self.sock.as_raw_fd(), want) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => 0,
            Err(e) => {
                self.rx = rx;
                return Err(NetdevError::Io { op: "recvmmsg", dev: self.endpoint(), source: e });
            }
        };
        for i in 0..n {
            match rx.datagram(i) {
                (d, Some(from), false) => self.datagram(d, from, deliver),
                _ => self.bad_datagrams += 1,
            }
        }
        self.rx = rx;
        Ok(n == want)
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

    /// Encrypts `ip` straight into the outbox (flushed first when full); it leaves at the
    /// port's [`Transport::flush`].
    fn send(&mut self, ip: &[u8], now: Instant) {
        let need = (ip.len() + DATA_OVERHEAD).max(HANDSHAKE_LEN);
        if self.outbox.space(need).is_none() {
            self.flush();
        }
        let Some(dst) = self.outbox.space(need) else { return };
        // boringtun writes the datagram (or a handshake initiation) at the start of `dst`.
        if let TunnResult::WriteToNetwork(p) = self.tunn.encapsulate(ip, dst) {
            let n = p.len();
            self.outbox.commit(n);
        }
        self.health.sent(now);
    }

    /// Sends what the outbox holds to the peer: one `sendmmsg`, what the socket refuses
    /// counted as `send-lost`.
    fn flush(&mut self) {
        if !self.outbox.is_empty() {
            self.send_lost += self.outbox.flush(&mut self.sender, self.endpoint).dropped as u64;
        }
    }

    fn recv(&mut self, room: usize, deliver: &mut dyn FnMut(&mut [u8])) -> Result<(), NetdevError> {
        let mut left = room;
        for _ in 0..RX_ROUNDS {
            if left == 0 || !self.recv_datagrams(left, deliver)? {
                break;
            }
            left -= RX_SLOTS.min(left);
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
            send_lost: self.send_lost,
        }
    }
}

/// Sends one datagram outside the batch (handshake traffic, keepalives); a full socket buffer
/// or an unreachable peer loses it, as a wire would (WireGuard's timers recover).
fn send(sock: &UdpSocket, p: &[u8], to: SocketAddr) {
    if let Err(e) = sock.send_to(p, to) {
        if e.kind() != ErrorKind::WouldBlock {
            debug!(%to, "WireGuard send failed: {e}");
        }
    }
}
