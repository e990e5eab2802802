//! `rvsctl zones libvirt-xml`: print or write the generated XML, optionally define it in libvirt.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Prints (or writes to `out`) the XML files; with `define`, defines, autostarts and starts
/// each network through `virsh`. A network that is already defined is redefined (net-define
/// replaces the persistent config), and an already running one is left running.
pub fn run(model: &zones::Model, zone: Option<&str>, out: Option<&Path>, define: bool) -> Result<String> {
    let files = zones::libvirt::files(model, zone)?;
    let mut s = String::new();
    let dir = match out {
        Some(d) => d.to_path_buf(),
        None if define => scratch_dir(),
        None => {
            for f in &files {
                let _ = writeln!(s, "<!-- {} -->\n{}", f.name, f.contents);
            }
            return Ok(s);
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for f in &files {
        let path = dir.join(&f.name);
        std::fs::write(&path, &f.contents).with_context(|| format!("cannot write {}", path.display()))?;
        let _ = writeln!(s, "wrote {}", path.display());
    }
    if define {
        for z in model.zones.iter().filter(|z| zone.is_none_or(|n| n == z.name)) {
            define_network(&dir.join(format!("{}.network.xml", z.name)), &z.name)?;
            let _ = writeln!(s, "defined, autostarted and started libvirt network {}", z.name);
        }
    }
    Ok(s)
}

/// Where `--define` without `--out` keeps the files virsh reads (left for the user to inspect).
fn scratch_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("rvsctl-libvirt-{}", std::process::id()))
}

fn define_network(xml: &Path, name: &str) -> Result<()> {
    virsh(&["net-define", &xml.display().to_string()])?;
    virsh(&["net-autostart", name])?;
    let active = Command::new("virsh").args(["net-info", name]).output().context("running virsh")?;
    let running = String::from_utf8_lossy(&active.stdout)
        .lines()
        .any(|l| l.starts_with("Active:") && l.ends_with("yes"));
    if !running {
        virsh(&["net-start", name])?;
    }
    Ok(())
}

fn virsh(args: &[&str]) -> Result<()> {
    let out = Command::new("virsh")
        .args(args)
        .output()
        .context("cannot run virsh (apt-get install libvirt-clients)")?;
    if !out.status.success() {
        bail!("virsh {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
