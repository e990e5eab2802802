//! Zones: one declarative file for a multi-VM host's isolated networks.
//!
//! A zone is an isolation domain — one bridge, its portgroups (VLANs), an optional NIC uplink.
//! This crate is the pure core behind `rvsctl zones`: it parses and validates the file (all
//! errors at once, as `file:line:col: what — fix`), turns it into the OVSDB rows it wants
//! ([`desired`]), diffs those against the live rows ([`plan`]) into one guarded transaction,
//! proves isolation from the live rows ([`verify`]) and writes libvirt network XML
//! ([`libvirt`]). It never opens a socket or a file: the CLI reads and passes everything in.
//!
//! The entry point for untrusted text is [`parse`]; it never panics.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod desired;
pub mod diag;
pub mod host;
pub mod libvirt;
pub mod live;
pub mod model;
pub mod plan;
mod raw;
pub mod services;
pub mod show;
mod tunnels;
mod txn;
pub mod validate;
pub mod verify;
mod vpn6;

pub use diag::{Diagnostic, Pos};
pub use model::{
    tunnel_port_name, vpn_port_name, Mac, Model, Portgroup, Uplink, Vm, VpnTunnel, VpnUplink, Zone,
};
pub use validate::{parse, render};
