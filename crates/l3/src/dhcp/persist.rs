//! The lease store's text form, for persistence across restarts: a small JSON document the
//! caller writes to a file and hands back on start.
//!
//! ```json
//! {"version":1,"leases":[{"mac":"52:54:00:10:00:01","ip":"198.18.0.10","expires":1764590000}]}
//! ```
//!
//! Only bound, unexpired leases are written. On restore each entry is checked against the
//! configuration in force now (the range or the statics may have changed): entries that no
//! longer fit are skipped and counted, never half-applied.

use std::net::Ipv4Addr;

use packet::MacAddr;
use serde::{Deserialize, Serialize};

use super::pool::{Lease, LeaseState};
use super::{Binding, DhcpServer, UnixSecs};

/// The format written; a file of another version is refused.
pub const VERSION: u32 = 1;
/// A lease file larger than this is refused before parsing (a /16 of leases is ~5 MB).
pub const MAX_BYTES: usize = 8 << 20;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    leases: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    mac: String,
    ip: Ipv4Addr,
    expires: UnixSecs,
}

/// Why a lease file was not read at all (the server then starts empty).
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("lease file is {0} bytes, more than {MAX_BYTES}")]
    TooLarge(usize),
    #[error("lease file is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("lease file version {0}, this rvswitch reads version {VERSION}")]
    Version(u32),
}

/// What [`DhcpServer::restore`] took back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// The bindings restored (for port security).
    pub bindings: Vec<Binding>,
    /// Entries expired, malformed, or no longer valid under the current configuration.
    pub skipped: usize,
}

impl DhcpServer {
    /// The bound, unexpired leases as text.
    pub fn save(&self, now: UnixSecs) -> String {
        let leases = self
            .pool
            .leases()
            .filter(|l| l.state == LeaseState::Bound && now < l.expires)
            .map(|l| Entry { mac: l.mac.to_string(), ip: l.ip, expires: l.expires })
            .collect();
        // Strings, addresses and integers only: serialising cannot fail.
        serde_json::to_string(&File { version: VERSION, leases }).unwrap_or_default()
    }

    /// Takes back the leases of `text` that still hold at `now`. All of the file is read
    /// before anything is applied, so an unreadable file changes nothing.
    pub fn restore(&mut self, text: &str, now: UnixSecs) -> Result<Restored, PersistError> {
        if text.len() > MAX_BYTES {
            return Err(PersistError::TooLarge(text.len()));
        }
        let file: File = serde_json::from_str(text)?;
        if file.version != VERSION {
            return Err(PersistError::Version(file.version));
        }
        let mut out = Restored::default();
        for e in file.leases {
            let mac = e.mac.parse::<MacAddr>().ok().filter(|m| !m.is_multicast());
            match mac {
                Some(mac) if now < e.expires && self.pool.grantable(&self.cfg, mac, e.ip, now) => {
                    self.pool.set(Lease { mac, ip: e.ip, expires: e.expires, state: LeaseState::Bound });
                    out.bindings.push(Binding { mac, ip: e.ip, expires: e.expires });
                }
                _ => out.skipped += 1,
            }
        }
        Ok(out)
    }
}
