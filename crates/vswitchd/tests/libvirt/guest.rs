//! A real guest booted by libvirt: Debian's cloud kernel and a busybox initramfs whose /init
//! reports on the serial console what it reached, floods one frame to an unknown MAC, then
//! waits for its host to say "power off" (an HTTP file appearing) and powers off through ACPI.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use testbed::{build_initramfs, guest_init, wait_until, Libvirt};

use super::validate;

/// A MAC no port has: frames to it are flooded inside their VLAN (unknown unicast).
pub const NOBODY_MAC: &str = "02:00:00:00:77:77";
/// Bound on the guests' checks: TCG boot (~5 s of guest time) plus their pings, under CI load.
pub const GUEST_TIMEOUT: Duration = Duration::from_secs(150);

/// One VM: what libvirt calls it, where it sits and what it must (not) reach.
pub struct Guest {
    pub name: &'static str,
    /// Its zone (= libvirt network) and the zone's bridge.
    pub zone: &'static str,
    pub bridge: &'static str,
    /// The portgroup it names in the zones file (`None`: the zone's default or untagged).
    pub portgroup: Option<&'static str>,
    pub mac: &'static str,
    pub ip: &'static str,
    /// The VLAN its port must carry (the portgroup's tag); `None`: untagged zone.
    pub tag: Option<u16>,
    /// (address, reachable?) — pinged from inside the guest.
    pub targets: &'static [(&'static str, bool)],
    /// The host whose HTTP server tells the guest to power off.
    pub poweroff_from: &'static str,
}

/// A guest that libvirt started.
pub struct Booted {
    console: PathBuf,
    started: Instant,
}

impl Booted {
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// Host wall-clock time since `virsh start`.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The guest's /init body (see the module doc).
fn script(g: &Guest) -> String {
    let targets: Vec<&str> = g.targets.iter().map(|(ip, _)| *ip).collect();
    guest_init(&format!(
        "ip link set eth0 up\nip addr add {ip}/24 dev eth0\necho RVS-UP\n\
         for t in {targets}; do\n  if ping -c 2 -W 3 $t >/dev/null 2>&1; then echo \"RVS-REACH $t yes\"; \
         else echo \"RVS-REACH $t no\"; fi\ndone\n\
         arp -s 198.18.0.77 {NOBODY_MAC}\nping -c 3 -W 1 198.18.0.77 >/dev/null 2>&1\necho RVS-DONE\n\
         i=0; while [ $i -lt 300 ]; do wget -q -O /dev/null http://{srv}:8000/poweroff && break; sleep 1; i=$((i+1)); done\n\
         echo RVS-POWEROFF\npoweroff -f\n",
        ip = g.ip,
        targets = targets.join(" "),
        srv = g.poweroff_from,
    ))
}

/// A domain around the `<interface>` snippet: TCG, the cloud kernel and the guest's initramfs,
/// ACPI (so the guest's poweroff ends the domain), serial console into a file.
fn domain_xml(name: &str, interface: &str, kernel: &Path, initrd: &Path, console: &Path) -> String {
    format!(
        "<domain type='qemu'>\n  <name>{name}</name>\n  <memory unit='MiB'>256</memory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n    <kernel>{k}</kernel>\n    <initrd>{i}</initrd>\n    \
         <cmdline>console=ttyS0 panic=-1 quiet</cmdline>\n  </os>\n  <features><acpi/></features>\n  \
         <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n  <on_crash>destroy</on_crash>\n  \
         <devices>\n{interface}    <serial type='file'><source path='{c}'/><target port='0'/></serial>\n  </devices>\n</domain>\n",
        k = kernel.display(),
        i = initrd.display(),
        c = console.display(),
    )
}

/// Builds the guest's initramfs and a domain around `interface` (an `<interface>` snippet),
/// validates the domain XML, defines and starts it.
pub fn boot(lv: &mut Libvirt, g: &Guest, interface: &str, assets: &Path, work: &Path) -> Booted {
    let dir = work.join(g.name);
    std::fs::create_dir_all(&dir).unwrap();
    let initrd = build_initramfs(assets, &dir, &script(g)).unwrap();
    boot_with(lv, g.name, interface, assets, &dir, &initrd)
}

/// Defines and starts domain `name` around `interface` with `assets`' kernel and `initrd`
/// (built in `dir`, which also gets the kernel copy, the domain XML and the console log).
pub fn boot_with(
    lv: &mut Libvirt,
    name: &str,
    interface: &str,
    assets: &Path,
    dir: &Path,
    initrd: &Path,
) -> Booted {
    // A private kernel copy: libvirt hands the files to the libvirt-qemu user while the VM runs.
    let kernel = dir.join("vmlinuz");
    std::fs::copy(assets.join("vmlinuz"), &kernel).unwrap();
    let console = dir.join("console.log");
    let xml = dir.join("domain.xml");
    std::fs::write(&xml, domain_xml(name, interface, &kernel, initrd, &console)).unwrap();
    validate(&xml, "domain");
    let started = Instant::now();
    lv.start_domain(name, &xml).unwrap_or_else(|e| panic!("{e}\n{}", lv.logs()));
    Booted { console, started }
}

/// Waits (bounded) until every guest printed RVS-DONE, watching them together so each one's
/// boot time is measured: host wall clock from `virsh start` until its RVS-UP line (the
/// guest's own clock is no use under TCG: its uptime jumps).
pub fn wait_done(guests: &[(&Guest, &Booted)]) {
    let mut up_at = vec![None; guests.len()];
    let mut done_at = vec![None; guests.len()];
    wait_until(GUEST_TIMEOUT, || {
        for (i, (_, b)) in guests.iter().enumerate() {
            let text = b.console();
            if up_at[i].is_none() && text.contains("RVS-UP") {
                up_at[i] = Some(b.started.elapsed());
            }
            if done_at[i].is_none() && text.contains("RVS-DONE") {
                done_at[i] = Some(b.started.elapsed());
            }
        }
        done_at.iter().all(Option::is_some)
    });
    for (i, (g, b)) in guests.iter().enumerate() {
        let text = b.console();
        assert!(
            done_at[i].is_some(),
            "{} did not finish its checks in {GUEST_TIMEOUT:?}; console:\n{text}",
            g.name
        );
        let secs = |d: Option<Duration>| d.unwrap_or_default().as_secs_f64();
        eprintln!(
            "{}: up (RVS-UP on its console) {:.1} s after virsh start, checks done after {:.1} s",
            g.name,
            secs(up_at[i]),
            secs(done_at[i])
        );
    }
}

/// The guest's own verdicts, in target order: (address, reached?).
fn reach_marks(text: &str) -> Vec<(String, bool)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("RVS-REACH "))
        .filter_map(|l| l.split_once(' '))
        .map(|(ip, v)| (ip.to_owned(), v.trim() == "yes"))
        .collect()
}

/// The guest reached exactly the targets it should.
pub fn assert_reach(g: &Guest, b: &Booted) {
    let text = b.console();
    let want: Vec<(String, bool)> = g.targets.iter().map(|(ip, ok)| (ip.to_string(), *ok)).collect();
    assert_eq!(
        reach_marks(&text),
        want,
        "{}: reachability (address, reached) differs; console:\n{text}",
        g.name
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_marks_read_the_console() {
        let text = "noise\nRVS-REACH 198.18.0.1 yes\r\nRVS-REACH 198.18.0.2 no\nRVS-DONE\n";
        assert_eq!(reach_marks(text), [("198.18.0.1".to_owned(), true), ("198.18.0.2".to_owned(), false)]);
    }
}
