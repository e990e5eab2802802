//! rvswitchd, the daemon: config → desired state → reconcile → forwarding thread, plus the
//! control socket `rvsctl` talks to.

pub mod config;
pub mod control;
pub mod control_loop;
pub mod daemon;
pub mod datapath;
pub mod db;
pub mod device;
pub mod events;
pub mod fdstore;
pub mod handover;
pub mod listen;
pub mod metrics;
pub mod reconcile;
pub mod service;
pub mod state;
pub mod tunnel;
pub mod unixctl;
pub mod unpin;
pub mod vpn;
