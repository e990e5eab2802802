//! Helpers for integration tests across the workspace: network namespaces as "VMs", veth links,
//! child processes and frame capture, each behind a guard that cleans up even when a test panics.
//! Not for release binaries.

mod capture;
mod child;
mod cmd;
mod names;
mod netns;
mod process;
mod root;
mod veth;
mod wait;

pub use capture::{frame_capture, send_frame};
pub use child::ChildGuard;
pub use cmd::{run, run_quiet_ok};
pub use names::unique;
pub use netns::Netns;
pub use process::{proc_status, raise_nofile};
pub use root::{is_root, require_root};
pub use veth::Veth;
pub use wait::wait_until;
