//! Port security: a VM port speaks only with its own addresses. Pure like the rest of the
//! pipeline: the bridge calls [`check::admit`] for frames from secured ports and
//! [`bindings::Bindings::snoop`] for frames from trusted ones, with the time as an argument.

mod bindings;
mod check;
mod config;

pub(crate) use bindings::Bindings;
pub use bindings::LeaseEntry;
pub use config::{parse_allowed_ips, IpPrefix, PortSecurity, SecurityConfigError, SecurityMode};

use packet::EthernetHeader;

use crate::{DropReason, MacTable, Millis, PortSpec};

/// A frame that passed the ingress VLAN check, as port security sees it.
pub(crate) struct Seen<'a> {
    pub eth: &'a EthernetHeader,
    pub frame: &'a [u8],
    pub vlan: u16,
    pub now: Millis,
}

/// Port security for a frame from `slot`: the checks when the port is secured, then DHCP
/// snooping when it is trusted (a trusted VM's own DHCPACKs are snooped after its checks).
pub(crate) fn gate(
    bindings: &mut Bindings,
    ports: &[PortSpec],
    macs: &MacTable,
    slot: usize,
    seen: &Seen<'_>,
) -> Result<(), DropReason> {
    let Some(sec) = ports.get(slot).map(|p| &p.security) else { return Ok(()) };
    if sec.checks_l2() {
        let limit_reachable = check::limit_reachable(sec, &ports[slot].vlan);
        let cx = check::Ctx { slot, sec, bindings, macs, vlan: seen.vlan, now: seen.now, limit_reachable };
        check::admit(&cx, seen.eth, seen.frame)?;
    }
    if sec.trusted && bindings.active() {
        bindings.snoop(ports, seen.eth, seen.frame, seen.vlan, seen.now);
    }
    Ok(())
}
