//! What the zone's IP services did, beside what they dropped ([`crate::Drops`]): DHCP lease
//! events and NAT translations, under fixed names so status, statistics and metrics agree and
//! metrics stay bounded. Only the services the zone runs appear.

use crate::Gateway;

/// The DHCP server's lease events.
pub const DHCP_COUNTERS: [&str; 5] =
    ["dhcp-offered", "dhcp-acked", "dhcp-nak", "dhcp-declined", "dhcp-released"];
/// The NAT's translations: held now (a gauge), made so far, packets refused (table full,
/// no mapping, a fragment, malformed, unsupported: each also a `nat` drop), and mappings
/// dropped because the tunnel's address changed (`Gateway::set_nat_address`).
pub const NAT_COUNTERS: [&str; 4] = ["nat-active", "nat-created", "nat-refused", "nat-readdressed"];
/// The one of them that is a level, not a running count.
pub const NAT_ACTIVE: &str = NAT_COUNTERS[0];

impl Gateway {
    /// (name, value) of the services the zone runs, in a stable order.
    pub fn service_counters(&self) -> Vec<(&'static str, u64)> {
        let mut out = Vec::new();
        if let Some(d) = self.dhcp() {
            let c = d.counters();
            out.extend(DHCP_COUNTERS.into_iter().zip([c.offers, c.acks, c.naks, c.declines, c.releases]));
        }
        if let Some(n) = self.nat() {
            let c = n.counters();
            out.extend(NAT_COUNTERS.into_iter().zip([n.len() as u64, c.created, c.refused(), c.readdressed]));
        }
        out
    }
}
