//! Two "hosts" for tunnel tests: namespaces A and B joined by an underlay veth (`ul0`, A at
//! [`A_UNDERLAY`], B at [`B_UNDERLAY`]), and namespace VMs cabled into one of them.

use packet::MacAddr;
use testbed::{Netns, Veth};

pub const A_UNDERLAY: &str = "198.19.0.1";
pub const B_UNDERLAY: &str = "198.19.0.2";

/// A namespace VM with `eth0` cabled to `port` in `host` (198.18.10.n, 02:00:00:00:10:n).
pub struct HostVm {
    pub ns: Netns,
    pub ip: String,
    pub mac: MacAddr,
    _cable: Veth,
}

impl HostVm {
    pub fn new(host: &Netns, port: &str, n: u8) -> HostVm {
        let ns = Netns::new("tvm").expect("netns");
        let cable = Veth::between(host, port, &ns, "eth0").expect("veth");
        let mac = MacAddr([0x02, 0, 0, 0, 0x10, n]);
        let ip = format!("198.18.10.{n}");
        ns.exec(&["ip", "link", "set", "eth0", "address", &mac.to_string()]).unwrap();
        ns.addr_up("eth0", &format!("{ip}/24")).unwrap();
        HostVm { ns, ip, mac, _cable: cable }
    }
}

/// Hosts A and B with the underlay between them (MTU `mtu`).
pub fn hosts(mtu: &str) -> (Netns, Netns, Veth) {
    let (a, b) = (Netns::new("hosta").unwrap(), Netns::new("hostb").unwrap());
    let ul = Veth::between(&a, "ul0", &b, "ul0").unwrap();
    for (ns, ip) in [(&a, A_UNDERLAY), (&b, B_UNDERLAY)] {
        ns.exec(&["ip", "link", "set", "ul0", "mtu", mtu]).unwrap();
        // A veth hands a packet over with its checksums still to be filled in ("partial"); a
        // NIC fills them before the wire. Userspace reading the tunnel's UDP socket would get
        // the inner TCP checksum unfilled, so the underlay plays a wire: checksums filled on send.
        ns.exec(&["ethtool", "-K", "ul0", "tx", "off"]).unwrap();
        ns.addr_up("ul0", &format!("{ip}/24")).unwrap();
    }
    (a, b, ul)
}
