//! Interface-name validation. Names come from the database and the command line, i.e. from
//! outside: a bad one must become a clear error before it reaches an ioctl, never a panic or a
//! silently truncated name that would address a different device.

use crate::NetdevError;

/// Longest usable name: `IFNAMSIZ` (16) minus the terminating NUL.
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// A Linux interface name that passed [`IfName::new`]; ready to copy into an `ifreq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfName {
    bytes: [u8; MAX_NAME_LEN],
    len: usize,
}

impl IfName {
    /// Validates `name` with the kernel's own rules (`dev_valid_name`: 1..=15 bytes, not `.` or
    /// `..`, no `/`, `:`, NUL or whitespace), and one of ours on top: printable ASCII only. The
    /// kernel takes any other byte, but a name with control characters or a non-ASCII look-alike
    /// (a Cyrillic `е` in `eth0`) is one no log, `rvsctl show` or libvirt XML shows faithfully.
    /// This is the one interface-name rule: the config file, the database plan and the zones
    /// file all use it, so what one accepts the others do too.
    pub fn new(name: &str) -> Result<IfName, NetdevError> {
        let invalid =
            |reason: &'static str| NetdevError::InvalidName { name: name.escape_debug().to_string(), reason };
        let raw = name.as_bytes();
        if raw.is_empty() {
            return Err(invalid("empty"));
        }
        if raw.len() > MAX_NAME_LEN {
            return Err(invalid("longer than 15 bytes"));
        }
        if name == "." || name == ".." {
            return Err(invalid("reserved name"));
        }
        if raw.contains(&b'/') || raw.contains(&b':') {
            return Err(invalid("contains '/' or ':'"));
        }
        if raw.contains(&0) {
            return Err(invalid("contains NUL"));
        }
        if name.chars().any(char::is_whitespace) {
            return Err(invalid("contains whitespace"));
        }
        if !raw.iter().all(u8::is_ascii_graphic) {
            return Err(invalid("contains a control or non-ASCII character"));
        }
        let mut bytes = [0u8; MAX_NAME_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(IfName { bytes, len: raw.len() })
    }

    /// The name's bytes, without terminator.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["eth0", "vnet12", "br-intranet", "a", "abcdefghijklmno", "tap%d"] {
            let n = IfName::new(ok).unwrap();
            assert_eq!(n.as_bytes(), ok.as_bytes());
        }
    }

    #[test]
    fn rejects_bad_names_without_panicking() {
        for bad in [
            "",
            "abcdefghijklmnop",
            "a/b",
            "a:b",
            "a\0b",
            "a b",
            "a\tb",
            "a\n",
            ".",
            "..",
            "ééééééééé",
            "bré-a",
            "\u{435}th0",
            "a\u{7}",
            "a\u{7f}",
        ] {
            let err = IfName::new(bad).unwrap_err();
            assert!(matches!(err, NetdevError::InvalidName { .. }), "{bad:?}: {err}");
            assert!(err.to_string().contains("invalid network device name"));
        }
    }
}
