//! Port security: a VM port speaks only with its own addresses. Pure like the rest of the
//! pipeline: the bridge calls [`check::admit`] for frames from secured ports and
//! [`bindings::Bindings::snoop`] for frames from trusted ones, with the time as an argument.

mod bindings;
mod check;
mod config;

pub(crate) use bindings::Bindings;
pub use bindings::LeaseEntry;
pub(crate) use check::{admit, limit_reachable, Ctx};
pub use config::{parse_allowed_ips, IpPrefix, PortSecurity, SecurityConfigError, SecurityMode};
