//! Plans applied to a real (in-memory) OVSDB engine with the Open_vSwitch schema: the
//! transaction is valid, re-planning after it is empty, a changed file plans exactly the
//! change, foreign rows survive, and a concurrent change makes the transaction fail whole.

use std::sync::Arc;

use ovsdb::{Database, DatabaseSchema, VSWITCH_SCHEMA};
use serde_json::{json, Value};
use zones::live::LiveDb;
use zones::plan::{plan, Change, Conflict, Plan};

fn db() -> Arc<Database> {
    let db = Database::in_memory(DatabaseSchema::parse_str(VSWITCH_SCHEMA).unwrap());
    ok(&db, vec![json!({"op": "insert", "table": "Open_vSwitch", "row": {}})]);
    db
}

fn ok(db: &Database, ops: Vec<Value>) -> Vec<Value> {
    let mut all = vec![json!("Open_vSwitch")];
    all.extend(ops);
    let r = db.transact(Value::Array(all));
    let r = r.as_array().unwrap().clone();
    assert!(r.iter().all(|x| x.get("error").is_none()), "transaction failed: {r:?}");
    r
}

fn live(db: &Database) -> LiveDb {
    LiveDb::from_results(&ok(db, zones::live::select_ops())).unwrap()
}

fn plan_for(db: &Database, file: &str) -> Result<Plan, Vec<Conflict>> {
    let m = zones::parse(file, "z.toml").unwrap();
    plan(&zones::desired::desired(&m), &live(db), "test")
}

fn apply(db: &Database, file: &str) -> Vec<Change> {
    let p = plan_for(db, file).unwrap();
    if !p.ops.is_empty() {
        ok(db, p.ops);
    }
    p.changes
}

fn lines(c: &[Change]) -> Vec<String> {
    c.iter().map(|c| c.to_string()).collect()
}

/// The seed's host: intranet (VLANs 10, 20, uplink eth1) and internet.
const TWO: &str = include_str!("../../../examples/zones.toml");

#[test]
fn fresh_apply_then_nothing_to_do() {
    let db = db();
    let c = apply(&db, TWO);
    assert_eq!(
        lines(&c),
        [
            "+ bridge br-intranet (zone intranet)",
            "+ port br-intranet on br-intranet (internal, zone intranet)",
            "+ port eth1 on br-intranet (uplink, zone intranet)",
            "+ bridge br-internet (zone internet)",
            "+ port br-internet on br-internet (internal, zone internet)",
        ]
    );
    let l = live(&db);
    assert_eq!(l.next_cfg, 1, "apply bumps next_cfg once");
    let eth1 = l.ports().find(|(_, p)| p.name == "eth1").unwrap().1;
    assert_eq!((eth1.vlan_mode.as_deref(), eth1.trunks.clone()), (Some("trunk"), vec![10, 20]));
    let brif =
        &l.bridge("br-intranet").unwrap().ports.iter().find(|p| p.name == "br-intranet").unwrap().interfaces
            [0];
    assert_eq!(
        (brif.kind.as_str(), brif.external_ids["rvswitch-description"].as_str()),
        ("internal", "Company LAN (reached over VPN)")
    );
    let again = plan_for(&db, TWO).unwrap();
    assert!(again.changes.is_empty() && again.ops.is_empty(), "second plan: {:?}", again.changes);
}

#[test]
fn a_changed_file_plans_exactly_the_change() {
    let db = db();
    apply(&db, TWO);
    let changed = TWO
        .replace("vlan = 20", "vlan = 30")
        .replace("description = \"Company LAN (reached over VPN)\"", "description = \"LAN\"");
    let c = apply(&db, &changed);
    let l = lines(&c);
    assert_eq!(l.len(), 3, "{l:#?}");
    assert!(l[0].starts_with("~ Bridge br-intranet (zone intranet): external_ids"), "{l:#?}");
    assert!(l[0].ends_with("\"rvswitch-description\": \"LAN\", \"rvswitch-portgroups\": \"vlan-10=10,guest=30\", \"rvswitch-zone\": \"intranet\"}"), "{l:#?}");
    assert!(l[1].starts_with("~ Interface br-intranet"), "{l:#?}");
    assert_eq!(l[2], "~ port eth1 (zone intranet): vlan_mode=trunk tag=none trunks=[10,20] -> vlan_mode=trunk tag=none trunks=[10,30]");
    assert!(plan_for(&db, &changed).unwrap().changes.is_empty());
    // Dropping the uplink removes just that port; dropping a zone removes its bridge.
    let no_uplink: String =
        changed.lines().filter(|l| !l.starts_with("uplink")).map(|l| format!("{l}\n")).collect();
    let fewer = no_uplink
        .replace("[[zone]]\nname = \"internet\"\ndescription = \"Public network\"\n", "")
        .replace("[[vm]]\nname = \"web-browser\"\nzone = \"internet\"\nmac = \"52:54:00:20:00:01\"\n", "");
    assert_eq!(
        lines(&apply(&db, &fewer)),
        [
            "- port eth1 on br-intranet (zone intranet)",
            "- bridge br-internet (zone internet, with its ports)"
        ]
    );
    let l = live(&db);
    assert_eq!(l.bridges.len(), 1);
    assert!(l.ports().all(|(_, p)| p.name != "eth1"));
}

/// What `ovs-vsctl add-br handmade` and libvirt's `add-port BRIDGE VNET -- set Interface VNET
/// external_ids:attached-mac=...` write: a foreign bridge, and a foreign port on zone bridge `on`.
fn foreign_bridge_and_vnet_on(db: &Database, on: &str, vnet: &str) {
    let l = live(db);
    let root = l.ovs_uuid.clone().unwrap();
    let zone_bridge = l.bridge(on).unwrap().uuid.clone();
    ok(
        db,
        vec![
            json!({"op": "insert", "table": "Interface", "uuid-name": "i1", "row": {"name": "handmade", "type": "internal"}}),
            json!({"op": "insert", "table": "Port", "uuid-name": "p1", "row": {"name": "handmade", "interfaces": ["named-uuid", "i1"]}}),
            json!({"op": "insert", "table": "Bridge", "uuid-name": "b1", "row": {"name": "handmade", "ports": ["named-uuid", "p1"]}}),
            json!({"op": "mutate", "table": "Open_vSwitch", "where": [["_uuid", "==", ["uuid", root]]], "mutations": [["bridges", "insert", ["set", [["named-uuid", "b1"]]]]]}),
            json!({"op": "insert", "table": "Interface", "uuid-name": "i2", "row": {"name": vnet, "external_ids": ["map", [["attached-mac", "52:54:00:10:00:01"]]]}}),
            json!({"op": "insert", "table": "Port", "uuid-name": "p2", "row": {"name": vnet, "tag": 10, "interfaces": ["named-uuid", "i2"]}}),
            json!({"op": "mutate", "table": "Bridge", "where": [["_uuid", "==", ["uuid", zone_bridge]]], "mutations": [["ports", "insert", ["set", [["named-uuid", "p2"]]]]]}),
        ],
    );
}

fn foreign_bridge_and_vnet(db: &Database) {
    foreign_bridge_and_vnet_on(db, "br-intranet", "vnet0");
}

#[test]
fn foreign_rows_survive_apply_and_zone_removal_and_the_bridge_is_released_then_readopted() {
    let db = db();
    apply(&db, TWO);
    foreign_bridge_and_vnet(&db);
    assert!(plan_for(&db, TWO).unwrap().changes.is_empty(), "foreign rows are not a change");
    let only_internet = "[[zone]]\nname = \"internet\"\ndescription = \"Public network\"\n";
    let c = lines(&apply(&db, only_internet));
    assert_eq!(
        c,
        [
            "- port eth1 on br-intranet (zone intranet)",
            "~ bridge br-intranet released by zone intranet: kept for ports zones did not create (vnet0)"
        ]
    );
    let l = live(&db);
    assert!(l.bridge("handmade").is_some());
    assert!(l.ports().any(|(b, p)| p.name == "vnet0" && b.name == "br-intranet" && p.tag == Some(10)));
    assert!(plan_for(&db, only_internet).unwrap().changes.is_empty(), "a released bridge waits quietly");
    // The zone comes back: the bridge is adopted, not refused.
    let c = lines(&apply(&db, TWO));
    assert!(c.iter().any(|l| l == "+ port eth1 on br-intranet (uplink, zone intranet)"), "{c:#?}");
    assert!(plan_for(&db, TWO).unwrap().changes.is_empty());
}

#[test]
fn released_bridge_is_deleted_once_its_foreign_ports_are_gone() {
    let db = db();
    apply(&db, TWO);
    foreign_bridge_and_vnet(&db);
    apply(&db, "");
    let l = live(&db);
    let (b, vnet) =
        l.ports().find(|(_, p)| p.name == "vnet0").map(|(b, p)| (b.uuid.clone(), p.uuid.clone())).unwrap();
    ok(
        &db,
        vec![
            json!({"op": "mutate", "table": "Bridge", "where": [["_uuid", "==", ["uuid", b]]], "mutations": [["ports", "delete", ["set", [["uuid", vnet]]]]]}),
        ],
    );
    assert_eq!(lines(&apply(&db, "")), ["- bridge br-intranet (zone intranet, with its ports)"]);
    let names: Vec<String> = live(&db).bridges.into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["handmade"]);
}

#[test]
fn refuses_to_take_over_foreign_bridges_and_ports() {
    let db = db();
    apply(&db, "[[zone]]\nname = \"handmade\"\nbridge = \"br-x\"\n");
    foreign_bridge_and_vnet_on(&db, "br-x", "vnet9");
    let err = plan_for(&db, "[[zone]]\nname = \"a\"\nbridge = \"handmade\"\n[[zone]]\nname = \"b\"\nuplink = { nic = \"vnet9\" }\n").unwrap_err();
    let e: Vec<String> = err.iter().map(|e| e.to_string()).collect();
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].starts_with("zone a: bridge handmade already exists and was not created by zones"),
        "{e:#?}"
    );
    assert!(e[1].starts_with("zone b: port vnet9 already exists on bridge br-x"), "{e:#?}");
    // A NIC that is a foreign port on a foreign bridge is refused too.
    let err = plan_for(&db, "[[zone]]\nname = \"c\"\nuplink = { nic = \"handmade\" }\n").unwrap_err();
    assert!(
        err[0].to_string().starts_with("zone c: port handmade already exists on bridge handmade"),
        "{err:?}"
    );
}

#[test]
fn a_concurrent_change_fails_the_whole_transaction() {
    let db = db();
    apply(&db, TWO);
    let p = plan_for(&db, &TWO.replace("vlan = 20", "vlan = 21")).unwrap();
    // Someone adds a port to br-intranet after the plan read the database.
    foreign_bridge_and_vnet(&db);
    let before = live(&db);
    let mut all = vec![json!("Open_vSwitch")];
    all.extend(p.ops);
    let r = db.transact(Value::Array(all));
    assert!(r.as_array().unwrap().iter().any(|x| x.get("error").is_some()), "stale plan must fail: {r}");
    assert_eq!(live(&db), before, "nothing of the stale plan was applied");
}

#[test]
fn no_root_row_is_a_conflict() {
    let db = Database::in_memory(DatabaseSchema::parse_str(VSWITCH_SCHEMA).unwrap());
    assert_eq!(plan_for(&db, TWO).unwrap_err(), vec![Conflict::NoRootRow]);
}

#[test]
fn a_nic_moves_from_one_zone_to_another_in_one_transaction() {
    let db = db();
    let a_has_it = "[[zone]]\nname = \"a\"\nuplink = { nic = \"eth1\" }\n[[zone]]\nname = \"b\"\n";
    let b_has_it = "[[zone]]\nname = \"a\"\n[[zone]]\nname = \"b\"\nuplink = { nic = \"eth1\" }\n";
    apply(&db, a_has_it);
    assert_eq!(
        lines(&apply(&db, b_has_it)),
        ["- port eth1 on br-a (zone a)", "+ port eth1 on br-b (uplink, zone b)"]
    );
    let l = live(&db);
    let owners: Vec<&str> =
        l.ports().filter(|(_, p)| p.name == "eth1").map(|(b, _)| b.name.as_str()).collect();
    assert_eq!(owners, ["br-b"]);
    assert!(plan_for(&db, b_has_it).unwrap().changes.is_empty());
}

/// A zone stretched to two peers: VLAN 10 as VNI 100 (VLAN 20 stays local).
const STRETCHED: &str = "[[zone]]\nname = \"corp\"\npeers = [\"198.51.100.2\", \"198.51.100.3\"]\n\
    [[zone.portgroup]]\nname = \"v10\"\nvlan = 10\ndefault = true\nvni = 100\n\
    [[zone.portgroup]]\nname = \"v20\"\nvlan = 20\n";

/// The name zones gives corp's VNI 100 tunnel to 198.51.100.`last`.
fn vx(last: u8) -> String {
    zones::tunnel_port_name("corp", 100, std::net::Ipv4Addr::new(198, 51, 100, last))
}

#[test]
fn tunnels_are_created_updated_in_place_and_removed() {
    let db = db();
    let c = apply(&db, STRETCHED);
    assert_eq!(
        lines(&c)[2..],
        [
            format!("+ port {} on br-corp (tunnel, zone corp)", vx(2)),
            format!("+ port {} on br-corp (tunnel, zone corp)", vx(3))
        ]
    );
    let l = live(&db);
    let (_, p) = l.ports().find(|(_, p)| p.name == vx(3)).unwrap();
    assert_eq!((p.tag, p.vlan_mode.as_deref()), (Some(10), Some("access")));
    let i = &p.interfaces[0];
    assert_eq!(i.kind, "vxlan");
    assert_eq!((i.options["remote_ip"].as_str(), i.options["key"].as_str()), ("198.51.100.3", "100"));
    assert!(plan_for(&db, STRETCHED).unwrap().changes.is_empty(), "second plan is empty");

    // A local_ip: options change in place, the ports stay.
    let pinned = STRETCHED.replace("peers =", "local_ip = \"198.51.100.1\"\npeers =");
    let c = lines(&apply(&db, &pinned));
    assert_eq!(c.len(), 2, "{c:#?}");
    assert!(
        c[0].starts_with(&format!("~ tunnel {} ", vx(2)))
            && c[1].starts_with(&format!("~ tunnel {} ", vx(3))),
        "{c:#?}"
    );
    let l = live(&db);
    let (_, p) = l.ports().find(|(_, p)| p.name == vx(3)).unwrap();
    assert_eq!(p.interfaces[0].options["local_ip"], "198.51.100.1");

    // A peer's new address is another tunnel: its port is replaced, the other peer's is kept.
    let moved = pinned.replace("198.51.100.3", "198.51.100.9");
    assert_eq!(
        lines(&apply(&db, &moved)),
        [
            format!("- port {} on br-corp (zone corp)", vx(3)),
            format!("+ port {} on br-corp (tunnel, zone corp)", vx(9))
        ]
    );
    let l = live(&db);
    let (_, p) = l.ports().find(|(_, p)| p.name == vx(9)).unwrap();
    assert_eq!(p.interfaces[0].options["remote_ip"], "198.51.100.9");

    // One peer fewer: its port goes; no peers at all: no tunnels.
    let one = moved.replace(", \"198.51.100.9\"", "");
    assert_eq!(lines(&apply(&db, &one)), [format!("- port {} on br-corp (zone corp)", vx(9))]);
    let local = one.replace("peers = [\"198.51.100.2\"]\n", "").replace("vni = 100\n", "");
    assert_eq!(lines(&apply(&db, &local)), [format!("- port {} on br-corp (zone corp)", vx(2))]);
}

/// A tunnel port an older zones named `vx-<zone>-<vni>-<n>` is zones' own (its marks say so):
/// the next apply replaces it by the port of today's name, in the one transaction.
#[test]
fn a_tunnel_port_of_an_old_name_is_replaced() {
    let db = db();
    let one = STRETCHED.replace(", \"198.51.100.3\"", "");
    apply(&db, &one);
    let l = live(&db);
    let (_, new) = l.ports().find(|(_, p)| p.name == vx(2)).unwrap();
    let (bridge, new) = (l.bridge("br-corp").unwrap().uuid.clone(), new.uuid.clone());
    let marks = json!(["map", [["rvswitch-zone", "corp"], ["rvswitch-role", "tunnel"]]]);
    let options = json!(["map", [["remote_ip", "198.51.100.2"], ["key", "100"]]]);
    ok(
        &db,
        vec![
            json!({"op": "insert", "table": "Interface", "uuid-name": "i", "row": {"name": "vx-corp-100-0", "type": "vxlan", "options": options, "external_ids": marks}}),
            json!({"op": "insert", "table": "Port", "uuid-name": "p", "row": {"name": "vx-corp-100-0", "tag": 10, "vlan_mode": "access", "interfaces": ["named-uuid", "i"], "external_ids": marks}}),
            json!({"op": "mutate", "table": "Bridge", "where": [["_uuid", "==", ["uuid", bridge]]], "mutations": [["ports", "delete", ["set", [["uuid", new]]]], ["ports", "insert", ["set", [["named-uuid", "p"]]]]]}),
        ],
    );
    assert_eq!(
        lines(&apply(&db, &one)),
        [
            "- port vx-corp-100-0 on br-corp (zone corp)".to_string(),
            format!("+ port {} on br-corp (tunnel, zone corp)", vx(2))
        ]
    );
    assert!(plan_for(&db, &one).unwrap().changes.is_empty());
}

#[test]
fn a_wireguard_zone_gets_its_gateway_port_and_follows_its_settings() {
    let db = db();
    let file = "[[zone]]\nname = \"intranet\"\nuplink = { wireguard = \"/etc/rvswitch/office.conf\" }\n\
                subnet = \"10.1.0.0/24\"\ngateway = \"10.1.0.1\"\n";
    let c = apply(&db, file);
    assert!(
        lines(&c).contains(&"+ port wg-intranet on br-intranet (uplink, zone intranet)".to_string()),
        "{c:?}"
    );
    let l = live(&db);
    let (_, p) = l.ports().find(|(_, p)| p.name == "wg-intranet").expect("gateway port");
    let i = &p.interfaces[0];
    assert_eq!(i.kind, "rvswitch-vpn");
    assert_eq!(i.options["wireguard"], "/etc/rvswitch/office.conf");
    assert_eq!(i.options["subnet"], "10.1.0.0/24");
    assert_eq!(p.tag, Some(0));
    assert!(apply(&db, file).is_empty(), "nothing to do the second time");
    let moved = file.replace("10.1.0.1", "10.1.0.254");
    assert_eq!(lines(&apply(&db, &moved)).len(), 1);
    let l = live(&db);
    let (_, p) = l.ports().find(|(_, p)| p.name == "wg-intranet").unwrap();
    assert_eq!(p.interfaces[0].options["gateway"], "10.1.0.254");
    assert!(apply(&db, &moved).is_empty());
}

/// A VPN zone's internal port sits alone on the host-only VLAN 4095; one made a trunk of all
/// VLANs (as zones apply used to make it, or by hand) is put back; a zone that turns into a
/// NIC zone gets the trunk back.
#[test]
fn a_vpn_zones_internal_port_is_on_the_host_only_vlan() {
    let db = db();
    let vpn = "[[zone]]\nname = \"intranet\"\nuplink = { wireguard = \"/etc/rvswitch/office.conf\" }\n\
               subnet = \"10.1.0.0/24\"\ngateway = \"10.1.0.1\"\n\
               [[zone.portgroup]]\nname = \"v10\"\nvlan = 10\ndefault = true\n";
    apply(&db, vpn);
    let internal = |db: &Database| {
        let l = live(db);
        let (_, p) = l.ports().find(|(_, p)| p.name == "br-intranet").expect("internal port");
        (p.vlan_mode.clone(), p.tag, p.trunks.clone(), p.uuid.clone())
    };
    let (mode, tag, trunks, uuid) = internal(&db);
    assert_eq!((mode.as_deref(), tag, trunks), (Some("access"), Some(switch::HOST_ONLY_VID), vec![]));
    let by_hand = json!({"op": "update", "table": "Port", "where": [["_uuid", "==", ["uuid", uuid]]],
        "row": {"vlan_mode": ["set", []], "tag": ["set", []]}});
    ok(&db, vec![by_hand]);
    assert_eq!(
        lines(&apply(&db, vpn)),
        ["~ port br-intranet (zone intranet): vlan_mode=default tag=none trunks=[] -> vlan_mode=access tag=4095 trunks=[]"]
    );
    assert!(apply(&db, vpn).is_empty());
    let nic = "[[zone]]\nname = \"intranet\"\nuplink = { nic = \"eth1\" }\n\
               [[zone.portgroup]]\nname = \"v10\"\nvlan = 10\ndefault = true\n";
    assert!(lines(&apply(&db, nic)).iter().any(|l| l.contains("-> vlan_mode=default tag=none trunks=[]")));
    assert_eq!(internal(&db).1, None);
}
