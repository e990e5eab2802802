//! Where the fast path outlives rvswitchd: its maps and its tc links pinned in bpffs, so a
//! daemon that is killed, upgraded or restarted leaves the kernel forwarding what it had
//! decided, and its successor adopts the same maps (entries, counters, decision slot) and
//! replaces the links with its own.
//!
//! Layout under the pin root (one per daemon instance): `v1/maps/<map name>` (pinned by name by
//! the loader) and `v1/links/<ifindex>` (the TCX link on that device). The layout version keeps
//! a daemon with other map layouts from adopting maps it would misread.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use aya::maps::{Array, Map, MapData};

use crate::Error;

/// The map layout this build writes; another one is never adopted.
pub const LAYOUT: &str = "v1";
/// Where bpffs is mounted when it is not yet (as systemd and most distributions do).
const BPFFS: &str = "/sys/fs/bpf";
/// `statfs.f_type` of bpffs.
const BPF_FS_MAGIC: u32 = 0xcafe_4a11;

/// One daemon's pin directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir {
    root: PathBuf,
}

impl PinDir {
    pub fn new(root: impl Into<PathBuf>) -> PinDir {
        PinDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layout(&self) -> PathBuf {
        self.root.join(LAYOUT)
    }

    /// The directory the loader pins the maps in by name.
    pub fn maps(&self) -> PathBuf {
        self.layout().join("maps")
    }

    fn links(&self) -> PathBuf {
        self.layout().join("links")
    }

    /// Where the link on device `ifindex` is pinned.
    pub fn link(&self, ifindex: u32) -> PathBuf {
        self.links().join(ifindex.to_string())
    }

    /// Whether a previous daemon left pinned state here.
    pub fn exists(&self) -> bool {
        self.root.exists()
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::Pins { dir: self.root.clone(), msg: msg.to_string() }
    }

    /// Makes the directories; mounts bpffs on /sys/fs/bpf first when the root is below it and
    /// nothing is mounted there. A root on another filesystem cannot hold pins: an error.
    pub fn create(&self) -> Result<(), Error> {
        if self.root.starts_with(BPFFS) && !is_bpffs(Path::new(BPFFS)) {
            mount_bpffs().map_err(|e| self.err(format!("mounting bpffs on {BPFFS}: {e}")))?;
        }
        for dir in [self.maps(), self.links()] {
            std::fs::create_dir_all(&dir).map_err(|e| self.err(format!("{}: {e}", dir.display())))?;
        }
        if !is_bpffs(&self.maps()) {
            return Err(self.err("not on a bpf filesystem"));
        }
        Ok(())
    }

    /// The devices a link is pinned for.
    pub fn pinned_links(&self) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir(self.links()) else { return Vec::new() };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
    }

    /// Removes the pin of device `ifindex`'s link: the program leaves the device once no
    /// process holds the link either. Already gone is fine.
    pub fn unpin_link(&self, ifindex: u32) {
        let _ = std::fs::remove_file(self.link(ifindex));
    }

    /// Takes down what a previous daemon left: the socket filters on sockets it may have left
    /// with the descriptor keeper stop hiding frames (first: without links nothing would
    /// forward what they hide), then every pin goes ([`PinDir::unlink`]). For `--datapath
    /// userspace` after a kernel run, and a clean stop.
    pub fn remove(&self) -> Result<(), Error> {
        if !self.exists() {
            return Ok(());
        }
        if let Err(e) = switch_filters_off(&self.maps().join("fp_live")) {
            tracing::debug!("pinned fp_live: {e}");
        }
        self.unlink()
    }

    /// Removes every pin and directory, and nothing else: links and maps whose descriptors a
    /// live process holds stay in the kernel, and go when that process's descriptors close, be
    /// it by a clean exit or SIGKILL. So a daemon that is stopping calls this first (it costs a
    /// few unlinks): a supervisor's SIGKILL any time later cannot leave its fast path behind.
    ///
    /// A link pinned meanwhile by another thread (an attach racing with the stop) keeps its
    /// directory from going; the directory is emptied again, a bounded number of times. Once
    /// the directory is gone nothing can be pinned below it any more.
    pub fn unlink(&self) -> Result<(), Error> {
        const PASSES: usize = 100;
        let mut last = Ok(());
        for _ in 0..PASSES {
            last = self.unlink_once();
            if last.is_ok() {
                break;
            }
        }
        last
    }

    fn unlink_once(&self) -> Result<(), Error> {
        for dir in [self.links(), self.maps()] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                entries.flatten().for_each(|e| drop(std::fs::remove_file(e.path())));
            }
        }
        for dir in [self.links(), self.maps(), self.layout(), self.root.clone()] {
            if let Err(e) = std::fs::remove_dir(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(self.err(format!("{}: {e}", dir.display())));
                }
            }
        }
        Ok(())
    }
}

/// Writes 0 into a pinned `fp_live`: the socket filter then keeps every frame for the slow path.
fn switch_filters_off(path: &Path) -> Result<(), Error> {
    let err = |e: aya::maps::MapError| Error::Map { map: "fp_live", msg: e.to_string() };
    let data = MapData::from_pin(path).map_err(err)?;
    let mut live: Array<MapData, u32> = Array::try_from(Map::Array(data)).map_err(err)?;
    live.set(0, 0, 0).map_err(err)
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: an all-zero statfs is a valid value for the kernel to overwrite.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a live, writable statfs.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as u32 == BPF_FS_MAGIC
}

fn mount_bpffs() -> std::io::Result<()> {
    std::fs::create_dir_all(BPFFS)?;
    let (src, dir, fs, opts) = (c"bpf", CString::new(BPFFS)?, c"bpf", c"mode=0700");
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let rc = unsafe { libc::mount(src.as_ptr(), dir.as_ptr(), fs.as_ptr(), 0, opts.as_ptr().cast()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_maps_and_links_below_the_version() {
        let p = PinDir::new("/sys/fs/bpf/rvswitch/x");
        assert_eq!(p.maps(), Path::new("/sys/fs/bpf/rvswitch/x/v1/maps"));
        assert_eq!(p.link(7), Path::new("/sys/fs/bpf/rvswitch/x/v1/links/7"));
    }

    #[test]
    fn a_directory_outside_bpffs_cannot_hold_pins() {
        let dir = tempfile_dir("outside");
        let p = PinDir::new(dir.join("pins"));
        assert!(matches!(p.create(), Err(Error::Pins { .. })));
        p.remove().unwrap();
        assert!(!p.exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unlink_removes_every_pin_and_directory_and_nothing_foreign() {
        let dir = tempfile_dir("unlink");
        let p = PinDir::new(&dir);
        for d in [p.maps(), p.links()] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(p.maps().join("fp_flows"), b"").unwrap();
        std::fs::write(p.link(7), b"").unwrap();
        p.unlink().unwrap();
        assert!(!p.exists());
        p.unlink().unwrap(); // already gone: fine

        // Something that is not ours below the root: an error, and it stays.
        std::fs::create_dir_all(p.links()).unwrap();
        std::fs::write(dir.join("notes"), b"mine").unwrap();
        assert!(matches!(p.unlink(), Err(Error::Pins { .. })));
        assert!(dir.join("notes").exists() && !p.links().exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// One directory per test: tests run in parallel threads of one process, so a shared one
    /// let one test's cleanup delete the other's files mid-assertion (a CI failure, once).
    fn tempfile_dir(test: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fastpath-pins-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
