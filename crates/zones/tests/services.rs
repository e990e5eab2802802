//! The zone keys for the gateway's IP services (`nat`, `dhcp`) and a VM's fixed `ip`: one
//! test per rule, each bad file giving one `file:line:col: what — fix` line and no model.

use std::net::Ipv4Addr;

fn errs(text: &str) -> Vec<String> {
    match zones::parse(text, "z.toml") {
        Ok(m) => panic!("accepted a bad file: {m:?}"),
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

fn one(text: &str, start: &str) {
    let e = errs(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with(start), "{}\nexpected start: {start}", e[0]);
    assert!(e[0].contains(" — "), "no fix in {}", e[0]);
}

fn zone(keys: &str) -> String {
    format!("[[zone]]\nname = \"intranet\"\n{keys}\n")
}

#[test]
fn nat_and_dhcp_reach_the_model() {
    let text = zone("nat = true\ndhcp = { range = [\"198.18.0.100\", \"198.18.0.199\"] }")
        + "[[vm]]\nname = \"a\"\nzone = \"intranet\"\nmac = \"52:54:00:10:00:01\"\nip = \"198.18.0.10\"\n"
        + "[[vm]]\nname = \"b\"\nzone = \"intranet\"\nmac = \"52:54:00:10:00:02\"\n";
    let m = zones::parse(&text, "z.toml").unwrap();
    let s = &m.zones[0].services;
    assert!(s.nat);
    let r = s.dhcp.unwrap();
    assert_eq!((r.first, r.last), (Ipv4Addr::new(198, 18, 0, 100), Ipv4Addr::new(198, 18, 0, 199)));
    assert_eq!(m.vms[0].ip, Some(Ipv4Addr::new(198, 18, 0, 10)));
    assert_eq!(m.vms[1].ip, None);
}

#[test]
fn defaults_are_routed_without_dhcp() {
    let m = zones::parse(&zone("nat = false"), "z.toml").unwrap();
    assert_eq!(m.zones[0].services, zones::services::Services { nat: false, dhcp: None });
    let m = zones::parse(&zone(""), "z.toml").unwrap();
    assert_eq!(m.zones[0].services, zones::services::Services::default());
}

#[test]
fn range_needs_two_ipv4_addresses_in_order() {
    one(&zone("dhcp = { range = [\"198.18.0.100\"] }"), "z.toml:3:18: DHCP range has 1 addresses, not 2");
    one(
        &zone("dhcp = { range = [\"198.18.0.100\", \"fd00::9\"] }"),
        "z.toml:3:35: DHCP range: \"fd00::9\" is not an IPv4",
    );
    one(
        &zone("dhcp = { range = [\"198.18.0.9\", \"198.18.0.1\"] }"),
        "z.toml:3:18: DHCP range: range 198.18.0.9-198.18.0.1 is reversed",
    );
    one(
        &zone("dhcp = { range = [\"198.0.0.1\", \"198.2.0.0\"] }"),
        "z.toml:3:18: DHCP range: range 198.0.0.1-198.2.0.0 holds more than 65536",
    );
}

#[test]
fn shape_errors_are_refused() {
    one(&zone("nat = \"yes\""), "z.toml:3:");
    one(&zone("dhcp = { range = [\"198.18.0.1\", \"198.18.0.2\"], lease = 5 }"), "z.toml:3:");
    one(&zone("dhcp = true"), "z.toml:3:");
}

#[test]
fn vm_addresses_are_ipv4_and_unique_per_zone() {
    let vm = |name: &str, zone: &str, mac: &str, ip: &str| {
        format!("[[vm]]\nname = \"{name}\"\nzone = \"{zone}\"\nmac = \"{mac}\"\nip = \"{ip}\"\n")
    };
    let two_zones = zone("") + "[[zone]]\nname = \"internet\"\n";
    let same = two_zones.clone()
        + &vm("a", "intranet", "52:54:00:10:00:01", "198.18.0.10")
        + &vm("b", "intranet", "52:54:00:10:00:02", "198.18.0.10");
    one(&same, "z.toml:15:6: address 198.18.0.10 is already VM a's in zone intranet");
    let other_zone = two_zones.clone()
        + &vm("a", "intranet", "52:54:00:10:00:01", "198.18.0.10")
        + &vm("b", "internet", "52:54:00:10:00:02", "198.18.0.10");
    assert!(zones::parse(&other_zone, "z.toml").is_ok(), "zones are separate networks");
    one(
        &(two_zones + &vm("a", "intranet", "52:54:00:10:00:01", "vm-a")),
        "z.toml:10:6: VM ip: \"vm-a\" is not an IPv4",
    );
}
