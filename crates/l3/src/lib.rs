//! A zone gateway's IP services as pure state machines: NAT ([`nat`]), a DHCP server
//! ([`dhcp`]), TCP MSS clamping ([`mss`]), ICMP "too big" errors ([`icmp_error`]) and IPv6
//! neighbor discovery ([`nd`]).
//!
//! Everything takes and returns IP packets without a link header (`&mut [u8]` rewritten in
//! place, or a `Vec<u8>` to send), and time as an argument ([`Millis`], a monotonic clock in
//! milliseconds, as in the `switch` crate). Nothing here does I/O or reads a clock: the
//! gateway wires these into its frame handling, the daemon does the syscalls. Byte layout
//! comes from the `packet` crate only.

#![forbid(unsafe_code)]

pub mod csum;
pub mod dhcp;
pub mod frag;
pub mod icmp_error;
pub mod mss;
pub mod nat;
pub mod nd;
pub mod ratelimit;

#[cfg(test)]
mod testpkt;

#[cfg(test)]
mod robustness;

/// Milliseconds on a monotonic clock the caller reads.
pub type Millis = u64;
