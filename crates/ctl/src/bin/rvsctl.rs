//! rvsctl: look at and steer a running rvswitchd.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use ctl::client::call;
use ctl::flow::{self, Flow};
use ctl::protocol::{
    EventsReply, FdbReply, ReloadReply, Request, SecurityReply, ShowReply, Trace, MAX_EVENT_WAIT_MS,
};
use ctl::topology::{DbIds, Topology};
use ctl::zones_cli::{self, ZonesCommand, DEFAULT_DB};
use ctl::{manpage, render, DEFAULT_CONTROL_SOCKET};

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
    /// Bridges, ports, VLAN settings, link state and counters; mirrors; a VPN port's tunnel
    /// and MTU.
    Show,
    /// The forwarding database (learned MAC addresses).
    Fdb {
        #[command(subcommand)]
        what: FdbCommand,
    },
    /// Port security: per port its mode, allowed MACs and bindings (static from allowed-ips,
    /// zones from the zones file, or dhcp: snooped, with the lease's time left).
    Security {
        #[command(subcommand)]
        what: SecurityCommand,
    },
    /// Re-read the config file and apply the changes (same as SIGHUP).
    Reload,
    /// What BRIDGE would do with a frame, step by step, on a copy of the live state (nothing is
    /// learned or counted). FLOW uses Open vSwitch's syntax, e.g. `in_port=vnet0,dl_src=…,
    /// dl_dst=…,dl_vlan=10,dl_type=0x0800,nw_src=…,nw_dst=…`; with PACKET (the frame in hex)
    /// only its in_port is used.
    Trace { bridge: String, flow: String, packet: Option<String> },
    /// A picture of the switch: zones and their bridges, ports with VLAN mode and tag, link
    /// state, drops, the zones' NIC uplinks and the VMs behind ports (external_ids, read over
    /// --db). SVG is rendered by Graphviz's `dot`.
    Topology {
        #[arg(long, default_value = "dot", value_parser = ["svg", "dot", "json"])]
        format: String,
    },
    /// Recent events: ports up/down, MAC addresses that moved between ports, port-security
    /// drops (rate-limited, with the offending MAC and IP). With --json one JSON object a line.
    Events {
        /// Keep printing events as they happen (until interrupted).
        #[arg(long)]
        follow: bool,
    },
    /// Write the man page to DIR (used when packaging).
    #[command(hide = true)]
    GenerateMan { dir: PathBuf },
    /// Print a completion script for SHELL: `source <(rvsctl completions bash)`. The Debian
    /// package installs the bash, zsh and fish ones.
    Completions { shell: clap_complete::Shell },
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

#[derive(Subcommand)]
enum SecurityCommand {
    /// Every port of BRIDGE (of every bridge when omitted).
    Show { bridge: Option<String> },
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
        Command::Security { what: SecurityCommand::Show { bridge } } => {
            let req = Request::SecurityShow { bridge: bridge.clone() };
            let r: SecurityReply = call(&cli.socket, &req, timeout)?;
            if cli.json {
                json(&r)
            } else {
                render::security(&r)
            }
        }
        Command::Completions { shell } => ctl::completions::script(Cli::command(), *shell),
        Command::GenerateMan { dir } => {
            manpage::write(Cli::command(), dir)?.iter().map(|p| format!("{}\n", p.display())).collect()
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
        Command::Trace { bridge, flow, packet } => {
            let parsed = Flow::parse(flow)?;
            let frame = match packet {
                Some(hex) => flow::parse_hex(hex)?,
                None => parsed.to_frame(),
            };
            let req = Request::Trace {
                bridge: bridge.clone(),
                in_port: parsed.in_port,
                frame: flow::to_hex(&frame),
            };
            let r: Trace = call(&cli.socket, &req, timeout)?;
            if cli.json {
                json(&r)
            } else {
                render::trace(bridge, &r)
            }
        }
        Command::Topology { format } => {
            let show: ShowReply = call(&cli.socket, &Request::Show, timeout)?;
            let topo = Topology::build(&show, &db_ids(cli, timeout));
            match format.as_str() {
                "json" => json(&topo),
                "svg" => svg(&topo.to_dot())?,
                _ => topo.to_dot(),
            }
        }
        Command::Events { follow } => {
            events(cli, *follow, timeout)?;
            String::new()
        }
        // Answered in main, which needs its exit code.
        Command::Zones { .. } => String::new(),
    })
}

/// Prints the events the daemon holds and, with `follow`, long-polls for more (printing each
/// batch as it arrives, so a pipe sees them live).
fn events(cli: &Cli, follow: bool, timeout: Duration) -> anyhow::Result<()> {
    use std::io::Write;
    let wait_ms = if follow { MAX_EVENT_WAIT_MS } else { 0 };
    let mut from = 0;
    let mut out = std::io::stdout().lock();
    loop {
        let req = Request::Events { from, wait_ms };
        let r: EventsReply = call(&cli.socket, &req, timeout + Duration::from_millis(wait_ms))?;
        if r.missed > 0 {
            eprintln!("rvsctl: {} older events are no longer held by the daemon", r.missed);
        }
        let text = if cli.json {
            r.events
                .iter()
                .map(|e| serde_json::to_string(e).map(|l| l + "\n"))
                .collect::<Result<String, _>>()?
        } else {
            render::events(&r.events)
        };
        out.write_all(text.as_bytes())?;
        out.flush()?;
        if !follow {
            if r.dropped > 0 {
                eprintln!("rvsctl: the forwarding thread lost {} events (queue full)", r.dropped);
            }
            return Ok(());
        }
        from = r.next;
    }
}

/// Bridge, Port and Interface external_ids over OVSDB (zones, uplinks, VMs); without a
/// database the picture just has none.
fn db_ids(cli: &Cli, timeout: Duration) -> DbIds {
    let rows = ovsdb::client::Client::connect(&cli.db, timeout)
        .map_err(anyhow::Error::from)
        .and_then(|mut c| Ok(c.transact(zones_cli::DB_NAME, &DbIds::selects())?));
    match rows {
        Ok(results) => DbIds::from_results(&results),
        Err(e) => {
            eprintln!("rvsctl: no zones or VM names ({} unreachable: {e:#})", cli.db);
            DbIds::default()
        }
    }
}

/// DOT → SVG through Graphviz.
fn svg(dot: &str) -> anyhow::Result<String> {
    use std::io::Write;
    use std::process::{Command as Run, Stdio};
    let mut child = Run::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("SVG needs Graphviz's dot (Debian package graphviz): {e}"))?;
    child.stdin.take().map(|mut i| i.write_all(dot.as_bytes())).transpose()?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!("dot failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
