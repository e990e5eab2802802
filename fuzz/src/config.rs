//! The rvswitchd config file parser (`vswitchd::config::parse`).
//!
//! Oracle: an accepted file yields a state the daemon can apply (valid, unique interface names;
//! each bridge's first port is its own internal port), and a refused one points at a place that
//! exists in the text.

use std::collections::HashSet;

use vswitchd::config::{check_ifname, parse};
use vswitchd::state::PortKind;

/// The fuzz target. Bytes that are not UTF-8 are read lossily, as a text editor would show them.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match parse(&text, "fuzz.toml") {
        Ok(state) => {
            let mut names = HashSet::new();
            for b in &state.bridges {
                assert!(check_ifname(&b.name).is_ok(), "accepted bad bridge name {:?}", b.name);
                let own = b.ports.first().expect("a bridge always has its own port");
                assert_eq!((own.name.as_str(), own.kind), (b.name.as_str(), PortKind::Internal));
                assert!((1..=1_000_000).contains(&b.settings.mac_table_size));
                assert!((1_000..=86_400_000).contains(&b.settings.mac_aging_ms));
                for p in &b.ports {
                    assert!(check_ifname(&p.name).is_ok(), "accepted bad port name {:?}", p.name);
                    assert!(names.insert(p.name.clone()), "port name {:?} accepted twice", p.name);
                }
            }
        }
        Err(e) => {
            let lines = text.lines().count().max(1);
            assert!(e.line <= lines + 1, "error on line {} of a {lines}-line file: {e}", e.line);
            assert!(e.line == 0 || e.column >= 1, "error without a column: {e}");
            assert!(!e.message.is_empty(), "error without a message");
        }
    }
}
