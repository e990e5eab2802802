//! An independent model of the VLAN rules (Open vSwitch's `tag`/`trunks`/`vlan_mode`), written
//! from ovs-vswitchd's documentation rather than from `switch::PortVlan`, so the frames target can
//! check the pipeline against something other than itself.

use switch::{PortVlan, VlanMode};

/// One port as the model sees it.
#[derive(Clone, Debug)]
pub struct ModelPort {
    pub name: &'static str,
    pub mode: VlanMode,
    pub tag: Option<u16>,
    /// Empty = every VLAN (trunk modes).
    pub trunks: &'static [u16],
}

impl ModelPort {
    pub const fn new(name: &'static str, mode: VlanMode, tag: Option<u16>, trunks: &'static [u16]) -> Self {
        ModelPort { name, mode, tag, trunks }
    }

    /// The same port in the pipeline's own terms.
    pub fn port_vlan(&self) -> PortVlan {
        PortVlan::new(Some(self.mode), self.tag, self.trunks).expect("model ports are valid")
    }

    fn trunked(&self, vlan: u16) -> bool {
        let native = self.tag.filter(|_| self.mode != VlanMode::Trunk);
        match self.mode {
            VlanMode::Access => false,
            // VID 4095 is host-only: no trunk set carries it, whatever it lists.
            VlanMode::Trunk => vlan != 4095 && (self.trunks.is_empty() || self.trunks.contains(&vlan)),
            // The native VLAN is always carried (4095 too); VLAN 0 never is on native ports.
            _ => {
                let listed = vlan != 4095 && (self.trunks.is_empty() || self.trunks.contains(&vlan));
                vlan != 0 && (native == Some(vlan) || listed)
            }
        }
    }

    /// The VLAN a frame with this VID (`None` = untagged; 0 = priority tag) belongs to on
    /// ingress, or `None` if the port drops it.
    pub fn ingress(&self, vid: Option<u16>) -> Option<u16> {
        let vid = vid.unwrap_or(0);
        match (self.mode, vid) {
            (VlanMode::Access, 0) => self.tag,
            (VlanMode::Access, _) => None,
            (VlanMode::Trunk, v) => self.trunked(v).then_some(v),
            (_, 0) => self.tag,
            (_, v) => self.trunked(v).then_some(v),
        }
    }

    /// How a frame of `vlan` leaves: `None` = not carried, `Some(None)` = untagged,
    /// `Some(Some(vid))` = tagged.
    pub fn egress(&self, vlan: u16) -> Option<Option<u16>> {
        match self.mode {
            VlanMode::Access => (self.tag == Some(vlan)).then_some(None),
            VlanMode::Trunk if vlan == 0 => self.trunked(0).then_some(None),
            VlanMode::NativeUntagged if self.tag == Some(vlan) => Some(None),
            _ => self.trunked(vlan).then_some(Some(vlan)),
        }
    }
}

/// The ports the target's bridge starts with: access, trunk and both native modes, with two
/// access ports on VLAN 10 so unicast between them is learned and forwarded.
pub const PORTS: &[ModelPort] = &[
    ModelPort::new("acc10a", VlanMode::Access, Some(10), &[]),
    ModelPort::new("acc20", VlanMode::Access, Some(20), &[]),
    ModelPort::new("trunk1020", VlanMode::Trunk, None, &[10, 20]),
    ModelPort::new("trunkall", VlanMode::Trunk, None, &[]),
    ModelPort::new("natu10", VlanMode::NativeUntagged, Some(10), &[20]),
    ModelPort::new("natt20", VlanMode::NativeTagged, Some(20), &[10, 30]),
    ModelPort::new("acc10b", VlanMode::Access, Some(10), &[]),
    ModelPort::new("acc0", VlanMode::Access, Some(0), &[]),
];
