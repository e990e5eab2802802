//! Raw captures on the hosts' NICs while the guests run, and the check of who heard whom:
//! frames are counted by source MAC, and their VLAN tag as the capture saw it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use packet::{ethernet_frame, EthernetHeader, FrameSpec, MacAddr, VlanTag};
use testbed::{frame_capture_until, send_frame};

use super::guest::{GUEST_TIMEOUT, NOBODY_MAC};
use crate::common::Vm;

/// What a capture must have received from one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// Not a single frame.
    Nothing,
    /// Frames, all untagged (an access port).
    Untagged,
    /// Frames, all tagged with this VLAN (a trunk).
    Tagged(u16),
}

/// One line of the expectation table: capture `at` heard `src` like `want`. `guest`: `src` is
/// a VM, so its broadcasts (ARP) and its unknown-unicast flood must be among the frames.
pub struct Expect {
    pub at: &'static str,
    pub src: &'static str,
    pub want: Heard,
    pub guest: bool,
}

/// Raw captures on the hosts' `eth0`, running until stopped (bounded by time all the same).
pub struct Captures {
    stop: Arc<AtomicBool>,
    threads: Vec<(&'static str, JoinHandle<Vec<Vec<u8>>>)>,
}

impl Captures {
    pub fn start(hosts: &[(&'static str, &Vm)]) -> Captures {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = hosts
            .iter()
            .map(|(name, vm)| {
                let mut port = vm.raw();
                let stop = stop.clone();
                let t = std::thread::spawn(move || {
                    frame_capture_until(&mut port, 2 * GUEST_TIMEOUT, 100_000, || {
                        stop.load(Ordering::Relaxed)
                    })
                });
                (*name, t)
            })
            .collect();
        Captures { stop, threads }
    }

    /// Stops the captures; the frames each host received, by host name.
    pub fn finish(mut self) -> Vec<(&'static str, Vec<Vec<u8>>)> {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|(n, t)| (n, t.join().expect("capture thread")))
            .collect()
    }
}

impl Drop for Captures {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn mac(s: &str) -> MacAddr {
    s.parse().expect("MAC")
}

/// Sends one broadcast probe into VLAN `vid` (or untagged) through the bridge's own internal
/// port (a trunk of every VLAN, as in OvS): proof that each capture is alive and sits in the
/// VLAN the test believes, so "zero frames from the VM" cannot pass on a dead capture.
pub fn send_probe(bridge: &str, src: &str, vid: Option<u16>) {
    let mut port = netdev::SystemPort::open(bridge).expect("raw socket on the bridge's internal port");
    let vlan = vid.map(|v| VlanTag::vid(v).unwrap());
    let spec = FrameSpec { dst: MacAddr::BROADCAST, src: mac(src), vlan, ethertype: 0x88b5 };
    let mut buf = [0u8; 64];
    let n = ethernet_frame(&mut buf, &spec, &[0x5a; 46]).unwrap();
    send_frame(&mut port, &buf[..n]).unwrap();
}

/// What is wrong with `heard` (the frames from one source at one capture), if anything.
fn judge(e: &Expect, heard: &[EthernetHeader]) -> Option<String> {
    let vids: Vec<Option<u16>> = heard.iter().map(|h| h.vlan.map(|t| t.vid)).collect();
    let wrong = match e.want {
        Heard::Nothing => !heard.is_empty(),
        Heard::Untagged => heard.is_empty() || vids.iter().any(Option::is_some),
        Heard::Tagged(v) => heard.is_empty() || vids.iter().any(|t| *t != Some(v)),
    };
    if wrong {
        return Some(format!(
            "{} from {}: {} frames with tags {:?}, expected {:?}",
            e.at,
            e.src,
            heard.len(),
            dedup(&vids),
            e.want
        ));
    }
    let bcast = heard.iter().any(|h| h.dst.is_broadcast());
    let flood = heard.iter().any(|h| h.dst == mac(NOBODY_MAC));
    (e.guest && e.want != Heard::Nothing && !(bcast && flood)).then(|| {
        format!("{} from {}: broadcast seen {bcast}, unknown-unicast flood seen {flood}", e.at, e.src)
    })
}

fn dedup(v: &[Option<u16>]) -> Vec<Option<u16>> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Checks every line of `table` against the captures; prints the whole table either way.
pub fn assert_captures(captured: &[(&str, Vec<Vec<u8>>)], table: &[Expect]) {
    let mut report = String::new();
    let mut bad = Vec::new();
    for e in table {
        let frames = &captured.iter().find(|(n, _)| *n == e.at).expect("capture").1;
        let src = mac(e.src);
        let heard: Vec<EthernetHeader> =
            frames.iter().filter_map(|f| EthernetHeader::parse(f).ok()).filter(|h| h.src == src).collect();
        report.push_str(&format!(
            "{:>8} heard {}: {:>3} frames (expected {:?})\n",
            e.at,
            e.src,
            heard.len(),
            e.want
        ));
        bad.extend(judge(e, &heard));
    }
    eprint!("{report}");
    assert!(bad.is_empty(), "isolation by capture failed:\n{}\n{report}", bad.join("\n"));
}
