//! Capturing and injecting raw frames through a netdev port, for tests that check exactly which
//! frames arrive where.

use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use netdev::{Netdev, RxBatch};

/// Receives frames on `port` for up to `duration` or until `max` frames arrived. Stops early if
/// the port fails (e.g. its device vanished).
pub fn frame_capture<P: Netdev + ?Sized>(port: &mut P, duration: Duration, max: usize) -> Vec<Vec<u8>> {
    frame_capture_until(port, duration, max, || false)
}

/// Like [`frame_capture`], and also stops as soon as `stop()` returns true (checked at least
/// every 20 ms): for a capture that runs while another thread drives a scenario of unknown
/// length (a VM booting), bounded by `duration` all the same.
pub fn frame_capture_until<P: Netdev + ?Sized>(
    port: &mut P,
    duration: Duration,
    max: usize,
    stop: impl Fn() -> bool,
) -> Vec<Vec<u8>> {
    frame_capture_counted(port, duration, max, stop, &AtomicUsize::new(0))
}

/// Like [`frame_capture_until`], and keeps `seen` at the number of frames captured so far: a
/// sender can pace itself by it, so it never outruns a capture that the machine's load delays
/// (a capture ring that overflows would hide the very frames a test looks for).
pub fn frame_capture_counted<P: Netdev + ?Sized>(
    port: &mut P,
    duration: Duration,
    max: usize,
    stop: impl Fn() -> bool,
    seen: &AtomicUsize,
) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut batch = RxBatch::new(max.clamp(1, 32));
    let deadline = Instant::now() + duration;
    // Each round either receives or waits up to 20 ms, so this bounds the loop by time as well.
    let max_rounds = duration.as_millis() / 20 + max as u128 + 2;
    for _ in 0..max_rounds {
        if frames.len() >= max {
            break;
        }
        match port.recv_batch(&mut batch) {
            Ok(0) => {}
            Ok(n) => {
                for i in 0..n.min(max - frames.len()) {
                    frames.push(batch.frame(i).to_vec());
                }
                seen.store(frames.len(), Ordering::Relaxed);
            }
            Err(_) => break,
        }
        let now = Instant::now();
        if now >= deadline || stop() {
            break;
        }
        if !batch.is_empty() {
            continue; // more may be queued: receive again before waiting
        }
        let wait = (deadline - now).min(Duration::from_millis(20));
        let mut pfd = libc::pollfd { fd: port.raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; the timeout is small and positive.
        unsafe { libc::poll(&mut pfd, 1, wait.as_millis().max(1) as libc::c_int) };
    }
    frames
}

/// Sends one frame on `port`; an error if the kernel did not take it.
pub fn send_frame<P: Netdev + ?Sized>(port: &mut P, frame: &[u8]) -> anyhow::Result<()> {
    let slices = [IoSlice::new(frame)];
    let n = port.send_batch(&[&slices])?;
    if n != 1 {
        bail!("{}: frame of {} bytes not accepted", port.name(), frame.len());
    }
    Ok(())
}
