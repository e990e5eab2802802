//! `rvsctl zones ...`: the shell around the pure `zones` crate. It reads the zones file, the
//! host's network devices and the live OVSDB rows, hands them to `zones`, and sends the one
//! transaction it returns. Exit codes: `plan` 0 nothing to do / 2 changes pending; `verify`
//! 0 isolated / 1 joined; 1 for every error.

mod apply;
mod host;
mod libvirt;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use ovsdb::client::Client;
use zones::live::LiveDb;

/// Default OVSDB remote: rvswitchd's embedded server.
pub const DEFAULT_DB: &str = "unix:/run/rvswitch/db.sock";
/// The database zones works on.
pub const DB_NAME: &str = "Open_vSwitch";

/// The `zones` subcommands.
#[derive(Subcommand, Debug)]
pub enum ZonesCommand {
    /// The exact diff between FILE and the live database (exit 0: nothing to do, 2: changes pending).
    Plan {
        /// The zones file.
        file: PathBuf,
    },
    /// Apply FILE as one OVSDB transaction and wait until the switch has applied it.
    Apply {
        /// The zones file.
        file: PathBuf,
        /// Do not wait for cur_cfg (for a database without a switch daemon, like ovs-vsctl --no-wait).
        #[arg(long)]
        no_wait: bool,
    },
    /// Zones, bridges, VLANs, uplinks and the VMs attached right now.
    Show {
        /// A zones file: name the attached VMs by their MAC.
        file: Option<PathBuf>,
    },
    /// Prove from the live database that no layer-2 path joins two zones or portgroups (exit 1 if one does).
    Verify,
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

impl Globals {
    fn connect(&self) -> Result<Client> {
        Ok(Client::connect(&self.db, Duration::from_secs(self.timeout))?)
    }
}

/// Runs one zones command.
pub fn run(cmd: &ZonesCommand, g: &Globals) -> Result<Outcome> {
    match cmd {
        // The file is checked before the database is even contacted.
        ZonesCommand::Plan { file } => apply::plan(file, &load(file)?, &mut g.connect()?, g.json),
        ZonesCommand::Apply { file, no_wait } => {
            apply::apply(file, &load(file)?, &mut g.connect()?, *no_wait)
        }
        ZonesCommand::Show { file } => {
            let model = file.as_deref().map(load).transpose()?;
            show(model.as_ref(), &mut g.connect()?, g.json)
        }
        ZonesCommand::Verify => verify(&mut g.connect()?, g.json),
        ZonesCommand::LibvirtXml { file, zone, out, define } => {
            libvirt::run(&load(file)?, zone.as_deref(), out.as_deref(), *define).map(Outcome::ok)
        }
    }
}

fn show(model: Option<&zones::Model>, client: &mut Client, as_json: bool) -> Result<Outcome> {
    let z = zones::show::zones(&read_live(client)?, model);
    Ok(Outcome::ok(if as_json { serde_json::to_string_pretty(&z)? + "\n" } else { zones::show::render(&z) }))
}

fn verify(client: &mut Client, as_json: bool) -> Result<Outcome> {
    let report = zones::verify::verify(&read_live(client)?, &host::device_pairs()?);
    let stdout =
        if as_json { serde_json::to_string_pretty(&report)? + "\n" } else { zones::verify::render(&report) };
    Ok(Outcome { stdout, code: u8::from(report.joined()) })
}

/// One consistent snapshot of the rows zones needs (a single read-only transaction).
pub fn read_live(client: &mut Client) -> Result<LiveDb> {
    let results = client.transact(DB_NAME, &zones::live::select_ops()).context("reading the database")?;
    Ok(LiveDb::from_results(&results)?)
}

/// Error of a zones file that failed validation: all its diagnostics, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{count} problem(s) in the zones file; nothing was changed\n{text}")]
pub struct InvalidFile {
    count: usize,
    text: String,
}

impl InvalidFile {
    fn new(d: &[zones::Diagnostic]) -> InvalidFile {
        InvalidFile { count: d.len(), text: zones::render(d).trim_end().to_string() }
    }
}

/// Reads and validates a zones file (file-internal rules only).
pub fn load(file: &Path) -> Result<zones::Model> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read zones file {}", file.display()))?;
    zones::parse(&text, &file.display().to_string()).map_err(|d| InvalidFile::new(&d).into())
}
