//! rvswitchd: the rvswitch daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};
use vswitchd::control::{self, lock};
use vswitchd::datapath::Datapath;
use vswitchd::reconcile::Reconciler;
use vswitchd::{config, state::DesiredState};

#[derive(Parser)]
#[command(name = "rvswitchd", version, about = "rvswitch: a memory-safe userspace virtual switch")]
struct Args {
    /// Bridges and ports (TOML). Re-read on SIGHUP or `rvsctl reload`.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where rvsctl reaches the daemon.
    #[arg(long, default_value = ctl::DEFAULT_CONTROL_SOCKET)]
    control_socket: PathBuf,
    /// Log filter (tracing's EnvFilter syntax); RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&args.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // A bad file at start-up is fatal: there is no running config to fall back on.
    let desired = match &args.config {
        Some(path) => config::load(path)?,
        None => DesiredState::default(),
    };
    let signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    let datapath = Datapath::spawn()?;
    let shared = Arc::new(Mutex::new(Reconciler::new(args.config.clone(), datapath)));
    lock(&shared).apply(desired);
    let socket = control::serve(&args.control_socket, shared.clone())?;
    info!(socket = %socket.display(), "rvswitchd running");

    let stopping = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (shared, stopping) = (shared.clone(), stopping.clone());
        std::thread::Builder::new().name("monitor".into()).spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                lock(&shared).monitor();
            }
        })?
    };

    let mut signals = signals;
    for sig in signals.forever() {
        match sig {
            SIGHUP => match lock(&shared).reload() {
                Ok(changes) => info!("reloaded ({} changes)", changes.len()),
                Err(e) => warn!("reload refused, running config kept: {e}"),
            },
            _ => {
                info!("signal {sig}: shutting down");
                break;
            }
        }
    }
    stopping.store(true, Ordering::Relaxed);
    let _ = monitor.join();
    let _ = std::fs::remove_file(&socket);
    // Stops the forwarding thread and closes (and so removes) the taps we created.
    lock(&shared).shutdown();
    info!("rvswitchd stopped");
    Ok(())
}
