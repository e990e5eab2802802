//! Real guests for VM tests: Debian's cloud kernel (fetched by scripts/vm-assets.sh into
//! `$RVSWITCH_VM_ASSETS`) and a busybox initramfs whose `/init` is the test's own script, so a
//! guest boots in a few seconds of TCG time, runs its checks, reports on the serial console and
//! powers off. qemu may run them directly or libvirt may (`<kernel>`/`<initrd>` in the domain).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// The modules virtio-net needs, in dependency order (modinfo -F depends).
pub const VIRTIO_NET_MODULES: [&str; 8] = [
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
];

/// The assets directory from `RVSWITCH_VM_ASSETS` if it holds a kernel and busybox and qemu are
/// installed; `None` otherwise (the caller decides whether that is a skip or a CI failure).
pub fn vm_assets() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("RVSWITCH_VM_ASSETS")?);
    let ok = dir.join("vmlinuz").exists()
        && Path::new("/bin/busybox").exists()
        && Command::new("qemu-system-x86_64").arg("--version").output().is_ok();
    ok.then_some(dir)
}

/// [`vm_assets`] for `test`, or a [`crate::skip`] (a failure under CI) naming what is missing.
pub fn require_vm_assets(test: &str) -> Option<PathBuf> {
    let assets = vm_assets();
    if assets.is_none() {
        crate::skip(
            test,
            "set RVSWITCH_VM_ASSETS (scripts/vm-assets.sh) and install qemu-system-x86, busybox-static",
        );
    }
    assets
}

/// A complete `/init`: mounts, busybox applets, virtio-net loaded, `lo` up; then `body`.
/// `body` should end the guest (`poweroff -f`), or the kernel panics when /init exits.
pub fn guest_init(body: &str) -> String {
    let insmods: String = VIRTIO_NET_MODULES.iter().map(|m| format!("insmod /lib/{m}.ko\n")).collect();
    format!(
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc\nmount -t sysfs sys /sys\n\
         mount -t devtmpfs dev /dev\n{insmods}ip link set lo up\n{body}"
    )
}

/// Packs busybox, the virtio-net modules from `assets` and `init` (see [`guest_init`]) into a
/// newc cpio archive `work/initrd.cpio` (made by busybox's own cpio); returns its path.
pub fn build_initramfs(assets: &Path, work: &Path, init: &str) -> anyhow::Result<PathBuf> {
    build_initramfs_with(assets, work, init, &[])
}

/// [`build_initramfs`] plus host programs (e.g. `/usr/bin/iperf3`, which busybox lacks), each
/// with the shared libraries and the loader `ldd` names, at the same paths as on the host.
pub fn build_initramfs_with(
    assets: &Path,
    work: &Path,
    init: &str,
    programs: &[&Path],
) -> anyhow::Result<PathBuf> {
    let root = work.join("initramfs-root");
    // /tmp: iperf3 keeps its buffer in a temporary file.
    for d in ["bin", "lib", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).with_context(|| format!("creating {}", root.display()))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).context("copying /bin/busybox")?;
    for m in VIRTIO_NET_MODULES {
        let src = assets.join("modules").join(format!("{m}.ko"));
        std::fs::copy(&src, root.join(format!("lib/{m}.ko")))
            .with_context(|| format!("copying {}", src.display()))?;
    }
    for p in programs {
        for file in std::iter::once(p.to_path_buf()).chain(shared_libraries(p)?) {
            copy_into(&root, &file)?;
        }
    }
    let init_path = root.join("init");
    std::fs::write(&init_path, init).context("writing /init")?;
    std::fs::set_permissions(&init_path, std::fs::Permissions::from_mode(0o755)).context("chmod /init")?;
    pack(&root, &work.join("initrd.cpio"))
}

/// The absolute paths `ldd program` resolves (libraries and the dynamic loader).
fn shared_libraries(program: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(program).output().context("running ldd")?;
    if !out.status.success() {
        bail!("ldd {} failed: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect())
}

/// Copies host file `file` (absolute) to the same path under `root`, mode kept.
fn copy_into(root: &Path, file: &Path) -> anyhow::Result<()> {
    let rel = file.strip_prefix("/").with_context(|| format!("{} is not absolute", file.display()))?;
    let dst = root.join(rel);
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::copy(file, &dst).with_context(|| format!("copying {}", file.display()))?;
    Ok(())
}

/// `find . | busybox cpio -o -H newc` in `root`, into `out`.
fn pack(root: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let status = Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . | busybox cpio -o -H newc > \"$2\" 2>/dev/null")
        .arg("sh")
        .arg(root)
        .arg(out)
        .status()
        .context("running busybox cpio")?;
    if !status.success() {
        bail!("busybox cpio failed ({status})");
    }
    Ok(out.to_path_buf())
}

/// Boots `assets`' kernel with `initrd` under qemu (TCG, 256 MiB, one vCPU) with a virtio-net
/// NIC of `mac` on a tap named `tap` that qemu creates (as under libvirt); the serial console
/// goes to `console`. The guard stops qemu if the test ends first.
pub fn boot_guest(
    assets: &Path,
    initrd: &Path,
    tap: &str,
    mac: &str,
    console: &Path,
) -> anyhow::Result<crate::ChildGuard> {
    let kernel = assets.join("vmlinuz");
    let qemu = Command::new("qemu-system-x86_64")
        .args(["-machine", "pc", "-m", "256", "-smp", "1", "-nographic", "-no-reboot", "-nodefaults"])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .args(["-serial", &format!("file:{}", console.display())])
        .args(["-netdev", &format!("tap,id=n0,ifname={tap},script=no,downscript=no,vhost=off")])
        .args(["-device", &format!("virtio-net-pci,netdev=n0,mac={mac}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("start qemu-system-x86_64")?;
    Ok(crate::ChildGuard::new(qemu))
}
