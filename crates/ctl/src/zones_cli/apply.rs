//! `zones plan` and `zones apply`: validate, read the live database, diff, and (apply) send the
//! one transaction and wait until the switch has applied it.

use std::fmt::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ovsdb::client::Client;
use serde_json::json;
use zones::plan::Plan;

use super::{host, InvalidFile, Outcome, DB_NAME};

/// Validated file + host facts + live rows → plan. Every problem is an error before anything is sent.
fn make_plan(file: &Path, model: &zones::Model, client: &mut Client) -> Result<Plan> {
    let live = super::read_live(client)?;
    let host = zones::host::HostNetdevs { existing: host::netdevs(), ours: host::ours(&live) };
    warn_missing_nics(model, &host.existing);
    let diags = zones::host::check_host(model, &file.display().to_string(), &host);
    if !diags.is_empty() {
        return Err(InvalidFile::new(&diags).into());
    }
    let comment = format!("rvsctl zones apply {}", file.display());
    match zones::plan::plan(&zones::desired::desired(model), &live, &comment) {
        Ok(p) => Ok(p),
        Err(conflicts) => {
            let text: Vec<String> = conflicts.iter().map(|c| c.to_string()).collect();
            bail!("the database conflicts with the zones file; nothing was changed\n{}", text.join("\n"))
        }
    }
}

/// A NIC that does not exist is not an error (it may appear later, and the switch attaches it
/// then), but almost always a typo worth saying.
fn warn_missing_nics(model: &zones::Model, existing: &std::collections::BTreeSet<String>) {
    if existing.is_empty() {
        return; // /sys/class/net unreadable: nothing to compare with
    }
    for (z, u) in model.zones.iter().filter_map(|z| z.uplink.as_ref().map(|u| (z, u))) {
        if u.vpn.is_none() && !existing.contains(&u.nic) {
            eprintln!(
                "rvsctl: warning: zone {}'s uplink NIC {} does not exist on this host (yet)",
                z.name, u.nic
            );
        }
    }
}

fn listing(p: &Plan) -> String {
    let mut s = String::new();
    for c in &p.changes {
        let _ = writeln!(s, "{c}");
    }
    s
}

/// `plan`: exit 0 when there is nothing to do, 2 when changes are pending.
pub fn plan(file: &Path, model: &zones::Model, client: &mut Client, as_json: bool) -> Result<Outcome> {
    let p = make_plan(file, model, client)?;
    let code = if p.changes.is_empty() { 0 } else { 2 };
    let stdout = if as_json {
        serde_json::to_string_pretty(&json!({"changes": p.changes, "ops": p.ops}))? + "\n"
    } else if p.changes.is_empty() {
        "nothing to do\n".into()
    } else {
        listing(&p)
    };
    Ok(Outcome { stdout, code })
}

/// `apply`: one transaction; then wait for cur_cfg (unless `no_wait`) and set the aliases.
pub fn apply(file: &Path, model: &zones::Model, client: &mut Client, no_wait: bool) -> Result<Outcome> {
    let p = make_plan(file, model, client)?;
    let mut out = String::new();
    if p.ops.is_empty() {
        out.push_str("nothing to do\n");
    } else {
        let results = client
            .transact(DB_NAME, &p.ops)
            .context("the database refused the transaction; nothing was changed")?;
        let next_cfg = results
            .last()
            .and_then(|r| r["rows"][0]["next_cfg"].as_i64())
            .context("no next_cfg in the reply")?;
        if !no_wait {
            client
                .wait_cur_cfg(DB_NAME, next_cfg)
                .context("the change is committed, but the switch did not report it applied (cur_cfg)")?;
        }
        out.push_str(&listing(&p));
    }
    out.push_str(&aliases(model));
    Ok(Outcome { stdout: out, code: 0 })
}

/// Writes each zone's description to its bridge's internal port ifalias, where that device
/// exists on this host (it does not with a database but no switch behind it).
fn aliases(model: &zones::Model) -> String {
    let mut s = String::new();
    for z in model.zones.iter().filter(|z| !z.description.is_empty()) {
        match host::set_ifalias(&z.bridge, &z.description) {
            Ok(true) => {
                let _ = writeln!(s, "~ ifalias of {} set to \"{}\"", z.bridge, z.description);
            }
            Ok(false) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("rvsctl: warning: cannot set the ifalias of {}: {e}", z.bridge),
        }
    }
    s
}
