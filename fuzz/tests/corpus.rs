//! Replays the committed seed corpus and every past crash through each target, so a plain
//! `cargo test` (no AFL) keeps them passing.

use std::path::Path;

fn seed(target: &str, name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target).join(name)).expect("seed")
}

fn replay(target: &str) -> usize {
    let run = rvswitch_fuzz::target(target).expect("known target");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        for file in rvswitch_fuzz::inputs(&root.join(dir).join(target)) {
            let data = std::fs::read(&file).expect("read input");
            println!("{}", file.display());
            run(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn ovsdb_corpus() {
    assert!(replay("ovsdb") > 10, "the ovs-vsctl seeds are missing");
}

#[test]
fn config_corpus() {
    assert!(replay("config") >= 3, "the config seeds are missing");
}

#[test]
fn frames_corpus() {
    assert!(replay("frames") >= 4, "the frame seeds are missing");
}

/// The seeds reach the database: real ovs-vsctl traffic commits, and the hand-written stream
/// gets past parsing into monitors, failures and successes alike.
#[test]
fn ovsdb_seeds_do_real_work() {
    // ovs-vsctl add-br against the root row, as the sample recorded it.
    let add_br = rvswitch_fuzz::ovsdb_rpc::run_stats(&seed("ovsdb", "msg-004-transact.json"));
    assert_eq!((add_br.transactions, add_br.failed), (1, 0), "{add_br:?}");
    let s = rvswitch_fuzz::ovsdb_rpc::run_stats(&seed("ovsdb", "extra-lifecycle.json"));
    assert_eq!(s.messages, 11, "{s:?}");
    assert_eq!(s.monitors, 2, "{s:?}");
    assert!(s.failed >= 2 && s.transactions - s.failed >= 2, "{s:?}");
}

#[test]
fn zones_corpus() {
    assert!(replay("zones") >= 3, "the zones seeds are missing");
}

/// The zones target's end-to-end half (plan, apply, re-plan) only runs on accepted files.
#[test]
fn zones_seeds_include_accepted_files() {
    let text = |name| String::from_utf8(seed("zones", name)).expect("UTF-8 seed");
    for name in ["zones.toml", "vm-and-uplink.toml", "vpn-tun.toml", "vpn6-dns.toml"] {
        assert!(zones::parse(&text(name), name).is_ok(), "{name} is refused");
    }
    assert!(zones::parse(&text("errors.toml"), "errors.toml").map_err(|d| d.len()).unwrap_err() >= 3);
}

#[test]
fn ovsdb_ops_corpus() {
    assert!(replay("ovsdb_ops") >= 4, "the ovsdb_ops seeds are missing");
}

/// Generated operations get past parsing: over the seeds, some transactions commit and some
/// fail (a generator whose every transaction fails would fuzz only the parser).
#[test]
fn ovsdb_ops_seeds_commit_and_fail() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/ovsdb_ops");
    let mut total = rvswitch_fuzz::ovsdb_rpc::Stats::default();
    for file in rvswitch_fuzz::inputs(&root) {
        let s = rvswitch_fuzz::ovsdb_ops::run_stats(&std::fs::read(file).expect("seed"));
        total.transactions += s.transactions;
        total.failed += s.failed;
    }
    println!("{total:?}");
    assert!(total.failed > 0 && total.transactions - total.failed > 0, "{total:?}");
}

#[test]
fn wgquick_corpus() {
    assert!(replay("wgquick") >= 3, "the wgquick seeds are missing");
}

/// The wg-quick seeds include files the parser accepts, so the accepted-file oracle runs.
#[test]
fn wgquick_seeds_include_accepted_files() {
    for name in ["office.conf", "minimal.conf"] {
        let text = String::from_utf8(seed("wgquick", name)).expect("UTF-8 seed");
        assert!(gateway::wgconf::parse(&text, name).is_ok(), "{name} is refused");
    }
}

#[test]
fn l3_corpus() {
    assert!(replay("l3") >= 10, "the l3 seeds are missing");
}

/// The l3 seeds get past parsing: the NAT translates the SYN, the clamp lowers its MSS, the
/// DHCP server offers an address to the DISCOVER (all after the control byte).
#[test]
fn l3_seeds_do_real_work() {
    let pkt = |name| seed("l3", name)[1..].to_vec();
    let mut nat = l3::nat::Nat::new(l3::nat::NatConfig::new("198.19.0.2".parse().unwrap()));
    assert_eq!(nat.outbound(&mut pkt("nat-tcp-syn.bin"), 0), Ok(()));
    assert!(matches!(l3::mss::clamp(&mut pkt("clamp-tcp-syn.bin"), 832), l3::mss::Clamp::Lowered { .. }));
    let ip = |d| std::net::Ipv4Addr::new(198, 18, 0, d);
    let cfg = l3::dhcp::DhcpConfig {
        server: ip(1),
        prefix_len: 24,
        range: (ip(100), ip(103)),
        dns: vec![],
        mtu: None,
        lease_secs: 600,
        statics: vec![],
    };
    let mut dhcp = l3::dhcp::DhcpServer::new(cfg).unwrap();
    assert!(dhcp.handle(&pkt("dhcp-discover.bin"), 1_700_000_000).unwrap().reply.is_some());
    let mut gw = gateway::Gateway::new(gateway::GatewaySpec {
        mac: packet::MacAddr([0x02, 0, 0, 0, 0, 1]),
        ip: ip(1),
        subnet: "198.18.0.0/24".parse().unwrap(),
        allowed: vec!["198.19.0.0/16".parse().unwrap()],
        mtu: gateway::DEFAULT_TUNNEL_MTU,
        v6: None,
    });
    let mut frame = pkt("gw-tcp-syn-up.bin");
    let now = gateway::Now { ms: 1_000, unix: 1_700_000_000 };
    let routed = gw.zone_frame(&mut frame, true, now, &mut [0; 1400]);
    assert!(matches!(routed, gateway::FromZone::Tunnel(_)), "{routed:?}");
}
