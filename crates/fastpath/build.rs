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
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    // Twice: private maps, and maps pinned by name (see PINNED in the source).
    let mut result = Ok(());
    for (object, define) in [("fastpath.bpf.o", None), ("fastpath-pinned.bpf.o", Some("-DRVS_PINNED"))] {
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .args(define)
            .arg(format!("-I/usr/include/{arch}-linux-gnu"))
            .args(["-c", SOURCE, "-o"])
            .arg(out_dir.join(object))
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => result = Err(format!("{clang} failed ({s})")),
            Err(e) => result = Err(format!("no {clang} ({e})")),
        }
        if result.is_err() {
            break;
        }
    }
    match result {
        Ok(()) => println!("cargo:rustc-cfg=fastpath_bpf"),
        Err(e) => println!("cargo:warning=fastpath: {e}; building without the BPF program"),
    }
}
