//! rvswitchd: the rvswitch daemon — switch, OVSDB server and control socket in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{CommandFactory, Parser};
use ovsdb::server::{SchemaSource, Server, ServerConfig};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};
use vswitchd::control::{self, lock};
use vswitchd::daemon::Daemon;
use vswitchd::datapath::{Datapath, DatapathOptions};
use vswitchd::db::DbSync;
use vswitchd::reconcile::Reconciler;
use vswitchd::service::watchdog::Heartbeat;
use vswitchd::service::{self, Service, ServiceArgs};

/// How often devices are re-checked and status written back (ovs-vswitchd: about once a second).
const TICK: Duration = Duration::from_secs(1);

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
    #[command(flatten)]
    service: ServiceArgs,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal mode"))
}

fn main() -> ExitCode {
    let mut args = Args::parse();
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
    if let Some(tcp) = args.db_tcp.filter(|a| !a.ip().is_loopback()) {
        warn!("OVSDB on {tcp} is reachable from other hosts and has no authentication");
    }
    let signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    for dir in [args.db_file.parent(), args.db_socket.parent()].into_iter().flatten() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let server = Server::start(ServerConfig {
        schema: SchemaSource::Vswitch,
        db_file: args.db_file.clone(),
        unix_socket: args.db_socket.clone(),
        socket_mode: args.db_socket_mode,
        tcp: args.db_tcp,
        limits: Default::default(),
    })
    .map_err(|e| anyhow::anyhow!("starting the OVSDB server: {e}"))?;
    let (db, notes) = DbSync::new(server.database()).map_err(anyhow::Error::msg)?;
    let datapath = Datapath::spawn_with(DatapathOptions {
        busy_poll: Duration::from_micros(args.busy_poll_us),
        sender_affinity: args.sender_affinity == "on",
    })?;
    let forwarding_beat = datapath.heartbeat();
    let rec = Reconciler::new(datapath);
    let shared = Arc::new(Mutex::new(Daemon::new(rec, db, args.config.clone())));
    lock(&shared).reload().map_err(anyhow::Error::msg)?;
    let socket = control::serve(&args.control_socket, shared.clone())?;
    info!(control = %socket.display(), db = %args.db_socket.display(), "rvswitchd running");
    let control_beat = Heartbeat::new();
    service.ready(
        &format!("serving {}", args.db_socket.display()),
        vec![forwarding_beat, control_beat.clone()],
    )?;

    // The control loop: apply database changes as they are announced; every TICK re-check
    // devices and write status back.
    let stopping = Arc::new(AtomicBool::new(false));
    let control_loop = {
        let (shared, stopping, beat) = (shared.clone(), stopping.clone(), control_beat);
        std::thread::Builder::new().name("db-sync".into()).spawn(move || {
            let mut last_tick = Instant::now();
            while !stopping.load(Ordering::Relaxed) {
                let wait = TICK.saturating_sub(last_tick.elapsed());
                match notes.recv_timeout(wait) {
                    Ok(_) => {
                        while notes.try_recv().is_ok() {}
                        lock(&shared).sync();
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if last_tick.elapsed() >= TICK {
                    last_tick = Instant::now();
                    lock(&shared).tick();
                    beat.beat();
                }
            }
        })?
    };

    let mut signals = signals;
    for sig in signals.forever() {
        match sig {
            SIGHUP => match lock(&shared).reload() {
                Ok(changes) => {
                    info!("reloaded ({} changes)", changes.len());
                    service.status(&format!(
                        "serving {}; reloaded ({} changes)",
                        args.db_socket.display(),
                        changes.len()
                    ));
                }
                Err(e) => warn!("reload refused, running config kept: {e}"),
            },
            _ => {
                info!("signal {sig}: shutting down");
                service.stopping();
                break;
            }
        }
    }
    stopping.store(true, Ordering::Relaxed);
    let _ = control_loop.join();
    let _ = std::fs::remove_file(&socket);
    // Stops the forwarding thread and closes (and so removes) the taps we created.
    lock(&shared).shutdown();
    server.shutdown();
    info!("rvswitchd stopped");
    Ok(())
}
