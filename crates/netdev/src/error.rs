//! The one error type of the crate. Variants separate what the daemon reacts to differently: a
//! device that is not there (yet), one that vanished under an open port (remove the port), a bad
//! name (reject the configuration) and any other I/O failure (log and retry later).

use std::io;

/// Errors from opening or driving a port.
#[derive(thiserror::Error, Debug)]
pub enum NetdevError {
    /// The device does not exist. The text mirrors Open vSwitch's log line so operators' greps and
    /// documentation keep working.
    #[error("could not open network device {0} (No such device)")]
    NoSuchDevice(String),
    /// The name cannot be a Linux interface name (length, `/`, NUL, whitespace…).
    #[error("invalid network device name \"{name}\": {reason}")]
    InvalidName {
        /// The rejected name, escaped so control characters stay visible in logs.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A system call failed.
    #[error("{op} on network device {dev} failed: {source}")]
    Io {
        /// The operation, e.g. `"recvmmsg"`.
        op: &'static str,
        /// Device name.
        dev: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The device was unregistered while the port was open (veth deleted, qemu closed its tap).
    /// The port can never work again; the daemon should drop it. Observed on Linux 6.18: an
    /// AF_PACKET socket reports ENETDOWN once on recv (then EAGAIN forever) and ENXIO on send;
    /// a tun fd reports EBADFD. ENETDOWN alone is ambiguous (a device set down gives it too), so
    /// the backend checks whether the ifindex still exists before returning this.
    #[error("network device {0} is gone")]
    DeviceGone(String),
    /// A tunnel port cannot be opened as configured (no route to the remote, its remote and
    /// key already taken by another port, its UDP port used by another protocol).
    #[error("{0}")]
    Tunnel(String),
    /// The device is not an L3 device (tun, xfrm, other point-to-point link without ARP), so it
    /// cannot carry bare IP packets as a tunnel uplink.
    #[error("network device {dev} is not an L3 (tun or point-to-point) device (link type {link_type})")]
    NotL3Device {
        /// Device name.
        dev: String,
        /// Its `ARPHRD_*` link type.
        link_type: u16,
    },
    /// Descriptors handed over from a previous process do not (or no longer) belong to the
    /// device of that name (it was recreated meanwhile, or the set is incomplete): the caller
    /// opens the device afresh.
    #[error("descriptors kept for network device {dev} cannot be reused: {reason}")]
    StaleDescriptors {
        /// Device name.
        dev: String,
        /// What did not match.
        reason: String,
    },
}

impl NetdevError {
    /// True if the device vanished under an open port ([`NetdevError::DeviceGone`]).
    pub fn is_gone(&self) -> bool {
        matches!(self, NetdevError::DeviceGone(_))
    }

    pub(crate) fn io(op: &'static str, dev: &str, source: io::Error) -> NetdevError {
        NetdevError::Io { op, dev: dev.to_owned(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_such_device_matches_ovs_wording() {
        let e = NetdevError::NoSuchDevice("vnet7".into());
        assert_eq!(e.to_string(), "could not open network device vnet7 (No such device)");
        assert!(!e.is_gone());
    }

    #[test]
    fn gone_is_gone() {
        assert!(NetdevError::DeviceGone("x".into()).is_gone());
        let io = NetdevError::io("send", "x", io::Error::from_raw_os_error(libc::EPERM));
        assert!(!io.is_gone());
        assert!(io.to_string().starts_with("send on network device x failed"));
    }
}
