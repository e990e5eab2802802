//! rvsctl: look at and steer a running rvswitchd.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ctl::client::call;
use ctl::protocol::{FdbReply, ReloadReply, Request, ShowReply};
use ctl::zones_cli::{self, ZonesCommand, DEFAULT_DB};
use ctl::{render, DEFAULT_CONTROL_SOCKET};

#[derive(Parser)]
#[command(name = "rvsctl", version, about = "Control a running rvswitchd")]
struct Cli {
    /// rvswitchd's control socket.
    #[arg(long, global = true, default_value = DEFAULT_CONTROL_SOCKET, env = "RVSWITCH_CTL")]
    socket: PathBuf,
    /// OVSDB remote for `zones` commands: unix:PATH or tcp:HOST:PORT.
    #[arg(long, global = true, default_value = DEFAULT_DB, env = "RVSWITCH_DB")]
    db: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for the daemon.
    #[arg(long, global = true, default_value_t = 5)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bridges, ports, VLAN settings, link state and counters.
    Show,
    /// The forwarding database (learned MAC addresses).
    Fdb {
        #[command(subcommand)]
        what: FdbCommand,
    },
    /// Re-read the config file and apply the changes (same as SIGHUP).
    Reload,
    /// Declarative isolated networks from a zones file (talks OVSDB, like ovs-vsctl).
    Zones {
        #[command(subcommand)]
        cmd: ZonesCommand,
    },
}

#[derive(Subcommand)]
enum FdbCommand {
    /// MAC, VLAN, port and age of every learned address on BRIDGE.
    Show { bridge: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Zones { cmd } = &cli.command {
        let g = zones_cli::Globals { db: cli.db.clone(), json: cli.json, timeout: cli.timeout.max(1) };
        return match zones_cli::run(cmd, &g) {
            Ok(o) => {
                print!("{}", o.stdout);
                ExitCode::from(o.code)
            }
            Err(e) => {
                eprintln!("rvsctl: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&cli) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rvsctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<String> {
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let json = |v: &dyn erased::Json| v.to_json();
    Ok(match &cli.command {
        Command::Show => {
            let r: ShowReply = call(&cli.socket, &Request::Show, timeout)?;
            if cli.json {
                json(&r)
            } else {
                render::show(&r)
            }
        }
        Command::Fdb { what: FdbCommand::Show { bridge } } => {
            let r: FdbReply = call(&cli.socket, &Request::FdbShow { bridge: bridge.clone() }, timeout)?;
            if cli.json {
                json(&r)
            } else {
                render::fdb(&r)
            }
        }
        Command::Reload => {
            let r: ReloadReply = call(&cli.socket, &Request::Reload, timeout)?;
            if cli.json {
                json(&r)
            } else if r.changes.is_empty() {
                "reloaded: no changes\n".to_string()
            } else {
                format!("reloaded:\n  {}\n", r.changes.join("\n  "))
            }
        }
        // Answered in main, which needs its exit code.
        Command::Zones { .. } => String::new(),
    })
}

mod erased {
    /// Pretty JSON of any reply type, without making `run` generic per branch.
    pub trait Json {
        fn to_json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")) + "\n"
        }
    }
}
