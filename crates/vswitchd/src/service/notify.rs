//! systemd's readiness protocol (sd_notify(3)), spoken directly: one datagram of `KEY=VALUE`
//! lines to the unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace). No libsystemd: the protocol is one `sendto`, and a daemon started outside systemd
//! (no variable) simply sends nothing.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use thiserror::Error;

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("${NOTIFY_SOCKET} is empty")]
    Empty,
    #[error("${NOTIFY_SOCKET}={0:?} is neither an absolute path nor @abstract")]
    NotAbsolute(String),
    #[error("${NOTIFY_SOCKET}={0:?}: {1}")]
    Address(String, io::Error),
    #[error("cannot create the notification socket: {0}")]
    Socket(io::Error),
}

/// Parses `$NOTIFY_SOCKET`'s value: `@name` is an abstract socket, `/path` a filesystem one.
pub fn parse_address(value: &str) -> Result<SocketAddr, NotifyError> {
    let addr = match value.strip_prefix('@') {
        Some("") => return Err(NotifyError::Empty),
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None if value.is_empty() => return Err(NotifyError::Empty),
        None if !value.starts_with('/') => return Err(NotifyError::NotAbsolute(value.to_string())),
        None => SocketAddr::from_pathname(value),
    };
    addr.map_err(|e| NotifyError::Address(value.to_string(), e))
}

/// A connection-less sender towards the service manager.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for; `Ok(None)` when the variable is unset (not run
    /// by systemd, or by a unit that is not `Type=notify`).
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        match std::env::var(NOTIFY_SOCKET) {
            Ok(value) => Notifier::new(&value).map(Some),
            Err(_) => Ok(None),
        }
    }

    pub fn new(address: &str) -> Result<Notifier, NotifyError> {
        let addr = parse_address(address)?;
        let socket = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        Ok(Notifier { socket, addr })
    }

    /// A second sender to the same address (for the watchdog thread).
    pub fn try_clone(&self) -> Result<Notifier, NotifyError> {
        let socket = self.socket.try_clone().map_err(NotifyError::Socket)?;
        Ok(Notifier { socket, addr: self.addr.clone() })
    }

    /// Sends one message (newline-separated `KEY=VALUE` assignments). The manager may be gone
    /// (e.g. during its own restart); the caller decides whether that matters.
    pub fn send(&self, message: &str) -> io::Result<()> {
        self.socket.send_to_addr(message.as_bytes(), &self.addr).map(drop)
    }
}

/// `STATUS=` text is one line: newlines would start new assignments.
pub fn status_line(text: &str) -> String {
    format!("STATUS={}", text.replace(['\n', '\r'], " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_path_or_abstract() {
        let a = parse_address("@rvs/test").unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"rvs/test"[..]));
        let p = parse_address("/run/systemd/notify").unwrap();
        assert_eq!(p.as_pathname(), Some(std::path::Path::new("/run/systemd/notify")));
        assert!(matches!(parse_address(""), Err(NotifyError::Empty)));
        assert!(matches!(parse_address("@"), Err(NotifyError::Empty)));
        assert!(matches!(parse_address("relative/sock"), Err(NotifyError::NotAbsolute(_))));
        let long = format!("/{}", "x".repeat(200));
        assert!(matches!(parse_address(&long), Err(NotifyError::Address(..))));
    }

    #[test]
    fn messages_reach_an_abstract_listener() {
        let name = format!("rvswitch-notify-test-{}", std::process::id());
        let listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        listener.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let n = Notifier::new(&format!("@{name}")).unwrap();
        n.send("READY=1\nSTATUS=up").unwrap();
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");
    }

    #[test]
    fn status_stays_on_one_line() {
        assert_eq!(status_line("a\nb\rc"), "STATUS=a b c");
    }
}
