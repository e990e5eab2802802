//! `--metrics`: a live scrape under traffic passes Prometheus's own `promtool check metrics`,
//! its counters agree with the daemon's and never go backwards between scrapes, and a
//! non-loopback address is refused unless explicitly allowed.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{pinging_pair, Launch};
use testbed::{require_program, require_root, unique};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.1, connection closed after): (head, body).
fn get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    Ok((head.to_string(), body.to_string()))
}

fn scrape(port: u16) -> String {
    let (head, body) = get(port, "/metrics").expect("scrape the metrics endpoint");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body
}

/// Every counter series (`…_total{labels} value`) of a scrape.
fn counters(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next().is_some_and(|n| n.ends_with("_total")))
        .filter_map(|(series, v)| v.parse().ok().map(|v| (series.to_string(), v)))
        .collect()
}

/// The value of the series named exactly `series` (no labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Root and `program` (from Debian's prometheus) or a skip; then two pinging VMs on `bridge` of
/// a daemon serving metrics on the port returned.
fn metrics_daemon(
    test: &str,
    program: &str,
    bridge: &str,
) -> Option<(u16, (common::Vm, common::Vm, common::Daemon))> {
    if !require_root(test) || !require_program(test, program, "--version", "prometheus") {
        return None;
    }
    let port = free_port();
    let launch = Launch { args: vec!["--metrics".into(), format!("127.0.0.1:{port}")], ..Launch::default() };
    Some((port, pinging_pair(bridge, launch)))
}

#[test]
fn live_scrapes_pass_promtool_and_counters_only_grow() {
    let br = unique("br-m1");
    let Some((port, (a, b, d))) = metrics_daemon("metrics scrape", "promtool", &br) else { return };
    let first = scrape(port);
    let (ok, said) = testbed::promtool_check_metrics(&first);
    assert!(ok, "promtool rejects the scrape: {said}\n{first}");
    let clients = |text: &str| {
        let line = text.lines().find(|l| l.starts_with("rvswitch_ovsdb_clients ")).unwrap_or_default();
        line.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok())
    };
    let idle = clients(&first).expect("rvswitch_ovsdb_clients");
    let mut client = std::os::unix::net::UnixStream::connect(d.db_socket()).expect("OVSDB client");
    assert!(
        testbed::wait_until(Duration::from_secs(5), || clients(&scrape(port)) == Some(idle + 1)),
        "an OVSDB client connected, the gauge did not show it"
    );
    // One transaction from that client: the counter and the histogram's count both move.
    let txns = |text: &str| value(text, "rvswitch_ovsdb_transactions_total");
    let before_txn = txns(&first).expect("rvswitch_ovsdb_transactions_total");
    client.write_all(br#"{"method":"transact","params":["Open_vSwitch"],"id":1}"#).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = [0u8; 64];
    let n = client.read(&mut reply).expect("transact reply");
    assert!(String::from_utf8_lossy(&reply[..n]).contains(r#""result":[]"#));
    let third = scrape(port);
    assert!(txns(&third).is_some_and(|t| t > before_txn), "transaction not counted:\n{third}");
    assert_eq!(value(&third, "rvswitch_ovsdb_transaction_seconds_count"), txns(&third));
    assert!(third.contains(r#"rvswitch_ovsdb_transaction_seconds_bucket{le="+Inf"}"#), "{third}");
    let series = format!("rvswitch_port_rx_packets_total{{bridge=\"{br}\",port=\"{}\"}}", a.port);
    let before = counters(&first);
    assert!(before.get(&series).copied().unwrap_or(0.0) >= 3.0, "{series} missing or low:\n{first}");
    assert!(first.contains(&format!("rvswitch_bridge_mac_learned_total{{bridge=\"{br}\"}}")), "{first}");
    assert!(first.contains(&format!("rvswitch_port_link_up{{bridge=\"{br}\",port=\"{}\"}} 1", a.port)));
    // Every received frame went one way or the other: kernel + userspace = rx, per scrape.
    let path = |p: &str| {
        format!("rvswitch_port_rx_path_packets_total{{bridge=\"{br}\",port=\"{}\",path=\"{p}\"}}", a.port)
    };
    let (kernel, user) = (before.get(&path("kernel")), before.get(&path("userspace")));
    assert_eq!(kernel.zip(user).map(|(k, u)| k + u), before.get(&series).copied(), "{first}");

    assert!(a.ping(&b, 3));
    let second = scrape(port);
    assert!(testbed::promtool_check_metrics(&second).0, "second scrape rejected");
    let after = counters(&second);
    for (name, v) in &before {
        let now = after.get(name).copied().unwrap_or(-1.0);
        assert!(now >= *v, "{name} went from {v} to {now}");
    }
    assert!(after[&series] >= before[&series] + 3.0, "3 more pings, rx did not grow by 3");
}

#[test]
fn a_remote_metrics_address_needs_the_flag() {
    if !require_root("metrics address check") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rvswitchd"))
        .args(["--metrics", "0.0.0.0:1", "--control-socket", "/nonexistent/rvswitch-metrics-test/ctl.sock"])
        .output()
        .expect("run rvswitchd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics-allow-remote"), "{err}");
}

/// A real Prometheus server scrapes the endpoint and can query what it scraped.
#[test]
fn a_prometheus_server_scrapes_it() {
    let Some((port, (a, _b, d))) = metrics_daemon("prometheus scrape", "prometheus", &unique("br-m2")) else {
        return;
    };
    let web = free_port();
    let config = d.dir.join("prometheus.yml");
    let job = format!("scrape_configs:\n  - job_name: rvswitch\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n");
    std::fs::write(&config, job).unwrap();
    let server = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", d.dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _server = testbed::ChildGuard::new(server);
    let query = format!("/api/v1/query?query=rvswitch_port_rx_packets_total%7Bport%3D%22{}%22%7D", a.port);
    let mut last = String::new();
    let scraped = testbed::wait_until(Duration::from_secs(60), || {
        last = get(web, &query).map(|(_, body)| body).unwrap_or_default();
        last.contains("\"status\":\"success\"") && last.contains(&a.port)
    });
    assert!(scraped, "Prometheus has no rvswitch series after 60 s; last answer: {last}");
    let (_, up) = get(web, "/api/v1/query?query=up%7Bjob%3D%22rvswitch%22%7D").expect("query up");
    assert!(up.contains("\"1\"]"), "the target is not up: {up}");
}
