//! rvswitchd: the rvswitch daemon — switch, OVSDB server and control socket in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use ovsdb::server::{SchemaSource, Server, ServerHandle};
use ovsdb::Database;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};
use vswitchd::control::{self, lock};
use vswitchd::control_loop::ControlLoop;
use vswitchd::daemon::Daemon;
use vswitchd::daemon::ReloadError;
use vswitchd::datapath::{default_pin_dir, tune_heap, Datapath, DatapathMode, DatapathOptions};
use vswitchd::db::{ensure_root_row, lock_name, DbError, DbSync, RemoteOptions, Scope};
use vswitchd::events::{self, EventRing};
use vswitchd::fdstore::{self, FdStore, Kept};
use vswitchd::handover;
use vswitchd::reconcile::Reconciler;
use vswitchd::service::watchdog::Heartbeat;
use vswitchd::service::{self, Service, ServiceArgs};
use vswitchd::unpin::{UnpinFirst, Unpinned};
use vswitchd::{metrics, unixctl};

#[derive(Parser)]
#[command(name = "rvswitchd", version, about = "rvswitch: a memory-safe userspace virtual switch")]
struct Args {
    /// Bridges and ports (TOML), written into the database at start and on SIGHUP / `rvsctl reload`.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where rvsctl reaches the daemon.
    #[arg(long, default_value = ctl::DEFAULT_CONTROL_SOCKET)]
    control_socket: PathBuf,
    /// The OVSDB unix socket for ovs-vsctl, ovsdb-client and libvirt (`--db=unix:PATH`). libvirt
    /// runs ovs-vsctl without --db: for it use --ovs-compat (or /var/run/openvswitch/db.sock).
    #[arg(long, default_value = "/run/rvswitch/db.sock")]
    db_socket: PathBuf,
    /// Permissions of the OVSDB socket (octal).
    #[arg(long, default_value = "660", value_parser = parse_mode)]
    db_socket_mode: u32,
    /// The database file (Open vSwitch's standalone format; `ovsdb-tool` reads it).
    #[arg(long, default_value = "/var/lib/rvswitch/conf.db")]
    db_file: PathBuf,
    /// Also serve OVSDB on TCP (e.g. 127.0.0.1:6640). Off by default.
    #[arg(long)]
    db_tcp: Option<SocketAddr>,
    /// Use an existing ovsdb-server instead of the embedded one, as ovs-vswitchd does:
    /// `unix:PATH` or `tcp:HOST:PORT`, several comma-separated for a Raft cluster (the leader is
    /// followed). --db-socket and --db-file are then unused; --ovs-compat does not apply (the
    /// ovsdb-server owns OvS's run directory).
    #[arg(long, value_delimiter = ',', value_parser = parse_remote, conflicts_with_all = ["db_tcp", "ovs_compat"])]
    db: Vec<String>,
    /// This host's name in a database shared by several hosts: it applies only the Bridges whose
    /// `external_ids:rvswitch-system-id` is this (see the README). Default: the root row's
    /// `external_ids:system-id`, i.e. a database of its own.
    #[arg(long)]
    system_id: Option<String>,
    /// Log filter (tracing's EnvFilter syntax); RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    log: String,
    /// After forwarding traffic, keep polling the ports this many microseconds before sleeping
    /// (lower latency for request/response traffic; 0 = purely event-driven; max 10000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    busy_poll_us: u64,
    /// Sender affinity: system ports get a receive queue per CPU, and while lightly loaded the
    /// forwarding thread runs on the CPU of the senders it serves (saves a cross-CPU wakeup per
    /// hop; see the README's Performance section). `off`: one queue, the scheduler places it.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    sender_affinity: String,
    /// Where known unicast between system ports is forwarded: `kernel` (a TC-BPF fast path the
    /// userspace pipeline programs; refuses to start without it), `userspace`, or `auto`: the
    /// kernel when the BPF program loads here, else userspace, saying why.
    #[arg(long, default_value = "auto", value_parser = ["auto", "kernel", "userspace"])]
    datapath: String,
    /// Where the kernel fast path pins its maps and tc links (bpffs; mounted on /sys/fs/bpf if
    /// absent), so that a crash, an upgrade or a restart of rvswitchd leaves known unicast
    /// forwarding in the kernel and the next daemon adopts it. Default:
    /// /sys/fs/bpf/rvswitch/<the control socket's path, `/` and `.` as `_`>; `off`: nothing pinned (the
    /// fast path ends with the process). `--datapath userspace` removes what a kernel-mode run
    /// pinned there.
    #[arg(long, value_name = "DIR")]
    bpf_pin_dir: Option<PathBuf>,
    /// Where a small keeper process holds copies of the device descriptors, so that a crashed or
    /// upgraded daemon's successor adopts the open devices instead of reopening them (taps
    /// rvswitchd created survive). Default: beside the control socket; `off`: not kept.
    #[arg(long)]
    fd_store: Option<PathBuf>,
    /// The unixctl socket Open vSwitch's `ovs-appctl -t PATH` talks to (fdb/show, ofproto/trace,
    /// vlog/set, exit, ...). Default: `ovs-vswitchd.PID.ctl` in OVS_RUNDIR under --ovs-compat
    /// (so plain `ovs-appctl` finds it), else beside the control socket; `off`: none.
    #[arg(long, value_name = "PATH")]
    unixctl: Option<PathBuf>,
    /// Serve Prometheus metrics on ADDR (`GET /metrics`), e.g. 127.0.0.1:9475. Off by default;
    /// only loopback addresses unless --metrics-allow-remote.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Allow --metrics on an address other hosts can reach (the endpoint has no authentication).
    #[arg(long, requires = "metrics")]
    metrics_allow_remote: bool,
    /// Internal: run as the descriptor keeper on this socket (started by rvswitchd itself).
    #[arg(long = "fd-store-keeper", hide = true)]
    fd_store_keeper: Option<PathBuf>,
    #[command(flatten)]
    service: ServiceArgs,
}

/// A socket mode on the command line that is not 0..=0o777 in octal.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an octal mode")]
struct BadMode(String);

fn parse_remote(s: &str) -> Result<String, ovsdb::client::ClientError> {
    s.parse::<ovsdb::client::Remote>().map(|r| r.to_string())
}

fn parse_mode(s: &str) -> Result<u32, BadMode> {
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o777).ok_or_else(|| BadMode(s.to_string()))
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if let Some(path) = &args.fd_store_keeper {
        return match vswitchd::fdstore::keeper::run(path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    if let Some(dir) = &args.service.generate_man {
        return match ctl::manpage::write(Args::command(), dir) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rvswitchd: writing the man page into {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = service::logging::init(&args.log, args.service.log_file.as_deref()) {
        eprintln!("rvswitchd: cannot open the log file: {e}");
        return ExitCode::FAILURE;
    }
    args.db_socket = args.service.db_socket(&args.db_socket);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the open-file limit to its hard maximum: every system port holds one socket per
/// receive queue plus one for sending, so the common soft limit of 1024 would cap a 2-CPU host
/// at ~340 ports. Failure only means the old limit stays.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                warn!("cannot raise the open-file limit: {}", std::io::Error::last_os_error());
            }
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    tune_heap();
    raise_fd_limit();
    // Pid files and the switch to --user happen while the process still has a single thread.
    let mut service = Service::setup(
        &args.service,
        service::Paths {
            db_file: &args.db_file,
            db_socket: &args.db_socket,
            control_socket: &args.control_socket,
        },
    )?;
    // A bad file at start-up is fatal: there is no running config to fall back on. Check it
    // before anything is started.
    if let Some(path) = &args.config {
        vswitchd::config::load(path)?;
    }
    if let Some(addr) = args.metrics {
        metrics::check_addr(addr, args.metrics_allow_remote)?;
    }
    if let Some(tcp) = args.db_tcp.filter(|a| !a.ip().is_loopback()) {
        warn!("OVSDB on {tcp} is reachable from other hosts and has no authentication");
    }
    let signals = Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR2])?;
    for dir in [args.db_file.parent(), args.db_socket.parent()].into_iter().flatten() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let (server, db, notes) = open_database(&args)?;
    let mut datapath = Datapath::spawn_with(DatapathOptions {
        busy_poll: Duration::from_micros(args.busy_poll_us),
        sender_affinity: args.sender_affinity == "on",
        mode: match args.datapath.as_str() {
            "kernel" => DatapathMode::Kernel,
            "userspace" => DatapathMode::Userspace,
            _ => DatapathMode::Auto,
        },
        pins: pin_dir(&args),
    })?;
    let forwarding_beat = datapath.heartbeat();
    let events = collect_events(&mut datapath)?;
    let (store, kept) = open_fd_store(&args);
    if let (Some(store), true) = (&store, datapath.kernel_pinned()) {
        store.keep_filters();
    }
    let mut unpin = UnpinFirst::new(&datapath, store.as_ref());
    let mut rec = Reconciler::with_store(datapath, store, kept);
    rec.set_state_dir(args.db_file.parent().map(std::path::Path::to_path_buf));
    let shared = Arc::new(Mutex::new(Daemon::new(rec, db, args.config.clone(), events)));
    // Bound first: a guard in the match scrutinee would live through the arms.
    let first = lock(&shared).reload();
    match first {
        Ok(_) => lock(&shared).drop_unclaimed_kept(),
        // A remote database that does not answer yet: forwarding starts empty (or on the
        // devices kept from before) and the first contents are applied when they arrive.
        Err(ReloadError::Db(e @ (DbError::NotLoaded | DbError::Disconnected | DbError::LockHeld))) => {
            warn!("{e}; the configuration is applied once the database answers");
            lock(&shared).defer_first_reload();
        }
        Err(e) => return Err(e.into()),
    }
    let socket = control::serve(
        &args.control_socket,
        shared.clone(),
        handover::inherited(handover::CONTROL_LISTENER),
    )?;
    let appctl = serve_unixctl(&args, &shared)?;
    // Shared with the metrics endpoint, which counts its clients; taken back for the shutdown.
    let server = Arc::new(Mutex::new(server));
    serve_metrics(&args, &shared, &server)?;
    let serving = match args.db.is_empty() {
        true => format!("serving {}", args.db_socket.display()),
        false => format!("on the database at {}", args.db.join(",")),
    };
    info!(control = %socket.path.display(), "rvswitchd running, {serving}");
    let control_beat = Heartbeat::new();
    service.ready(&serving, vec![forwarding_beat, control_beat.clone()])?;

    // The control loop: apply database changes as they are announced; every tick re-check
    // devices and write status back.
    let control_loop = ControlLoop::start(shared.clone(), notes, control_beat)?;

    let mut signals = signals;
    let mut upgrade = false;
    for sig in signals.forever() {
        match sig {
            SIGHUP => match lock(&shared).reload() {
                Ok(changes) => {
                    info!("reloaded ({} changes)", changes.len());
                    service.status(&format!("{serving}; reloaded ({} changes)", changes.len()));
                }
                Err(e) => warn!("reload refused, running config kept: {e}"),
            },
            SIGUSR2 => {
                info!("signal {sig}: handing over to the binary on disk (devices stay open)");
                upgrade = true;
                break;
            }
            _ => {
                // First, before anything that takes time: see `unpin`.
                unpin_first(&mut unpin, sig);
                info!("signal {sig}: shutting down");
                service.stopping();
                break;
            }
        }
    }
    control_loop.stop();
    if let Some(path) = &appctl {
        let _ = std::fs::remove_file(path);
    }
    let server = lock_server(&server).take();
    if !upgrade {
        socket.remove();
        // The database first: forwarding goes on until the last moment.
        if let Some(server) = server {
            server.shutdown();
        }
        // Stops the forwarding thread and closes (and so removes) the taps we created.
        lock(&shared).shutdown(false);
        info!("rvswitchd stopped");
        return Ok(());
    }
    // An upgrade: both sockets stay bound for the next image, every device stays with the
    // keeper; forwarding stops last, so the outage is only the time until the next image
    // forwards its first frame.
    let mut pass = Vec::new();
    if let Some(l) = server.and_then(|s| s.hand_over()) {
        pass.push(handover::pass_on(handover::DB_LISTENER, l)?);
    }
    pass.push(handover::pass_on(handover::CONTROL_LISTENER, socket.hand_over())?);
    lock(&shared).shutdown(true);
    Err(reexec(pass))
}

/// A clean stop's first step ([`UnpinFirst`]), logged.
fn unpin_first(unpin: &mut UnpinFirst, sig: i32) {
    match unpin.run() {
        Some(Unpinned { dir, took, result: Ok(()) }) => {
            info!(pins = %dir.display(), "signal {sig}: fast path unpinned in {took:?}")
        }
        Some(Unpinned { dir, result: Err(e), .. }) => {
            warn!(pins = %dir.display(), "signal {sig}: cannot unpin the fast path: {e}")
        }
        None => {}
    }
}

/// The database: the embedded server (and our session with it), or with `--db` the connection
/// to an existing ovsdb-server.
fn open_database(
    args: &Args,
) -> anyhow::Result<(Option<ServerHandle>, DbSync, std::sync::mpsc::Receiver<serde_json::Value>)> {
    if !args.db.is_empty() {
        let opts = RemoteOptions {
            remotes: args.db.clone(),
            lock: lock_name(args.system_id.as_deref()),
            root_system_id: args.system_id.is_none().then(|| uuid::Uuid::new_v4().to_string()),
        };
        info!(remotes = args.db.join(","), "using an existing database; no embedded server");
        let (db, notes) = DbSync::remote(opts, Scope::new(args.system_id.clone()))?;
        return Ok((None, db, notes));
    }
    let schema = SchemaSource::Vswitch.load().map_err(|e| anyhow::anyhow!("loading the schema: {e}"))?;
    let database = Database::open(schema, &args.db_file)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", args.db_file.display()))?;
    // Clients may connect the instant the socket exists; the root row must be there by then.
    ensure_root_row(&database)?;
    // After an in-place upgrade the previous image's listener is still bound: clients that
    // connected meanwhile wait in its backlog.
    let server = match handover::inherited(handover::DB_LISTENER) {
        Some(l) => Server::start_with_listener(database, &args.db_socket, l, args.db_tcp, Default::default()),
        None => Server::start_with_database(
            database,
            &args.db_socket,
            args.db_socket_mode,
            args.db_tcp,
            Default::default(),
        ),
    }
    .map_err(|e| anyhow::anyhow!("starting the OVSDB server: {e}"))?;
    let (db, notes) = DbSync::new(server.database())?;
    Ok((Some(server), db, notes))
}

/// The event ring, fed from the forwarding thread by the collector thread started here.
fn collect_events(datapath: &mut Datapath) -> anyhow::Result<Arc<EventRing>> {
    let feed = datapath.take_events().context("the datapath's events were already taken")?;
    let ring = EventRing::new(events::RING_CAPACITY, feed.dropped.clone());
    events::feed::collect(feed, ring.clone())?;
    Ok(ring)
}

/// Starts the metrics endpoint if `--metrics` asks for one.
fn serve_metrics(
    args: &Args,
    shared: &control::Shared,
    server: &Arc<Mutex<Option<ServerHandle>>>,
) -> anyhow::Result<()> {
    let Some(addr) = args.metrics else { return Ok(()) };
    let clients = server.clone();
    let ovsdb = Arc::new(move || {
        lock_server(&clients).as_ref().map_or_else(Default::default, |s| (s.connections(), s.stats()))
    });
    metrics::serve(addr, args.metrics_allow_remote, metrics::Source { shared: shared.clone(), ovsdb })?;
    Ok(())
}

fn lock_server(server: &Mutex<Option<ServerHandle>>) -> std::sync::MutexGuard<'_, Option<ServerHandle>> {
    server.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the unixctl server where `--unixctl` (or OvS's convention) says; `exit` from
/// ovs-appctl takes the same path as SIGTERM.
fn serve_unixctl(args: &Args, shared: &control::Shared) -> anyhow::Result<Option<PathBuf>> {
    let path = match &args.unixctl {
        Some(p) if p.as_os_str() == "off" => return Ok(None),
        Some(p) => p.clone(),
        None if args.service.ovs_compat => unixctl::default_path(&args.service.ovs_rundir),
        None => unixctl::default_path(args.control_socket.parent().unwrap_or(std::path::Path::new("."))),
    };
    let exit = Arc::new(|| {
        if let Err(e) = signal_hook::low_level::raise(SIGTERM) {
            error!("unixctl exit: cannot signal the shutdown: {e}");
        }
    });
    let path = unixctl::serve(&path, unixctl::Ctx { shared: shared.clone(), exit })?;
    info!(unixctl = %path.display(), "ovs-appctl socket ready");
    Ok(Some(path))
}

/// `--bpf-pin-dir`, its default derived from the control socket (one directory per daemon
/// instance: two daemons never share maps).
fn pin_dir(args: &Args) -> Option<PathBuf> {
    match &args.bpf_pin_dir {
        Some(p) if p.as_os_str() == "off" => None,
        Some(p) => Some(p.clone()),
        None => Some(default_pin_dir(&args.control_socket)),
    }
}

/// Connects to (or starts) the descriptor keeper; without one the daemon still runs, it only
/// loses the fast restart.
fn open_fd_store(args: &Args) -> (Option<FdStore>, Kept) {
    let path = args.fd_store.clone().unwrap_or_else(|| fdstore::default_path(&args.control_socket));
    if path.as_os_str() == "off" {
        return (None, Kept::new());
    }
    match FdStore::open(&path, &own_binary()) {
        Ok((store, kept)) => (Some(store), kept),
        Err(e) => {
            warn!(path = %path.display(), "no descriptor keeper ({e}); restarts will reopen devices");
            (None, Kept::new())
        }
    }
}

/// The rvswitchd binary on disk, for the keeper it starts and the upgrade's exec. After `mv
/// new-binary rvswitchd` the old file is gone and the kernel names it "… (deleted)"; the path
/// is what we want to run.
fn own_binary() -> PathBuf {
    std::env::current_exe().map_or_else(
        |_| PathBuf::from("/proc/self/exe"),
        |p| PathBuf::from(p.to_string_lossy().trim_end_matches(" (deleted)").to_string()),
    )
}

/// Replaces this process with the rvswitchd binary now on disk, same arguments and PID (a
/// supervisor sees no restart). Returns only if exec failed.
fn reexec(env: Vec<(String, String)>) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let exe = own_binary();
    let err = std::process::Command::new(&exe).args(std::env::args_os().skip(1)).envs(env).exec();
    anyhow::anyhow!("cannot exec {} for the upgrade: {err}", exe.display())
}
