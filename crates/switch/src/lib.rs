//! The forwarding pipeline of one bridge, as a deterministic state machine.
//!
//! Like boringtun's `Tunn`, [`Bridge::process`] takes bytes and the time and *tells the caller what
//! to do* (which ports, tagged or not, or why to drop); it makes no syscalls and reads no clock.
//! Isolation by construction: a frame is bound to one VLAN of one bridge at ingress and its
//! outputs are chosen only among ports of that bridge that carry that VLAN.

mod bridge;
mod counters;
mod events;
mod keyed_hash;
mod mac_table;
mod mirror;
mod security;
mod trace;
mod vlan;

pub use bridge::{egress_parts, Bridge, BridgeSettings, Encap, Output, PortSpec, Verdict};
pub use counters::{CounterSnapshot, DropReason, PortCounters};
pub use events::{
    SwitchEvent, MAX_MOVES_PER_SECOND, MAX_PENDING as MAX_PENDING_EVENTS, SECURITY_EVENT_INTERVAL_MS,
};
pub use mac_table::{FdbEntry, MacStats, MacTable};
pub use mirror::{MirrorCounters, MirrorSpec, Mirrors, MAX_MIRRORS};
pub use security::{
    parse_allowed_ips, BindingEntry, BindingSource, IpPrefix, LeaseEntry, PortSecurity, PortSecurityEntry,
    SecurityConfigError, SecurityMode,
};
pub use trace::{Stage, Trace, TraceOutput, TraceStep, TraceVerdict};
pub use vlan::{PortVlan, VlanConfigError, VlanMode, VlanSet, HOST_ONLY_VID};

/// Milliseconds on a monotonic clock; the caller supplies it so tests can inject time.
pub type Millis = u64;
