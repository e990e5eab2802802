//! `rvsctl zones ...`: the shell around the pure `zones` crate. It reads the zones file, the
//! host's network devices and the live OVSDB rows, hands them to `zones`, and sends the one
//! transaction it returns. Exit codes follow `terraform plan -detailed-exitcode`: 0 nothing
//! to do / isolated, 2 changes pending, 1 error or joined zones.

mod libvirt;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;

/// Default OVSDB remote: rvswitchd's embedded server.
pub const DEFAULT_DB: &str = "unix:/run/rvswitch/db.sock";

/// The `zones` subcommands.
#[derive(Subcommand, Debug)]
pub enum ZonesCommand {
    /// libvirt network XML per zone and the domain `<interface>` snippet per VM.
    LibvirtXml {
        /// The zones file.
        file: PathBuf,
        /// Only this zone (its network and its VMs' interfaces).
        zone: Option<String>,
        /// Write `ZONE.network.xml` / `VM.interface.xml` into DIR instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also `virsh net-define`, `net-autostart` and `net-start` each network.
        #[arg(long)]
        define: bool,
    },
}

/// What a zones command prints and how rvsctl exits.
pub struct Outcome {
    /// Text for stdout.
    pub stdout: String,
    /// Process exit code.
    pub code: u8,
}

impl Outcome {
    fn ok(stdout: String) -> Outcome {
        Outcome { stdout, code: 0 }
    }
}

/// Options every zones command shares.
pub struct Globals {
    /// OVSDB remote (`unix:PATH` or `tcp:HOST:PORT`).
    pub db: String,
    /// Print JSON.
    pub json: bool,
    /// Seconds to wait for the database (and for cur_cfg).
    pub timeout: u64,
}

/// Runs one zones command.
pub fn run(cmd: &ZonesCommand, g: &Globals) -> Result<Outcome> {
    let _ = g;
    match cmd {
        ZonesCommand::LibvirtXml { file, zone, out, define } => {
            libvirt::run(&load(file)?, zone.as_deref(), out.as_deref(), *define).map(Outcome::ok)
        }
    }
}

/// Error of a zones file that failed validation: all its diagnostics, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{count} problem(s) in the zones file; nothing was changed\n{text}")]
pub struct InvalidFile {
    count: usize,
    text: String,
}

/// Reads and validates a zones file (file-internal rules only).
pub fn load(file: &Path) -> Result<zones::Model> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read zones file {}", file.display()))?;
    zones::parse(&text, &file.display().to_string())
        .map_err(|d| InvalidFile { count: d.len(), text: zones::render(&d) }.into())
}
