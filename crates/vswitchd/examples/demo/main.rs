//! The rvswitch demo: starts rvswitchd, applies `examples/zones.toml` with `rvsctl zones apply`,
//! attaches five namespace "VMs" to the zones the way libvirt would, and prints who can reach
//! whom beside `rvsctl zones verify`'s matrix. Everything it creates (namespaces, links, the daemon) is removed on exit, also
//! on failure. Run as root: `./demo.sh` (builds first) or `target/release/examples/demo`.
//!
//!   zone intranet: bridge br-intranet, VLAN 10: intra-1, intra-2; VLAN 20: intra-guest
//!   zone internet: bridge br-internet:           inet-1, inet-2
//!
//! All five use addresses from one subnet (198.18.0.0/24), so nothing but the switch keeps them apart.
//!
//! Then the VPN act (vpn.rs): a third zone whose uplink is rvswitch's built-in WireGuard to an
//! office server in a namespace, and its kill switch.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use serde_json::json;
use testbed::{require_root, unique, wait_until, ChildGuard, Netns, Veth};

mod vpn;

struct Vm {
    name: &'static str,
    zone: &'static str,
    ip: String,
    port: String,
    _veth: Veth,
    ns: Netns,
}

fn main() -> ExitCode {
    if !testbed::is_root() {
        eprintln!("the demo creates network namespaces and veth links: run it as root");
        return ExitCode::FAILURE;
    }
    let _ = require_root("demo");
    match demo() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/demo → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).ok_or_else(|| anyhow::anyhow!("odd executable path"))?;
    let bin = dir.join(name);
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it first (cargo build --release --bins --examples)",
        bin.display()
    );
    Ok(bin)
}

/// The demo's VMs: name, zone, VLAN (0 = untagged), libvirt-style MAC.
const VMS: [(&str, &str, u16); 5] = [
    ("intra-1", "intranet", 10),
    ("intra-2", "intranet", 10),
    ("intra-guest", "intranet", 20),
    ("inet-1", "internet", 0),
    ("inet-2", "internet", 0),
];

/// Runs rvsctl against the demo's daemon (control socket and OVSDB).
struct Ctl {
    rvsctl: PathBuf,
    socket: PathBuf,
    db: String,
}

impl Ctl {
    /// stdout and exit code; exit 1 is an error except for `verify` (1 = joined).
    fn run(&self, args: &[&str]) -> anyhow::Result<(String, i32)> {
        let out = Command::new(&self.rvsctl)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .output()?;
        let code = out.status.code().unwrap_or(-1);
        let tolerated = code != 1 || args.contains(&"verify");
        anyhow::ensure!(tolerated, "rvsctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok((String::from_utf8_lossy(&out.stdout).into_owned(), code))
    }
}

fn demo() -> anyhow::Result<bool> {
    let rvswitchd = sibling_binary("rvswitchd")?;
    let vms = make_vms()?;
    // A veth end stands in for the intranet's NIC uplink: the demo never touches a real NIC.
    let (nic, nic_peer) = (unique("nic"), unique("wire"));
    let _nic_cable = Veth::pair(&nic, &nic_peer)?;

    let dir = std::env::temp_dir().join(unique("rvdemo"));
    std::fs::create_dir_all(&dir)?;
    let _cleanup_dir = DirGuard(dir.clone());
    let ctl = Ctl {
        rvsctl: sibling_binary("rvsctl")?,
        socket: dir.join("ctl.sock"),
        db: format!("unix:{}", dir.join("db.sock").display()),
    };
    let mut daemon = start_daemon(&rvswitchd, &dir)?;
    anyhow::ensure!(
        wait_until(Duration::from_secs(10), || ctl.run(&["show"]).is_ok()),
        "rvswitchd did not come up"
    );

    let zones_file = dir.join("zones.toml");
    let example = include_str!("../../../../examples/zones.toml");
    let zones = example.replace("nic = \"eth1\"", &format!("nic = \"{nic}\""));
    std::fs::write(&zones_file, &zones)?;
    println!("\n== rvsctl zones apply examples/zones.toml (uplink eth1 played by veth {nic})");
    print!("{}", ctl.run(&["zones", "apply", &zones_file.display().to_string()])?.0);
    attach_vms(&ctl.db, &vms)?;
    let up = wait_until(Duration::from_secs(10), || {
        ctl.run(&["show", "--json"])
            .is_ok_and(|(s, _)| s.matches("\"link_state\": \"up\"").count() >= vms.len() + 3)
    });
    anyhow::ensure!(up, "rvswitchd did not bring the ports up");
    let zones_ok = report(&ctl, &vms)?;
    let (vpn_ok, _vpn_leftovers) = vpn::act(&ctl, &dir, &zones, &vms)?;
    let ok = zones_ok && vpn_ok;
    if ok {
        println!("\nresult: zones, VLANs and the VPN zone behave exactly as configured. Cleaning up.");
    } else {
        println!("\nresult: something UNEXPECTED (marked with (!)); see above. Cleaning up.");
    }
    // Stop the daemon before the guards remove links under it, and let it exit cleanly: only
    // a clean stop takes its pinned fast path out of the kernel.
    daemon.terminate(Duration::from_secs(10));
    drop(daemon);
    Ok(ok)
}

/// The measured matrix beside verify's, then show/fdb; true if both say "isolated as configured".
fn report(ctl: &Ctl, vms: &[Vm]) -> anyhow::Result<bool> {
    let (matrix, as_expected) = ping_matrix(vms);
    let (verify, verify_code) = ctl.run(&["zones", "verify"])?;
    println!("\n== measured (one ping each, in parallel)  |  rvsctl zones verify (from the database)");
    let stop = |l: &&str| ["Trunks", "JOINED", "verdict"].iter().any(|w| l.starts_with(w));
    print_beside(&matrix, verify.lines().skip(1).take_while(|l| !stop(l)).collect());
    println!("\n== rvsctl zones verify\n{verify}");
    println!("== rvsctl zones show\n{}", ctl.run(&["zones", "show"])?.0);
    println!("== rvsctl show\n{}", ctl.run(&["show"])?.0);
    println!("== rvsctl fdb show br-intranet\n{}", ctl.run(&["fdb", "show", "br-intranet"])?.0);
    println!("== rvsctl events\n{}", ctl.run(&["events"])?.0);
    // `RVSWITCH_DEMO_TOPOLOGY=FILE.svg ./demo.sh` keeps the picture (docs/topology.png is made so).
    if let Some(file) = std::env::var_os("RVSWITCH_DEMO_TOPOLOGY") {
        std::fs::write(&file, ctl.run(&["topology", "--format", "svg"])?.0)?;
        println!("== rvsctl topology --format svg > {}", Path::new(&file).display());
    }
    let ok = as_expected && verify_code == 0;
    if ok {
        println!("zones and VLANs isolate exactly as configured, and verify agrees.");
    } else {
        println!("UNEXPECTED reachability (marked with (!)) or verify found a join.");
    }
    Ok(ok)
}

/// The MAC of the `i`th VM's NIC.
fn vm_mac(i: usize) -> String {
    format!("52:54:00:00:00:{:02x}", i + 1)
}

fn make_vms() -> anyhow::Result<Vec<Vm>> {
    println!("== creating 5 VMs (network namespaces with one NIC each)");
    let mut vms = Vec::new();
    for (i, (name, zone, _)) in VMS.iter().enumerate() {
        let ns = Netns::new("demo")?;
        // The switch port is named after the VM so `rvsctl show` reads naturally.
        let port = name.to_string();
        let ip = format!("198.18.0.{}", i + 1);
        // The NIC's MAC is the one attach_vms() gives libvirt-style as attached-mac: port
        // security (on for such ports) admits only that source.
        let veth = Veth::to_ns(&port, &ns, "eth0", Some(&format!("{ip}/24")), Some(&vm_mac(i)))?;
        println!("   {name:<12} zone {zone:<9} {ip:<12} switch port {port}");
        vms.push(Vm { name, zone, ip, port, _veth: veth, ns });
    }
    Ok(vms)
}

fn start_daemon(rvswitchd: &Path, dir: &Path) -> anyhow::Result<ChildGuard> {
    println!("\n== starting rvswitchd (no config file bridges: the zones file makes them)");
    std::fs::write(dir.join("rvswitch.toml"), "")?;
    let daemon = Command::new(rvswitchd)
        .arg("--config")
        .arg(dir.join("rvswitch.toml"))
        .arg("--control-socket")
        .arg(dir.join("ctl.sock"))
        .arg("--db-socket")
        .arg(dir.join("db.sock"))
        .arg("--db-file")
        .arg(dir.join("conf.db"))
        .arg("--log")
        .arg("warn,boringtun=error")
        .stdin(Stdio::null())
        .spawn()?;
    Ok(ChildGuard::new(daemon))
}

/// A VM's port as libvirt adds it when the domain starts.
struct Attachment {
    port: String,
    /// libvirt's vm-id is the domain's UUID; these VMs have only names.
    vm_id: String,
    mac: String,
    bridge: String,
    /// The portgroup's VLAN; 0 = untagged.
    vlan: u16,
    /// `other_config:allowed-ips`: the address a VM without DHCP may use (port security).
    allowed_ips: Option<String>,
}

/// Adds each VM's port to its zone's bridge the way libvirt does when a domain starts: a port
/// tagged with the portgroup's VLAN and `external_ids:attached-mac` and `vm-id` on the
/// interface. One transaction, then wait until the daemon applied it (cur_cfg), like
/// `ovs-vsctl add-port`.
fn attach(db: &str, ports: &[Attachment]) -> anyhow::Result<()> {
    let mut c = ovsdb::client::Client::connect(db, Duration::from_secs(10))?;
    let mut ops = Vec::new();
    for (i, a) in ports.iter().enumerate() {
        let (iface, port) = (format!("i{i}"), format!("p{i}"));
        let other_config: Vec<_> = a.allowed_ips.iter().map(|ips| json!(["allowed-ips", ips])).collect();
        ops.push(json!({"op": "insert", "table": "Interface", "uuid-name": iface,
            "row": {"name": a.port, "external_ids": ["map", [["attached-mac", a.mac], ["vm-id", a.vm_id]]],
                    "other_config": ["map", other_config]}}));
        let tag = if a.vlan == 0 { json!(["set", []]) } else { json!(a.vlan) };
        ops.push(json!({"op": "insert", "table": "Port", "uuid-name": port,
            "row": {"name": a.port, "tag": tag, "interfaces": ["named-uuid", iface]}}));
        ops.push(json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", a.bridge]],
            "mutations": [["ports", "insert", ["set", [["named-uuid", port]]]]]}));
    }
    ops.push(
        json!({"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["next_cfg", "+=", 1]]}),
    );
    ops.push(json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]}));
    let r = c.transact("Open_vSwitch", &ops)?;
    let next = r.last().and_then(|r| r["rows"][0]["next_cfg"].as_i64()).unwrap_or(0);
    c.wait_cur_cfg("Open_vSwitch", next)?;
    Ok(())
}

fn attach_vms(db: &str, vms: &[Vm]) -> anyhow::Result<()> {
    let ports: Vec<Attachment> = vms
        .iter()
        .zip(VMS)
        .enumerate()
        .map(|(i, (vm, (_, zone, vlan)))| Attachment {
            port: vm.port.clone(),
            vm_id: vm.name.to_string(),
            mac: vm_mac(i),
            bridge: format!("br-{zone}"),
            vlan,
            allowed_ips: None,
        })
        .collect();
    attach(db, &ports)?;
    println!("== attached the 5 VM ports like libvirt (tag = portgroup VLAN, external_ids:attached-mac)");
    Ok(())
}

/// Pings every pair in parallel; returns the printed matrix and whether it matched the zones.
fn ping_matrix(vms: &[Vm]) -> (Vec<String>, bool) {
    let results: Vec<Vec<bool>> = std::thread::scope(|s| {
        let rows: Vec<_> = vms
            .iter()
            .map(|from| {
                s.spawn(move || {
                    vms.iter()
                        .map(|to| {
                            from.name == to.name
                                || from
                                    .ns
                                    .exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", "-q", &to.ip])
                                    .is_ok()
                        })
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        rows.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut lines = vec![format!(
        "{:>14}{}",
        "from \\ to",
        vms.iter().map(|v| format!("{:>13}", v.name)).collect::<String>()
    )];
    let mut as_expected = true;
    for ((i, from), (_, zone_i, vlan_i)) in vms.iter().enumerate().zip(VMS) {
        let mut line = format!("{:>14}", from.name);
        for (j, (_, zone_j, vlan_j)) in VMS.iter().enumerate().take(vms.len()) {
            let expect = zone_i == *zone_j && vlan_i == *vlan_j;
            let got = results.get(i).and_then(|r| r.get(j)).copied().unwrap_or(false);
            as_expected &= got == expect;
            let cell = match (i == j, got) {
                (true, _) => "-",
                (false, true) => "reach",
                (false, false) => "blocked",
            };
            line.push_str(&format!(
                "{:>13}",
                if got == expect { cell.to_string() } else { format!("{cell}(!)") }
            ));
        }
        line.push_str(&format!("   [{}]", from.zone));
        lines.push(line);
    }
    (lines, as_expected)
}

fn print_beside(left: &[String], right: Vec<&str>) {
    let width = left.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    for i in 0..left.len().max(right.len()) {
        let l = left.get(i).map(String::as_str).unwrap_or("");
        let pad = width - l.chars().count();
        let line = format!("{l}{}  |  {}", " ".repeat(pad), right.get(i).copied().unwrap_or(""));
        println!("{}", line.trim_end());
    }
}

struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
