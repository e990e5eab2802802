//! A guard for a child process, so a failing test never leaves e.g. a responder running.

use std::process::Child;

/// Owns a child process; dropping it sends SIGKILL to that PID and reaps it.
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Takes ownership of `child`.
    pub fn new(child: Child) -> Self {
        ChildGuard { child }
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The wrapped child, e.g. to take its stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // std's kill targets exactly this (not yet reaped) PID, so it can never hit a recycled one.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
