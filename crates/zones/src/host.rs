//! Rules that need facts about the host: which network devices exist already, and which of
//! them a zone created (so re-applying a file is not a collision with itself). The CLI reads
//! /sys/class/net and the database; this module only compares.

use std::collections::BTreeSet;

use crate::diag::{Diagnostic, Report};
use crate::model::Model;

/// Network device names on the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostNetdevs {
    /// Every device that exists now (`/sys/class/net`).
    pub existing: BTreeSet<String>,
    /// The devices zones created (internal ports of bridges marked `rvswitch-zone`).
    pub ours: BTreeSet<String>,
}

/// A zone's bridge brings an internal port of the same name; refuse names that an existing
/// device not created by zones already has (a Linux bridge, a NIC, another program's tap).
pub fn check_host(model: &Model, file_name: &str, host: &HostNetdevs) -> Vec<Diagnostic> {
    let mut r = Report::new(file_name);
    for z in &model.zones {
        if host.existing.contains(&z.bridge) && !host.ours.contains(&z.bridge) {
            r.error(
                z.bridge_pos,
                format!("zone {}'s bridge {} collides with an existing network device that rvswitch zones did not create", z.name, z.bridge),
                "set another `bridge =` on this zone, or remove that device first",
            );
        }
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "[[zone]]\nname = \"intranet\"\n";

    fn host(existing: &[&str], ours: &[&str]) -> HostNetdevs {
        HostNetdevs {
            existing: existing.iter().map(|s| s.to_string()).collect(),
            ours: ours.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn foreign_device_with_the_bridge_name_is_refused() {
        let m = crate::parse(FILE, "z.toml").unwrap();
        let d = check_host(&m, "z.toml", &host(&["lo", "br-intranet"], &[]));
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].to_string().starts_with("z.toml:2:8: zone intranet's bridge br-intranet collides"),
            "{}",
            d[0]
        );
    }

    #[test]
    fn our_own_device_is_not_a_collision() {
        let m = crate::parse(FILE, "z.toml").unwrap();
        assert!(check_host(&m, "z.toml", &host(&["lo", "br-intranet"], &["br-intranet"])).is_empty());
        assert!(check_host(&m, "z.toml", &host(&["lo"], &[])).is_empty());
    }
}
