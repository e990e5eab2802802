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
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "virt-xml-validate missing (apt-get install libvirt-clients libxml2-utils)"
    );
    eprintln!("SKIP: virt-xml-validate not installed");
    false
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
