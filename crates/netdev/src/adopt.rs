//! Ports rebuilt from descriptors a previous rvswitchd process opened, for restarts without an
//! outage: the descriptors outlive the process (a descriptor store holds copies), so the devices
//! and sockets stay open, frames arriving meanwhile wait in the receive rings, and a tap that
//! rvswitchd created keeps existing — a VM on it keeps its device.
//!
//! Each descriptor travels with a label that says what it is: `tx`, `rx<queue>:<ring blocks>`
//! (0 blocks: no ring) for a system port, `tap` for a tap or internal port.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::error::NetdevError;
use crate::info::ifindex_on;
use crate::name::IfName;
use crate::sys;

/// A labelled descriptor of a port.
pub type Labelled<'a> = (String, BorrowedFd<'a>);

/// Label of a system port's send socket.
pub(crate) const TX: &str = "tx";
/// Label of a tap's descriptor.
pub(crate) const TAP: &str = "tap";

/// Label of receive queue `queue` with a ring of `blocks` blocks.
pub(crate) fn rx_label(queue: usize, blocks: usize) -> String {
    format!("rx{queue}:{blocks}")
}

/// A system port's descriptors sorted out: the send socket and the receive queues in order,
/// each with its ring size.
pub(crate) struct SystemFds {
    pub tx: OwnedFd,
    pub rx: Vec<(OwnedFd, usize)>,
}

fn stale(dev: &str, reason: impl Into<String>) -> NetdevError {
    NetdevError::StaleDescriptors { dev: dev.to_owned(), reason: reason.into() }
}

/// Sorts out the labelled descriptors of system port `name`: one `tx`, receive queues 0..n
/// without gaps.
pub(crate) fn sort_system(name: &str, fds: Vec<(String, OwnedFd)>) -> Result<SystemFds, NetdevError> {
    let mut tx = None;
    let mut rx: Vec<(usize, OwnedFd, usize)> = Vec::new();
    for (label, fd) in fds {
        if label == TX {
            tx = Some(fd);
            continue;
        }
        let parsed = label
            .strip_prefix("rx")
            .and_then(|r| r.split_once(':'))
            .and_then(|(q, b)| Some((q.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
        match parsed {
            Some((q, blocks)) => rx.push((q, fd, blocks)),
            None => return Err(stale(name, format!("unknown descriptor label {label:?}"))),
        }
    }
    let tx = tx.ok_or_else(|| stale(name, "no send socket"))?;
    rx.sort_by_key(|(q, _, _)| *q);
    if rx.is_empty() || rx.iter().enumerate().any(|(i, (q, _, _))| i != *q) {
        return Err(stale(name, "receive queues missing"));
    }
    Ok(SystemFds { tx, rx: rx.into_iter().map(|(_, fd, b)| (fd, b)).collect() })
}

/// The device index an AF_PACKET socket is bound to.
pub(crate) fn bound_ifindex(fd: &OwnedFd, name: &str) -> Result<u32, NetdevError> {
    // SAFETY: `sockaddr_ll` is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `sll` is writable for `len` bytes; the kernel writes at most that much.
    let rc =
        unsafe { libc::getsockname(fd.as_raw_fd(), (&mut sll as *mut libc::sockaddr_ll).cast(), &mut len) };
    sys::cvt(rc).map_err(|e| NetdevError::io("getsockname", name, e))?;
    if libc::c_int::from(sll.sll_family) != libc::AF_PACKET || sll.sll_ifindex <= 0 {
        return Err(stale(name, "not a bound AF_PACKET socket"));
    }
    Ok(sll.sll_ifindex as u32)
}

/// Checks that device `name` is still the one with index `ifindex` (not deleted and recreated
/// while no process held the name).
pub(crate) fn check_same_device(name: &str, ifindex: u32) -> Result<(), NetdevError> {
    let ifname = IfName::new(name)?;
    let sock = sys::ioctl_socket().map_err(|e| NetdevError::io("socket", name, e))?;
    let now = ifindex_on(sock.as_raw_fd(), &ifname, name)?;
    if now != ifindex {
        return Err(stale(name, format!("the device was recreated (ifindex {ifindex} → {now})")));
    }
    Ok(())
}

/// The name of the tap device a /dev/net/tun descriptor is attached to (TUNGETIFF).
pub(crate) fn tap_name(fd: &OwnedFd, name: &str) -> Result<String, NetdevError> {
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF fills the `ifreq` we own.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), sys::TUNGETIFF as _, &mut req) };
    sys::cvt(rc).map_err(|e| NetdevError::io("TUNGETIFF", name, e))?;
    // SAFETY: the kernel NUL-terminates ifr_name within IFNAMSIZ.
    Ok(unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) }.to_string_lossy().into_owned())
}

/// The one `tap` descriptor of tap port `name`.
pub(crate) fn sort_tap(name: &str, fds: Vec<(String, OwnedFd)>) -> Result<OwnedFd, NetdevError> {
    let mut fds = fds.into_iter();
    match (fds.next(), fds.next()) {
        (Some((label, fd)), None) if label == TAP => Ok(fd),
        _ => Err(stale(name, "expected exactly one tap descriptor")),
    }
}

/// Borrows `fd` under `label`.
pub(crate) fn labelled(label: impl Into<String>, fd: &OwnedFd) -> Labelled<'_> {
    (label.into(), fd.as_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn system_labels_sort_into_queues() {
        let got = sort_system("p", vec![("rx1:2".into(), fd()), (TX.into(), fd()), (rx_label(0, 2), fd())])
            .unwrap();
        assert_eq!(got.rx.iter().map(|(_, b)| *b).collect::<Vec<_>>(), vec![2, 2]);
    }

    #[test]
    fn incomplete_or_unknown_sets_are_stale() {
        for set in [
            vec![("rx0:4".to_string(), fd())],
            vec![(TX.to_string(), fd())],
            vec![(TX.to_string(), fd()), ("rx1:4".to_string(), fd())],
            vec![(TX.to_string(), fd()), ("rx0:4".to_string(), fd()), ("bogus".to_string(), fd())],
        ] {
            assert!(matches!(sort_system("p", set), Err(NetdevError::StaleDescriptors { .. })));
        }
        assert!(sort_tap("t", vec![(TAP.into(), fd())]).is_ok());
        assert!(sort_tap("t", vec![(TX.into(), fd())]).is_err());
        assert!(sort_tap("t", vec![]).is_err());
    }
}
