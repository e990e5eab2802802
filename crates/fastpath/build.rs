//! Compiles the BPF program with clang when it is installed. Without clang the crate still
//! builds: `fastpath::object()` then reports why there is no program and rvswitchd's
//! `--datapath auto` stays in userspace.

use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "bpf/fastpath.bpf.c";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fastpath_bpf)");
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("fastpath.bpf.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I/usr/include/{arch}-linux-gnu"))
        .args(["-c", SOURCE, "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => println!("cargo:rustc-cfg=fastpath_bpf"),
        Ok(s) => println!("cargo:warning=fastpath: {clang} failed ({s}); building without the BPF program"),
        Err(e) => println!("cargo:warning=fastpath: no {clang} ({e}); building without the BPF program"),
    }
}
