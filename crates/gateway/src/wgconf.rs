//! The wg-quick file a company hands its staff (`wg-quick(8)`, `wg(8)` CONFIGURATION FILE
//! FORMAT): `[Interface]` and one `[Peer]`. Parsing is pure ([`parse`]); [`load`] adds the file
//! checks — a private key that group or others can read is refused, as `wg` warns about it.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;

use crate::Prefix;

/// Largest file we read (a real one is a few hundred bytes).
const MAX_FILE_BYTES: u64 = 64 << 10;

/// A 32-byte Curve25519 key or preshared key, as `wg genkey` prints it in base64.
pub type Key = [u8; 32];

#[derive(Clone, PartialEq, Eq)]
pub struct WgInterface {
    pub private_key: Key,
    pub addresses: Vec<Prefix>,
    pub dns: Vec<IpAddr>,
    pub mtu: Option<u16>,
    pub listen_port: Option<u16>,
}

/// Keys stay out of `Debug` output (logs).
impl std::fmt::Debug for WgInterface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgInterface")
            .field("addresses", &self.addresses)
            .field("dns", &self.dns)
            .field("mtu", &self.mtu)
            .field("listen_port", &self.listen_port)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgPeer {
    pub public_key: Key,
    pub preshared_key: Option<Key>,
    /// `host:port` as written; the shell resolves it (a name needs DNS, which is I/O).
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<Prefix>,
    pub persistent_keepalive: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgConfig {
    pub interface: WgInterface,
    pub peer: WgPeer,
    /// wg-quick-only keys (PostUp, Table, SaveConfig...) that rvswitch does not run: the caller
    /// logs them, so nobody believes a PostUp script ran. (line, key)
    pub ignored: Vec<(usize, String)>,
}

/// A problem with the file, located (`line` 0: the file as a whole).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{}{message}", if *.line > 0 { format!("{}: ", .line) } else { " ".to_string() })]
pub struct WgConfError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Reads `path`: refuses a file that group or others may read (it holds the private key), or
/// that is too big, then parses it.
pub fn load(path: &Path) -> Result<WgConfig, WgConfError> {
    let file = path.display().to_string();
    let whole = |message: String| WgConfError { file: file.clone(), line: 0, message };
    let meta = std::fs::metadata(path).map_err(|e| whole(format!("cannot read: {e}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(whole(format!(
            "mode {mode:04o} lets group or others read the private key; it must be 0600 or stricter (chmod 600 {file})"
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(whole(format!("{} bytes; the limit is {MAX_FILE_BYTES}", meta.len())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| whole(format!("cannot read: {e}")))?;
    parse(&text, &file)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Interface,
    Peer,
}

/// What the sections said so far; completeness is checked at the end.
#[derive(Default)]
struct Partial {
    private_key: Option<Key>,
    addresses: Vec<Prefix>,
    dns: Vec<IpAddr>,
    mtu: Option<u16>,
    listen_port: Option<u16>,
    peers: usize,
    public_key: Option<Key>,
    preshared_key: Option<Key>,
    endpoint: Option<String>,
    allowed_ips: Vec<Prefix>,
    persistent_keepalive: Option<u16>,
    ignored: Vec<(usize, String)>,
}

/// wg-quick keys that only wg-quick's shell script acts on.
const WG_QUICK_ONLY: [&str; 7] = ["preup", "postup", "predown", "postdown", "table", "saveconfig", "fwmark"];

/// Parses wg-quick text; `file` only labels errors. Keys are case-insensitive, `#` starts a
/// comment, list values are comma-separated and may repeat over lines (as in wg-quick).
pub fn parse(text: &str, file: &str) -> Result<WgConfig, WgConfError> {
    let err = |line: usize, message: String| WgConfError { file: file.to_string(), line, message };
    let mut section = Section::None;
    let mut p = Partial::default();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = match line.to_ascii_lowercase().as_str() {
                "[interface]" => Section::Interface,
                "[peer]" => {
                    p.peers += 1;
                    if p.peers > 1 {
                        return Err(err(n, "only one [Peer] is supported (the office's server)".into()));
                    }
                    Section::Peer
                }
                _ => return Err(err(n, format!("unknown section {line}"))),
            };
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(n, format!("expected `Key = Value`, found {line:?}")));
        };
        let key = key.trim().to_ascii_lowercase();
        set(&mut p, section, &key, value.trim(), n).map_err(|m| err(n, m))?;
    }
    finish(p).map_err(|m| err(0, m))
}

/// Applies one `key = value` line of `section`.
fn set(p: &mut Partial, section: Section, key: &str, value: &str, line: usize) -> Result<(), String> {
    match (section, key) {
        (Section::None, _) => return Err(format!("{key} outside of [Interface] or [Peer]")),
        (Section::Interface, "privatekey") => p.private_key = Some(key_of(value, "PrivateKey")?),
        (Section::Interface, "address") => p.addresses.extend(list(value, "Address")?),
        (Section::Interface, "dns") => {
            for v in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                // wg-quick also takes search domains here; only addresses matter to us.
                if let Ok(ip) = v.parse() {
                    p.dns.push(ip);
                }
            }
        }
        (Section::Interface, "mtu") => p.mtu = Some(number(value, "MTU", 576..=65535)?),
        (Section::Interface, "listenport") => p.listen_port = Some(number(value, "ListenPort", 0..=65535)?),
        (Section::Interface, k) if WG_QUICK_ONLY.contains(&k) => p.ignored.push((line, k.to_string())),
        (Section::Peer, "publickey") => p.public_key = Some(key_of(value, "PublicKey")?),
        (Section::Peer, "presharedkey") => p.preshared_key = Some(key_of(value, "PresharedKey")?),
        (Section::Peer, "endpoint") => p.endpoint = Some(endpoint(value)?),
        (Section::Peer, "allowedips") => p.allowed_ips.extend(list(value, "AllowedIPs")?),
        (Section::Peer, "persistentkeepalive") => {
            p.persistent_keepalive = match value {
                "off" => None,
                v => Some(number(v, "PersistentKeepalive", 0..=65535)?).filter(|s| *s > 0),
            }
        }
        (Section::Interface, k) => return Err(format!("unknown key {k:?} in [Interface]")),
        (Section::Peer, k) => return Err(format!("unknown key {k:?} in [Peer]")),
    }
    Ok(())
}

fn finish(p: Partial) -> Result<WgConfig, String> {
    let private_key = p.private_key.ok_or("[Interface] has no PrivateKey")?;
    if p.peers == 0 {
        return Err("no [Peer] section".into());
    }
    let public_key = p.public_key.ok_or("[Peer] has no PublicKey")?;
    let endpoint = p.endpoint;
    if endpoint.is_none() {
        return Err(
            "[Peer] has no Endpoint (rvswitch dials the office; it does not wait to be called)".into()
        );
    }
    if p.allowed_ips.is_empty() {
        return Err("[Peer] has no AllowedIPs: nothing could be routed to it".into());
    }
    Ok(WgConfig {
        interface: WgInterface {
            private_key,
            addresses: p.addresses,
            dns: p.dns,
            mtu: p.mtu,
            listen_port: p.listen_port,
        },
        peer: WgPeer {
            public_key,
            preshared_key: p.preshared_key,
            endpoint,
            allowed_ips: p.allowed_ips,
            persistent_keepalive: p.persistent_keepalive,
        },
        ignored: p.ignored,
    })
}

fn key_of(value: &str, what: &str) -> Result<Key, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| format!("{what} is not base64 (a key as `wg genkey` prints it)"))?;
    bytes.try_into().map_err(|b: Vec<u8>| format!("{what} is {} bytes; a WireGuard key is 32", b.len()))
}

fn list(value: &str, what: &str) -> Result<Vec<Prefix>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<Prefix>().map_err(|e| format!("{what}: {e}")))
        .collect()
}

fn number(value: &str, what: &str, range: std::ops::RangeInclusive<u32>) -> Result<u16, String> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| range.contains(n))
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| format!("{what} {value:?} must be a number in {}..={}", range.start(), range.end()))
}

/// `host:port` or `[v6]:port`; the host is resolved later.
fn endpoint(value: &str) -> Result<String, String> {
    let bad = || format!("Endpoint {value:?} must be host:port or [IPv6]:port");
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad());
    }
    Ok(value.to_string())
}

#[cfg(test)]
#[path = "wgconf_tests.rs"]
mod tests;
