//! The wg-quick file parser (`gateway::wgconf::parse`): a file an admin is handed by whoever runs
//! the office's WireGuard server, so nothing in it is trusted.
//!
//! Oracle: an accepted file has what the tunnel cannot do without (a peer with an endpoint and
//! at least one AllowedIPs prefix, an MTU in range, ignored keys on real lines), and a refused
//! one names a line that exists (0 = the file as a whole) and says what is wrong.

use gateway::wgconf::parse;

/// The fuzz target. Bytes that are not UTF-8 are read lossily, as a text editor would show them.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    match parse(&text, "fuzz.conf") {
        Ok(cfg) => {
            assert!(!cfg.peer.allowed_ips.is_empty(), "accepted a peer without AllowedIPs");
            assert!(cfg.peer.endpoint.as_deref().is_some_and(|e| !e.is_empty()), "accepted without Endpoint");
            assert!(cfg.interface.mtu.is_none_or(|m| m >= 576), "accepted MTU {:?}", cfg.interface.mtu);
            assert!(cfg.peer.persistent_keepalive != Some(0), "keepalive 0 is `off`, not Some(0)");
            for (line, key) in &cfg.ignored {
                assert!((1..=lines).contains(line), "ignored key {key:?} on line {line} of {lines}");
            }
        }
        Err(e) => {
            assert!(e.line <= lines, "error on line {} of a {lines}-line file: {e}", e.line);
            assert!(!e.message.trim().is_empty(), "error without a message");
            assert!(e.to_string().starts_with("fuzz.conf:"), "error does not name the file: {e}");
        }
    }
}
