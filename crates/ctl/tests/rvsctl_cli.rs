//! rvsctl against a stand-in daemon on a unix socket: text and JSON rendering, errors, exit codes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::Command;

use ctl::protocol::{
    BridgeStatus, CounterSnapshot, FdbEntry, FdbReply, MirrorStatus, PortStatus, Reply, Request, ShowReply,
    VpnStatus,
};

/// A zone's VPN gateway port, tunnel up.
fn vpn_port() -> PortStatus {
    PortStatus {
        name: "vpn-office".into(),
        kind: "rvswitch-vpn".into(),
        vlan_mode: "access".into(),
        tag: Some(10),
        trunks: vec![],
        link_state: "up".into(),
        ifindex: None,
        error: None,
        statistics: CounterSnapshot::default(),
        vpn: Some(VpnStatus {
            state: "up".into(),
            endpoint: "198.18.60.1:51820".into(),
            last_handshake_secs: Some(12),
            ..Default::default()
        }),
    }
}

fn sample_show() -> ShowReply {
    let mut show = one_port_show();
    show.bridges[0].ports.push(vpn_port());
    let mut on_tun = vpn_port();
    on_tun.name = "vpn-tun".into();
    on_tun.vpn = Some(VpnStatus {
        transport: "tun".into(),
        state: "up".into(),
        endpoint: "tun7".into(),
        mtu: Some(1300),
        ..Default::default()
    });
    show.bridges[0].ports.push(on_tun);
    show.bridges[0].mirrors.push(MirrorStatus {
        name: "span0".into(),
        select_src_port: vec!["vnet0".into()],
        select_vlan: vec![10],
        output_port: "vpn-office".into(),
        tx_packets: 4,
        tx_bytes: 392,
        ..Default::default()
    });
    show
}

fn one_port_show() -> ShowReply {
    ShowReply {
        config_file: Some("/etc/rvswitch/rvswitch.toml".into()),
        bridges: vec![BridgeStatus {
            name: "br-intranet".into(),
            mac_aging_time: 300,
            mac_table_size: 8192,
            ports: vec![PortStatus {
                name: "vnet0".into(),
                kind: "system".into(),
                vlan_mode: "access".into(),
                tag: Some(10),
                trunks: vec![],
                link_state: "down".into(),
                ifindex: None,
                error: Some("could not open network device vnet0 (No such device)".into()),
                statistics: CounterSnapshot {
                    rx_packets: 7,
                    rx_bytes: 700,
                    tx_packets: 3,
                    tx_bytes: 300,
                    fast_rx_packets: 0,
                    drops: BTreeMap::from([("runt".to_string(), 2)]),
                },
                vpn: None,
            }],
            mirrors: vec![],
        }],
    }
}

/// Serves `n` requests with canned answers on a fresh socket; returns its path.
fn fake_daemon(n: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rvsctl-test-{}-{n}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ctl.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let mut stream = stream.unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let reply = match serde_json::from_str::<Request>(&line) {
                Ok(Request::Show) => Reply::success(&sample_show()),
                Ok(Request::FdbShow { bridge }) if bridge == "br-intranet" => Reply::success(&FdbReply {
                    bridge,
                    entries: vec![FdbEntry {
                        port: "vnet0".into(),
                        vlan: 10,
                        mac: "52:54:00:12:34:56".into(),
                        age: 4,
                    }],
                }),
                Ok(Request::FdbShow { bridge }) => Reply::failure(format!("no bridge named {bridge}")),
                Ok(Request::Reload) => Reply::failure("t.toml:3:7: tag 5000 out of range"),
                Ok(Request::Trace { bridge, in_port, frame }) => fake_trace(&bridge, &in_port, &frame),
                Ok(Request::Events { .. }) => Reply::failure("no events here"),
                Ok(Request::SecurityShow { .. }) => fake_security(),
                Err(e) => Reply::failure(e.to_string()),
            };
            let mut out = serde_json::to_vec(&reply).unwrap();
            out.push(b'\n');
            stream.write_all(&out).unwrap();
        }
    });
    path
}

/// A real pipeline behind the fake daemon: vnet0 and vnet1 on VLAN 10, trunk0 carrying all.
fn fake_trace(bridge: &str, in_port: &str, hex: &str) -> Reply {
    use switch::{Bridge, BridgeSettings, PortSpec, PortVlan};
    let port = |name: &str, vlan| PortSpec::new(name, vlan);
    let br = Bridge::new(
        BridgeSettings::default(),
        vec![
            port("vnet0", PortVlan::access(10)),
            port("vnet1", PortVlan::access(10)),
            port("trunk0", PortVlan::new(None, None, &[]).unwrap()),
        ],
    );
    let Some(slot) = br.ports().iter().position(|p| p.name == in_port) else {
        return Reply::failure(format!("bridge {bridge} has no port named {in_port}"));
    };
    match ctl::flow::parse_hex(hex) {
        Ok(frame) => Reply::success(&br.trace(slot, &frame, 0)),
        Err(e) => Reply::failure(e.to_string()),
    }
}

/// A real pipeline's security report: VM port vnet0 with an allowed address from other_config
/// and one from the zones file, uplink trunk0.
fn fake_security() -> Reply {
    use ctl::protocol::{BridgeSecurity, SecurityReply};
    use switch::{parse_allowed_ips, Bridge, BridgeSettings, PortSecurity, PortSpec, PortVlan};
    let mut vm = PortSecurity::vm("52:54:00:00:00:01".parse().unwrap());
    vm.ips = parse_allowed_ips("198.18.0.5,198.18.0.6").unwrap();
    vm.from_zones = vec![vm.ips[1]];
    let ports = vec![
        PortSpec { security: vm, ..PortSpec::new("vnet0", PortVlan::access(10)) },
        PortSpec::new("trunk0", PortVlan::new(None, None, &[]).unwrap()),
    ];
    let br = Bridge::new(BridgeSettings::default(), ports);
    let bridges = vec![BridgeSecurity { bridge: "br-intranet".into(), ports: br.security_report(0) }];
    Reply::success(&SecurityReply { bridges })
}

fn rvsctl(socket: &PathBuf, args: &[&str]) -> (i32, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_rvsctl")).arg("--socket").arg(socket).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn show_text_and_json() {
    let sock = fake_daemon(2);
    let (code, text, _) = rvsctl(&sock, &["show"]);
    assert_eq!(code, 0);
    for want in [
        "Bridge br-intranet",
        "Port vnet0",
        "vlan_mode: access  tag: 10",
        "link: down",
        "No such device",
        "drop reasons: runt=2",
        "vpn: up  tun device: tun7  mtu: 1300\n",
        "    Mirror span0\n        select_src_port: vnet0\n        select_vlan: 10\n",
        "        output_port: vpn-office\n        tx: 4 pkts 392 bytes\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let (code, json, _) = rvsctl(&sock, &["--json", "show"]);
    assert_eq!(code, 0);
    let parsed: ShowReply = serde_json::from_str(&json).expect("--json prints the reply type");
    assert_eq!(parsed, sample_show());
}

#[test]
fn fdb_and_errors() {
    let sock = fake_daemon(3);
    let (code, text, _) = rvsctl(&sock, &["fdb", "show", "br-intranet"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("vnet0") && text.contains("52:54:00:12:34:56") && text.contains("  10  "),
        "{text}"
    );
    let (code, _, err) = rvsctl(&sock, &["fdb", "show", "br-nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no bridge named br-nope"), "{err}");
    let (code, _, err) = rvsctl(&sock, &["reload"]);
    assert_eq!(code, 1);
    assert!(err.contains("t.toml:3:7"), "the daemon's file:line reaches the user: {err}");
}

#[test]
fn no_daemon_and_bad_arguments() {
    let missing = PathBuf::from("/nonexistent/rvswitch/ctl.sock");
    let (code, _, err) = rvsctl(&missing, &["show"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect to rvswitchd"), "{err}");
    let (code, _, err) = rvsctl(&missing, &["frobnicate"]);
    assert_eq!(code, 2, "usage errors exit 2: {err}");
}

#[test]
fn trace_text_json_and_bad_flows() {
    let sock = fake_daemon(3);
    let flow = "in_port=vnet0,dl_src=52:54:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=198.18.0.1";
    let (code, text, err) = rvsctl(&sock, &["trace", "br-intranet", flow]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "bridge(\"br-intranet\")",
        "vlan_mode=access tag=10",
        "would learn 52:54:00:00:00:01 on vnet0 in VLAN 10",
        "Verdict: forward to vnet1, trunk0 (flood in VLAN 10)",
        "Datapath actions: vnet1,push_vlan(vid=10,pcp=0),trunk0",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // A hex frame tagged VLAN 20 (TPID 8100, TCI 0014) on the access port: a cross-VLAN attempt.
    let hex = format!("{}{}8100001408000000", "ffffffffffff", "525400000001");
    let (code, json, err) = rvsctl(&sock, &["--json", "trace", "br-intranet", "in_port=vnet0", &hex]);
    assert_eq!(code, 0, "{err}");
    let t: ctl::protocol::Trace = serde_json::from_str(&json).expect("--json prints the trace");
    assert_eq!(t.summary(), "drop: vlan-not-allowed");
    let (code, _, err) = rvsctl(&sock, &["trace", "br-intranet", "in_port=nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no port named nope"), "{err}");
    let (code, _, err) = rvsctl(&sock, &["trace", "br-intranet", "dl_vlan=9999,in_port=vnet0"]);
    assert_eq!(code, 1, "refused before anything is sent");
    assert!(err.contains("dl_vlan"), "{err}");
}

#[test]
fn topology_dot_json_and_svg() {
    let sock = fake_daemon(3);
    let nodb = ["--db", "unix:/nonexistent/rvswitch/db.sock"];
    let (code, dot, err) = rvsctl(&sock, &[&nodb[..], &["topology", "--format", "dot"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no zones or VM names"), "a missing database is said, not fatal: {err}");
    assert!(
        dot.starts_with("graph rvswitch {") && dot.contains("vnet0 (system)\\naccess tag 10\\nlink down"),
        "{dot}"
    );
    let (code, json, _) = rvsctl(&sock, &[&nodb[..], &["topology", "--format", "json"]].concat());
    assert_eq!(code, 0);
    let t: ctl::topology::Topology = serde_json::from_str(&json).expect("json topology");
    assert_eq!(
        (t.bridges[0].name.as_str(), &t.bridges[0].ports[0].status),
        ("br-intranet", &sample_show().bridges[0].ports[0])
    );
    if !testbed::require_program("topology --format svg", "dot", "-V", "graphviz")
        || !testbed::require_program("topology --format svg", "xmllint", "--version", "libxml2-utils")
    {
        return;
    }
    // The DOT itself parses with Graphviz, and the SVG it makes is well-formed XML naming the port.
    let (code, svg, err) = rvsctl(&sock, &[&nodb[..], &["topology", "--format", "svg"]].concat());
    assert_eq!(code, 0, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.svg");
    std::fs::write(&file, &svg).unwrap();
    let lint = Command::new("xmllint").arg("--noout").arg(&file).output().unwrap();
    assert!(lint.status.success(), "{}", String::from_utf8_lossy(&lint.stderr));
    assert!(svg.contains("<svg") && svg.contains("vnet0 (system)"), "{svg}");
    // The VPN gateway is drawn as the zone's uplink, with its peer and tunnel state (Graphviz
    // writes '-' as a character reference).
    let text = svg.replace("&#45;", "-");
    for want in ["VPN uplink vpn-office", "WireGuard to 198.18.60.1:51820", "vpn up, handshake 12 s ago"] {
        assert!(text.contains(want), "missing {want:?} in:\n{svg}");
    }
}

#[test]
fn security_show_lists_modes_and_bindings() {
    let sock = fake_daemon(1);
    let (code, text, err) = rvsctl(&sock, &["security", "show", "br-intranet"]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "Bridge br-intranet",
        "Port vnet0  mode on  mac 52:54:00:00:00:01  mac-limit 1",
        "198.18.0.5/32            static",
        "198.18.0.6/32            zones",
        "Port trunk0  mode off  mac -  mac-limit none  trusted",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}
