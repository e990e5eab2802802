//! `L3Uplink` against a real VPN client: Debian's `openvpn` in static-key tun mode between two
//! namespaces joined by a veth. An ICMP echo the uplink sends into one side's tun crosses the
//! tunnel, the far host answers it, and the reply comes back out of the same uplink; when the
//! client dies, the uplink reports its device gone.

mod common;

use std::path::Path;
use std::time::Duration;

use common::ip::{echo_request, is_echo_reply};
use netdev::{L3Uplink, LinkState};
use testbed::{require_program, require_root, unique, wait_until, ChildGuard, Netns, Veth};

const WAIT: Duration = Duration::from_secs(20);
/// Tunnel addresses (inside the tun devices) and underlay addresses (on the veth).
const TUN_A: [u8; 4] = [198, 18, 79, 1];
const TUN_B: [u8; 4] = [198, 18, 79, 2];
const UNDER_A: &str = "198.18.78.1";
const UNDER_B: &str = "198.18.78.2";

/// Starts openvpn in `ns` on tun `dev`: static key `key`, UDP between `local` and `remote`,
/// `tun_local`/`tun_remote` on the tun. Logs to `log`.
fn openvpn(ns: &Netns, dev: &str, key: &Path, log: &Path, addrs: [&str; 4]) -> ChildGuard {
    let [local, remote, tun_local, tun_remote] = addrs;
    let (key, log) = (key.to_str().unwrap(), log.to_str().unwrap());
    #[rustfmt::skip]
    let args = [
        "openvpn", "--dev", dev, "--dev-type", "tun", "--disable-dco",
        "--ifconfig", tun_local, tun_remote, "--secret", key,
        "--cipher", "AES-256-CBC", "--auth", "SHA256",
        "--proto", "udp", "--local", local, "--remote", remote, "--port", "1194",
        "--ping", "1", "--verb", "3", "--log", log,
    ];
    ns.spawn(&args).unwrap()
}

fn ip_text(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

#[test]
fn an_echo_through_openvpn_comes_back_through_the_uplink() {
    let name = "an_echo_through_openvpn_comes_back_through_the_uplink";
    if !require_root(name) || !require_program(name, "openvpn", "--version", "openvpn") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("static.key");
    let out = std::process::Command::new("openvpn").arg("--genkey").arg("secret").arg(&key).output().unwrap();
    assert!(out.status.success(), "openvpn --genkey: {}", String::from_utf8_lossy(&out.stderr));

    let (a, b) = (Netns::new("ova").unwrap(), Netns::new("ovb").unwrap());
    let (va, vb) = (unique("ova"), unique("ovb"));
    let _veth = Veth::between(&a, &va, &b, &vb).unwrap();
    a.exec(&["ip", "addr", "add", &format!("{UNDER_A}/30"), "dev", &va]).unwrap();
    b.exec(&["ip", "addr", "add", &format!("{UNDER_B}/30"), "dev", &vb]).unwrap();
    let (tun_a, tun_b) = (unique("tuna"), unique("tunb"));
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let (ta, tb) = (ip_text(TUN_A), ip_text(TUN_B));
    let ovpn_a = openvpn(&a, &tun_a, &key, &log_a, [UNDER_A, UNDER_B, &ta, &tb]);
    let _ovpn_b = openvpn(&b, &tun_b, &key, &log_b, [UNDER_B, UNDER_A, &tb, &ta]);
    let logs = || {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("--- a.log\n{}\n--- b.log\n{}", read(&log_a), read(&log_b))
    };

    // Both ends configured their tun (openvpn logs this once the device has its address).
    let ready =
        |p: &Path| std::fs::read_to_string(p).is_ok_and(|l| l.contains("Initialization Sequence Completed"));
    assert!(wait_until(WAIT, || ready(&log_a) && ready(&log_b)), "openvpn did not start:\n{}", logs());
    let mut up = a.run_in(|| L3Uplink::open(&tun_a)).unwrap().unwrap();
    assert_eq!(up.state(), LinkState::Up);

    // Static-key mode has no handshake, but the first packets may race the peer's start: send an
    // echo every poll (bounded by WAIT) until a reply comes back through the uplink.
    let payload = b"rvswitch-l3-uplink-through-openvpn";
    let id = 0x4c33;
    let mut bufs = vec![vec![0u8; 2048]; 8];
    let mut lens = [0usize; 8];
    let (mut seq, mut reply) = (0u16, None);
    wait_until(WAIT, || {
        seq += 1;
        assert!(up.send_ip(&echo_request(TUN_A, TUN_B, id, seq, payload)).unwrap());
        let n = up.recv_ip(&mut bufs, &mut lens).unwrap();
        reply = bufs[..n]
            .iter()
            .zip(&lens)
            .map(|(b, &l)| b[..l].to_vec())
            .find(|p| is_echo_reply(p, TUN_B, id, payload));
        reply.is_some()
    });
    let reply = reply.unwrap_or_else(|| panic!("no echo reply after {seq} requests:\n{}", logs()));
    assert_eq!(&reply[16..20], &TUN_A, "the reply is addressed to our tunnel address");
    eprintln!("echo reply after {seq} request(s), {} bytes", reply.len());

    // The VPN client dies (killed by its PID): its tun goes with it, and the uplink says so.
    drop(ovpn_a);
    assert!(wait_until(WAIT, || up.state() == LinkState::Gone), "uplink still {:?}", up.state());
    let err = up.send_ip(&echo_request(TUN_A, TUN_B, id, seq + 1, payload)).unwrap_err();
    assert!(err.is_gone(), "{err}");
}
