//! The first step of a clean stop: the kernel fast path's pins go before anything else.
//!
//! A clean stop takes the fast path out of the kernel, but only at its end (the forwarding
//! thread keeps forwarding until then). A supervisor that SIGKILLs soon after SIGTERM (a process
//! guard, systemd with a short `TimeoutStopSec`) used to catch the daemon in the middle and leave
//! its maps and links pinned in bpffs, where they forwarded on with nobody deciding. Unlinking
//! the pins costs a few unlinks and changes nothing while the process lives (its descriptors keep
//! links and maps alive); from then on the kernel releases them whenever the process ends, by a
//! clean exit or a SIGKILL.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fastpath::pins::PinDir;

use crate::datapath::Datapath;
use crate::fdstore::{FdStore, UnpinNotice};

/// What to unpin, taken from the datapath and the keeper connection before both move into the
/// reconciler (whose lock a stop must not wait for).
pub struct UnpinFirst {
    pins: Option<PinDir>,
    keeper: Option<UnpinNotice>,
}

/// What [`UnpinFirst::run`] did.
#[derive(Debug)]
pub struct Unpinned {
    pub dir: PathBuf,
    pub took: Duration,
    pub result: Result<(), fastpath::Error>,
}

impl UnpinFirst {
    pub fn new(datapath: &Datapath, store: Option<&FdStore>) -> UnpinFirst {
        let pins = datapath.pin_dir().cloned();
        let keeper = match (&pins, store) {
            (Some(_), Some(s)) => s
                .unpin_notice()
                .inspect_err(|e| tracing::warn!("a stop cannot tell the keeper it unpinned: {e}"))
                .ok(),
            _ => None,
        };
        UnpinFirst { pins, keeper }
    }

    /// Unlinks the pins, then tells the keeper (in this order: a keeper that detached its
    /// socket filters while pinned programs still forwarded would see frames twice). Does
    /// something once; `None` when nothing is (or is any more) pinned.
    pub fn run(&mut self) -> Option<Unpinned> {
        let pins = self.pins.take()?;
        let started = Instant::now();
        let result = pins.unlink();
        if let Some(k) = self.keeper.take() {
            k.send();
        }
        Some(Unpinned { dir: pins.root().to_path_buf(), took: started.elapsed(), result })
    }
}
