//! A periodic timerfd: boringtun's `update_timers` wants a call about every 250 ms, and the
//! port's only way to be woken is its pollable fd.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub struct Timer(OwnedFd);

impl Timer {
    pub fn periodic(every: Duration) -> io::Result<Timer> {
        // SAFETY: no memory arguments; a non-negative result is a fresh fd we own.
        let fd =
            unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is valid and owned by nobody else.
        let timer = Timer(unsafe { OwnedFd::from_raw_fd(fd) });
        let ts =
            libc::timespec { tv_sec: every.as_secs() as libc::time_t, tv_nsec: every.subsec_nanos() as _ };
        let spec = libc::itimerspec { it_interval: ts, it_value: ts };
        // SAFETY: spec is a valid itimerspec for the call; the old value is not asked for.
        if unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(timer)
    }

    /// True (and re-armed) when the timer expired since the last call.
    pub fn fired(&self) -> bool {
        let mut n: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; the fd is non-blocking.
        let r = unsafe { libc::read(self.0.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
        r == 8 && n > 0
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
