//! 802.1Q port rules with Open vSwitch's semantics for `tag`, `trunks` and `vlan_mode`.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// OvS `vlan_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VlanMode {
    /// Untagged frames in `tag`'s VLAN; tagged frames dropped; output untagged.
    Access,
    /// Tagged frames whose VID is in `trunks` (all, when empty); untagged = VLAN 0.
    Trunk,
    /// Like trunk, but untagged ingress is the native VLAN `tag`; native VLAN output tagged.
    NativeTagged,
    /// Like native-tagged, but native VLAN output untagged.
    NativeUntagged,
}

impl VlanMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            VlanMode::Access => "access",
            VlanMode::Trunk => "trunk",
            VlanMode::NativeTagged => "native-tagged",
            VlanMode::NativeUntagged => "native-untagged",
        }
    }
}

impl std::str::FromStr for VlanMode {
    type Err = VlanConfigError;

    /// The OVSDB `vlan_mode` strings.
    fn from_str(s: &str) -> Result<VlanMode, VlanConfigError> {
        [VlanMode::Access, VlanMode::Trunk, VlanMode::NativeTagged, VlanMode::NativeUntagged]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| VlanConfigError::UnknownMode(s.escape_debug().to_string()))
    }
}

impl fmt::Display for VlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of VLAN IDs 0..=4095 as a bitmap: O(1) membership on the hot path, no allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct VlanSet([u64; 64]);

impl VlanSet {
    pub const fn empty() -> VlanSet {
        VlanSet([0; 64])
    }

    pub fn all() -> VlanSet {
        VlanSet([u64::MAX; 64])
    }

    pub fn insert(&mut self, vid: u16) {
        let v = usize::from(vid & 0x0fff);
        self.0[v / 64] |= 1 << (v % 64);
    }

    pub fn remove(&mut self, vid: u16) {
        let v = usize::from(vid & 0x0fff);
        self.0[v / 64] &= !(1 << (v % 64));
    }

    pub fn contains(&self, vid: u16) -> bool {
        let v = usize::from(vid & 0x0fff);
        self.0[v / 64] & (1 << (v % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0u16..4096).filter(|v| self.contains(*v))
    }
}

impl fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<u16> for VlanSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut s = VlanSet::empty();
        for v in iter {
            s.insert(v);
        }
        s
    }
}

/// A port's configuration was inconsistent; mirrors what ovs-vswitchd refuses or warns about.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VlanConfigError {
    #[error("tag {0} out of range 0..=4095")]
    TagOutOfRange(u16),
    #[error("trunk VLAN {0} out of range 0..=4095")]
    TrunkOutOfRange(u16),
    #[error("vlan_mode {0} needs a tag")]
    TagRequired(VlanMode),
    #[error("vlan_mode access does not take trunks")]
    AccessWithTrunks,
    #[error("vlan_mode \"{0}\" is not one of access, trunk, native-tagged, native-untagged")]
    UnknownMode(String),
}

/// VID 4095: 802.1Q reserves it "for implementation use" and says it shall not be a member
/// of a VID set. Here it is the *host-only* VLAN: no trunk carries it (not even an all-VLANs
/// trunk, nor one that lists it), so it is shared only by access ports of tag 4095 — and by
/// a native port whose own VLAN it is. A zone puts its bridge's internal port there when the
/// zone's frames must never reach the host's IP stack; a VM on a trunk cannot tag its way in.
pub const HOST_ONLY_VID: u16 = 4095;

/// The resolved VLAN behaviour of one port, computed once per config change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortVlan {
    mode: VlanMode,
    /// Access VLAN or native VLAN.
    tag: u16,
    /// VLANs carried tagged (trunk/native modes); for native modes it includes `tag` and never 0;
    /// never [`HOST_ONLY_VID`] unless that is the native `tag`.
    trunks: VlanSet,
    /// `trunks` came from an empty column: "all VLANs" (as the status reports it back).
    all: bool,
}

impl PortVlan {
    /// Resolves OvS columns. `vlan_mode` absent means: access when `tag` is set, trunk otherwise
    /// (OvS's default). Empty `trunks` on a trunk means "all VLANs".
    pub fn new(
        mode: Option<VlanMode>,
        tag: Option<u16>,
        trunks: &[u16],
    ) -> Result<PortVlan, VlanConfigError> {
        if let Some(t) = tag.filter(|t| *t > 4095) {
            return Err(VlanConfigError::TagOutOfRange(t));
        }
        if let Some(t) = trunks.iter().find(|t| **t > 4095) {
            return Err(VlanConfigError::TrunkOutOfRange(*t));
        }
        let mode = mode.unwrap_or(if tag.is_some() { VlanMode::Access } else { VlanMode::Trunk });
        let mut set: VlanSet =
            if trunks.is_empty() { VlanSet::all() } else { trunks.iter().copied().collect() };
        set.remove(HOST_ONLY_VID);
        let tag = match mode {
            VlanMode::Access => {
                if !trunks.is_empty() {
                    return Err(VlanConfigError::AccessWithTrunks);
                }
                set = VlanSet::empty();
                tag.ok_or(VlanConfigError::TagRequired(mode))?
            }
            VlanMode::Trunk => 0,
            VlanMode::NativeTagged | VlanMode::NativeUntagged => {
                let t = tag.ok_or(VlanConfigError::TagRequired(mode))?;
                // As OvS does: the native VLAN is always trunked and VLAN 0 never is.
                set.insert(t);
                set.remove(0);
                t
            }
        };
        let all = trunks.is_empty() && mode != VlanMode::Access;
        Ok(PortVlan { mode, tag, trunks: set, all })
    }

    /// An access port on `tag`.
    pub fn access(tag: u16) -> PortVlan {
        PortVlan { mode: VlanMode::Access, tag: tag & 0x0fff, trunks: VlanSet::empty(), all: false }
    }

    /// A trunk or native port configured with an empty `trunks` column: all VLANs (but VLAN 0
    /// on native ports and [`HOST_ONLY_VID`]), which the database spells as the empty set.
    pub fn trunks_all(&self) -> bool {
        self.all
    }

    pub fn mode(&self) -> VlanMode {
        self.mode
    }

    /// The access/native VLAN; `None` for plain trunks.
    pub fn tag(&self) -> Option<u16> {
        (self.mode != VlanMode::Trunk).then_some(self.tag)
    }

    pub fn trunks(&self) -> &VlanSet {
        &self.trunks
    }

    /// Ingress rule: the VLAN a frame belongs to, given its VID (`None` or `Some(0)` = untagged or
    /// priority-tagged), or `None` when this port does not accept it.
    pub fn ingress_vlan(&self, vid: Option<u16>) -> Option<u16> {
        let vid = vid.unwrap_or(0);
        match self.mode {
            VlanMode::Access => (vid == 0).then_some(self.tag),
            VlanMode::Trunk => self.trunks.contains(vid).then_some(vid),
            VlanMode::NativeTagged | VlanMode::NativeUntagged => {
                if vid == 0 {
                    Some(self.tag)
                } else {
                    self.trunks.contains(vid).then_some(vid)
                }
            }
        }
    }

    /// Egress rule: `None` when this port does not carry `vlan`, else the VID to put on the wire
    /// (0 = send untagged).
    pub fn egress_vid(&self, vlan: u16) -> Option<u16> {
        match self.mode {
            VlanMode::Access => (vlan == self.tag).then_some(0),
            VlanMode::Trunk => self.trunks.contains(vlan).then_some(vlan),
            VlanMode::NativeTagged => self.trunks.contains(vlan).then_some(vlan),
            VlanMode::NativeUntagged => {
                self.trunks.contains(vlan).then_some(if vlan == self.tag { 0 } else { vlan })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(mode: VlanMode, tag: Option<u16>, trunks: &[u16]) -> PortVlan {
        PortVlan::new(Some(mode), tag, trunks).unwrap()
    }

    #[test]
    fn vlan_mode_strings_round_trip() {
        for m in [VlanMode::Access, VlanMode::Trunk, VlanMode::NativeTagged, VlanMode::NativeUntagged] {
            assert_eq!(m.as_str().parse::<VlanMode>(), Ok(m));
        }
        assert!(matches!("dot1q-tunnel".parse::<VlanMode>(), Err(VlanConfigError::UnknownMode(_))));
    }

    #[test]
    fn default_mode_follows_tag() {
        assert_eq!(PortVlan::new(None, Some(10), &[]).unwrap().mode(), VlanMode::Access);
        assert_eq!(PortVlan::new(None, None, &[]).unwrap().mode(), VlanMode::Trunk);
        assert_eq!(PortVlan::new(None, None, &[10, 20]).unwrap().mode(), VlanMode::Trunk);
    }

    #[test]
    fn access() {
        let p = port(VlanMode::Access, Some(10), &[]);
        assert_eq!(p.ingress_vlan(None), Some(10));
        assert_eq!(p.ingress_vlan(Some(0)), Some(10), "priority-tagged counts as untagged");
        assert_eq!(p.ingress_vlan(Some(10)), None, "tagged frames are dropped, even with its own VID");
        assert_eq!(p.ingress_vlan(Some(20)), None);
        assert_eq!(p.egress_vid(10), Some(0));
        assert_eq!(p.egress_vid(20), None);
        assert_eq!(p.egress_vid(0), None);
    }

    #[test]
    fn trunk_all_and_listed() {
        let all = port(VlanMode::Trunk, None, &[]);
        assert_eq!(all.ingress_vlan(None), Some(0));
        assert_eq!(all.ingress_vlan(Some(4094)), Some(4094));
        assert_eq!(all.egress_vid(0), Some(0), "VLAN 0 leaves a trunk untagged");
        assert_eq!(all.egress_vid(20), Some(20));

        let listed = port(VlanMode::Trunk, None, &[10, 20]);
        assert_eq!(listed.ingress_vlan(None), None, "untagged is VLAN 0, not trunked here");
        assert_eq!(listed.ingress_vlan(Some(10)), Some(10));
        assert_eq!(listed.ingress_vlan(Some(30)), None);
        assert_eq!(listed.egress_vid(20), Some(20));
        assert_eq!(listed.egress_vid(30), None);
    }

    #[test]
    fn native_tagged() {
        let p = port(VlanMode::NativeTagged, Some(42), &[43]);
        assert_eq!(p.ingress_vlan(None), Some(42));
        assert_eq!(p.ingress_vlan(Some(42)), Some(42), "native VLAN is implicitly trunked");
        assert_eq!(p.ingress_vlan(Some(43)), Some(43));
        assert_eq!(p.ingress_vlan(Some(44)), None);
        assert_eq!(p.egress_vid(42), Some(42), "native VLAN leaves tagged");
        assert_eq!(p.egress_vid(43), Some(43));
        assert_eq!(p.egress_vid(0), None);
    }

    #[test]
    fn native_untagged() {
        let p = port(VlanMode::NativeUntagged, Some(42), &[42, 43]);
        assert_eq!(p.ingress_vlan(None), Some(42));
        assert_eq!(p.ingress_vlan(Some(43)), Some(43));
        assert_eq!(p.egress_vid(42), Some(0), "native VLAN leaves untagged");
        assert_eq!(p.egress_vid(43), Some(43));
        assert_eq!(p.egress_vid(44), None);
        let all = port(VlanMode::NativeUntagged, Some(5), &[]);
        assert_eq!(all.egress_vid(0), None, "VLAN 0 is never trunked on native ports");
        assert_eq!(all.egress_vid(100), Some(100));
    }

    #[test]
    fn no_trunk_carries_the_host_only_vlan() {
        for p in [port(VlanMode::Trunk, None, &[]), port(VlanMode::Trunk, None, &[10, HOST_ONLY_VID])] {
            assert_eq!(p.ingress_vlan(Some(HOST_ONLY_VID)), None, "{p:?}");
            assert_eq!(p.egress_vid(HOST_ONLY_VID), None, "{p:?}");
        }
        let native = port(VlanMode::NativeTagged, Some(5), &[]);
        assert_eq!(native.ingress_vlan(Some(HOST_ONLY_VID)), None);
        assert_eq!(native.egress_vid(HOST_ONLY_VID), None);
        let host = port(VlanMode::Access, Some(HOST_ONLY_VID), &[]);
        assert_eq!(host.ingress_vlan(None), Some(HOST_ONLY_VID));
        assert_eq!(host.egress_vid(HOST_ONLY_VID), Some(0), "access ports of 4095 share it");
        let own = port(VlanMode::NativeUntagged, Some(HOST_ONLY_VID), &[]);
        assert_eq!(own.egress_vid(HOST_ONLY_VID), Some(0), "a native port keeps its own VLAN");
        assert!(
            port(VlanMode::Trunk, None, &[]).trunks_all() && !port(VlanMode::Trunk, None, &[1]).trunks_all()
        );
        assert!(!host.trunks_all() && native.trunks_all());
    }

    #[test]
    fn config_errors() {
        assert_eq!(
            PortVlan::new(Some(VlanMode::Access), None, &[]),
            Err(VlanConfigError::TagRequired(VlanMode::Access))
        );
        assert_eq!(PortVlan::new(None, Some(4096), &[]), Err(VlanConfigError::TagOutOfRange(4096)));
        assert_eq!(PortVlan::new(None, None, &[1, 5000]), Err(VlanConfigError::TrunkOutOfRange(5000)));
        assert_eq!(
            PortVlan::new(Some(VlanMode::Access), Some(1), &[2]),
            Err(VlanConfigError::AccessWithTrunks)
        );
        assert!(PortVlan::new(Some(VlanMode::NativeTagged), None, &[2]).is_err());
    }

    proptest::proptest! {
        /// Whatever a port accepts on ingress it also carries on egress (no one-way VLANs), and
        /// an egress VID is either 0 or the VLAN itself.
        #[test]
        fn ingress_implies_egress(mode in 0u8..4, tag in 1u16..4095, trunks in proptest::collection::vec(0u16..4096, 0..4), vid in proptest::option::of(0u16..4096)) {
            let mode = [VlanMode::Access, VlanMode::Trunk, VlanMode::NativeTagged, VlanMode::NativeUntagged][usize::from(mode)];
            let trunks = if mode == VlanMode::Access { vec![] } else { trunks };
            let tag = if mode == VlanMode::Trunk { None } else { Some(tag) };
            let p = PortVlan::new(Some(mode), tag, &trunks).unwrap();
            if let Some(vlan) = p.ingress_vlan(vid) {
                let out = p.egress_vid(vlan);
                proptest::prop_assert!(out.is_some());
                let out = out.unwrap();
                proptest::prop_assert!(out == 0 || out == vlan);
            }
        }
    }
}
