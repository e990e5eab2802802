//! Injection paced by what the switch and the captures have taken, so a loaded machine slows
//! the hunt down instead of losing frames.
//!
//! The kernel drops a frame silently when a receive ring is full — the switch's on A (64 to 128
//! slots), or a capture's (128) — and a hunt that injects faster than they drain sees "blocked"
//! where there was only "lost" (a CI run at load 8 on 2 cores lost thousands of the flood's
//! frames as `rx-queue-full`). So A sends bursts of [`CHUNK`] frames and, after each, waits
//! until the switch has read (or counted as lost) every frame sent so far and each capture has
//! taken every frame the switch sent its port. Every wait is bounded; a wait that runs out only
//! stops pacing. What counts is measured: frames lost before the switch read them are reported
//! and resent, never taken as evidence, and losses on the way to a capture (which could hide a
//! leak) are counted for the caller to refuse the run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ctl::protocol::ShowReply;
use netdev::SystemPort;
use switch::CounterSnapshot;
use testbed::{link_counter, send_frame, wait_until_every};

use crate::common::Daemon;

/// Frames per burst: well under the switch's smallest receive ring (64 slots a queue when a
/// port has per-CPU queues) and a capture's (128).
const CHUNK: usize = 32;
/// Sends of one burst at most, when the kernel dropped some of its frames before the switch read
/// them.
const ATTEMPTS: usize = 4;
/// Longest wait after one burst: beyond a datapath tick (1 s), when kernel drops reach the
/// switch's `rx-queue-full` counter.
const BURST_WAIT: Duration = Duration::from_secs(5);
/// Longest wait at the end, for the last frames and the last tick.
const FINAL_WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(2);

/// The ports the hunt watches: A injects, each output (B, C, T) has a capture running.
pub struct Ports<'a> {
    pub daemon: &'a Daemon,
    pub a: &'a str,
    pub outs: [&'a str; 3],
    /// Frames each output's capture has taken so far.
    pub seen: [&'a AtomicUsize; 3],
}

/// The switch's and the links' counters at one moment.
#[derive(Clone, Copy, Default, Debug)]
struct Sample {
    /// Frames from A the switch read.
    a_read: u64,
    /// Frames from A the kernel dropped because the switch's ring was full.
    a_queue_full: u64,
    /// Frames the switch transmitted to each output.
    out_tx: [u64; 3],
    /// Frames for each output the switch could not transmit (`tx-failed`).
    out_failed: [u64; 3],
    /// Frames the switch transmitted that the link dropped on the way into the VM (the host
    /// side's `tx_dropped`: the VM's backlog was full).
    out_link_lost: [u64; 3],
}

fn stats(show: &ShowReply, name: &str) -> CounterSnapshot {
    let port = show.bridges.iter().flat_map(|b| &b.ports).find(|p| p.name == name);
    port.unwrap_or_else(|| panic!("no port {name} in show")).statistics.clone()
}

fn dropped(s: &CounterSnapshot, reason: &str) -> u64 {
    s.drops.get(reason).copied().unwrap_or(0)
}

/// Frames from A the switch read or counted as dropped by the kernel since `base`.
fn accounted(s: &Sample, base: &Sample) -> u64 {
    (s.a_read - base.a_read) + (s.a_queue_full - base.a_queue_full)
}

impl Ports<'_> {
    fn sample(&self) -> Sample {
        let show = self.daemon.show();
        let a = stats(&show, self.a);
        let mut s =
            Sample { a_read: a.rx_packets, a_queue_full: dropped(&a, "rx-queue-full"), ..Sample::default() };
        for (i, out) in self.outs.iter().enumerate() {
            let st = stats(&show, out);
            s.out_tx[i] = st.tx_packets;
            s.out_failed[i] = dropped(&st, "tx-failed");
            s.out_link_lost[i] = link_counter(out, "tx_dropped").expect("host side of an output link");
        }
        s
    }
}

/// What became of one kind's frames.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Frames the kernel took from A (resent ones included).
    pub sent: u64,
    /// Of those, frames lost before the switch read them: no evidence either way.
    pub lost: u64,
}

impl Delivery {
    /// Frames the switch read and decided: the evidence.
    pub fn read(&self) -> u64 {
        self.sent - self.lost
    }
}

/// Losses over the whole injection.
#[derive(Clone, Copy, Default, Debug)]
pub struct Losses {
    /// Frames from A dropped because the switch's ring was full (`rx-queue-full`).
    pub queue_full: u64,
    /// Frames from A the switch neither read nor counted within a bounded wait (a full backlog
    /// on the link, say).
    pub unaccounted: u64,
    /// Frames for each output lost between the switch's decision and the capture: not
    /// transmitted, dropped by the link, or never taken by the capture (whose socket's own
    /// drop counter the caller may add).
    pub outputs: [u64; 3],
}

/// Sends frames from A, paced (module doc).
pub struct Injector<'a> {
    ports: Ports<'a>,
    base: Sample,
    /// Frames the switch should have read or counted by now.
    target: u64,
    unaccounted: u64,
    /// Frames per output that a capture did not take within a bounded wait: no longer waited
    /// for (they are judged by [`Injector::finish`]).
    forgiven: [u64; 3],
    last: Sample,
}

impl<'a> Injector<'a> {
    /// Starts counting from now; the captures must already be taking frames.
    pub fn new(ports: Ports<'a>) -> Injector<'a> {
        let base = ports.sample();
        Injector { ports, base, target: 0, unaccounted: 0, forgiven: [0; 3], last: base }
    }

    /// Sends `frames` in paced bursts; a burst that lost frames before the switch read them is
    /// sent again (identical frames: more of the same evidence).
    pub fn inject(&mut self, tx: &mut SystemPort, frames: &[Vec<u8>]) -> Delivery {
        let mut d = Delivery::default();
        for burst in frames.chunks(CHUNK) {
            for _ in 0..ATTEMPTS {
                let sent = burst.iter().filter(|f| send_frame(tx, f).is_ok()).count() as u64;
                let lost = self.settle(sent, BURST_WAIT);
                d.sent += sent;
                d.lost += lost;
                if lost == 0 {
                    break;
                }
            }
        }
        d
    }

    /// Waits for the last frames and returns the losses of the whole injection.
    pub fn finish(mut self) -> Losses {
        self.forgiven = [0; 3];
        self.settle(0, FINAL_WAIT);
        let (s, b) = (self.last, self.base);
        let outputs = std::array::from_fn(|i| {
            let link_lost = s.out_link_lost[i] - b.out_link_lost[i];
            let seen = self.ports.seen[i].load(Ordering::Relaxed) as u64;
            let uncaptured = (s.out_tx[i] - b.out_tx[i]).saturating_sub(seen + link_lost);
            (s.out_failed[i] - b.out_failed[i]) + link_lost + uncaptured
        });
        Losses { queue_full: s.a_queue_full - b.a_queue_full, unaccounted: self.unaccounted, outputs }
    }

    /// Counts `sent` more frames and waits (up to `limit`) until the switch has read or counted
    /// every frame so far and the captures have caught up. Returns the frames lost meanwhile;
    /// those the switch still has not accounted for then count as lost too (if they turn up
    /// later, the next waits end sooner, nothing worse).
    fn settle(&mut self, sent: u64, limit: Duration) -> u64 {
        self.target += sent;
        let before = self.lost_so_far();
        let mut last = self.last;
        wait_until_every(limit, POLL, || {
            last = self.ports.sample();
            accounted(&last, &self.base) >= self.target && self.uncaptured(&last).iter().all(|&n| n == 0)
        });
        self.last = last;
        let accounted = accounted(&self.last, &self.base);
        if accounted < self.target {
            self.unaccounted += self.target - accounted;
            self.target = accounted;
        }
        let short = self.uncaptured(&self.last);
        for (f, n) in self.forgiven.iter_mut().zip(short) {
            *f += n;
        }
        self.lost_so_far() - before
    }

    /// Frames per output the switch transmitted (and the link did not drop) that the capture
    /// has not taken yet, beyond those already forgiven.
    fn uncaptured(&self, s: &Sample) -> [u64; 3] {
        std::array::from_fn(|i| {
            let on_the_way = s.out_tx[i] - self.base.out_tx[i];
            let gone = (s.out_link_lost[i] - self.base.out_link_lost[i]) + self.forgiven[i];
            on_the_way.saturating_sub(self.ports.seen[i].load(Ordering::Relaxed) as u64 + gone)
        })
    }

    fn lost_so_far(&self) -> u64 {
        (self.last.a_queue_full - self.base.a_queue_full) + self.unaccounted
    }
}
