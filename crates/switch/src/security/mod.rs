//! Port security: a VM port speaks only with its own addresses. Pure like the rest of the
//! pipeline: the bridge calls [`check::admit`] for frames from secured ports and
//! [`bindings::Bindings::snoop`] (DHCPACK, DHCPv6 REPLY) for frames from trusted ones, with the time as an argument.

mod bindings;
mod check;
mod config;
mod policy;
mod report;
mod snoop;

pub(crate) use bindings::Bindings;
pub use bindings::LeaseEntry;
pub use config::{parse_allowed_ips, IpPrefix, PortSecurity, SecurityConfigError, SecurityMode};
pub(crate) use policy::Policy;
pub(crate) use report::report;
pub use report::{BindingEntry, BindingSource, PortSecurityEntry};

use packet::{EthernetHeader, ETHERTYPE_IPV6};

use crate::{DropReason, MacTable, Millis, PortSpec};

/// A frame that passed the ingress VLAN check, as port security sees it.
pub(crate) struct Seen<'a> {
    pub eth: &'a EthernetHeader,
    pub frame: &'a [u8],
    pub vlan: u16,
    pub now: Millis,
}

/// The compiled policy of every slot of `ports`, for [`gate`].
pub(crate) fn compile(ports: &[PortSpec]) -> Vec<Policy> {
    ports.iter().map(|p| Policy::compile(&p.security, &p.vlan)).collect()
}

/// Port security for a frame from `slot`: the checks when the port is secured (and a DHCPv6
/// RELEASE/DECLINE it sent unbinds what it gives back), then DHCP snooping when it is trusted
/// (a trusted VM's own DHCPACKs and REPLYs are snooped after its checks).
/// The compiled policy answers the common frame; the full checks see the rest.
#[inline]
pub(crate) fn gate(
    bindings: &mut Bindings,
    policies: &[Policy],
    ports: &[PortSpec],
    macs: &MacTable,
    slot: usize,
    seen: &Seen<'_>,
) -> Result<(), DropReason> {
    let Some(policy) = policies.get(slot) else { return Ok(()) };
    if policy.checks() {
        let l3 = seen.frame.get(seen.eth.payload_offset..).unwrap_or_default();
        let leased = || bindings.slot_lease(slot, seen.now);
        if !policy.admits_fast(seen.eth.src, seen.eth.ethertype, l3, leased) {
            full_check(bindings, policy, ports, macs, slot, seen)?;
        }
        if seen.eth.ethertype == ETHERTYPE_IPV6 && bindings.has_v6_leases() {
            bindings.snoop_release(seen.eth, seen.frame);
        }
    }
    if policy.trusted && bindings.active() {
        bindings.snoop(ports, seen.eth, seen.frame, seen.vlan, seen.now);
    }
    Ok(())
}

#[inline(never)]
fn full_check(
    bindings: &Bindings,
    policy: &Policy,
    ports: &[PortSpec],
    macs: &MacTable,
    slot: usize,
    seen: &Seen<'_>,
) -> Result<(), DropReason> {
    let Some(sec) = ports.get(slot).map(|p| &p.security) else { return Ok(()) };
    let limit_reachable = policy.limit_reachable;
    let cx = check::Ctx { slot, sec, bindings, macs, vlan: seen.vlan, now: seen.now, limit_reachable };
    check::admit(&cx, seen.eth, seen.frame)
}
