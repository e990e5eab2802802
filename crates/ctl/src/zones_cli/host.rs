//! Host facts the pure zones crate takes as input: which network devices exist, which veth
//! ends are peers in this namespace, and writing an interface alias.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use zones::live::LiveDb;
use zones::verify::DevicePair;

/// Names in /sys/class/net (empty if it cannot be read, e.g. in a sandbox without sysfs).
pub fn netdevs() -> BTreeSet<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else { return BTreeSet::new() };
    dir.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

/// Devices zones created: the interfaces zones marked, on bridges zones created or released.
pub fn ours(live: &LiveDb) -> BTreeSet<String> {
    live.ports()
        .filter(|(_, p)| p.zone().is_some())
        .flat_map(|(_, p)| p.interfaces.iter().map(|i| i.name.clone()))
        .collect()
}

/// The host's layer-2 wiring from `ip -j -d link`: veth pairs with both ends in this network
/// namespace (the kind is `veth` and `link` names the peer; a peer in another namespace has
/// `link_netnsid` instead and is not a wire between two of our ports), and Linux bridge
/// membership (a device whose `master` is a Linux bridge; the bridge is treated as transparent
/// to VLANs, which can only over-report a join, never miss one).
pub fn device_pairs() -> Result<Vec<DevicePair>> {
    let out = Command::new("ip")
        .args(["-j", "-d", "link", "show"])
        .output()
        .context("cannot run `ip` (apt-get install iproute2)")?;
    if !out.status.success() {
        bail!("ip -j -d link show failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let links: Value =
        serde_json::from_slice(&out.stdout).context("`ip -j` printed something that is not JSON")?;
    Ok(pairs_of(&links))
}

fn pairs_of(links: &Value) -> Vec<DevicePair> {
    let mut out = Vec::new();
    for l in links.as_array().into_iter().flatten() {
        let Some(name) = l["ifname"].as_str() else { continue };
        if let (Some(master), "bridge") =
            (l["master"].as_str(), l["linkinfo"]["info_slave_kind"].as_str().unwrap_or(""))
        {
            out.push(DevicePair { a: name.into(), b: master.into(), kind: "linux-bridge".into() });
        }
        let Some(peer) = l["link"].as_str() else { continue };
        if l["linkinfo"]["info_kind"] == "veth" && l.get("link_netnsid").is_none() && name < peer {
            out.push(DevicePair { a: name.into(), b: peer.into(), kind: "veth".into() });
        }
    }
    out
}

/// Sets a device's alias (what `ip link show` prints as `alias`); OVSDB has no column for it.
pub fn set_ifalias(dev: &str, alias: &str) -> std::io::Result<bool> {
    let path = format!("/sys/class/net/{dev}/ifalias");
    if std::fs::read_to_string(&path).is_ok_and(|cur| cur.trim_end_matches('\n') == alias) {
        return Ok(false);
    }
    std::fs::write(&path, alias).map(|_| true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_namespace_veth_peers_and_linux_bridge_members_are_wires() {
        let links = json!([
            {"ifname": "va", "link": "vb", "linkinfo": {"info_kind": "veth"}},
            {"ifname": "vb", "link": "va", "linkinfo": {"info_kind": "veth"}},
            {"ifname": "vc", "link_index": 2, "link_netnsid": 0, "linkinfo": {"info_kind": "veth"}},
            {"ifname": "eth0.10", "link": "eth0", "linkinfo": {"info_kind": "vlan"}},
            {"ifname": "vd", "master": "docker0", "linkinfo": {"info_kind": "veth", "info_slave_kind": "bridge"}},
            {"ifname": "ve", "master": "bond0", "linkinfo": {"info_kind": "veth", "info_slave_kind": "bond"}}
        ]);
        assert_eq!(
            pairs_of(&links),
            [
                DevicePair { a: "va".into(), b: "vb".into(), kind: "veth".into() },
                DevicePair { a: "vd".into(), b: "docker0".into(), kind: "linux-bridge".into() }
            ]
        );
        assert!(pairs_of(&json!({"not": "a list"})).is_empty());
    }
}
