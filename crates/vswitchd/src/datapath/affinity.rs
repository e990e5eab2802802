//! Sender affinity: while the forwarding thread is lightly loaded, it runs on the CPU whose
//! senders it is serving.
//!
//! Why: waking a thread that sleeps on another, idle CPU costs an inter-processor interrupt and,
//! in a VM, the host waking a halted vCPU — measured ~38 µs median on our 2-vCPU machines,
//! against ~6 µs for a wakeup on the CPU the waker runs on. A request/response exchange through
//! the switch pays that twice, which put rvswitch's ping RTT at ~60 µs against 11 µs for the
//! kernel bridge (which forwards in the sender's own context).
//!
//! How: system ports receive through per-CPU queues (`PACKET_FANOUT_CPU`), so the queue that
//! woke us names the CPU the sender ran on. When every frame of a wakeup came from one queue and
//! the thread has been mostly idle, it moves itself (`sched_setaffinity`) to that queue's CPUs;
//! the next frame from that sender then wakes it locally, and the peer's answer, produced inside
//! our own send, lands in the same queue. When the thread gets busy (bulk transfers, floods) it
//! gives the pin up and lets the scheduler spread it, which is what throughput wants on few cores:
//! sender, switch and receiver each on their own CPU.
//!
//! Limits, measured: when it holds, ping RTT through the switch is ~20 µs (bridge: ~10 µs)
//! instead of ~55 µs. But the scheduler may answer our move by moving the sender: it wakes the
//! sender (with the peer's reply) while we still run on its CPU, and prefers an idle CPU for it.
//! Whether that happens varies from run to run; following again only starts a chase, so a
//! sender that flees right after a move is left alone for a growing hold-off (see
//! `CHASE_WINDOW`), and the thread behaves as without sender affinity. (Tried and dropped:
//! `SCHED_FIFO` while following — the preempted sender is then pulled to the idle CPU by idle
//! balancing, and chases got more frequent.)

use std::time::{Duration, Instant};

use tracing::debug;

/// Load is judged over windows of this length.
const WINDOW: Duration = Duration::from_millis(20);
/// Busy fraction above which the thread counts as loaded (and stops following senders)...
const LOADED_ABOVE: f64 = 0.30;
/// ...and below which it counts as lightly loaded again (hysteresis against flapping).
const LIGHT_BELOW: f64 = 0.15;
/// More wakeups than this in a window also count as loaded (5000/s): a steady stream, where
/// sharing the sender's CPU would cost more than the wakeups it saves.
const WAKEUPS_LOADED: u32 = 100;
/// More frames than this in a window also count as loaded (25 kpps). Needed because a thread
/// starved by a CPU-bound sender on its CPU looks idle by time (it is not running, so not busy)
/// while its ring overflows: measured, a UDP flood fell from 490 to 70 kpps that way.
const FRAMES_LOADED: u32 = 500;
/// Consecutive wakeups from one queue before the thread moves there. Traffic whose two
/// directions are sent from different CPUs (a bulk sender and the receiver's ACKs) alternates
/// queues and must not make the thread hop: each move can leave it waiting behind a busy task
/// on the new CPU for a scheduler slice (measured: TCP fell from 14 Gb/s to 25 Mb/s).
const FOLLOW_AFTER: u32 = 4;
/// At most one move to a sender's CPU per this long (giving up the pin is never delayed).
const MIN_MOVE_INTERVAL: Duration = Duration::from_millis(50);
/// A sender that shows up on another CPU within this long after we moved next to it fled: the
/// scheduler wakes it while we run on its CPU and prefers an idle one. Following it again
/// would only start a chase (observed: a move every 50 ms, RTT worse than not following), so
/// the thread stays unpinned for a while instead...
const CHASE_WINDOW: Duration = Duration::from_millis(500);
/// ...first this long, doubling per chase up to `MAX_HOLD_OFF`; a pin that held for
/// `STABLE_PIN` resets it.
const MIN_HOLD_OFF: Duration = Duration::from_secs(1);
const MAX_HOLD_OFF: Duration = Duration::from_secs(32);
const STABLE_PIN: Duration = Duration::from_secs(2);

/// A set of CPUs, as the kernel's affinity calls take it.
#[derive(Clone, Copy)]
struct CpuSet(libc::cpu_set_t);

impl CpuSet {
    fn empty() -> CpuSet {
        // SAFETY: `cpu_set_t` is a plain bit array; all-zero is the empty set.
        CpuSet(unsafe { std::mem::zeroed() })
    }

    /// The calling thread's current affinity.
    fn of_this_thread() -> Option<CpuSet> {
        let mut set = CpuSet::empty();
        // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes into `set`.
        let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set.0) };
        (r == 0).then_some(set)
    }

    fn contains(&self, cpu: usize) -> bool {
        // SAFETY: CPU_ISSET only reads the bit array; `cpu` is bounds-checked by the caller.
        cpu < libc::CPU_SETSIZE as usize && unsafe { libc::CPU_ISSET(cpu, &self.0) }
    }

    fn insert(&mut self, cpu: usize) {
        // SAFETY: CPU_SET writes one bit of the array we own; `cpu` is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut self.0) }
    }

    fn is_empty(&self) -> bool {
        (0..libc::CPU_SETSIZE as usize).all(|c| !self.contains(c))
    }

    /// Restricts the calling thread to this set.
    fn apply(&self) -> bool {
        // SAFETY: `self.0` is a valid cpu_set_t of the advertised size.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) == 0 }
    }
}

/// Where the thread is allowed to run right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// Anywhere in the original set (the scheduler decides).
    Free,
    /// On the CPUs of this receive queue.
    Near(usize),
}

/// Per-thread state of the policy; see the module docs.
pub struct SenderAffinity {
    /// The thread's affinity when it started: never widened beyond it.
    allowed: CpuSet,
    /// CPUs of each receive queue (`c % queues == k`) within `allowed`; `None`: none allowed.
    near: Vec<Option<CpuSet>>,
    placement: Placement,
    loaded: bool,
    window_start: Instant,
    busy_in_window: Duration,
    wakeups_in_window: u32,
    frames_in_window: u32,
    /// The queue recent wakeups came from alone, and how many in a row.
    streak: Option<(usize, u32)>,
    last_move: Option<Instant>,
    /// No following before this (after a chase).
    hold_off_until: Option<Instant>,
    hold_off: Duration,
}

impl SenderAffinity {
    /// Policy for a thread reading ports with `queues` per-CPU receive queues; `None` when there
    /// is nothing to follow (one queue) or the affinity cannot be read.
    pub fn new(queues: usize) -> Option<SenderAffinity> {
        if queues < 2 {
            return None;
        }
        let allowed = CpuSet::of_this_thread()?;
        let near = (0..queues)
            .map(|k| {
                let mut set = CpuSet::empty();
                for c in (k..libc::CPU_SETSIZE as usize).step_by(queues) {
                    if allowed.contains(c) {
                        set.insert(c);
                    }
                }
                (!set.is_empty()).then_some(set)
            })
            .collect();
        Some(SenderAffinity {
            allowed,
            near,
            placement: Placement::Free,
            loaded: false,
            window_start: Instant::now(),
            busy_in_window: Duration::ZERO,
            wakeups_in_window: 0,
            frames_in_window: 0,
            streak: None,
            last_move: None,
            hold_off_until: None,
            hold_off: MIN_HOLD_OFF,
        })
    }

    /// Called after each wakeup that moved `frames` frames: `busy` is how long it took, `source`
    /// the one per-CPU queue all its frames came from (`None`: several, or a port without
    /// per-CPU queues).
    pub fn after_wakeup(&mut self, now: Instant, busy: Duration, frames: usize, source: Option<usize>) {
        self.busy_in_window += busy;
        self.wakeups_in_window += 1;
        self.frames_in_window = self.frames_in_window.saturating_add(frames as u32);
        self.judge_load(now);
        self.follow(now, source);
    }

    /// Called after a loop round that moved frames without having slept before it: frames our
    /// own sends produced (a peer's answer, made inside our send, lands in the queue of the CPU
    /// we run on). They count as work but say nothing about where senders are.
    pub fn after_continuation(&mut self, now: Instant, busy: Duration, frames: usize) {
        self.busy_in_window += busy;
        self.frames_in_window = self.frames_in_window.saturating_add(frames as u32);
        self.judge_load(now);
        if self.loaded {
            self.follow(now, None);
        }
    }

    fn judge_load(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= WINDOW {
            let load = self.busy_in_window.as_secs_f64() / elapsed.as_secs_f64();
            let threshold = if self.loaded { LIGHT_BELOW } else { LOADED_ABOVE };
            // Counts per window length, so a long quiet gap dilutes them.
            let per_window = |n: u32| f64::from(n) * WINDOW.as_secs_f64() / elapsed.as_secs_f64();
            self.loaded = load > threshold
                || per_window(self.wakeups_in_window) > f64::from(WAKEUPS_LOADED)
                || per_window(self.frames_in_window) > f64::from(FRAMES_LOADED);
            self.window_start = now;
            self.busy_in_window = Duration::ZERO;
            self.wakeups_in_window = 0;
            self.frames_in_window = 0;
        }
    }

    fn follow(&mut self, now: Instant, source: Option<usize>) {
        self.streak = match (self.streak, source) {
            (Some((q, n)), Some(s)) if q == s => Some((q, n.saturating_add(1))),
            (_, Some(s)) => Some((s, 1)),
            (_, None) => None,
        };
        let since_move = self.last_move.map(|t| now.saturating_duration_since(t));
        let held_off = self.hold_off_until.is_some_and(|t| now < t);
        let mut want = match (self.loaded, self.streak) {
            (true, _) => Placement::Free,
            (false, Some((q, n)))
                if n >= FOLLOW_AFTER
                    && !held_off
                    && self.near.get(q).is_some_and(Option::is_some)
                    && since_move.is_none_or(|d| d >= MIN_MOVE_INTERVAL) =>
            {
                Placement::Near(q)
            }
            (false, _) => self.placement,
        };
        if let (Placement::Near(at), Placement::Near(to)) = (self.placement, want) {
            if at != to && since_move.is_some_and(|d| d < CHASE_WINDOW) {
                want = Placement::Free;
                self.hold_off_until = Some(now + self.hold_off);
                debug!(hold_off = ?self.hold_off, "sender moved away from the forwarding thread; not following");
                self.hold_off = (self.hold_off * 2).min(MAX_HOLD_OFF);
            } else if since_move.is_some_and(|d| d >= STABLE_PIN) {
                self.hold_off = MIN_HOLD_OFF;
            }
        }
        if want != self.placement {
            let set = match want {
                Placement::Free => self.allowed,
                Placement::Near(q) => self.near[q].unwrap_or(self.allowed),
            };
            if set.apply() {
                debug!(?want, "forwarding thread placement");
                self.placement = want;
                if want != Placement::Free {
                    self.last_move = Some(now);
                }
            }
        }
    }

    /// True while the thread counts as loaded.
    #[cfg(test)]
    fn is_loaded(&self) -> bool {
        self.loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a fresh thread (affinity changes stay there).
    fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| s.spawn(f).join().unwrap())
    }

    fn current_cpus() -> Vec<usize> {
        let set = CpuSet::of_this_thread().unwrap();
        (0..libc::CPU_SETSIZE as usize).filter(|&c| set.contains(c)).collect()
    }

    /// The CPUs this process may use, or `None` (with a printed reason) if there are too few
    /// to move between.
    fn cpus_to_move_between(test: &str) -> Option<Vec<usize>> {
        let all = current_cpus();
        if all.len() < 2 {
            testbed::skip(test, &format!("this process may run on {} CPU(s)", all.len()));
            return None;
        }
        Some(all)
    }

    /// The CPUs of `all` that queue `q` of `queues` stands for.
    fn near(all: &[usize], q: usize, queues: usize) -> Vec<usize> {
        all.iter().copied().filter(|c| c % queues == q).collect()
    }

    /// `FOLLOW_AFTER` short wakeups from queue `q`, 1 ms apart from `t` on.
    fn streak(a: &mut SenderAffinity, t: Instant, q: usize) {
        for i in 0..FOLLOW_AFTER {
            a.after_wakeup(t + Duration::from_millis(u64::from(i)), Duration::from_micros(10), 1, Some(q));
        }
    }

    #[test]
    fn a_sender_that_flees_is_not_chased() {
        let Some(all) = cpus_to_move_between("a_sender_that_flees_is_not_chased") else { return };
        on_thread(|| {
            let mut a = SenderAffinity::new(2).unwrap();
            let t0 = Instant::now();
            streak(&mut a, t0, 0);
            assert_eq!(current_cpus(), near(&all, 0, 2));
            // The sender shows up on the other CPU right after: the thread lets go instead.
            let t1 = t0 + MIN_MOVE_INTERVAL * 2;
            streak(&mut a, t1, 1);
            assert_eq!(current_cpus(), all);
            // ...and keeps off while held off, however steady the sender is.
            streak(&mut a, t1 + MIN_HOLD_OFF / 2, 1);
            assert_eq!(current_cpus(), all);
            // After the hold-off it tries again.
            streak(&mut a, t1 + MIN_HOLD_OFF + WINDOW, 1);
            assert_eq!(current_cpus(), near(&all, 1, 2));
        });
    }

    #[test]
    fn one_queue_means_nothing_to_follow() {
        assert!(SenderAffinity::new(1).is_none());
    }

    #[test]
    fn follows_the_source_queue_when_light_and_lets_go_when_loaded() {
        let Some(all) = cpus_to_move_between("follows_the_source_queue_when_light_and_lets_go_when_loaded")
        else {
            return;
        };
        on_thread(|| {
            let queues = 2;
            let mut a = SenderAffinity::new(queues).unwrap();
            let t0 = Instant::now();
            // Light: a few short wakeups in a row from queue 1 move the thread to queue 1's CPUs;
            // the rounds in between (a peer's answers to our sends) do not break the streak.
            let want1 = near(&all, 1, queues);
            for i in 0..FOLLOW_AFTER {
                assert_eq!(current_cpus(), all, "moved after {i} wakeups");
                let t = t0 + Duration::from_millis(u64::from(i));
                a.after_wakeup(t, Duration::from_micros(10), 1, Some(1));
                a.after_continuation(t, Duration::from_micros(10), 1);
            }
            assert_eq!(current_cpus(), want1);
            // Frames from several queues at once: stay where we are.
            let t1 = t0 + Duration::from_millis(5);
            a.after_wakeup(t1, Duration::from_micros(10), 1, None);
            assert_eq!(current_cpus(), want1);
            // Alternating sources (a bulk sender and its ACKs): no hopping.
            for i in 0..2 * FOLLOW_AFTER {
                a.after_wakeup(t1 + MIN_MOVE_INTERVAL, Duration::from_micros(10), 1, Some(i as usize % 2));
            }
            assert_eq!(current_cpus(), want1);
            // Busy for most of a window: loaded, back to every allowed CPU.
            let t2 = t0 + MIN_MOVE_INTERVAL + WINDOW * 2;
            a.after_wakeup(t2, WINDOW, 1, Some(0));
            assert!(a.is_loaded());
            assert_eq!(current_cpus(), all);
            // Still a bit busy (above the lower threshold): stays loaded and free.
            let t3 = t2 + WINDOW;
            a.after_wakeup(t3, WINDOW / 5, 1, Some(0));
            assert!(a.is_loaded());
            assert_eq!(current_cpus(), all);
            // Quiet: light again; a streak from queue 0 moves the thread there.
            let t4 = t3 + WINDOW * 3;
            streak(&mut a, t4, 0);
            assert!(!a.is_loaded());
            let want0 = near(&all, 0, queues);
            assert_eq!(current_cpus(), want0);
            // Many wakeups in a window (a steady stream) count as loaded even if each is short.
            let t5 = t4 + WINDOW * 2;
            for i in 0..=2 * WAKEUPS_LOADED {
                a.after_wakeup(t5 + WINDOW * i / (2 * WAKEUPS_LOADED), Duration::from_micros(1), 1, Some(0));
            }
            assert!(a.is_loaded());
            assert_eq!(current_cpus(), all);
            // Quiet again, pinned to queue 0; then few wakeups carrying many frames (a flood
            // whose thread is starved on the sender's CPU) count as loaded too.
            let t6 = t5 + WINDOW * 10;
            streak(&mut a, t6, 0);
            assert!(!a.is_loaded());
            assert_eq!(current_cpus(), want0);
            let t7 = t6 + WINDOW * 2;
            a.after_wakeup(t7, Duration::from_micros(10), 1, Some(0));
            a.after_wakeup(t7 + WINDOW, Duration::from_micros(50), FRAMES_LOADED as usize + 64, Some(0));
            assert!(a.is_loaded());
            assert_eq!(current_cpus(), all);
        });
    }
}
