//! The zones file (`zones::parse`) and what stands behind an accepted file.
//!
//! Oracle: a refused file gets at least one diagnostic, each at a place in the text and saying
//! what is wrong. An accepted file must be usable end to end: its libvirt XML renders, its plan
//! against a fresh database (root row only) has no conflict, that plan's one transaction
//! commits on the real OVSDB engine with the `Open_vSwitch` schema and leaves it consistent,
//! and planning again afterwards finds nothing to do. And the daemon takes what was applied:
//! rvswitchd's own planner over that database takes each VPN zone's gateway port, with the
//! zone's DNS servers (`dhcp.dns`: IPv4 for DHCP, IPv6 for the RAs).

use serde_json::{json, Value};
use zones::live::LiveDb;

use crate::{ovsdb_check, ovsdb_rpc};

/// The fuzz target. Bytes that are not UTF-8 are read lossily.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match zones::parse(&text, "fuzz.zones.toml") {
        Err(diags) => refused(&text, &diags),
        Ok(model) => accepted(&model),
    }
}

fn refused(text: &str, diags: &[zones::Diagnostic]) {
    assert!(!diags.is_empty(), "refused without a diagnostic");
    let lines = text.lines().count().max(1);
    for d in diags {
        assert!((1..=lines + 1).contains(&d.pos.line), "diagnostic on line {} of {lines}: {d}", d.pos.line);
        assert!(d.pos.col >= 1, "diagnostic without a column: {d}");
        assert!(!d.what.trim().is_empty(), "diagnostic says nothing: {d:?}");
    }
    assert!(!zones::render(diags).is_empty());
}

fn accepted(model: &zones::Model) {
    let files = zones::libvirt::files(model, None).expect("XML for every zone of an accepted file");
    assert!(files.iter().all(|f| !f.name.is_empty() && f.contents.starts_with('<')), "empty XML file");
    let desired = zones::desired::desired(model);
    let db = ovsdb_rpc::fresh_database();
    let first = zones::plan::plan(&desired, &live(&db), "fuzz")
        .unwrap_or_else(|c| panic!("an accepted file conflicts with an empty database: {c:?}"));
    if !first.ops.is_empty() {
        let reply = transact(&db, first.ops);
        assert!(ovsdb_check::first_error(&reply).is_none(), "the plan does not apply: {reply}");
    }
    ovsdb_check::consistent(&db);
    let again = zones::plan::plan(&desired, &live(&db), "fuzz")
        .unwrap_or_else(|c| panic!("re-planning after apply conflicts: {c:?}"));
    assert!(again.changes.is_empty(), "applied plan is not idempotent: {:?}", again.changes);
    daemon_takes(model, &db);
}

/// rvswitchd's view of the applied database: every VPN zone's gateway port is taken (its
/// options parse) and carries the zone's DNS servers, in order, each family in its place.
/// A name the zones file accepted must be one rvswitchd takes too (both use `netdev::IfName`).
fn daemon_takes(model: &zones::Model, db: &std::sync::Arc<ovsdb::Database>) {
    let snapshot = vswitchd::db::Snapshot::read(&db.session()).expect("rvswitchd reads the database");
    let plan = vswitchd::db::plan(&snapshot);
    let taken = |n: &str| {
        assert!(vswitchd::config::check_ifname(n).is_ok(), "zones accepted {n:?}; rvswitchd refuses it")
    };
    for d in zones::desired::desired(model) {
        let zone = model.zones.iter().find(|z| z.name == d.zone).expect("a desired zone is a zone");
        taken(&d.bridge);
        let Some(up) = d.uplink.filter(|u| u.kind == "rvswitch-vpn") else { continue };
        taken(&up.nic);
        let port = plan.desired.ports().find(|(_, p)| p.name == up.nic).map(|(_, p)| p);
        let Some(vpn) = port.and_then(|p| p.vpn.as_ref()) else {
            panic!("rvswitchd does not take VPN port {}: {:?}", up.nic, plan.rejected)
        };
        let (dns, dns6) = vpn.dhcp.as_ref().map_or((&[][..], &[][..]), |h| (&h.dns[..], &h.dns6[..]));
        let s = &zone.services;
        let want = if s.dhcp.is_some() { (&s.dns[..], &s.dns6[..]) } else { (&[][..], &[][..]) };
        assert_eq!((dns, dns6), want, "zone {}'s DNS servers at its gateway port", zone.name);
    }
}

fn transact(db: &ovsdb::Database, ops: Vec<Value>) -> Value {
    let mut all = vec![json!(db.name())];
    all.extend(ops);
    let mut all = Value::Array(all);
    ovsdb_rpc::defuse_waits(&mut all);
    db.transact(all)
}

fn live(db: &ovsdb::Database) -> LiveDb {
    let reply = transact(db, zones::live::select_ops());
    let results = reply.as_array().expect("select reply is an array");
    LiveDb::from_results(results).unwrap_or_else(|e| panic!("our own database does not decode: {e}"))
}
