//! The forwarding loop: wait for readable ports, receive a batch, decide it with the bridge's
//! pipeline, send the copies batched per egress port. Commands from the control plane are
//! applied between batches.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netdev::{Netdev, RxBatch};
use switch::{Bridge, DropReason, Output};
use tracing::{debug, info, warn};

use super::affinity::SenderAffinity;
use super::sys::{Epoll, EventFd};
use super::tx::{TxItem, TxScratch};
use super::{Command, PortLink, Topology};
use crate::events::feed::EventTx;
use crate::service::watchdog::Heartbeat;

/// Frames received per batch.
const BATCH: usize = 64;
/// Batches taken from one port before others get a turn.
const BATCHES_PER_WAKEUP: usize = 4;
/// Housekeeping (MAC aging) interval; also the longest idle sleep. Idle cost: one wakeup a second.
const TICK_MS: u64 = 1000;
const WAKER_TOKEN: u64 = u64::MAX;

struct BridgeRt {
    name: String,
    bridge: Bridge,
    devs: Vec<Option<Box<dyn Netdev>>>,
    links: Vec<Arc<PortLink>>,
    /// Per slot: the device's ifindex when the kernel fast path serves it.
    kifs: Vec<Option<u32>>,
}

pub struct Engine {
    commands: Receiver<Command>,
    waker: Arc<EventFd>,
    epoll: Epoll,
    epoll_dirty: bool,
    bridges: Vec<BridgeRt>,
    by_name: HashMap<String, (usize, usize)>,
    rx: RxBatch,
    outs: Vec<Output>,
    tx: TxScratch,
    start: Instant,
    last_tick: u64,
    stop: bool,
    /// After a wakeup that moved frames, keep polling (non-blocking epoll) this long before
    /// blocking again; zero = purely event-driven.
    busy_poll: Duration,
    /// Per-CPU receive queues system ports are opened with (1: no sender affinity).
    rx_queues: usize,
    /// Bumped once per housekeeping tick: proves to the watchdog that this loop still turns.
    heartbeat: Arc<Heartbeat>,
    /// The kernel fast path, when loaded (`--datapath auto|kernel`).
    fast: Option<fast::Fast>,
    /// Where the pipeline's events (moves, security drops) leave, never blocking.
    events: EventTx,
}

/// The channels an engine is wired with.
pub(crate) struct EngineParts {
    pub commands: Receiver<Command>,
    pub waker: Arc<EventFd>,
    /// Bumped once per housekeeping tick: proves to the watchdog that this loop still turns.
    pub heartbeat: Arc<Heartbeat>,
    pub events: EventTx,
}

/// Which receive queue an epoll event is for: queue `queue` of the port in slot `slot` of bridge
/// `bridge`. Packed into the event's 64-bit user data (bridge above bit 40, queue in bits
/// 32..40, slot in the low 32 bits); named fields so packing and unpacking cannot disagree on
/// the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Token {
    bridge: usize,
    slot: usize,
    queue: usize,
}

impl Token {
    fn pack(self) -> u64 {
        ((self.bridge as u64) << 40) | ((self.queue as u64 & 0xff) << 32) | (self.slot as u64 & 0xffff_ffff)
    }

    fn unpack(tok: u64) -> Token {
        Token {
            bridge: (tok >> 40) as usize,
            queue: ((tok >> 32) & 0xff) as usize,
            slot: (tok & 0xffff_ffff) as usize,
        }
    }
}

/// Where the frames of one wakeup came from, for [`SenderAffinity`].
#[derive(Clone, Copy, Default)]
enum Source {
    #[default]
    Nothing,
    /// All from this per-CPU queue.
    Queue(usize),
    /// From several queues, or from a port without per-CPU queues.
    Mixed,
}

impl Source {
    fn add(self, queue: Option<usize>) -> Source {
        match (self, queue) {
            (Source::Nothing, Some(q)) => Source::Queue(q),
            (Source::Queue(a), Some(q)) if a == q => self,
            _ => Source::Mixed,
        }
    }

    fn queue(self) -> Option<usize> {
        match self {
            Source::Queue(q) => Some(q),
            _ => None,
        }
    }
}

impl Engine {
    pub(crate) fn new(
        parts: EngineParts,
        busy_poll: Duration,
        rx_queues: usize,
        fast: Option<fastpath::FastPath>,
    ) -> std::io::Result<Engine> {
        let EngineParts { commands, waker, heartbeat, events } = parts;
        Ok(Engine {
            commands,
            waker,
            epoll: Epoll::new()?,
            epoll_dirty: true,
            bridges: Vec::new(),
            by_name: HashMap::new(),
            rx: RxBatch::new(BATCH),
            outs: Vec::with_capacity(64),
            tx: TxScratch::default(),
            start: Instant::now(),
            last_tick: 0,
            stop: false,
            busy_poll,
            rx_queues,
            heartbeat,
            fast: fast.map(fast::Fast::new),
            events,
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn run(&mut self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
        // While `Some`, poll without blocking until then (adaptive busy-poll after traffic).
        let mut spin_until: Option<Instant> = None;
        let mut affinity = SenderAffinity::new(self.rx_queues);
        // Whether the previous round moved frames (see the wait below).
        let mut continuing = false;
        while !self.stop {
            if self.epoll_dirty {
                self.rebuild_epoll();
            }
            let timeout = match spin_until {
                Some(t) if Instant::now() < t => 0,
                _ => {
                    spin_until = None;
                    TICK_MS as i32
                }
            };
            // After a round that moved frames, first look without sleeping: what is ready now
            // is mostly the consequence of our own sends (a continuation); only a wait that
            // really sleeps ends in a sender's wakeup.
            let mut n = if continuing { self.epoll.wait(&mut events, 0) } else { 0 };
            if n == 0 {
                continuing = false;
                n = self.epoll.wait(&mut events, timeout);
            }
            // Only sender affinity needs to know how long a round took.
            let woke = affinity.is_some().then(Instant::now);
            let (moved, source) = self.dispatch(&events[..n]);
            if moved > 0 {
                if let (Some(a), Some(woke)) = (affinity.as_mut(), woke) {
                    let done = Instant::now();
                    if continuing {
                        a.after_continuation(done, done - woke, moved);
                    } else {
                        a.after_wakeup(done, done - woke, moved, source.queue());
                    }
                }
                if !self.busy_poll.is_zero() {
                    spin_until = Some(Instant::now() + self.busy_poll);
                }
            }
            // Without sender affinity nothing tells continuations apart: one blocking wait.
            continuing = moved > 0 && affinity.is_some();
            self.housekeeping();
        }
        // The fast path first: its filter stops hiding frames, its links detach (in parallel).
        self.fast = None;
        let devs: Vec<Box<dyn Netdev>> =
            self.bridges.drain(..).flat_map(|b| b.devs.into_iter().flatten()).collect();
        close_all(devs);
        info!("forwarding thread stopped");
    }

    /// Once a tick: a heartbeat for the watchdog, MAC aging, and kernel-side receive drops become a counted drop reason, so an
    /// overloaded port shows up in `rvsctl show` instead of losing frames silently.
    fn housekeeping(&mut self) {
        let now = self.now_ms();
        if now.saturating_sub(self.last_tick) < TICK_MS {
            return;
        }
        self.last_tick = now;
        self.heartbeat.beat();
        // Addresses the kernel forwarded for are refreshed before aging looks at them.
        if let Some(f) = self.fast.as_mut() {
            f.refresh_seen(&mut self.bridges, now);
        }
        for b in &mut self.bridges {
            b.bridge.expire(now);
            for (slot, dev) in b.devs.iter_mut().enumerate() {
                let lost = dev.as_mut().map_or(0, |d| d.take_kernel_drops());
                if lost > 0 {
                    b.bridge.ports()[slot].counters.count_drop(DropReason::RxQueueFull, lost);
                }
            }
        }
        if let Some(f) = self.fast.as_mut() {
            f.after_aging(&self.bridges, now);
        }
    }

    /// Handles the ready events of one wait: control commands, then frames from the ports.
    /// Returns the frames received and where they came from.
    fn dispatch(&mut self, events: &[libc::epoll_event]) -> (usize, Source) {
        let mut moved = 0;
        let mut source = Source::Nothing;
        for ev in events {
            let tok = ev.u64;
            if tok == WAKER_TOKEN {
                self.waker.drain();
                self.drain_commands();
            } else {
                let t = Token::unpack(tok);
                let (got, per_cpu) = self.service_port(t.bridge, t.slot, t.queue);
                if got > 0 {
                    moved += got;
                    source = source.add(per_cpu.then_some(t.queue));
                }
            }
        }
        (moved, source)
    }

    /// Recreates the epoll set from the current devices; runs only after a control change.
    fn rebuild_epoll(&mut self) {
        let epoll = match Epoll::new() {
            Ok(e) => e,
            Err(e) => {
                warn!("cannot create epoll instance: {e}; retrying");
                return;
            }
        };
        if let Err(e) = epoll.add(self.waker.raw(), WAKER_TOKEN) {
            warn!("cannot watch the control waker: {e}");
        }
        for (b, br) in self.bridges.iter().enumerate() {
            for (s, dev) in br.devs.iter().enumerate() {
                if let Some(dev) = dev {
                    for q in 0..dev.rx_queues() {
                        if let Err(e) =
                            epoll.add(dev.queue_fd(q), Token { bridge: b, slot: s, queue: q }.pack())
                        {
                            warn!(port = dev.name(), "cannot poll port: {e}");
                        }
                    }
                }
            }
        }
        self.epoll = epoll;
        self.epoll_dirty = false;
    }

    fn drain_commands(&mut self) {
        loop {
            match self.commands.try_recv() {
                Ok(cmd) => self.apply(cmd),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.stop = true;
                    return;
                }
            }
        }
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Topology(t) => self.set_topology(&t),
            Command::Attach { port, dev } => match self.by_name.get(&port) {
                Some(&(b, s)) => {
                    self.attach_fast(b, s, dev.as_ref());
                    self.bridges[b].devs[s] = Some(dev);
                    self.bridges[b].links[s].set_attached(true);
                    self.epoll_dirty = true;
                    debug!(port, "device attached");
                }
                None => debug!(port, "device for unknown port dropped"),
            },
            Command::Detach { port } => {
                if let Some(&(b, s)) = self.by_name.get(&port) {
                    self.detach(b, s);
                }
            }
            Command::Fdb { bridge, reply } => {
                let now = self.now_ms();
                let entries = self.bridges.iter().find(|b| b.name == bridge).map(|b| b.bridge.fdb(now));
                let _ = reply.send(entries);
            }
            Command::Trace { bridge, port, frame, reply } => {
                let _ = reply.send(self.trace(&bridge, &port, &frame));
            }
            Command::FdbFlush { bridge, reply } => {
                let _ = reply.send(self.fdb_flush(bridge.as_deref()));
            }
            Command::MacStats(reply) => {
                let _ = reply.send(self.mac_stats());
            }
            Command::Security { bridge, reply } => {
                let _ = reply.send(self.security(bridge.as_deref()));
            }
            Command::Barrier(reply) => {
                let _ = reply.send(());
            }
            Command::SyncCounters(reply) => {
                if let Some(f) = self.fast.as_mut() {
                    f.fold_counters(&self.bridges);
                }
                let _ = reply.send(());
            }
            Command::Settle => {
                let now = self.now_ms();
                if let Some(f) = self.fast.as_mut() {
                    f.settle(&mut self.bridges, now);
                }
            }
            Command::Retire => {
                if let Some(f) = self.fast.as_mut() {
                    f.retire();
                }
            }
            Command::Stop => self.stop = true,
        }
    }

    /// Replaces the port layout. Devices and learned MACs of ports that survive are kept, so
    /// traffic on them is not disturbed; devices of ports that are gone are closed.
    fn set_topology(&mut self, t: &Topology) {
        let mut devs: HashMap<String, Box<dyn Netdev>> = HashMap::new();
        let mut kifs: HashMap<String, u32> = HashMap::new();
        let mut old: HashMap<String, Bridge> = HashMap::new();
        // Ports a mirror kept off the kernel fast path: the fast path takes them on again once
        // no mirror involves them.
        let mut held = std::collections::HashSet::new();
        for br in self.bridges.drain(..) {
            let mirrors = br.bridge.mirrors();
            held.extend(
                br.bridge
                    .ports()
                    .iter()
                    .enumerate()
                    .filter(|(s, _)| mirrors.involves(*s))
                    .map(|(_, p)| p.name.clone()),
            );
            for ((spec, dev), kif) in br.bridge.ports().iter().zip(br.devs).zip(br.kifs) {
                if let Some(dev) = dev {
                    devs.insert(spec.name.clone(), dev);
                }
                if let Some(kif) = kif {
                    kifs.insert(spec.name.clone(), kif);
                }
            }
            old.insert(br.name, br.bridge);
        }
        self.by_name.clear();
        for (b, tb) in t.bridges.iter().enumerate() {
            let specs: Vec<_> = tb.ports.iter().map(|p| p.spec.clone()).collect();
            let mut bridge = match old.remove(&tb.name) {
                Some(mut br) => {
                    br.reconfigure(tb.settings.clone(), specs);
                    br
                }
                None => Bridge::new(tb.settings.clone(), specs),
            };
            bridge.set_mirrors(tb.mirrors.clone());
            let mut rt = BridgeRt {
                name: tb.name.clone(),
                bridge,
                devs: Vec::new(),
                links: Vec::new(),
                kifs: Vec::new(),
            };
            for (s, p) in tb.ports.iter().enumerate() {
                let dev = devs.remove(&p.spec.name);
                rt.kifs.push(dev.as_ref().and_then(|_| kifs.get(&p.spec.name).copied()));
                if dev.is_none() {
                    // A device that survived keeps its attached flag; a new port starts detached
                    // until the reconciler hands over a device.
                    p.link.set_attached(false);
                }
                rt.devs.push(dev);
                rt.links.push(p.link.clone());
                self.by_name.insert(p.spec.name.clone(), (b, s));
            }
            self.bridges.push(rt);
        }
        self.mirrors_off_fast_path(&held);
        // The program leaves removed ports' devices (and no entry points at them) before the
        // devices close.
        self.sync_fast();
        // Whatever is left belongs to removed ports: dropping closes them.
        close_all(devs.into_values().collect());
        self.epoll_dirty = true;
    }

    /// Ports a mirror involves (selected, output, or any port of a bridge with a select-all
    /// mirror) leave the kernel fast path, so the pipeline sees — and mirrors — every frame;
    /// ports in `held` (kept off before) that no mirror involves any more are taken on again.
    fn mirrors_off_fast_path(&mut self, held: &std::collections::HashSet<String>) {
        let Some(f) = self.fast.as_mut() else { return };
        let leaving = |br: &BridgeRt| {
            (0..br.kifs.len()).any(|s| br.kifs[s].is_some() && br.bridge.mirrors().involves(s))
        };
        if self.bridges.iter().any(leaving) {
            // What the kernel forwarded for them so far is counted before their counters go.
            f.fold_counters(&self.bridges);
        }
        let mut again = Vec::new();
        for (b, br) in self.bridges.iter_mut().enumerate() {
            for s in 0..br.kifs.len() {
                let involved = br.bridge.mirrors().involves(s);
                if let (true, Some(kif)) = (involved, br.kifs[s]) {
                    f.release(kif);
                    br.kifs[s] = None;
                    debug!(port = br.bridge.ports()[s].name, "mirrored: off the kernel fast path");
                } else if !involved && br.devs[s].is_some() && held.contains(&br.bridge.ports()[s].name) {
                    again.push((b, s));
                }
            }
        }
        for (b, s) in again {
            if let Some(dev) = self.bridges[b].devs[s].take() {
                self.attach_fast(b, s, dev.as_ref());
                self.bridges[b].devs[s] = Some(dev);
            }
        }
    }

    fn detach(&mut self, b: usize, s: usize) {
        let br = &mut self.bridges[b];
        if br.devs[s].take().is_some() {
            info!(port = br.bridge.ports()[s].name, "port device detached");
        }
        br.links[s].set_attached(false);
        br.bridge.flush_port(s);
        if let (Some(kif), Some(f)) = (br.kifs[s].take(), self.fast.as_mut()) {
            f.release(kif);
        }
        self.epoll_dirty = true;
    }

    /// A device is handed to slot `s` of bridge `b`: the fast path takes it on if it can.
    fn attach_fast(&mut self, b: usize, s: usize, dev: &dyn Netdev) {
        let Some(f) = self.fast.as_mut() else { return };
        let br = &mut self.bridges[b];
        if let Some(old) = br.kifs[s].take() {
            f.release(old);
        }
        if br.bridge.mirrors().involves(s) {
            return; // every frame through the pipeline, which mirrors it
        }
        br.kifs[s] = f.adopt(dev);
        if let Some(kif) = br.kifs[s] {
            f.configure(&br.name, &br.bridge.ports()[s], kif);
            let now = self.start.elapsed().as_millis() as u64;
            f.write_bindings(&self.bridges, now);
        }
    }

    fn sync_fast(&mut self) {
        let now = self.now_ms();
        if let Some(f) = self.fast.as_mut() {
            f.sync(&self.bridges, now);
        }
    }

    /// Receives and forwards up to a few batches from receive queue `q` of one port; returns
    /// the frames received and whether the port's queues are per-CPU (more than one).
    fn service_port(&mut self, b: usize, slot: usize, q: usize) -> (usize, bool) {
        let mut total = 0;
        let mut per_cpu = false;
        for _ in 0..BATCHES_PER_WAKEUP {
            let Some(br) = self.bridges.get_mut(b) else { break };
            let Some(dev) = br.devs.get_mut(slot).and_then(|d| d.as_mut()) else { break };
            per_cpu = dev.rx_queues() > 1;
            let n = match dev.recv_queue(q, &mut self.rx) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.is_gone() => {
                    warn!(port = dev.name(), "{e}");
                    self.detach(b, slot);
                    break;
                }
                Err(e) => {
                    debug!(port = dev.name(), "receive error: {e}");
                    break;
                }
            };
            total += n;
            let now = self.start.elapsed().as_millis() as u64;
            let gone = forward_batch(br, slot, &self.rx, n, now, &mut self.outs, &mut self.tx);
            self.events.drain(&br.name, &mut br.bridge);
            if let Some(f) = self.fast.as_mut() {
                match br.kifs[slot] {
                    Some(kif) => f.observe(br, slot, kif, &self.rx, n, now),
                    None => f.observe_slow_port(br, slot, &self.rx, n),
                }
            }
            for s in gone {
                self.detach(b, s);
            }
            if n < self.rx.capacity() {
                break;
            }
        }
        if let Some(f) = self.fast.as_mut() {
            f.bindings_changed(&self.bridges, self.start.elapsed().as_millis() as u64);
        }
        // Frames must not stay borrowed from a port's ring between wakeups.
        self.rx.clear();
        (total, per_cpu)
    }
}

/// Most threads `close_all` uses.
const CLOSERS: usize = 32;

/// Closes (drops) port devices. Closing an AF_PACKET socket waits for an RCU grace period (tens
/// of ms on a small VM, two or three per port with rings), so many devices are closed from
/// several threads at once, whose waits overlap: 1000 ports close in about a second, not a
/// minute. A few are closed inline.
fn close_all(devs: Vec<Box<dyn Netdev>>) {
    if devs.len() <= 2 {
        drop(devs);
        return;
    }
    let per = devs.len().div_ceil(CLOSERS);
    let mut devs = devs;
    std::thread::scope(|s| {
        while !devs.is_empty() {
            let chunk: Vec<Box<dyn Netdev>> = devs.drain(..per.min(devs.len())).collect();
            // If a thread cannot be spawned, the chunk is dropped here instead.
            if let Err(e) =
                std::thread::Builder::new().name("port-close".into()).spawn_scoped(s, move || drop(chunk))
            {
                debug!("closing ports inline: {e}");
            }
        }
    });
}

/// Decides `n` frames from `in_slot` and sends the copies. Returns the slots whose device failed
/// as gone (at most a few; allocation only on that rare path).
fn forward_batch(
    br: &mut BridgeRt,
    in_slot: usize,
    rx: &RxBatch,
    n: usize,
    now: u64,
    outs: &mut Vec<Output>,
    tx: &mut TxScratch,
) -> Vec<usize> {
    let slots = br.devs.len();
    tx.reset(slots);
    for i in 0..n {
        if let Some(ingress_tagged) = br.bridge.process(in_slot, rx.frame(i), now, outs).sends() {
            for o in outs.iter() {
                tx.push(o.slot, TxItem { frame: i as u16, ingress_tagged, encap: o.encap });
            }
        }
    }
    let mut gone = Vec::new();
    // Only egress ports this batch used: O(ports touched), not O(ports on the bridge).
    for t in 0..tx.touched_len() {
        let s = tx.touched_slot(t);
        let Some(dev) = br.devs.get_mut(s).and_then(|d| d.as_mut()) else { continue };
        let counters = &br.bridge.ports()[s].counters;
        if let Err(e) = tx.flush(s, rx, dev.as_mut(), counters) {
            if e.is_gone() {
                warn!(port = dev.name(), "{e}");
                gone.push(s);
            } else {
                debug!(port = dev.name(), "send error: {e}");
            }
        }
    }
    gone
}

mod fast;
mod queries;
#[cfg(test)]
mod tests;
