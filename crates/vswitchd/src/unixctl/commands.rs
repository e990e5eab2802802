//! The commands `ovs-appctl` may send, with OvS's argument counts and error texts, and what each
//! one does. The forwarding thread is reached only through the datapath's commands.

use std::sync::Arc;
use std::time::Duration;

use ctl::flow::{self, Flow};
use ctl::render;

use super::text;
use crate::control::{self, lock, Shared};
use crate::service::logging;

const TIMEOUT: Duration = Duration::from_secs(2);

/// A command as OvS registers one: name, usage text, and how many arguments it takes.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub usage: &'static str,
    pub min: usize,
    pub max: usize,
}

const fn spec(name: &'static str, usage: &'static str, min: usize, max: usize) -> Spec {
    Spec { name, usage, min, max }
}

pub const COMMANDS: [Spec; 11] = [
    spec("list-commands", "", 0, 0),
    spec("help", "", 0, 0),
    spec("version", "", 0, 0),
    spec("fdb/show", "bridge", 1, 1),
    spec("fdb/flush", "[bridge]", 0, 1),
    spec("fdb/stats-show", "bridge", 1, 1),
    spec("ofproto/trace", "bridge br_flow [packet]", 2, 3),
    spec("vlog/list", "", 0, 0),
    spec("vlog/set", "{spec | module[:destination]:level}", 1, 16),
    spec("dpif/show", "", 0, 0),
    spec("exit", "[--cleanup]", 0, 1),
];

/// What the server must do after sending the reply.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// Stop the daemon (the reply goes out first, as OvS's `exit` does).
    Exit,
}

/// What commands act on: the daemon, and how to stop it cleanly.
#[derive(Clone)]
pub struct Ctx {
    pub shared: Shared,
    pub exit: Arc<dyn Fn() + Send + Sync>,
}

/// Checks a method and its argument count the way OvS's unixctl server does.
pub fn check(method: &str, argc: usize) -> Result<&'static Spec, String> {
    let spec = COMMANDS.iter().find(|c| c.name == method).ok_or_else(|| {
        format!(
            "\"{}\" is not a valid command (use \"list-commands\" to see a list of valid commands)",
            method.escape_debug()
        )
    })?;
    if argc < spec.min {
        return Err(format!("\"{method}\" command requires at least {} arguments", spec.min));
    }
    if argc > spec.max {
        return Err(format!("\"{method}\" command takes at most {} arguments", spec.max));
    }
    Ok(spec)
}

/// Runs a checked command.
pub fn run(ctx: &Ctx, method: &str, args: &[String]) -> (Result<String, String>, After) {
    let arg = |i: usize| args.get(i).map(String::as_str);
    let out = match method {
        "list-commands" | "help" => {
            let list: Vec<(&str, &str)> = COMMANDS.iter().map(|c| (c.name, c.usage)).collect();
            Ok(text::list_commands(&list))
        }
        "version" => Ok(format!("rvswitchd (rvswitch) {}", env!("CARGO_PKG_VERSION"))),
        "fdb/show" => fdb_show(ctx, arg(0).unwrap_or_default()),
        "fdb/flush" => fdb_flush(ctx, arg(0)),
        "fdb/stats-show" => fdb_stats(ctx, arg(0).unwrap_or_default()),
        "ofproto/trace" => trace(ctx, arg(0).unwrap_or_default(), arg(1).unwrap_or_default(), arg(2)),
        "vlog/list" => Ok(logging::vlog_list()),
        "vlog/set" => logging::vlog_set(args).map(|()| String::new()),
        "dpif/show" => {
            let daemon = lock(&ctx.shared);
            Ok(text::dpif_show(&daemon.show().bridges, &daemon.ofports()))
        }
        "exit" => return (Ok(String::new()), After::Exit),
        _ => Err(format!("\"{method}\" is not a valid command")),
    };
    (out, After::Nothing)
}

fn fdb_show(ctx: &Ctx, bridge: &str) -> Result<String, String> {
    let daemon = lock(&ctx.shared);
    let fdb = daemon.fdb(bridge).map_err(|_| "no such bridge".to_string())?;
    Ok(text::fdb_show(&fdb.entries, &daemon.ofports()))
}

fn fdb_flush(ctx: &Ctx, bridge: Option<&str>) -> Result<String, String> {
    match lock(&ctx.shared).datapath().fdb_flush(bridge, TIMEOUT) {
        Ok(true) => Ok("table successfully flushed".to_string()),
        Ok(false) => Err("no such bridge".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn fdb_stats(ctx: &Ctx, bridge: &str) -> Result<String, String> {
    let stats = lock(&ctx.shared).datapath().mac_stats(TIMEOUT).map_err(|e| e.to_string())?;
    let (_, st) = stats.iter().find(|(name, _)| name == bridge).ok_or("no such bridge")?;
    Ok(text::fdb_stats(bridge, st))
}

/// `ofproto/trace BRIDGE FLOW [PACKET]`: the same engine and text as `rvsctl trace`.
fn trace(ctx: &Ctx, bridge: &str, flow_text: &str, packet: Option<&str>) -> Result<String, String> {
    let f = Flow::parse(flow_text).map_err(|e| e.to_string())?;
    let frame = match packet {
        Some(hex) => flow::parse_hex(hex).map_err(|e| e.to_string())?,
        None => f.to_frame(),
    };
    let t = control::trace(&ctx.shared, bridge, &f.in_port, &flow::to_hex(&frame))?;
    Ok(render::trace(bridge, &t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_counts_and_names_are_checked_like_ovs() {
        assert!(check("fdb/show", 1).is_ok());
        assert_eq!(check("fdb/show", 0).unwrap_err(), "\"fdb/show\" command requires at least 1 arguments");
        assert_eq!(check("version", 2).unwrap_err(), "\"version\" command takes at most 0 arguments");
        assert!(check("ofproto/self-destruct", 0).unwrap_err().contains("is not a valid command"));
        assert!(check("fdb/flush", 0).is_ok() && check("fdb/flush", 1).is_ok());
    }
}
