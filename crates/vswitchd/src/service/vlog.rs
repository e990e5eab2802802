//! `ovs-appctl vlog/list` and `vlog/set` over tracing's filter. OvS has modules × destinations ×
//! levels; rvswitchd has one destination, so a destination in a spec is accepted and ignored,
//! OvS's modules are our crates (tracing targets), and OvS's levels map onto tracing's. This
//! file is the pure model: specs in, the EnvFilter directive string out.

use std::collections::BTreeMap;
use std::fmt::Write;

/// The modules `vlog/set` knows: rvswitch's crates, each a tracing target prefix.
pub const MODULES: [&str; 7] = ["vswitchd", "switch", "netdev", "ovsdb", "ctl", "zones", "packet"];
const DESTINATIONS: [&str; 4] = ["any", "console", "syslog", "file"];

/// OvS's levels, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Off,
    Emer,
    Err,
    Warn,
    Info,
    Dbg,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "off" => Level::Off,
            "emer" => Level::Emer,
            "err" | "error" => Level::Err,
            "warn" => Level::Warn,
            "info" => Level::Info,
            "dbg" | "debug" => Level::Dbg,
            _ => return None,
        })
    }

    /// The tracing level directive (tracing has no EMER: it is ERROR's most severe end).
    fn directive(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Emer | Level::Err => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Dbg => "debug",
        }
    }

    fn ovs_name(self) -> &'static str {
        match self {
            Level::Off => "OFF",
            Level::Emer => "EMER",
            Level::Err => "ERR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Dbg => "DBG",
        }
    }
}

/// Log levels as set from the command line and changed by `vlog/set` since.
#[derive(Clone, Debug)]
pub struct Vlog {
    /// The starting filter (`--log` or RUST_LOG), tracing's syntax.
    base: String,
    /// `vlog/set LEVEL` or `ANY:LEVEL`: replaces the base for every module.
    all: Option<Level>,
    per_module: BTreeMap<&'static str, Level>,
}

impl Vlog {
    pub fn new(base: &str) -> Vlog {
        Vlog { base: base.to_string(), all: None, per_module: BTreeMap::new() }
    }

    /// Applies one spec (`dbg`, `vswitchd:dbg`, `ANY:file:warn`, words split by `:` or spaces).
    /// All or nothing: a bad word changes nothing.
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (mut module, mut level) = (None, None);
        for word in spec.split([':', ' ']).filter(|w| !w.is_empty()) {
            let lower = word.to_ascii_lowercase();
            if let Some(l) = Level::parse(&lower) {
                level = Some(l);
            } else if let Some(m) = MODULES.iter().find(|m| **m == lower) {
                module = Some(*m);
            } else if !DESTINATIONS.contains(&lower.as_str()) {
                return Err(format!("no destination, level, or module \"{}\"", word.escape_debug()));
            }
        }
        let level = level.unwrap_or(Level::Dbg);
        match module {
            Some(m) => {
                self.per_module.insert(m, level);
            }
            None => {
                self.all = Some(level);
                self.per_module.clear();
            }
        }
        Ok(())
    }

    /// The EnvFilter directives for the current state.
    pub fn directives(&self) -> String {
        let mut s = self.all.map_or_else(|| self.base.clone(), |l| l.directive().to_string());
        for (m, l) in &self.per_module {
            let _ = write!(s, ",{m}={}", l.directive());
        }
        s
    }

    /// A module's level where it can be told: set by vlog/set, or a plain level in the base.
    fn level_of(&self, module: &str) -> String {
        if let Some(l) = self.per_module.get(module).or(self.all.as_ref()) {
            return l.ovs_name().to_string();
        }
        let mut level = "INFO".to_string();
        for d in self.base.split(',').map(str::trim) {
            match d.split_once('=') {
                Some((target, l)) if target == module => level = l.to_ascii_uppercase(),
                None => level = d.to_ascii_uppercase(),
                _ => {}
            }
        }
        level.replace("DEBUG", "DBG").replace("ERROR", "ERR")
    }

    /// OvS's table: one row per module, the same level in every destination column.
    pub fn list(&self) -> String {
        let mut s = String::from("                 console    syslog    file\n");
        s.push_str("                 -------    ------    ------\n");
        for m in MODULES {
            let l = self.level_of(m);
            let _ = writeln!(s, "{m:<16}  {l:>4}       {l:>4}       {l:>4}");
        }
        let _ = writeln!(s, "\n(tracing filter: {})", self.directives());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_become_tracing_directives() {
        let mut v = Vlog::new("info");
        assert_eq!(v.directives(), "info");
        v.set("vswitchd:dbg").unwrap();
        v.set("ovsdb:file:warn").unwrap();
        assert_eq!(v.directives(), "info,ovsdb=warn,vswitchd=debug");
        assert!(v.list().contains("vswitchd           DBG        DBG        DBG"), "{}", v.list());
        assert!(v.list().contains("switch            INFO"), "{}", v.list());
        v.set("ANY:emer").unwrap();
        assert_eq!(v.directives(), "error", "a level for every module replaces the per-module ones");
        v.set("err vswitchd").unwrap();
        assert_eq!(v.directives(), "error,vswitchd=error");
    }

    #[test]
    fn unknown_words_change_nothing() {
        let mut v = Vlog::new("warn,ovsdb=debug");
        assert!(v.set("vswitchd:loud").unwrap_err().contains("\"loud\""));
        assert!(v.set("bridge:dbg").is_err(), "OvS's module names are not ours");
        assert_eq!(v.directives(), "warn,ovsdb=debug");
        assert!(v.list().contains("ovsdb              DBG"), "{}", v.list());
    }
}
