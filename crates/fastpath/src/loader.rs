//! Loading the program, attaching it to devices, and the map operations rvswitchd needs. One
//! [`FastPath`] serves every port: all devices share its maps. Unpinned, dropping it detaches
//! everything it attached (TCX links and program fds close with it); pinned (see
//! [`crate::pins`]), the links and maps stay in the kernel for the next daemon unless it was
//! [retired](FastPath::retire).

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
use aya::maps::{Array, HashMap as BpfHash, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::SchedClassifierLink;
use aya::programs::{SchedClassifier, SocketFilter, TcAttachType};
use aya::{Ebpf, EbpfLoader};

use crate::maps::{BindData, BindVal, Binding, Counters, Decision, FlowKey, FlowVal, PortConf};
use crate::pins::PinDir;
use crate::Error;

/// A device the tc program is attached to (ingress). Dropping an owned link detaches the
/// program; a pinned one stays attached until its pin is removed too ([`TcLink::detach`]).
#[derive(Debug)]
pub struct TcLink {
    pub dev: String,
    link: Hold,
}

#[derive(Debug)]
enum Hold {
    Owned(#[allow(dead_code)] SchedClassifierLink),
    /// The link fd and where it is pinned.
    Pinned(#[allow(dead_code)] PinnedLink, PathBuf),
}

impl TcLink {
    /// Takes the program off the device. Closing the last fd of a link detaches it there and
    /// then (an RCU grace period under the RTNL lock: serial, ~15 ms each here); a pinned link
    /// loses its fd first and then its pin, and the kernel detaches it from a work queue, so
    /// this returns at once — unless a clean stop unlinked the pins first (`vswitchd::unpin`),
    /// when the fd is the last reference and the close is the serial kind (1000: 16.5 s).
    fn detach(self) {
        if let Hold::Pinned(link, path) = self.link {
            drop(link);
            // Already gone when the stopping daemon unlinked its pins first.
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::debug!(dev = self.dev, "unpinning a tc link: {e}")
                }
                _ => {}
            }
        }
    }
}

/// Most threads [`FastPath`]'s drop detaches links from.
const DETACHERS: usize = 32;

/// The loaded program and its maps.
pub struct FastPath {
    bpf: Ebpf,
    ports: BpfHash<MapData, u32, PortConf>,
    flows: BpfHash<MapData, FlowKey, FlowVal>,
    counters: PerCpuHashMap<MapData, u32, Counters>,
    binds: LpmTrie<MapData, BindData, BindVal>,
    last: PerCpuArray<MapData, Decision>,
    live: Array<MapData, u32>,
    links: HashMap<u32, TcLink>,
    pins: Option<PinDir>,
    /// Whether dropping takes everything out of the kernel (pins included).
    retired: bool,
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> Error {
    move |e| Error::Map { map, msg: e.to_string() }
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    bpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, Error> {
    let map = bpf.take_map(name).ok_or(Error::Map { map: name, msg: "missing from the object".into() })?;
    T::try_from(map).map_err(map_err(name))
}

impl FastPath {
    /// Loads and verifies both programs (the kernel's verifier runs here: a kernel without BPF,
    /// or one that rejects the program, fails now rather than at the first port).
    pub fn load() -> Result<FastPath, Error> {
        FastPath::load_pinned(None)
    }

    /// [`FastPath::load`]; with `pins`, the maps a previous daemon pinned there are adopted
    /// with their entries (or pinned there when there are none) and links are pinned there.
    pub fn load_pinned(pins: Option<PinDir>) -> Result<FastPath, Error> {
        let mut bpf = match &pins {
            None => Ebpf::load(crate::object()?),
            Some(p) => {
                p.create()?;
                EbpfLoader::new().map_pin_path(p.maps()).load(crate::object_pinned()?)
            }
        }
        .map_err(|e| Error::Load(e.to_string()))?;
        for (name, tc) in [("fp_tc", true), ("fp_sock", false)] {
            let prog = bpf.program_mut(name).ok_or_else(|| Error::Load(format!("{name} missing")))?;
            let loaded = if tc {
                <&mut SchedClassifier>::try_from(prog).and_then(|p| p.load())
            } else {
                <&mut SocketFilter>::try_from(prog).and_then(|p| p.load())
            };
            loaded.map_err(|e| Error::Load(format!("{name}: {}", verifier_text(&e))))?;
        }
        let mut live: Array<MapData, u32> = take(&mut bpf, "fp_live")?;
        live.set(0, 1, 0).map_err(map_err("fp_live"))?;
        Ok(FastPath {
            live,
            ports: take(&mut bpf, "fp_ports")?,
            flows: take(&mut bpf, "fp_flows")?,
            counters: take(&mut bpf, "fp_counters")?,
            binds: take(&mut bpf, "fp_binds")?,
            last: take(&mut bpf, "fp_last")?,
            links: HashMap::new(),
            pins,
            retired: false,
            bpf,
        })
    }

    /// The pin directory, when the kernel state outlives this process.
    pub fn pins(&self) -> Option<&PinDir> {
        self.pins.as_ref()
    }

    /// Makes dropping take everything out of the kernel, pins included (a clean stop: with
    /// pinned links that returns at once, the kernel detaches them in the background).
    pub fn retire(&mut self) {
        self.retired = true;
    }

    fn tc(&mut self) -> &mut SchedClassifier {
        let prog = self.bpf.program_mut("fp_tc").expect("checked in load");
        prog.try_into().expect("checked in load")
    }

    /// The socket filter to attach (SO_ATTACH_BPF) to every slow-path receive socket of a port
    /// the tc program is attached to: it makes the one decision per frame.
    pub fn socket_filter(&self) -> BorrowedFd<'_> {
        let prog: &SocketFilter =
            self.bpf.program("fp_sock").expect("checked in load").try_into().expect("checked in load");
        prog.fd().expect("loaded in load").as_fd()
    }

    /// The tc program's fd (for `BPF_PROG_TEST_RUN`).
    pub fn tc_program(&self) -> BorrowedFd<'_> {
        let prog: &SchedClassifier =
            self.bpf.program("fp_tc").expect("checked in load").try_into().expect("checked in load");
        prog.fd().expect("loaded in load").as_fd()
    }

    /// Attaches the tc program to device `dev` (ifindex `ifindex`) at ingress; idempotent.
    pub fn attach(&mut self, dev: &str, ifindex: u32) -> Result<(), Error> {
        if self.links.contains_key(&ifindex) {
            return Ok(());
        }
        let err = |e: aya::programs::ProgramError| Error::Attach { dev: dev.to_string(), msg: e.to_string() };
        let pin = self.pins.as_ref().map(|p| p.link(ifindex));
        let tc = self.tc();
        let id = tc.attach(dev, TcAttachType::Ingress).map_err(err)?;
        // Owned, so that many links can be dropped (detached) in parallel; see Drop below.
        let link = tc.take_link(id).map_err(err)?;
        let link = match pin {
            None => Hold::Owned(link),
            Some(path) => {
                let fd = FdLink::try_from(link).map_err(|e| Error::Attach {
                    dev: dev.to_string(),
                    msg: format!("not a TCX link, cannot be pinned: {e}"),
                })?;
                // A previous daemon's link on this device: ours is attached already, and both
                // programs share the maps (the decision slot too), so either executes a frame
                // once. Its pin goes, so it leaves the device.
                let _ = std::fs::remove_file(&path);
                let pinned =
                    fd.pin(&path).map_err(|e| Error::Attach { dev: dev.to_string(), msg: e.to_string() })?;
                Hold::Pinned(pinned, path)
            }
        };
        self.links.insert(ifindex, TcLink { dev: dev.to_string(), link });
        Ok(())
    }

    /// After the first configuration is in place: what a previous daemon pinned for devices
    /// this one does not serve goes (program links, port configs and counters). Entries in the
    /// flow map are the caller's (it knows which ones the pipeline backs).
    pub fn forget_unserved(&mut self) {
        let served = |i: &u32| self.links.contains_key(i);
        let stale: Vec<u32> = self.ports.keys().filter_map(Result::ok).filter(|i| !served(i)).collect();
        for ifindex in &stale {
            let _ = self.ports.remove(ifindex);
            let _ = self.counters.remove(ifindex);
        }
        if let Some(p) = &self.pins {
            for ifindex in p.pinned_links().into_iter().filter(|i| !served(i)) {
                p.unpin_link(ifindex);
            }
        }
    }

    /// Every entry of the flow map (a previous daemon's, to adopt or remove).
    pub fn flow_entries(&self) -> Vec<(FlowKey, FlowVal)> {
        self.flows.iter().filter_map(Result::ok).collect()
    }

    /// Detaches from `ifindex` and forgets its port config and counters. A device that is
    /// already gone took its link with it; that is not an error.
    pub fn detach(&mut self, ifindex: u32) {
        self.detach_many(&[ifindex]);
    }

    /// [`FastPath::detach`] for many devices at once: their links are dropped in parallel
    /// (each detach waits an RCU grace period).
    pub fn detach_many(&mut self, ifindexes: &[u32]) {
        let mut links = Vec::new();
        for ifindex in ifindexes {
            let _ = self.ports.remove(ifindex);
            let _ = self.counters.remove(ifindex);
            links.extend(self.links.remove(ifindex));
        }
        drop_links(links);
    }

    pub fn is_attached(&self, ifindex: u32) -> bool {
        self.links.contains_key(&ifindex)
    }

    pub fn set_port(&mut self, ifindex: u32, conf: &PortConf) -> Result<(), Error> {
        self.ports.insert(ifindex, conf, 0).map_err(map_err("fp_ports"))
    }

    pub fn remove_port(&mut self, ifindex: u32) {
        let _ = self.ports.remove(&ifindex);
    }

    pub fn set_flow(&mut self, key: &FlowKey, val: &FlowVal) -> Result<(), Error> {
        self.flows.insert(key, val, 0).map_err(map_err("fp_flows"))
    }

    pub fn remove_flow(&mut self, key: &FlowKey) {
        let _ = self.flows.remove(key);
    }

    /// A source address (prefix) port `b.data.ifindex` may use until `until_ns`
    /// (`bpf_ktime_get_ns`; `u64::MAX`: for good).
    pub fn set_binding(&mut self, b: &Binding, until_ns: u64) -> Result<(), Error> {
        let key = LpmKey::new(b.key_prefix_len(), b.data);
        self.binds.insert(&key, BindVal { until_ns }, 0).map_err(map_err("fp_binds"))
    }

    pub fn remove_binding(&mut self, b: &Binding) {
        let _ = self.binds.remove(&LpmKey::new(b.key_prefix_len(), b.data));
    }

    /// Carries out one change the [`crate::mirror::Mirror`] decided.
    pub fn apply(&mut self, op: crate::mirror::Op) -> Result<(), Error> {
        match op {
            crate::mirror::Op::Set(k, v) => self.set_flow(&k, &v),
            crate::mirror::Op::Remove(k) => {
                self.remove_flow(&k);
                Ok(())
            }
        }
    }

    /// Carries out one change the [`crate::binds::BindMirror`] decided.
    pub fn apply_binding(&mut self, op: crate::binds::BindOp) -> Result<(), Error> {
        match op {
            crate::binds::BindOp::Set(b, until) => self.set_binding(&b, until),
            crate::binds::BindOp::Remove(b) => {
                self.remove_binding(&b);
                Ok(())
            }
        }
    }

    /// The entry for `key` as the kernel has it now (with its last-seen stamp).
    pub fn flow(&self, key: &FlowKey) -> Option<FlowVal> {
        self.flows.get(key, 0).ok()
    }

    /// Every flow key in the map (for tests and full resyncs).
    pub fn flow_keys(&self) -> Vec<FlowKey> {
        self.flows.keys().filter_map(Result::ok).collect()
    }

    /// What the kernel forwarded for `ifindex`, summed over CPUs, since it was attached.
    pub fn counters(&self, ifindex: u32) -> Counters {
        let mut sum = Counters::default();
        if let Ok(per_cpu) = self.counters.get(&ifindex, 0) {
            per_cpu.iter().for_each(|c| sum.add(c));
        }
        sum
    }

    /// In standalone mode: the decision the tc program last executed on each CPU, cleared.
    pub fn take_last(&mut self) -> Result<Vec<Decision>, Error> {
        let got = self.last.get(&0, 0).map_err(map_err("fp_last"))?;
        let n = got.len();
        let zero = PerCpuValues::try_from(vec![Decision::default(); n])
            .map_err(|e| Error::Map { map: "fp_last", msg: e.to_string() })?;
        self.last.set(0, zero, 0).map_err(map_err("fp_last"))?;
        Ok(got.iter().copied().filter(|d| d.in_ifindex != 0).collect())
    }
}

impl Drop for FastPath {
    /// Pinned and not retired: everything stays in the kernel for the next daemon (a crash, an
    /// upgrade), and closing our fds costs nothing. Otherwise, before the links go: the socket
    /// filter, which may stay attached to sockets the fd keeper holds, stops hiding frames from
    /// them; then the links are detached (pinned ones asynchronously, see [`TcLink::detach`])
    /// and the pins removed.
    fn drop(&mut self) {
        let links: Vec<TcLink> = self.links.drain().map(|(_, l)| l).collect();
        if self.pins.is_some() && !self.retired {
            // Everything stays in the kernel for the next daemon: closing our link fds is all.
            return;
        }
        if let Err(e) = self.live.set(0, 0, 0) {
            tracing::warn!("fast path: cannot switch the socket filter off: {e}");
        }
        drop_links(links);
        if let Some(p) = &self.pins {
            if let Err(e) = p.remove() {
                tracing::warn!("fast path: {e}");
            }
        }
    }
}

/// Detaches links, from several threads when there are many. Owned links (and pinned ones whose
/// pins a clean stop already unlinked) still detach one at a time (the kernel serialises them
/// on the RTNL lock: 1000 took 14–17 s here), pinned ones return at once. The calling thread works too, so every link is detached even if no thread
/// can be spawned.
fn drop_links(links: Vec<TcLink>) {
    let threads = links.len().min(DETACHERS);
    let queue = std::sync::Mutex::new(links);
    let work = || {
        while let Some(link) = queue.lock().ok().and_then(|mut q| q.pop()) {
            link.detach();
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            if let Err(e) = std::thread::Builder::new().name("tc-detach".into()).spawn_scoped(s, work) {
                tracing::debug!("detaching on fewer threads: {e}");
                break;
            }
        }
        work();
    });
}

/// The verifier's log is the useful part of a load failure.
fn verifier_text(e: &aya::programs::ProgramError) -> String {
    match e {
        aya::programs::ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            let tail: String = log
                .lines()
                .rev()
                .take(12)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            format!("{io_error}\n{tail}")
        }
        other => other.to_string(),
    }
}
