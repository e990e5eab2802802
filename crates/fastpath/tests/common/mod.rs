//! Shared setup for the privileged fast-path tests: "VMs" in namespaces on veth pairs whose
//! host ends carry the loaded program. Guards remove namespaces and links; dropping the
//! [`fastpath::FastPath`] detaches its TCX links.

#![allow(dead_code)]

use fastpath::FastPath;
use testbed::{require_root, skip, unique, Netns, Veth};

/// One namespace "VM" with `eth0` (address, MAC) and the host end of its veth.
pub struct Vm {
    pub ns: Netns,
    pub link: Veth,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub ip: String,
}

impl Vm {
    pub fn new(n: u8) -> anyhow::Result<Vm> {
        let ns = Netns::new("fpvm")?;
        let ip = format!("198.18.13.{n}");
        let mac = [0x02, 0, 0, 0, 0x13, n];
        let link = Veth::to_ns(&unique("fp"), &ns, "eth0", Some(&format!("{ip}/24")), Some(&mac_str(mac)))?;
        let ifindex = netdev::interface_info(link.host_if())?
            .ok_or_else(|| anyhow::anyhow!("{} vanished", link.host_if()))?
            .ifindex;
        Ok(Vm { ns, link, ifindex, mac, ip })
    }

    /// A static neighbour entry for `other`, so no ARP (broadcast: slow path) is needed.
    pub fn knows(&self, other: &Vm) -> anyhow::Result<()> {
        self.ns.exec(&["ip", "neigh", "replace", &other.ip, "lladdr", &mac_str(other.mac), "dev", "eth0"])?;
        Ok(())
    }
}

pub fn mac_str(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The loaded program, or a skip (no root, or built without clang).
pub fn load(test: &str) -> Option<FastPath> {
    if !require_root(test) {
        return None;
    }
    match FastPath::load() {
        Ok(fp) => Some(fp),
        Err(e @ fastpath::Error::NotBuilt) => {
            skip(test, &e.to_string());
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}
