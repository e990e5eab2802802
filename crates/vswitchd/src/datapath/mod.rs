//! The forwarding thread and its handle. The thread owns every bridge's pipeline state and every
//! port device; the control plane reaches it only through commands on a channel plus an eventfd
//! wake-up, so forwarding never waits on a lock held by control work.

mod affinity;
mod engine;
pub(crate) mod sys;
mod tx;

pub use sys::{release_freed_heap, tune_heap, TRIM_TICKS};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fastpath::pins::PinDir;
use netdev::Netdev;
use switch::{BridgeSettings, FdbEntry, MacStats, MirrorSpec, PortSecurityEntry, PortSpec, Trace};

use crate::events::feed::{self, EventFeed};
use crate::service::watchdog::Heartbeat;

/// Whether a port currently has a working device in the datapath. The datapath clears it when a
/// device fails (vanished); the reconciler sets it when it hands a device over.
#[derive(Debug, Default)]
pub struct PortLink {
    attached: AtomicBool,
}

impl PortLink {
    pub fn is_attached(&self) -> bool {
        self.attached.load(Ordering::Acquire)
    }

    pub fn set_attached(&self, v: bool) {
        self.attached.store(v, Ordering::Release)
    }
}

/// The whole forwarding configuration, as one immutable snapshot.
#[derive(Debug, Default)]
pub struct Topology {
    pub bridges: Vec<TopologyBridge>,
}

#[derive(Debug)]
pub struct TopologyBridge {
    pub name: String,
    pub settings: BridgeSettings,
    pub ports: Vec<TopologyPort>,
    /// Port mirrors, slots as in `ports`.
    pub mirrors: Vec<MirrorSpec>,
}

#[derive(Debug)]
pub struct TopologyPort {
    pub spec: PortSpec,
    pub link: Arc<PortLink>,
}

pub(crate) enum Command {
    Topology(Arc<Topology>),
    Attach {
        port: String,
        dev: Box<dyn Netdev>,
    },
    Detach {
        port: String,
    },
    Fdb {
        bridge: String,
        reply: mpsc::Sender<Option<Vec<FdbEntry>>>,
    },
    /// Explain what the pipeline would do with `frame` arriving on `port`; changes nothing.
    Trace {
        bridge: String,
        port: String,
        frame: Vec<u8>,
        reply: mpsc::Sender<Result<Trace, TraceError>>,
    },
    /// Forget learned addresses: on `bridge`, or on every bridge. Replies whether the bridge exists.
    FdbFlush {
        bridge: Option<String>,
        reply: mpsc::Sender<bool>,
    },
    /// MAC table statistics of every bridge, by name.
    MacStats(mpsc::Sender<Vec<(String, MacStats)>>),
    /// Port security settings and bindings of `bridge` (every bridge: `None`), by bridge name.
    Security {
        bridge: Option<String>,
        reply: mpsc::Sender<Vec<(String, Vec<PortSecurityEntry>)>>,
    },
    /// Answered once every command sent before it has taken effect (devices closed, attached).
    Barrier(mpsc::Sender<()>),
    /// Answered once the kernel fast path's counters are in the ports' counters.
    SyncCounters(mpsc::Sender<()>),
    /// The first configuration is in place: what a previous daemon left in pinned maps is
    /// adopted where the pipeline agrees and removed elsewhere.
    Settle,
    /// The stop that follows is for good: the kernel fast path leaves the kernel with it.
    Retire,
    Stop,
}

/// The forwarding thread did not answer a request in time (it is stuck or has ended).
#[derive(Debug, thiserror::Error)]
#[error("the forwarding thread did not answer")]
pub struct NoAnswer;

/// Why a frame cannot be traced.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("no bridge named {0}")]
    NoBridge(String),
    #[error("bridge {bridge} has no port named {port}")]
    NoPort { bridge: String, port: String },
    #[error(transparent)]
    NoAnswer(#[from] NoAnswer),
}

/// Handle to the forwarding thread.
pub struct Datapath {
    rx_queues: usize,
    /// Whether the kernel fast path is loaded (its counters then need folding in).
    kernel: bool,
    /// Where its maps and links are pinned, when they are (they outlive this process).
    pins: Option<PinDir>,
    commands: mpsc::Sender<Command>,
    waker: Arc<sys::EventFd>,
    heartbeat: Arc<Heartbeat>,
    thread: Option<JoinHandle<()>>,
    /// The forwarding thread's events, until someone takes them (see [`Datapath::take_events`]).
    events: Option<EventFeed>,
}

/// Tuning of the forwarding thread.
#[derive(Clone, Debug)]
pub struct DatapathOptions {
    /// After a wakeup that moved frames, keep polling the ports without blocking for this long
    /// before sleeping again. Cuts wakeup latency for request/response traffic at the price of
    /// that much CPU after each burst; zero (the default) is purely event-driven.
    pub busy_poll: Duration,
    /// Sender affinity (see `affinity.rs`): system ports get one receive queue per CPU and the
    /// lightly loaded forwarding thread moves next to the senders it serves. On by default.
    pub sender_affinity: bool,
    /// Whether known unicast between system ports is forwarded by the kernel (TC-BPF).
    pub mode: DatapathMode,
    /// Where the kernel fast path pins its maps and links so that they outlive the process
    /// (`None`: not pinned; they end with it).
    pub pins: Option<PathBuf>,
}

/// `--datapath`: where known unicast between system ports is forwarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DatapathMode {
    /// The kernel fast path when it loads here, else userspace (saying why).
    #[default]
    Auto,
    /// The kernel fast path or nothing: the daemon refuses to start without it.
    Kernel,
    /// Every frame through the userspace pipeline.
    Userspace,
}

/// `--datapath kernel` and the fast path cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--datapath kernel: {0}")]
pub struct KernelUnavailable(#[from] fastpath::Error);

impl DatapathMode {
    /// The loaded fast path this mode calls for; `auto` falls back to userspace with a warning.
    /// With `pins`, a previous kernel-mode run's maps are adopted — or, in userspace, its
    /// programs and pins removed.
    pub fn load(self, pins: Option<&Path>) -> Result<Option<fastpath::FastPath>, KernelUnavailable> {
        let pins = pins.map(PinDir::new);
        if self == DatapathMode::Userspace {
            remove_pins(pins.as_ref());
            return Ok(None);
        }
        let loaded = load_pinned(pins.clone());
        sys::release_freed_heap();
        match loaded {
            Ok(fp) => {
                tracing::info!(
                    pinned = fp.pins().map(|p| p.root().display().to_string()),
                    "kernel fast path loaded: known unicast between system ports stays in the kernel"
                );
                Ok(Some(fp))
            }
            Err(e) if self == DatapathMode::Auto => {
                tracing::warn!("kernel fast path unavailable ({e}); forwarding everything in userspace");
                remove_pins(pins.as_ref());
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Where a daemon with control socket `control_socket` pins its fast path by default: one
/// directory per daemon instance (two daemons never share maps), named after the socket's
/// absolute path with `/` and `.` as `_` (bpffs refuses names with a `.`).
pub fn default_pin_dir(control_socket: &Path) -> PathBuf {
    let sock = std::path::absolute(control_socket).unwrap_or_else(|_| control_socket.to_path_buf());
    let name: String = sock
        .to_string_lossy()
        .trim_start_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    PathBuf::from("/sys/fs/bpf/rvswitch").join(name)
}

/// The fast path with pins; where they cannot be made (no bpffs, a read-only /sys under a
/// sandbox, maps that cannot be pinned), without them.
fn load_pinned(pins: Option<PinDir>) -> Result<fastpath::FastPath, fastpath::Error> {
    let Some(p) = pins else { return fastpath::FastPath::load() };
    fastpath::FastPath::load_pinned(Some(p)).or_else(|e| {
        tracing::warn!("cannot pin the kernel fast path ({e}); it ends with this process");
        fastpath::FastPath::load()
    })
}

/// Takes out of the kernel what a kernel-mode run pinned at `pins`.
fn remove_pins(pins: Option<&PinDir>) {
    let Some(p) = pins.filter(|p| p.exists()) else { return };
    match p.remove() {
        Ok(()) => {
            tracing::info!(pins = %p.root().display(), "removed the kernel fast path an earlier run left")
        }
        Err(e) => tracing::warn!("cannot remove the kernel fast path an earlier run left: {e}"),
    }
}

impl Default for DatapathOptions {
    fn default() -> Self {
        DatapathOptions {
            busy_poll: Duration::ZERO,
            sender_affinity: true,
            mode: DatapathMode::Userspace,
            pins: None,
        }
    }
}

/// Most per-CPU receive queues per port: each is a socket with its own ring (128 KiB of pinned
/// kernel memory at two or more queues), so 4 queues cost 512 KiB and 4 fds per port; beyond
/// this a queue simply stands for several CPUs (the thread then follows to that group).
const MAX_RX_QUEUES: usize = 4;

impl DatapathOptions {
    /// Receive queues per system port these options call for.
    pub fn rx_queues(&self) -> usize {
        if !self.sender_affinity {
            return 1;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_RX_QUEUES)
    }
}

impl Datapath {
    pub fn spawn() -> std::io::Result<Datapath> {
        Datapath::spawn_with(DatapathOptions::default())
    }

    pub fn spawn_with(opts: DatapathOptions) -> std::io::Result<Datapath> {
        let (commands, rx) = mpsc::channel();
        let waker = Arc::new(sys::EventFd::new()?);
        let rx_queues = opts.rx_queues();
        let heartbeat = Heartbeat::new();
        let fast = opts.mode.load(opts.pins.as_deref()).map_err(std::io::Error::other)?;
        let kernel = fast.is_some();
        let pins = fast.as_ref().and_then(|f| f.pins().cloned());
        let (event_tx, events) = feed::channel();
        let mut engine = engine::Engine::new(
            engine::EngineParts {
                commands: rx,
                waker: waker.clone(),
                heartbeat: heartbeat.clone(),
                events: event_tx,
            },
            opts.busy_poll,
            rx_queues,
            fast,
        )?;
        let thread = std::thread::Builder::new().name("forwarding".into()).spawn(move || engine.run())?;
        Ok(Datapath {
            rx_queues,
            kernel,
            pins,
            commands,
            waker,
            heartbeat,
            thread: Some(thread),
            events: Some(events),
        })
    }

    /// The events the forwarding thread reports (MAC moves, port-security drops), for the
    /// collector; `None` once taken. Untaken, they are counted as lost once the queue is full.
    pub fn take_events(&mut self) -> Option<EventFeed> {
        self.events.take()
    }

    /// Bumped by the forwarding loop about once a second, busy or idle; for the watchdog.
    pub fn heartbeat(&self) -> Arc<Heartbeat> {
        self.heartbeat.clone()
    }

    /// Receive queues to open system ports with (one per CPU under sender affinity).
    pub fn rx_queues(&self) -> usize {
        self.rx_queues
    }

    fn send(&self, cmd: Command) {
        // The receiver only goes away when the thread ended; nothing is left to tell then.
        if self.commands.send(cmd).is_ok() {
            self.waker.wake();
        }
    }

    pub fn set_topology(&self, topology: Arc<Topology>) {
        self.send(Command::Topology(topology));
    }

    pub fn attach(&self, port: &str, dev: Box<dyn Netdev>) {
        self.send(Command::Attach { port: port.to_string(), dev });
    }

    pub fn detach(&self, port: &str) {
        self.send(Command::Detach { port: port.to_string() });
    }

    /// Waits until the forwarding thread has carried out every command sent so far: devices of
    /// removed ports are closed (so their names are free again) and handed-over devices are in
    /// use. The database must not say a configuration is live (`cur_cfg`) before this; false if
    /// the thread did not answer in time.
    pub fn barrier(&self, timeout: Duration) -> bool {
        let (reply, answer) = mpsc::channel();
        self.send(Command::Barrier(reply));
        answer.recv_timeout(timeout).is_ok()
    }

    /// Whether known unicast between system ports is forwarded by the kernel fast path.
    pub fn kernel_fast_path(&self) -> bool {
        self.kernel
    }

    /// Whether the kernel fast path outlives this process (pinned maps and links).
    pub fn kernel_pinned(&self) -> bool {
        self.pins.is_some()
    }

    /// Where the kernel fast path is pinned, if it is: a stopping daemon unlinks that first
    /// (see [`PinDir::unlink`]).
    pub fn pin_dir(&self) -> Option<&PinDir> {
        self.pins.as_ref()
    }

    /// The first configuration is in place (every kept device claimed or closed): see
    /// [`Command::Settle`].
    pub fn settle(&self) {
        if self.kernel {
            self.send(Command::Settle);
        }
    }

    /// Brings the ports' counters up to date with what the kernel fast path forwarded (it
    /// folds them in once a tick otherwise); false if the thread did not answer in time.
    pub fn sync_counters(&self, timeout: Duration) -> bool {
        if !self.kernel {
            return true;
        }
        let (reply, answer) = mpsc::channel();
        self.send(Command::SyncCounters(reply));
        answer.recv_timeout(timeout).is_ok()
    }

    /// The MAC table of `bridge` (`None`: no such bridge); `Err` if the thread did not answer.
    pub fn fdb(&self, bridge: &str, timeout: Duration) -> Result<Option<Vec<FdbEntry>>, NoAnswer> {
        let (reply, answer) = mpsc::channel();
        self.send(Command::Fdb { bridge: bridge.to_string(), reply });
        answer.recv_timeout(timeout).map_err(|_| NoAnswer)
    }

    /// What the pipeline would do with `frame` arriving on `port` of `bridge`, step by step,
    /// decided on a copy of the live state (nothing is learned or counted).
    pub fn trace(
        &self,
        bridge: &str,
        port: &str,
        frame: Vec<u8>,
        timeout: Duration,
    ) -> Result<Trace, TraceError> {
        let (reply, answer) = mpsc::channel();
        self.send(Command::Trace { bridge: bridge.to_string(), port: port.to_string(), frame, reply });
        answer.recv_timeout(timeout).map_err(|_| NoAnswer)?
    }

    /// Forgets the learned addresses of `bridge` (all bridges: `None`); `Ok(false)`: no such bridge.
    pub fn fdb_flush(&self, bridge: Option<&str>, timeout: Duration) -> Result<bool, NoAnswer> {
        let (reply, answer) = mpsc::channel();
        self.send(Command::FdbFlush { bridge: bridge.map(str::to_string), reply });
        answer.recv_timeout(timeout).map_err(|_| NoAnswer)
    }

    /// Port security settings and live bindings, per bridge (one bridge, or all with `None`).
    pub fn security(
        &self,
        bridge: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<(String, Vec<PortSecurityEntry>)>, NoAnswer> {
        let (reply, answer) = mpsc::channel();
        self.send(Command::Security { bridge: bridge.map(str::to_string), reply });
        answer.recv_timeout(timeout).map_err(|_| NoAnswer)
    }

    /// MAC table statistics of every bridge.
    pub fn mac_stats(&self, timeout: Duration) -> Result<Vec<(String, MacStats)>, NoAnswer> {
        let (reply, answer) = mpsc::channel();
        self.send(Command::MacStats(reply));
        answer.recv_timeout(timeout).map_err(|_| NoAnswer)
    }
}

impl Datapath {
    /// Makes the next [`Datapath::stop`] take the kernel fast path out of the kernel, pinned
    /// state included (a clean stop; otherwise pinned state stays for the next daemon).
    pub fn retire_fast_path(&self) {
        if self.thread.is_some() && self.kernel {
            self.send(Command::Retire);
        }
    }

    /// Stops the forwarding thread and waits for it; its devices are closed. Idempotent.
    pub fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.send(Command::Stop);
            let _ = t.join();
        }
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.stop();
    }
}
