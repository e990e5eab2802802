//! The control channel between `rvsctl` and `rvswitchd` (like OvS's unixctl): one JSON request
//! per line on a unix socket, one JSON response per line back. The types live here so both ends
//! agree on them; rvsctl reaches the daemon only through this socket.

pub mod client;
pub mod completions;
pub mod flow;
pub mod manpage;
pub mod protocol;
pub mod render;
pub mod topology;

/// Where rvswitchd listens unless told otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/rvswitch/rvswitchd.ctl";
pub mod zones_cli;
