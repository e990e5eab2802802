//! veth pairs: the switch's port end and a "VM" NIC end inside a namespace, or a cable between two
//! namespaces. The guard deletes the pair (deleting one end removes both).

use anyhow::Context;

use crate::cmd::{run, run_quiet_ok};
use crate::netns::Netns;

/// Guard for a veth pair; [`Veth::host_if`] is the end that Drop deletes.
pub struct Veth {
    host_if: String,
    /// Namespace holding the host end; `None` for the root namespace.
    host_ns: Option<String>,
    deleted: bool,
}

impl Veth {
    /// Creates `host_if` (root namespace, the switch's port) paired with `ns_if` inside `ns`.
    /// Optionally sets the VM end's MAC and address; brings both ends up. IPv6 is disabled on the
    /// host end first, otherwise it would emit MLD/RS frames that look like leaks in captures.
    pub fn to_ns(
        host_if: &str,
        ns: &Netns,
        ns_if: &str,
        addr_cidr: Option<&str>,
        mac: Option<&str>,
    ) -> anyhow::Result<Veth> {
        run("ip", &["link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns.name()])?;
        let veth = Veth { host_if: host_if.to_owned(), host_ns: None, deleted: false };
        disable_ipv6_root(host_if)?;
        if let Some(mac) = mac {
            ns.exec(&["ip", "link", "set", ns_if, "address", mac])?;
        }
        if let Some(cidr) = addr_cidr {
            ns.exec(&["ip", "addr", "add", cidr, "dev", ns_if])?;
        }
        ns.exec(&["ip", "link", "set", ns_if, "up"])?;
        run("ip", &["link", "set", host_if, "up"])?;
        Ok(veth)
    }

    /// Creates a cable `a_if` (in `a`) ↔ `b_if` (in `b`), both ends up, nothing in the root
    /// namespace. `a` and `b` may be the same namespace.
    pub fn between(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> anyhow::Result<Veth> {
        a.exec(&["ip", "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name()])?;
        let veth = Veth { host_if: a_if.to_owned(), host_ns: Some(a.name().to_owned()), deleted: false };
        a.exec(&["ip", "link", "set", a_if, "up"])?;
        b.exec(&["ip", "link", "set", b_if, "up"])?;
        Ok(veth)
    }

    /// Creates a cable `a_if` ↔ `b_if` with both ends in the root namespace, both up (e.g. two
    /// switch ports wired to each other, or a stand-in for a NIC).
    pub fn pair(a_if: &str, b_if: &str) -> anyhow::Result<Veth> {
        run("ip", &["link", "add", a_if, "type", "veth", "peer", "name", b_if])?;
        let veth = Veth { host_if: a_if.to_owned(), host_ns: None, deleted: false };
        for end in [a_if, b_if] {
            disable_ipv6_root(end)?;
            run("ip", &["link", "set", end, "up"])?;
        }
        Ok(veth)
    }

    /// The end that belongs to the switch (or to namespace `a` for [`Veth::between`]).
    pub fn host_if(&self) -> &str {
        &self.host_if
    }

    /// Deletes the pair now (e.g. to test a vanishing device). Idempotent.
    pub fn delete(&mut self) -> anyhow::Result<()> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        let mut args = Vec::new();
        if let Some(ns) = &self.host_ns {
            args.extend(["netns", "exec", ns.as_str(), "ip"]);
        }
        args.extend(["link", "del", self.host_if.as_str()]);
        run("ip", &args).map(drop)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        self.deleted = true;
        match &self.host_ns {
            None => run_quiet_ok("ip", &["link", "del", &self.host_if]),
            Some(ns) => run_quiet_ok("ip", &["netns", "exec", ns, "ip", "link", "del", &self.host_if]),
        };
    }
}

fn disable_ipv6_root(ifname: &str) -> anyhow::Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    if !std::path::Path::new(&path).exists() {
        return Ok(()); // IPv6 not available on this host: nothing to silence.
    }
    std::fs::write(&path, "1").with_context(|| format!("writing {path}"))
}
