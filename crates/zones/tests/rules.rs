//! One test per validation rule of the zones file: each bad file yields the expected
//! `file:line:col: what — fix` line and no model (so nothing can be applied).

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

const OK: &str = r#"
[naming]
bridge = "br-{zone}"

[[zone]]
name = "intranet"
description = "Company LAN (reached over VPN)"
uplink = { nic = "eth1" }
  [[zone.portgroup]]
  name = "vlan-10"
  vlan = 10
  default = true
  [[zone.portgroup]]
  name = "guest"
  vlan = 20

[[zone]]
name = "internet"

[[vm]]
name = "office-desktop"
zone = "intranet"
portgroup = "vlan-10"
mac = "52:54:00:10:00:01"
"#;

#[test]
fn the_contract_example_is_valid() {
    let m = zones::parse(OK, "z.toml").unwrap();
    assert_eq!(m.zones[0].bridge, "br-intranet");
    assert_eq!(m.zones[0].vlans(), [10, 20]);
    assert_eq!(m.zones[1].bridge, "br-internet");
    assert_eq!(m.vms[0].portgroup.as_deref(), Some("vlan-10"));
}

#[test]
fn syntax_error_has_a_position() {
    one("[[zone]]\nname = \"a\"\nbridge = \n", "z.toml:3:");
}

#[test]
fn unknown_key_is_refused() {
    one("[[zone]]\nname = \"a\"\ncolour = \"red\"\n", "z.toml:");
}

#[test]
fn long_bridge_name_is_refused_with_a_suggestion_never_truncated() {
    let e = errs("[[zone]]\nname = \"engineering-lab\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "z.toml:2:8: bridge name from the naming template \"br-engineering-lab\" is 18 bytes"
        ),
        "{}",
        e[0]
    );
    assert!(e[0].contains("bridge = \"br-engineering\""), "{}", e[0]);
    one(
        "[[zone]]\nname = \"a\"\nbridge = \"br-0123456789abc\"\n",
        "z.toml:3:10: bridge \"br-0123456789abc\" is 16 bytes",
    );
}

#[test]
fn bridge_name_must_be_an_interface_name() {
    one("[[zone]]\nname = \"a\"\nbridge = \"br a\"\n", "z.toml:3:10: bridge is not a valid interface name");
    // The kernel would take it, rvswitchd would not (netdev::IfName is both sides' rule): the
    // zones file refuses it first, instead of a plan the daemon then rejects.
    let e = errs("[[zone]]\nname = \"a\"\nbridge = \"bré-a\"\n");
    assert!(e[0].starts_with("z.toml:3:10: bridge is not a valid interface name"), "{}", e[0]);
    assert!(e[0].contains("non-ASCII"), "{}", e[0]);
}

#[test]
fn template_placeholder_must_be_zone() {
    let e = errs("[naming]\nbridge = \"br-{name}\"\n[[zone]]\nname = \"a\"\n");
    assert!(e[0].starts_with("z.toml:2:10: naming template"), "{e:?}");
}

#[test]
fn two_zones_cannot_share_a_bridge() {
    one(
        "[[zone]]\nname = \"a\"\nbridge = \"br-x\"\n[[zone]]\nname = \"b\"\nbridge = \"br-x\"\n",
        "z.toml:6:10: zone b would use bridge br-x, which zone a already uses",
    );
}

#[test]
fn zone_name_charset() {
    one(
        "[[zone]]\nname = \"Intra_net\"\n",
        "z.toml:2:8: zone name \"Intra_net\" may only use a-z, 0-9 and '-'",
    );
}

#[test]
fn zone_names_unique() {
    one(
        "[[zone]]\nname = \"a\"\nbridge = \"br-a1\"\n[[zone]]\nname = \"a\"\n",
        "z.toml:5:8: zone \"a\" is declared twice",
    );
}

#[test]
fn description_fits_an_ifalias() {
    let long = "x".repeat(256);
    one(
        &format!("[[zone]]\nname = \"a\"\ndescription = \"{long}\"\n"),
        "z.toml:3:15: description is 256 bytes",
    );
    one(
        "[[zone]]\nname = \"a\"\ndescription = \"a\\nb\"\n",
        "z.toml:3:15: description contains a control character",
    );
}

const PG: &str = "[[zone]]\nname = \"a\"\n";

#[test]
fn vlan_in_range() {
    one(
        &format!("{PG}[[zone.portgroup]]\nname = \"p\"\nvlan = 4095\ndefault = true\n"),
        "z.toml:5:8: VLAN 4095 is out of range",
    );
    one(
        &format!("{PG}[[zone.portgroup]]\nname = \"p\"\nvlan = 0\ndefault = true\n"),
        "z.toml:5:8: VLAN 0 is out of range",
    );
}

#[test]
fn vlan_unique_in_zone() {
    let t = format!("{PG}[[zone.portgroup]]\nname = \"p\"\nvlan = 10\ndefault = true\n[[zone.portgroup]]\nname = \"q\"\nvlan = 10\n");
    one(&t, "z.toml:9:8: VLAN 10 is already portgroup \"p\" of zone a");
}

#[test]
fn same_vlan_in_two_zones_is_fine() {
    let t = "[[zone]]\nname = \"a\"\n[[zone.portgroup]]\nname = \"p\"\nvlan = 10\ndefault = true\n\
             [[zone]]\nname = \"b\"\n[[zone.portgroup]]\nname = \"p\"\nvlan = 10\ndefault = true\n";
    assert!(zones::parse(t, "z").is_ok());
}

#[test]
fn portgroup_names_unique_in_zone() {
    let t = format!("{PG}[[zone.portgroup]]\nname = \"p\"\nvlan = 10\ndefault = true\n[[zone.portgroup]]\nname = \"p\"\nvlan = 20\n");
    one(&t, "z.toml:8:8: portgroup \"p\" appears twice in zone a");
}

#[test]
fn exactly_one_default_portgroup() {
    one(
        &format!("{PG}[[zone.portgroup]]\nname = \"p\"\nvlan = 10\n"),
        "z.toml:2:8: zone a has portgroups but none is the default",
    );
    let two = format!("{PG}[[zone.portgroup]]\nname = \"p\"\nvlan = 10\ndefault = true\n[[zone.portgroup]]\nname = \"q\"\nvlan = 20\ndefault = true\n");
    one(&two, "z.toml:10:11: zone a has more than one default portgroup");
}

#[test]
fn nic_uplink_in_one_zone_only() {
    let t = "[[zone]]\nname = \"a\"\nuplink = { nic = \"eth1\" }\n[[zone]]\nname = \"b\"\nuplink = { nic = \"eth1\" }\n";
    one(t, "z.toml:6:18: NIC eth1 is already the uplink of zone a");
}

#[test]
fn nic_uplink_name_valid_and_not_a_bridge() {
    one(
        "[[zone]]\nname = \"a\"\nuplink = { nic = \"eth/1\" }\n",
        "z.toml:3:18: uplink NIC name is not a valid interface name",
    );
    let t = "[[zone]]\nname = \"a\"\n[[zone]]\nname = \"b\"\nuplink = { nic = \"br-a\" }\n";
    one(t, "z.toml:5:18: uplink NIC br-a has the name of zone a's bridge");
}

const VMZ: &str = "[[zone]]\nname = \"a\"\n[[zone.portgroup]]\nname = \"p\"\nvlan = 10\ndefault = true\n";

#[test]
fn vm_names_unique() {
    let t = format!("{VMZ}[[vm]]\nname = \"v\"\nzone = \"a\"\nmac = \"52:54:00:00:00:01\"\n[[vm]]\nname = \"v\"\nzone = \"a\"\nmac = \"52:54:00:00:00:02\"\n");
    one(&t, "z.toml:12:8: VM \"v\" is declared twice");
}

#[test]
fn vm_mac_unicast() {
    let t = format!("{VMZ}[[vm]]\nname = \"v\"\nzone = \"a\"\nmac = \"01:00:5e:00:00:01\"\n");
    one(&t, "z.toml:10:7: MAC 01:00:5e:00:00:01 is not a unicast address");
    let t = format!("{VMZ}[[vm]]\nname = \"v\"\nzone = \"a\"\nmac = \"52:54:00:00:01\"\n");
    one(&t, "z.toml:10:7: \"52:54:00:00:01\" is not a MAC address");
}

#[test]
fn vm_mac_unique() {
    let t = format!("{VMZ}[[vm]]\nname = \"v\"\nzone = \"a\"\nmac = \"52:54:00:00:00:01\"\n[[vm]]\nname = \"w\"\nzone = \"a\"\nmac = \"52:54:00:00:00:01\"\n");
    one(&t, "z.toml:14:7: MAC 52:54:00:00:00:01 is already VM v's");
}

#[test]
fn vm_zone_exists() {
    let t = format!("{VMZ}[[vm]]\nname = \"v\"\nzone = \"b\"\nmac = \"52:54:00:00:00:01\"\n");
    one(&t, "z.toml:9:8: VM v names zone \"b\", which is not declared");
}

#[test]
fn vm_portgroup_exists() {
    let t =
        format!("{VMZ}[[vm]]\nname = \"v\"\nzone = \"a\"\nportgroup = \"q\"\nmac = \"52:54:00:00:00:01\"\n");
    one(&t, "z.toml:10:13: zone a has no portgroup \"q\"");
}

#[test]
fn all_errors_come_at_once_in_file_order() {
    let t = "[[zone]]\nname = \"A\"\n[[zone]]\nname = \"very-long-zone-name\"\n[[vm]]\nname = \"v\"\nzone = \"x\"\nmac = \"ff:ff:ff:ff:ff:ff\"\n";
    let e = errs(t);
    assert_eq!(e.len(), 4, "{e:#?}");
    let lines: Vec<&str> = e.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(lines, ["z.toml:2:8:", "z.toml:4:8:", "z.toml:7:8:", "z.toml:8:7:"]);
}

#[test]
fn hostile_input_never_panics() {
    for t in [
        "",
        "\0",
        "[[zone]]",
        "[[zone]]\nname = 5",
        "zone = 3",
        "[[vm]]\nname=\"\"\nzone=\"\"\nmac=\"\"",
        "[naming]\nbridge = \"{zone}{zone}{zone}{zone}{zone}\"\n[[zone]]\nname=\"é\"",
        "\u{feff}[[zone]]\nname = \"a\"",
    ] {
        let _ = zones::parse(t, "z");
    }
    assert!(zones::parse("", "z").is_ok_and(|m| m.zones.is_empty()));
    let big = "#".repeat(zones::validate::MAX_FILE_BYTES + 1);
    assert!(errs(&big)[0].contains("limited to"));
}

// The zone keys for the gateway's IP services (`nat`, `dhcp`) and a VM's fixed `ip`
// (crates/zones/src/services.rs).

fn zone(keys: &str) -> String {
    format!("[[zone]]\nname = \"intranet\"\n{keys}\n{VPN_KEYS}")
}

/// A VPN uplink after the keys under test (so their line numbers stay 3).
const VPN_KEYS: &str =
    "uplink = { wireguard = \"/etc/rvswitch/office.conf\" }\nsubnet = \"198.18.0.0/24\"\ngateway = \"198.18.0.1\"\n";

#[test]
fn services_need_a_vpn_uplink_and_its_subnet() {
    let plain =
        "[[zone]]\nname = \"lan\"\nnat = true\ndhcp = { range = [\"198.18.0.100\", \"198.18.0.199\"] }\n";
    let e = errs(plain);
    assert!(e[0].contains("z.toml:3:7: nat needs a VPN uplink"), "{e:?}");
    assert!(e[1].contains("z.toml:4:18: dhcp needs a VPN uplink"), "{e:?}");
    one(
        &zone("dhcp = { range = [\"198.18.0.100\", \"198.18.1.10\"] }"),
        "z.toml:3:18: DHCP range 198.18.0.100-198.18.1.10 is not inside subnet 198.18.0.0/24",
    );
    let vm = "[[vm]]\nname = \"a\"\nzone = \"intranet\"\nmac = \"52:54:00:10:00:01\"\nip = \"198.19.0.10\"\n";
    one(
        &(zone("") + vm),
        "z.toml:11:6: VM a ip 198.19.0.10 is not inside zone intranet's subnet 198.18.0.0/24",
    );
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
    assert_eq!(
        m.zones[0].services,
        zones::services::Services { nat: false, dhcp: None, dns: vec![], dns6: vec![] }
    );
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

/// `dhcp.dns`: the DNS servers the zone's DHCP server offers (a tun zone's only source of
/// them), reaching the gateway port as `options:dhcp_dns`.
#[test]
fn dhcp_dns_servers_are_checked_and_reach_the_port_options() {
    let tun = "uplink = { tun = \"tun0\" }\nsubnet = \"198.18.0.0/24\"\ngateway = \"198.18.0.1\"\n";
    let text = format!(
        "[[zone]]\nname = \"intranet\"\ndhcp = {{ range = [\"198.18.0.100\", \"198.18.0.199\"], dns = [\"198.18.60.53\", \"198.19.0.53\"] }}\n{tun}"
    );
    let m = zones::parse(&text, "z.toml").unwrap();
    let want = [Ipv4Addr::new(198, 18, 60, 53), Ipv4Addr::new(198, 19, 0, 53)];
    assert_eq!(m.zones[0].services.dns, want);
    let d = zones::desired::desired(&m);
    let opts = &d[0].uplink.as_ref().unwrap().options;
    assert_eq!(opts.get("dhcp_dns").map(String::as_str), Some("198.18.60.53,198.19.0.53"));
    assert_eq!(opts.get("tun").map(String::as_str), Some("tun0"));
    let no_dns =
        zones::parse(&zone("dhcp = { range = [\"198.18.0.100\", \"198.18.0.199\"] }"), "z.toml").unwrap();
    assert!(!zones::desired::desired(&no_dns)[0].uplink.as_ref().unwrap().options.contains_key("dhcp_dns"));

    let dhcp = |dns: &str| {
        zone(&format!("dhcp = {{ range = [\"198.18.0.100\", \"198.18.0.199\"], dns = [{dns}] }}"))
    };
    one(&dhcp("\"ns1\""), "z.toml:3:59: DHCP dns: \"ns1\" is not an IPv4 or IPv6 address");
    one(
        &dhcp("\"fd00::53\""),
        "z.toml:3:59: DHCP dns fd00::53 is IPv6, but zone intranet has no subnet6 whose router advertisements",
    );
    one(&dhcp("\"255.255.255.255\""), "z.toml:3:59: DHCP dns 255.255.255.255 is not a unicast address");
    one(&dhcp("\"224.0.0.251\""), "z.toml:3:59: DHCP dns 224.0.0.251 is not a unicast address");
    one(&dhcp("\"127.0.0.53\""), "z.toml:3:59: DHCP dns 127.0.0.53 is a loopback address");
    one(&dhcp("\"198.18.60.53\", \"198.18.60.53\""), "z.toml:3:75: DHCP dns 198.18.60.53 is listed twice");
    one(
        &dhcp("\"198.18.0.1\""),
        "z.toml:3:59: DHCP dns 198.18.0.1 is the zone's gateway, which answers no DNS",
    );
    let nine: Vec<String> = (1..=9).map(|i| format!("\"198.18.60.{i}\"")).collect();
    one(&dhcp(&nine.join(", ")), "z.toml:3:58: dhcp dns lists 9 servers; at most 8");
    one(
        &zone("dhcp = { range = [\"198.18.0.100\", \"198.18.0.199\"], dns = \"198.18.60.53\" }"),
        "z.toml:3:",
    );
}

/// IPv6 servers in `dhcp.dns` (the gateway's RAs name them, RFC 8106 RDNSS): same list, same
/// limit, same rules as IPv4 where they apply, plus: not link-local, not the zone's `gateway6`,
/// and only in a zone with `subnet6`.
#[test]
fn dhcp_dns_takes_ipv6_servers_for_the_router_advertisements() {
    let v6 = "subnet6 = \"2001:db8:50::/64\"\ngateway6 = \"2001:db8:50::1\"\n";
    let dhcp = |dns: &str| {
        format!(
            "[[zone]]\nname = \"intranet\"\ndhcp = {{ range = [\"198.18.0.100\", \"198.18.0.199\"], dns = [{dns}] }}\n{v6}{VPN_KEYS}"
        )
    };
    let m = zones::parse(&dhcp("\"2001:db8:60::53\", \"198.18.60.53\", \"fd00::53\""), "z.toml").unwrap();
    let s = &m.zones[0].services;
    assert_eq!(s.dns, [Ipv4Addr::new(198, 18, 60, 53)]);
    assert_eq!(
        s.dns6,
        ["2001:db8:60::53".parse::<std::net::Ipv6Addr>().unwrap(), "fd00::53".parse().unwrap()]
    );
    let d = zones::desired::desired(&m);
    let opts = &d[0].uplink.as_ref().unwrap().options;
    assert_eq!(opts["dhcp_dns"], "198.18.60.53,2001:db8:60::53,fd00::53", "IPv4 first, then IPv6");
    let only6 = zones::parse(&dhcp("\"2001:db8:60::53\""), "z.toml").unwrap();
    assert!(
        only6.zones[0].services.dns.is_empty(),
        "IPv6 only: no IPv4 DNS by DHCP (the list replaces the tunnel's whole)"
    );
    assert_eq!(
        zones::desired::desired(&only6)[0].uplink.as_ref().unwrap().options["dhcp_dns"],
        "2001:db8:60::53"
    );

    one(&dhcp("\"fe80::53\""), "z.toml:3:59: DHCP dns fe80::53 is link-local");
    one(&dhcp("\"::1\""), "z.toml:3:59: DHCP dns ::1 is a loopback address");
    one(&dhcp("\"ff02::fb\""), "z.toml:3:59: DHCP dns ff02::fb is not a unicast address");
    one(&dhcp("\"::\""), "z.toml:3:59: DHCP dns :: is not a unicast address");
    one(
        &dhcp("\"::ffff:198.18.60.53\""),
        "z.toml:3:59: DHCP dns ::ffff:198.18.60.53 is an IPv4-mapped address",
    );
    one(&dhcp("\"fd00::53\", \"fd00:0::53\""), "z.toml:3:71: DHCP dns fd00::53 is listed twice");
    one(
        &dhcp("\"2001:db8:50:0::1\""),
        "z.toml:3:59: DHCP dns 2001:db8:50::1 is the zone's gateway, which answers no DNS",
    );
    one(&dhcp("\"198.18.0.1\""), "z.toml:3:59: DHCP dns 198.18.0.1 is the zone's gateway");
    one(&dhcp("\"2001:db8::zz\""), "z.toml:3:59: DHCP dns: \"2001:db8::zz\" is not an IPv4 or IPv6 address");
    let nine: Vec<String> = (1..=9)
        .map(|i| format!("\"{}\"", if i % 2 == 0 { format!("fd00::{i}") } else { format!("198.18.60.{i}") }))
        .collect();
    one(&dhcp(&nine.join(", ")), "z.toml:3:58: dhcp dns lists 9 servers; at most 8");
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
    one(&same, "z.toml:18:6: address 198.18.0.10 is already VM a's in zone intranet");
    let other_zone = two_zones.clone()
        + &vm("a", "intranet", "52:54:00:10:00:01", "198.18.0.10")
        + &vm("b", "internet", "52:54:00:10:00:02", "198.18.0.10");
    assert!(zones::parse(&other_zone, "z.toml").is_ok(), "zones are separate networks");
    one(
        &(two_zones + &vm("a", "intranet", "52:54:00:10:00:01", "vm-a")),
        "z.toml:13:6: VM ip: \"vm-a\" is not an IPv4",
    );
}

const VPN: &str = r#"
[[zone]]
name = "intranet"
uplink = { wireguard = "/etc/rvswitch/office.conf" }
subnet = "10.1.0.0/24"
gateway = "10.1.0.1"
  [[zone.portgroup]]
  name = "vlan-10"
  vlan = 10
  default = true
"#;

#[test]
fn a_wireguard_uplink_becomes_a_gateway_port() {
    let m = zones::parse(VPN, "z.toml").unwrap();
    let u = m.zones[0].uplink.as_ref().unwrap();
    assert_eq!(u.nic, "wg-intranet");
    let v = u.vpn.as_ref().unwrap();
    assert_eq!(
        (&v.tunnel, v.subnet.as_str(), v.gateway.as_str()),
        (&zones::VpnTunnel::WireGuard("/etc/rvswitch/office.conf".into()), "10.1.0.0/24", "10.1.0.1")
    );
    let d = zones::desired::desired(&m);
    let du = d[0].uplink.as_ref().unwrap();
    assert_eq!(du.kind, "rvswitch-vpn");
    assert_eq!(du.vlans.to_string(), "vlan_mode=access tag=10 trunks=[]", "on the default portgroup's VLAN");
    assert_eq!(du.options["gateway"], "10.1.0.1");
}

#[test]
fn wireguard_uplink_rules() {
    let both = VPN.replace("{ wireguard =", "{ nic = \"eth1\", wireguard =");
    one(&both, "z.toml:4:10: an uplink is one NIC or one VPN tunnel (wireguard or tun), not several");
    // The zone's subnet and gateway follow the same rules whatever carries the tunnel.
    for text in [VPN.to_string(), tun_zone()] {
        one(&text.replace("subnet = \"10.1.0.0/24\"\n", ""), "z.toml:4:");
        let outside = text.replace("gateway = \"10.1.0.1\"", "gateway = \"10.2.0.1\"");
        one(&outside, "z.toml:6:11: gateway 10.2.0.1 is not in subnet 10.1.0.0/24");
    }
    one(
        &VPN.replace("\"/etc/rvswitch/office.conf\"", "\"office.conf\""),
        "z.toml:4:24: wireguard file \"office.conf\" is not an absolute path",
    );
    one(&VPN.replace("10.1.0.0/24", "10.1.0.0/33"), "z.toml:5:10: subnet: prefix length 33");
    let nic_with_subnet = VPN.replace("{ wireguard = \"/etc/rvswitch/office.conf\" }", "{ nic = \"eth1\" }");
    one(&nic_with_subnet, "z.toml:5:10: subnet and gateway belong to a VPN uplink, not a NIC");
    let long = VPN.replace("name = \"intranet\"", "name = \"a-very-long-zone\"\nbridge = \"br-x\"");
    one(&long, "z.toml:3:8: the gateway port wg-a-very-long-zone");
}

/// [`VPN`] with `uplink = { tun = "tun0" }`.
fn tun_zone() -> String {
    VPN.replace("{ wireguard = \"/etc/rvswitch/office.conf\" }", "{ tun = \"tun0\" }")
}

/// `uplink = { tun = "tun0" }`: the same gateway port, its tunnel a VPN client's device.
#[test]
fn a_tun_uplink_becomes_a_gateway_port_on_that_device() {
    let tun = tun_zone();
    let m = zones::parse(&tun, "z.toml").unwrap();
    let u = m.zones[0].uplink.as_ref().unwrap();
    assert_eq!(u.nic, "wg-intranet");
    assert_eq!(u.vpn.as_ref().unwrap().tunnel, zones::VpnTunnel::Tun("tun0".into()));
    let d = zones::desired::desired(&m);
    let du = d[0].uplink.as_ref().unwrap();
    assert_eq!(du.kind, "rvswitch-vpn");
    assert_eq!(du.options["tun"], "tun0");
    assert!(!du.options.contains_key("wireguard"));
    assert_eq!(du.options["subnet"], "10.1.0.0/24");
}

#[test]
fn tun_uplink_rules() {
    let tun = tun_zone();
    let with_wg = VPN.replace("{ wireguard =", "{ tun = \"tun0\", wireguard =");
    one(&with_wg, "z.toml:4:10: an uplink is one NIC or one VPN tunnel (wireguard or tun), not several");
    one(&tun.replace("\"tun0\"", "\"tun/0\""), "z.toml:4:18: tun device \"tun/0\"");
    one(&tun.replace("\"tun0\"", "\"a-much-too-long-name\""), "z.toml:4:18: tun device");
    one(&tun.replace("subnet = \"10.1.0.0/24\"\n", ""), "z.toml:4:18: a VPN uplink needs the zone's subnet");
    one(
        &tun.replace("{ tun = \"tun0\" }", "{ }"),
        "z.toml:4:10: the uplink names none of nic, wireguard and tun",
    );
    let stretched = tun
        .replace("gateway = \"10.1.0.1\"", "gateway = \"10.1.0.1\"\npeers = [\"198.51.100.2\"]")
        .replace("default = true", "default = true\n  vni = 100");
    assert!(
        errs(&stretched).iter().any(|d| d.contains("has a VPN uplink and peers")),
        "{:?}",
        errs(&stretched)
    );
}

#[test]
fn vm_ips_are_addresses_or_prefixes() {
    let vm = "[[vm]]\nname = \"v\"\nzone = \"a\"\nmac = \"52:54:00:00:00:01\"\n";
    let t =
        format!("{VMZ}{vm}ips = [\"198.18.0.5\", \"198.18.0.300\", \"2001:db8::/129\", \"198.18.0.5\"]\n");
    let e = errs(&t);
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[0].starts_with("z.toml:11:22: VM v: \"198.18.0.300\" is not an IPv4 or IPv6 address"),
        "{}",
        e[0]
    );
    assert!(e[1].starts_with("z.toml:11:38: VM v: prefix length \"/129\" is not 0 to 128"), "{}", e[1]);
    assert!(e[2].starts_with("z.toml:11:56: 198.18.0.5/32 is listed twice"), "{}", e[2]);
    let good = format!("{VMZ}{vm}ips = [\"198.18.0.5\", \"2001:db8::5/128\"]\n");
    let m = zones::parse(&good, "z.toml").expect("valid ips");
    let ips: Vec<String> = m.vms[0].ips.iter().map(|n| n.to_string()).collect();
    assert_eq!(ips, ["198.18.0.5/32", "2001:db8::5/128"]);
}

#[test]
fn a_vpn_zone_cannot_be_stretched_over_vxlan() {
    let stretched = VPN
        .replace("gateway = \"10.1.0.1\"", "gateway = \"10.1.0.1\"\npeers = [\"198.51.100.2\"]")
        .replace("default = true", "default = true\n  vni = 100");
    let e = errs(&stretched);
    assert!(
        e.iter().any(|d| d.starts_with("z.toml:7:10: zone intranet has a VPN uplink and peers")),
        "{e:#?}"
    );
    let local = VPN.replace("default = true", "default = true\n  vni = 100");
    assert!(zones::parse(&local, "z.toml").is_ok(), "a vni without peers stays local");
}
