//! rvswitchd as a system service: readiness and watchdog for systemd, Open vSwitch's file
//! locations, giving up root, and log output fit for the journal. main.rs only calls in here;
//! each concern is a file of its own.

pub mod logging;
pub mod notify;
pub mod ovs_compat;
pub mod user;
pub mod vlog;
pub mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tracing::{info, warn};

use notify::Notifier;
use ovs_compat::PidFiles;
use user::UserSpec;
use watchdog::{Heartbeat, Watchdog};

/// The service flags, flattened into rvswitchd's command line.
#[derive(clap::Args, Debug, Clone)]
pub struct ServiceArgs {
    /// Log to this file (appended, plain text) instead of stderr. Without it stderr gets colour
    /// only when it is a terminal.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Once its files are in place, run as USER (group: GROUP, else USER's primary group),
    /// keeping only CAP_NET_ADMIN and CAP_NET_RAW. The database file and the directories of the
    /// database and the sockets are handed to that user (sticky ones such as /tmp excepted).
    #[arg(long, value_name = "USER[:GROUP]")]
    pub user: Option<UserSpec>,
    /// Open vSwitch compatibility: serve the database at OVS_RUNDIR/db.sock (instead of
    /// --db-socket) and write ovs-vswitchd.pid and ovsdb-server.pid there, so ovs-vsctl, libvirt
    /// and scripts that look for Open vSwitch find rvswitchd without --db.
    #[arg(long, conflicts_with = "db_socket")]
    pub ovs_compat: bool,
    /// Open vSwitch's run directory, used by --ovs-compat (OVS_RUNDIR, as for ovs-vsctl).
    #[arg(long, env = "OVS_RUNDIR", default_value = ovs_compat::DEFAULT_RUNDIR, value_name = "DIR")]
    pub ovs_rundir: PathBuf,
    /// Write the man page to DIR and exit (used when packaging).
    #[arg(long, hide = true, value_name = "DIR")]
    pub generate_man: Option<PathBuf>,
}

impl ServiceArgs {
    /// The database socket to serve: OvS's place under --ovs-compat, else `requested`.
    pub fn db_socket(&self, requested: &Path) -> PathBuf {
        if self.ovs_compat {
            ovs_compat::db_socket(&self.ovs_rundir)
        } else {
            requested.to_path_buf()
        }
    }
}

/// Where the daemon keeps its state, for handing it to `--user`.
pub struct Paths<'a> {
    pub db_file: &'a Path,
    pub db_socket: &'a Path,
    pub control_socket: &'a Path,
}

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
    #[error(transparent)]
    PidFile(#[from] ovs_compat::PidFileError),
    #[error(transparent)]
    User(#[from] user::UserError),
    #[error("starting the watchdog thread: {0}")]
    Watchdog(std::io::Error),
}

/// Hands the daemon's files to `spec` and switches to it (see [`user`]).
fn become_user(
    spec: &UserSpec,
    args: &ServiceArgs,
    paths: &Paths<'_>,
    pid_files: Option<&PidFiles>,
) -> Result<(), ServiceError> {
    let account = user::lookup(spec)?;
    // A bare file name has the empty path as parent: the working directory, not ours to give.
    let mut dirs: Vec<&Path> = [paths.db_file, paths.db_socket, paths.control_socket]
        .iter()
        .filter_map(|p| p.parent())
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    if args.ovs_compat {
        dirs.push(&args.ovs_rundir);
    }
    let mut files = vec![paths.db_file];
    files.extend(pid_files.into_iter().flat_map(|p| p.paths()));
    files.extend(args.log_file.as_deref());
    user::hand_over(account, &dirs, &files)?;
    user::drop_to(account)?;
    let name = user::user_name(account.uid);
    info!(user = name, gid = account.gid, "running without root (CAP_NET_ADMIN, CAP_NET_RAW kept)");
    if let Err(e) = user::check_tun_access() {
        warn!("tap and internal ports will fail: {e}");
    }
    Ok(())
}

/// What the service manager and OvS's tools see of the daemon, for its whole life. Dropping it
/// stops the watchdog and removes the pid files.
pub struct Service {
    notifier: Option<Notifier>,
    watchdog: Option<Watchdog>,
    _pid_files: Option<PidFiles>,
}

impl Service {
    /// Everything that must happen while the process is still root and has one thread: pid
    /// files, then the switch to `--user`. Call before any thread starts.
    pub fn setup(args: &ServiceArgs, paths: Paths<'_>) -> Result<Service, ServiceError> {
        let notifier = Notifier::from_env()?;
        let pid_files = args.ovs_compat.then(|| PidFiles::create(&args.ovs_rundir)).transpose()?;
        if let Some(spec) = &args.user {
            become_user(spec, args, &paths, pid_files.as_ref())?;
        }
        Ok(Service { notifier, watchdog: None, _pid_files: pid_files })
    }

    /// The database and datapath are up: tell systemd (`READY=1`) and, if it asked for a
    /// watchdog, start the keep-alives that need every one of `beats` to advance.
    pub fn ready(&mut self, status: &str, beats: Vec<Arc<Heartbeat>>) -> Result<(), ServiceError> {
        let Some(notifier) = &self.notifier else { return Ok(()) };
        self.send(&format!("READY=1\n{}", notify::status_line(status)));
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        if let Some(interval) = watchdog::interval(usec.as_deref(), pid.as_deref(), std::process::id()) {
            let own = notifier.try_clone()?;
            self.watchdog = Some(Watchdog::spawn(own, interval, beats).map_err(ServiceError::Watchdog)?);
            info!(?interval, "systemd watchdog keep-alives on");
        }
        Ok(())
    }

    /// Shutdown has begun: `STOPPING=1`, and no more keep-alives.
    pub fn stopping(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            w.stop();
        }
        self.send(&format!("STOPPING=1\n{}", notify::status_line("shutting down")));
    }

    /// A one-line `STATUS=` for `systemctl status`.
    pub fn status(&self, text: &str) {
        self.send(&notify::status_line(text));
    }

    fn send(&self, message: &str) {
        if let Some(n) = &self.notifier {
            if let Err(e) = n.send(message) {
                warn!("cannot notify the service manager: {e}");
            }
        }
    }
}
