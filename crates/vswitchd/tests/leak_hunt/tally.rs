//! Where each kind arrived, and the verdict on it.

use std::collections::HashMap;

use packet::EthernetHeader;

use crate::kinds::{Expect, Kind};
use crate::pace::Delivery;

/// One kind's frames: how many went out, and how many of them each capture saw.
#[derive(Default, Clone, Copy)]
pub struct Tally {
    pub delivery: Delivery,
    pub at_b: u64,
    pub at_t10: u64,
    pub at_t_other: u64,
    pub at_c: u64,
}

/// `f` without its outer 802.1Q tag, if it has one.
fn untagged(f: &[u8]) -> Option<Vec<u8>> {
    let h = EthernetHeader::parse(f).ok()?;
    h.vlan?;
    Some([&f[..12], &f[16..]].concat())
}

fn vid_of(f: &[u8]) -> Option<u16> {
    EthernetHeader::parse(f).ok().and_then(|h| h.vlan).map(|t| t.vid)
}

/// Every frame A sends, as sent and as it would arrive with its outer tag popped (a priority
/// tag hiding another), to the index of its kind.
pub struct SentFrames(HashMap<Vec<u8>, usize>);

impl SentFrames {
    pub fn new(kinds: &[Kind]) -> SentFrames {
        let mut map = HashMap::new();
        for (k, kind) in kinds.iter().enumerate() {
            for f in &kind.frames {
                map.extend(untagged(f).map(|u| (u, k)));
                map.insert(f.clone(), k);
            }
        }
        SentFrames(map)
    }

    /// Which kind a captured frame is (as sent, or with the tag the switch pushed removed).
    fn kind_of(&self, f: &[u8]) -> Option<usize> {
        self.0.get(f).copied().or_else(|| untagged(f).and_then(|u| self.0.get(&u).copied()))
    }

    /// Counts what B, C and T captured into `tally`; frames of no kind (the VMs' own) are ignored.
    pub fn count(&self, tally: &mut [Tally], at_b: &[Vec<u8>], at_c: &[Vec<u8>], at_t: &[Vec<u8>]) {
        for k in at_b.iter().filter_map(|f| self.kind_of(f)) {
            tally[k].at_b += 1;
        }
        for k in at_c.iter().filter_map(|f| self.kind_of(f)) {
            tally[k].at_c += 1;
        }
        for f in at_t {
            let Some(k) = self.kind_of(f) else { continue };
            if vid_of(f) == Some(10) && untagged(f).is_some_and(|u| self.0.contains_key(&u)) {
                tally[k].at_t10 += 1;
            } else {
                tally[k].at_t_other += 1;
            }
        }
    }
}

pub fn print_table(kinds: &[Kind], t: &[Tally]) {
    println!(
        "{:<32} {:>8} {:>5} {:>6} {:>6} {:>9} {:>6}  expect",
        "kind", "sent", "lost", "B", "T(10)", "T(other)", "C"
    );
    for (k, t) in kinds.iter().zip(t) {
        println!(
            "{:<32} {:>8} {:>5} {:>6} {:>6} {:>9} {:>6}  {:?}",
            k.name, t.delivery.sent, t.delivery.lost, t.at_b, t.at_t10, t.at_t_other, t.at_c, k.expect
        );
    }
}

/// What the captures say, kind by kind. Only frames that arrived count as a leak; only frames
/// the switch read (not those lost before it) count as having been tried.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Kinds that reached B, or T outside VLAN 10.
    pub cross_vlan: Vec<String>,
    /// Kinds that must reach nobody and reached C or T.
    pub abuses: Vec<&'static str>,
    /// Legitimate kinds that did not reach C.
    pub legit_missing: Vec<String>,
    /// Hostile kinds the switch read at least one frame of.
    pub hostile_tried: usize,
}

pub fn verdict(kinds: &[Kind], tally: &[Tally]) -> Verdict {
    let mut v = Verdict::default();
    for (k, t) in kinds.iter().zip(tally) {
        if t.at_b > 0 || t.at_t_other > 0 {
            v.cross_vlan.push(format!("{}: B {}, T outside VLAN 10 {}", k.name, t.at_b, t.at_t_other));
        }
        let hostile = k.expect != Expect::Legit;
        v.hostile_tried += usize::from(hostile && t.delivery.read() > 0);
        match k.expect {
            Expect::Blocked | Expect::Guarded if t.at_c + t.at_t10 > 0 => v.abuses.push(k.name),
            Expect::Legit if t.at_c == 0 => {
                v.legit_missing.push(format!("{}: read {}, reached C 0", k.name, t.delivery.read()))
            }
            _ => {}
        }
    }
    v
}
