//! Root tests for the namespace/veth/process guards: real traffic between two namespaces, and
//! cleanup that happens even when the test body panics.

use std::process::{Command, Stdio};
use std::time::Duration;

use testbed::{require_root, run, unique, wait_until, Netns, Veth};

fn netns_listed(name: &str) -> bool {
    run("ip", &["netns", "list"]).map(|out| out.split_whitespace().any(|w| w == name)).unwrap_or(false)
}

fn root_link_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
}

#[test]
fn two_namespaces_ping_and_clean_up() {
    if !require_root("two_namespaces_ping_and_clean_up") {
        return;
    }
    let (a_name, b_name, a_if, b_if);
    {
        let a = Netns::new("tba").unwrap();
        let b = Netns::new("tbb").unwrap();
        a_if = unique("va");
        b_if = unique("vb");
        let _cable = Veth::between(&a, &a_if, &b, &b_if).unwrap();
        a.addr_up(&a_if, "198.18.0.1/24").unwrap();
        b.addr_up(&b_if, "198.18.0.2/24").unwrap();
        assert!(a.ping("198.18.0.2", 2), "a cannot ping b");
        assert!(b.ping("198.18.0.1", 1), "b cannot ping a");
        assert!(!a.ping("198.18.0.99", 1), "ping to nobody must fail");
        a_name = a.name().to_owned();
        b_name = b.name().to_owned();
        assert!(netns_listed(&a_name) && netns_listed(&b_name));
    }
    assert!(!netns_listed(&a_name), "{a_name} left behind");
    assert!(!netns_listed(&b_name), "{b_name} left behind");
    assert!(!root_link_exists(&a_if) && !root_link_exists(&b_if));
}

#[test]
fn veth_to_ns_has_host_end_in_root_and_cleans_up() {
    if !require_root("veth_to_ns_has_host_end_in_root_and_cleans_up") {
        return;
    }
    let ns = Netns::new("tbv").unwrap();
    let host = unique("vh");
    let mut veth = Veth::to_ns(&host, &ns, "eth0", Some("198.18.1.2/24"), Some("02:00:c6:12:01:02")).unwrap();
    assert_eq!(veth.host_if(), host);
    assert!(root_link_exists(&host));
    let info = netdev::interface_info(&host).unwrap().expect("host end exists");
    assert!(info.admin_up);
    let v6 = std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6"));
    if let Ok(v6) = v6 {
        assert_eq!(v6.trim(), "1");
    }
    let inside = ns.exec(&["ip", "-o", "addr", "show", "dev", "eth0"]).unwrap();
    assert!(inside.contains("198.18.1.2/24"), "{inside}");
    let link = ns.exec(&["ip", "-o", "link", "show", "dev", "eth0"]).unwrap();
    assert!(link.contains("02:00:c6:12:01:02"), "{link}");
    veth.delete().unwrap();
    veth.delete().unwrap(); // idempotent
    assert!(!root_link_exists(&host));
    drop(veth);
    let host2 = unique("vh");
    {
        let _v = Veth::to_ns(&host2, &ns, "eth1", None, None).unwrap();
        assert!(root_link_exists(&host2));
    }
    assert!(!root_link_exists(&host2), "Drop must remove the host end");
}

#[test]
fn panic_inside_test_body_still_cleans_up() {
    if !require_root("panic_inside_test_body_still_cleans_up") {
        return;
    }
    let names = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let ns = Netns::new("tbp").unwrap();
        let host = unique("vp");
        let _veth = Veth::to_ns(&host, &ns, "eth0", None, None).unwrap();
        *names.lock().unwrap() = Some((ns.name().to_owned(), host));
        panic!("deliberate panic with guards alive");
    });
    assert!(result.is_err());
    let (ns_name, host) = names.lock().unwrap().take().expect("body ran");
    assert!(!netns_listed(&ns_name), "{ns_name} survived a panic");
    assert!(!root_link_exists(&host), "{host} survived a panic");
}

#[test]
fn dropping_netns_kills_processes_inside() {
    if !require_root("dropping_netns_kills_processes_inside") {
        return;
    }
    let ns = Netns::new("tbk").unwrap();
    let mut guard = ns.spawn(&["sleep", "30"]).unwrap();
    assert!(guard.pid() > 0);
    // A process started without a guard: only the namespace's Drop can stop it.
    let mut stray = Command::new("ip")
        .args(["netns", "exec", ns.name(), "sleep", "30"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        run("ip", &["netns", "pids", ns.name()]).map(|p| p.split_whitespace().count() >= 2).unwrap_or(false)
    }));
    drop(ns);
    assert!(wait_until(Duration::from_secs(5), || matches!(stray.try_wait(), Ok(Some(_)))));
    assert!(wait_until(Duration::from_secs(5), || matches!(guard.child_mut().try_wait(), Ok(Some(_)))));
}

#[test]
fn child_guard_kills_on_drop() {
    // No root needed: an ordinary child process.
    let child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    drop(testbed::ChildGuard::new(child));
    // Reaped by the guard, so the PID no longer exists (or was recycled into something else).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(!stat.starts_with("sleep"), "child {pid} still alive");
}
