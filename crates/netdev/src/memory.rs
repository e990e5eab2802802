//! An in-memory port for unit tests of code above this crate (the daemon's forwarding loop):
//! no device, no privileges. Frames injected through a [`MemoryHandle`] are received by the
//! [`MemoryPort`]; frames the port transmits are collected for the handle to read. The port's
//! fd is an eventfd that is readable exactly while frames wait (or the port is gone), so an
//! epoll loop treats it like a real device. The handle can make the port fail as "gone", as a
//! deleted veth or a closed tap does.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::batch::RxBatch;
use crate::error::NetdevError;
use crate::vnet::VNET_HDR_LEN;
use crate::{Netdev, TxFrame};

#[derive(Debug, Default)]
struct State {
    inbox: VecDeque<Vec<u8>>,
    sent: Vec<Vec<u8>>,
    gone: bool,
    closed: bool,
    kernel_drops: u64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    sent_cv: Condvar,
    /// Readable while `inbox` is non-empty or the port is gone.
    event: OwnedFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock left plain data behind; keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.event.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn unsignal(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; the eventfd is non-blocking.
        unsafe { libc::read(self.event.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// The port side: what the code under test owns, as it would own a [`crate::TapPort`].
#[derive(Debug)]
pub struct MemoryPort {
    name: String,
    shared: Arc<Shared>,
}

/// The test's side of a [`MemoryPort`]; stays usable after the port was dropped.
#[derive(Clone, Debug)]
pub struct MemoryHandle {
    shared: Arc<Shared>,
}

impl MemoryPort {
    /// A port named `name` and the handle that drives it. Fails only if no eventfd can be made.
    pub fn new(name: &str) -> io::Result<(MemoryPort, MemoryHandle)> {
        // SAFETY: eventfd has no memory arguments; a non-negative result is a fresh fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is valid and owned by nobody else.
        let event = unsafe { OwnedFd::from_raw_fd(fd) };
        let shared = Arc::new(Shared { state: Mutex::default(), sent_cv: Condvar::new(), event });
        Ok((MemoryPort { name: name.to_string(), shared: shared.clone() }, MemoryHandle { shared }))
    }
}

impl Drop for MemoryPort {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
    }
}

impl MemoryHandle {
    /// Queues `frame` as if it arrived on the device.
    pub fn inject(&self, frame: &[u8]) {
        let mut st = self.shared.lock();
        st.inbox.push_back(frame.to_vec());
        self.shared.signal();
    }

    /// Frames the port sent since the last call, oldest first.
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.shared.lock().sent)
    }

    /// Like [`MemoryHandle::take_sent`], but first waits (at most `timeout`) until at least `n`
    /// frames were sent, for code that forwards on another thread.
    pub fn wait_sent(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while st.sent.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self.shared.sent_cv.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        std::mem::take(&mut st.sent)
    }

    /// Frames injected but not yet received.
    pub fn pending(&self) -> usize {
        self.shared.lock().inbox.len()
    }

    /// Makes every later receive and send fail with [`NetdevError::DeviceGone`], and the fd
    /// readable, as when the device is deleted under an open port.
    pub fn vanish(&self) {
        self.shared.lock().gone = true;
        self.shared.signal();
    }

    /// Counts `n` frames as lost before they could be read, as a full receive ring does.
    pub fn drop_in_kernel(&self, n: u64) {
        self.shared.lock().kernel_drops += n;
    }

    /// True once the [`MemoryPort`] was dropped (the device closed).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }
}

impl Netdev for MemoryPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn raw_fd(&self) -> RawFd {
        self.shared.event.as_raw_fd()
    }

    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, NetdevError> {
        batch.clear();
        let mut st = self.shared.lock();
        if st.gone {
            return Err(NetdevError::DeviceGone(self.name.clone()));
        }
        let mut n = 0;
        while n < batch.capacity() {
            let Some(frame) = st.inbox.pop_front() else { break };
            let Some(area) = batch.rx_area(n) else { break };
            let Some(dst) = area.get_mut(VNET_HDR_LEN..VNET_HDR_LEN + frame.len()) else {
                continue; // longer than any device delivers: dropped
            };
            dst.copy_from_slice(&frame);
            area[..VNET_HDR_LEN].fill(0);
            if batch.set_frame(n, n, VNET_HDR_LEN + frame.len(), None) {
                n += 1;
            }
        }
        if st.inbox.is_empty() {
            self.shared.unsignal();
        }
        batch.set_len(n);
        Ok(n)
    }

    fn take_kernel_drops(&mut self) -> u64 {
        std::mem::take(&mut self.shared.lock().kernel_drops)
    }

    fn transmit(&mut self, frames: &[TxFrame<'_>]) -> Result<usize, NetdevError> {
        let mut st = self.shared.lock();
        if st.gone {
            return Err(NetdevError::DeviceGone(self.name.clone()));
        }
        st.sent.extend(frames.iter().map(|f| f.parts.iter().flat_map(|p| p.iter().copied()).collect()));
        self.shared.sent_cv.notify_all();
        Ok(frames.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSlice;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn injected_frames_are_received_in_order_and_the_fd_follows() {
        let (mut port, h) = MemoryPort::new("mem0").unwrap();
        assert!(!readable(port.raw_fd()));
        h.inject(&[1; 60]);
        h.inject(&[2; 61]);
        h.inject(&[3; 62]);
        assert!(readable(port.raw_fd()));
        let mut b = RxBatch::new(2);
        assert_eq!(port.recv_batch(&mut b).unwrap(), 2);
        assert_eq!((b.frame(0), b.frame(1)), (&[1; 60][..], &[2; 61][..]));
        assert!(readable(port.raw_fd()), "one frame still waits");
        assert_eq!(port.recv_batch(&mut b).unwrap(), 1);
        assert_eq!(b.frame(0), &[3; 62]);
        assert!(!readable(port.raw_fd()));
        assert_eq!(port.recv_batch(&mut b).unwrap(), 0);
    }

    #[test]
    fn sent_frames_are_joined_from_their_parts() {
        let (mut port, h) = MemoryPort::new("mem0").unwrap();
        let parts = [IoSlice::new(&[1, 2]), IoSlice::new(&[3])];
        assert_eq!(port.send_batch(&[&parts, &parts[1..]]).unwrap(), 2);
        assert_eq!(h.wait_sent(2, Duration::from_secs(1)), vec![vec![1, 2, 3], vec![3]]);
        assert!(h.take_sent().is_empty());
    }

    #[test]
    fn a_vanished_port_is_gone_both_ways_and_wakes_its_poller() {
        let (mut port, h) = MemoryPort::new("mem0").unwrap();
        h.vanish();
        assert!(readable(port.raw_fd()));
        assert!(port.recv_batch(&mut RxBatch::new(1)).unwrap_err().is_gone());
        assert!(port.send_batch(&[&[IoSlice::new(&[0; 60])]]).unwrap_err().is_gone());
        assert!(!h.is_closed());
        drop(port);
        assert!(h.is_closed());
    }

    #[test]
    fn oversized_frames_are_dropped() {
        let (mut port, h) = MemoryPort::new("mem0").unwrap();
        h.inject(&vec![0; crate::MAX_FRAME + 1]);
        h.inject(&[5; 60]);
        let mut b = RxBatch::new(4);
        assert_eq!(port.recv_batch(&mut b).unwrap(), 1);
        assert_eq!(b.frame(0), &[5; 60]);
    }
}
