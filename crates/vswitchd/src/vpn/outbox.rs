//! Encrypted datagrams waiting for the socket. boringtun writes each one straight into one
//! preallocated buffer; a flush hands them all to the kernel in one `sendmmsg`, and each run of
//! equal-sized datagrams goes as one UDP GSO message (`UDP_SEGMENT`). The kernel then walks its
//! UDP, IP, routing and veth path once per run instead of once per datagram — that walk was
//! where the port's time went (profiled: 67 % of the forwarding thread in `sendto`, 8 % in
//! ChaCha20-Poly1305).

use std::io;
use std::net::SocketAddr;

/// The kernel's limit on segments in one UDP GSO message (`UDP_MAX_SEGMENTS`).
pub const MAX_SEGMENTS: usize = 64;
/// A GSO message is one UDP datagram to the stack until it is cut: its payload must fit the
/// 16-bit IP length (65535 − 20 − 8 over IPv4; the smaller of the two families).
pub const MAX_RUN_BYTES: usize = 65_507;
/// Room for a few full runs: one transmit of super-frames fills it, then it is flushed.
const CAPACITY: usize = 4 * 65_536;

/// One message for `sendmmsg`: `count` datagrams back to back at `start..start + len`, all
/// `segment` bytes long but the last, which may be shorter (UDP GSO's own rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: usize,
    pub len: usize,
    pub segment: usize,
    pub count: usize,
}

impl Run {
    /// The datagrams' lengths, in order.
    fn lengths(self) -> impl Iterator<Item = usize> {
        let last = self.len - self.segment * (self.count - 1);
        (0..self.count).map(move |i| if i + 1 == self.count { last } else { self.segment })
    }
}

/// The socket side of a flush, a trait so the flush logic is tested against scripted results.
pub trait Wire {
    /// Sends `runs` of `buf` to `to` as one `sendmmsg`, a run of more than one datagram as one
    /// UDP GSO message. Returns how many runs the kernel took (all of them, or the ones before
    /// the first it refused), or the error of the first run when it took none.
    fn send(&mut self, buf: &[u8], runs: &[Run], to: SocketAddr) -> io::Result<usize>;
}

/// What a flush did, in datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    pub sent: usize,
    /// Lost to a full socket buffer or a send error, as a wire would lose them (WireGuard's
    /// and TCP's timers recover).
    pub dropped: usize,
}

pub struct Outbox {
    buf: Vec<u8>,
    used: usize,
    runs: Vec<Run>,
    /// Whether runs may hold more than one datagram: cleared for good when the kernel refuses
    /// GSO on this socket's path (EIO: no checksum offload on the egress device; EINVAL).
    gso: bool,
    /// The last run ended with a shorter datagram: nothing more may join it.
    closed: bool,
}

impl Default for Outbox {
    fn default() -> Outbox {
        Outbox { buf: vec![0; CAPACITY], used: 0, runs: Vec::new(), gso: true, closed: false }
    }
}

impl Outbox {
    /// Room for one datagram of up to `need` bytes at the buffer's end; `None` when the box is
    /// full (flush, then ask again). Commit what was written with [`Outbox::commit`].
    pub fn space(&mut self, need: usize) -> Option<&mut [u8]> {
        self.buf.get_mut(self.used..)?.get_mut(..need)
    }

    /// Queues the datagram of `len` bytes just written at the start of [`Outbox::space`].
    pub fn commit(&mut self, len: usize) {
        let start = self.used;
        self.used += len;
        if let Some(r) = self.runs.last_mut().filter(|r| self.gso && !self.closed && joins(r, len)) {
            r.len += len;
            r.count += 1;
            self.closed = len < r.segment;
            return;
        }
        self.runs.push(Run { start, len, segment: len, count: 1 });
        self.closed = false;
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Datagrams queued.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.runs.iter().map(|r| r.count).sum()
    }

    /// Sends everything queued to `to` and empties the box. A partial `sendmmsg` goes on with
    /// the rest; EAGAIN drops the rest (the socket buffer is full: waiting would stall the
    /// whole datapath); a refused GSO message turns GSO off and resends its datagrams one by
    /// one; any other error loses that message only.
    pub fn flush(&mut self, wire: &mut impl Wire, to: SocketAddr) -> Flushed {
        let mut done = Flushed::default();
        let (mut at, mut interrupted) = (0, 0);
        while at < self.runs.len() {
            match wire.send(&self.buf[..self.used], &self.runs[at..], to) {
                // Nothing taken and no error: as full as EAGAIN.
                Ok(0) => break,
                Ok(n) => {
                    let n = n.min(self.runs.len() - at);
                    done.sent += self.runs[at..at + n].iter().map(|r| r.count).sum::<usize>();
                    at += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupted < 8 => interrupted += 1,
                Err(e) if self.runs[at].count > 1 && gso_refused(&e) => {
                    self.gso = false;
                    self.split_from(at);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    done.dropped += self.runs[at].count;
                    at += 1;
                }
            }
        }
        done.dropped += self.runs[at.min(self.runs.len())..].iter().map(|r| r.count).sum::<usize>();
        self.runs.clear();
        self.used = 0;
        self.closed = false;
        done
    }

    /// Replaces the runs from `at` on by one run per datagram.
    fn split_from(&mut self, at: usize) {
        let tail: Vec<Run> = self.runs.drain(at..).collect();
        for r in tail {
            let mut start = r.start;
            for len in r.lengths() {
                self.runs.push(Run { start, len, segment: len, count: 1 });
                start += len;
            }
        }
    }
}

/// Whether a datagram of `len` bytes may join run `r` (UDP GSO: equal sizes, the last one may
/// be shorter; within the kernel's segment and length limits).
fn joins(r: &Run, len: usize) -> bool {
    len <= r.segment && r.count < MAX_SEGMENTS && r.len + len <= MAX_RUN_BYTES
}

/// The errors with which the kernel refuses a UDP GSO message it cannot build on this path.
fn gso_refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::ENOPROTOOPT))
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
