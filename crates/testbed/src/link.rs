//! A link's kernel counters, for tests that must tell a frame the switch dropped from one the
//! kernel dropped on the way (a full backlog, a peer that was not reading).

use anyhow::Context;

/// `/sys/class/net/IFNAME/statistics/COUNTER` (`rx_dropped`, `tx_dropped`, ...) of a link in the
/// caller's network namespace.
pub fn link_counter(ifname: &str, counter: &str) -> anyhow::Result<u64> {
    let path = format!("/sys/class/net/{ifname}/statistics/{counter}");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    text.trim().parse().with_context(|| format!("{path}: not a number: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_loopback_and_refuses_unknown() {
        assert!(link_counter("lo", "rx_packets").is_ok());
        assert!(link_counter("lo", "no_such_counter").is_err());
        assert!(link_counter("no-such-link0", "rx_dropped").is_err());
    }
}
