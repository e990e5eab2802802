//! The rvswitch demo: starts rvswitchd, puts five namespace "VMs" into two zones, and prints who
//! can reach whom. Everything it creates (namespaces, links, the daemon) is removed on exit, also
//! on failure. Run as root: `./demo.sh` (builds first) or `target/release/examples/demo`.
//!
//!   zone intranet: bridge br-intranet, VLAN 10: intra-1, intra-2; VLAN 20: intra-guest
//!   zone internet: bridge br-internet:           inet-1, inet-2
//!
//! All five use addresses from one subnet (198.18.0.0/24), so nothing but the switch keeps them apart.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use testbed::{require_root, unique, wait_until, ChildGuard, Netns, Veth};

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

fn demo() -> anyhow::Result<bool> {
    let rvswitchd = sibling_binary("rvswitchd")?;
    let rvsctl = sibling_binary("rvsctl")?;
    let plan: [(&str, &str, u16, &str); 5] = [
        ("intra-1", "intranet", 10, "br-intranet"),
        ("intra-2", "intranet", 10, "br-intranet"),
        ("intra-guest", "intranet", 20, "br-intranet"),
        ("inet-1", "internet", 0, "br-internet"),
        ("inet-2", "internet", 0, "br-internet"),
    ];
    println!("== creating 5 VMs (network namespaces with one NIC each)");
    let mut vms = Vec::new();
    for (i, (name, zone, _, _)) in plan.iter().enumerate() {
        let ns = Netns::new("demo")?;
        // The switch port is named after the VM so `rvsctl show` reads naturally.
        let port = name.to_string();
        let ip = format!("198.18.0.{}", i + 1);
        let veth = Veth::to_ns(&port, &ns, "eth0", Some(&format!("{ip}/24")), None)?;
        println!("   {name:<12} zone {zone:<9} {ip:<12} switch port {port}");
        vms.push(Vm { name, zone, ip, port, _veth: veth, ns });
    }

    let dir = std::env::temp_dir().join(unique("rvdemo"));
    std::fs::create_dir_all(&dir)?;
    let _cleanup_dir = DirGuard(dir.clone());
    let socket = dir.join("ctl.sock");
    let config = dir.join("rvswitch.toml");
    let mut toml = String::new();
    for bridge in ["br-intranet", "br-internet"] {
        toml.push_str(&format!("[[bridge]]\nname = \"{bridge}\"\n"));
        for ((_, _, tag, br), vm) in plan.iter().zip(&vms) {
            if *br == bridge {
                toml.push_str(&format!("  [[bridge.port]]\n  name = \"{}\"\n", vm.port));
                if *tag > 0 {
                    toml.push_str(&format!("  tag = {tag}\n"));
                }
            }
        }
    }
    std::fs::write(&config, &toml)?;
    println!("\n== config ({})\n{toml}", config.display());

    println!("== starting rvswitchd");
    let daemon = Command::new(&rvswitchd)
        .arg("--config")
        .arg(&config)
        .arg("--control-socket")
        .arg(&socket)
        .arg("--db-socket")
        .arg(dir.join("db.sock"))
        .arg("--db-file")
        .arg(dir.join("conf.db"))
        .arg("--log")
        .arg("warn")
        .stdin(Stdio::null())
        .spawn()?;
    let daemon = ChildGuard::new(daemon);
    let ctl = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new(&rvsctl).arg("--socket").arg(&socket).args(args).output()?;
        anyhow::ensure!(out.status.success(), "rvsctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let up = wait_until(Duration::from_secs(10), || {
        ctl(&["show", "--json"]).is_ok_and(|s| s.matches("\"link_state\": \"up\"").count() >= vms.len() + 2)
    });
    anyhow::ensure!(up, "rvswitchd did not bring the ports up");

    println!("\n== who can reach whom (one ping each, in parallel)");
    let results: Vec<Vec<bool>> = std::thread::scope(|s| {
        let rows: Vec<_> = vms
            .iter()
            .map(|from| {
                let vms = &vms;
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
    print!("{:>14}", "from \\ to");
    for vm in &vms {
        print!("{:>13}", vm.name);
    }
    println!();
    let mut as_expected = true;
    for (i, from) in vms.iter().enumerate() {
        print!("{:>14}", from.name);
        for j in 0..vms.len() {
            let expect = plan[i].3 == plan[j].3 && plan[i].2 == plan[j].2;
            let got = results.get(i).and_then(|r| r.get(j)).copied().unwrap_or(false);
            as_expected &= got == expect;
            let cell = match (i == j, got) {
                (true, _) => "-",
                (false, true) => "reach",
                (false, false) => "blocked",
            };
            print!("{:>13}", if got == expect { cell.to_string() } else { format!("{cell}(!)") });
        }
        println!("   [{}]", from.zone);
    }

    println!("\n== rvsctl show\n{}", ctl(&["show"])?);
    println!("== rvsctl fdb show br-intranet\n{}", ctl(&["fdb", "show", "br-intranet"])?);
    // Stop the daemon before the guards remove links under it.
    // SAFETY: kill(2) on the PID of the daemon this demo started.
    unsafe { libc::kill(daemon.pid() as libc::pid_t, libc::SIGTERM) };
    drop(daemon);
    if as_expected {
        println!("result: zones and VLANs isolate exactly as configured. Cleaning up.");
    } else {
        println!("result: UNEXPECTED reachability (marked with (!)). Cleaning up.");
    }
    Ok(as_expected)
}

struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
