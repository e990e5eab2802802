//! `rvsctl zones libvirt-xml` output is accepted by libvirt's own schema checker,
//! `virt-xml-validate` (networks as `network`, each `<interface>` inside a minimal domain).

use std::path::{Path, PathBuf};
use std::process::Command;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/zones.toml")
}

fn have_validator() -> bool {
    if Command::new("virt-xml-validate").arg("--help").output().is_ok() {
        return true;
    }
    testbed::skip(
        "libvirt XML validation",
        "virt-xml-validate missing (apt-get install libvirt-clients libxml2-utils)",
    )
}

fn validate(file: &Path, kind: &str) {
    let out = Command::new("virt-xml-validate").arg(file).arg(kind).output().expect("run virt-xml-validate");
    assert!(
        out.status.success(),
        "virt-xml-validate {} {kind} failed:\n{}{}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

/// A domain just large enough for the schema, around one generated `<interface>`.
fn domain_around(interface: &str) -> String {
    format!(
        "<domain type='qemu'>\n<name>t</name>\n<memory unit='KiB'>65536</memory>\n<os><type arch='x86_64'>hvm</type></os>\n<devices>\n{interface}</devices>\n</domain>\n"
    )
}

#[test]
fn every_generated_file_passes_virt_xml_validate() {
    if !have_validator() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rvsctl"))
        .args(["zones", "libvirt-xml"])
        .arg(example())
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "internet.network.xml",
            "intranet.network.xml",
            "office-desktop.interface.xml",
            "web-browser.interface.xml"
        ]
    );
    for n in &names {
        let path = dir.path().join(n);
        if n.ends_with(".network.xml") {
            validate(&path, "network");
        } else {
            let wrapped = dir.path().join(format!("{n}.domain"));
            std::fs::write(&wrapped, domain_around(&std::fs::read_to_string(&path).unwrap())).unwrap();
            validate(&wrapped, "domain");
        }
    }
    let intranet = std::fs::read_to_string(dir.path().join("intranet.network.xml")).unwrap();
    assert!(
        intranet.contains("<portgroup name='vlan-10' default='yes'>") && intranet.contains("<tag id='20'/>"),
        "{intranet}"
    );
}

#[test]
fn one_zone_and_stdout() {
    let out = Command::new(env!("CARGO_BIN_EXE_rvsctl"))
        .args(["zones", "libvirt-xml"])
        .arg(example())
        .arg("internet")
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("<name>internet</name>") && s.contains("web-browser.interface.xml"), "{s}");
    assert!(!s.contains("intranet"), "{s}");
    let bad = Command::new(env!("CARGO_BIN_EXE_rvsctl"))
        .args(["zones", "libvirt-xml"])
        .arg(example())
        .arg("nope")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn a_bad_file_prints_every_diagnostic_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "[[zone]]\nname = \"Bad\"\n[[zone]]\nname = \"also-a-very-long-name\"\n").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_rvsctl")).args(["zones", "libvirt-xml"]).arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:2:8: zone name \"Bad\"") && err.contains("bad.toml:4:8: bridge name"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// `--define` runs virsh net-define/net-autostart/net-start per network; a stand-in `virsh` on
/// PATH records the calls (the real libvirtd is exercised by the libvirt end-to-end test).
#[test]
fn define_runs_virsh_for_each_network() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {}\ncase \"$1\" in net-info) echo 'Active:         no';; esac\n",
        log.display()
    );
    let virsh = dir.path().join("virsh");
    std::fs::write(&virsh, script).unwrap();
    std::fs::set_permissions(&virsh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out_dir = dir.path().join("xml");
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(env!("CARGO_BIN_EXE_rvsctl"))
        .env("PATH", path)
        .args(["zones", "libvirt-xml"])
        .arg(example())
        .arg("intranet")
        .arg("--out")
        .arg(&out_dir)
        .arg("--define")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let calls = std::fs::read_to_string(&log).unwrap();
    let want = format!(
        "net-define {}\nnet-autostart intranet\nnet-info intranet\nnet-start intranet\n",
        out_dir.join("intranet.network.xml").display()
    );
    assert_eq!(calls, want);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("defined, autostarted and started libvirt network intranet"));
}
