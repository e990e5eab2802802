//! A zone's L3 edge, pure: the wg-quick file that configures its WireGuard uplink, and the
//! gateway state machine between the zone's frames and the tunnel's IP packets. Like boringtun's
//! `Tunn`, it takes bytes and says what to do with them; it does no I/O and reads no clock.

mod counters;
mod drops;
mod gateway;
mod neighbours;
mod prefix;
mod services;
mod v6;
pub mod wgconf;

pub use counters::{DHCP_COUNTERS, NAT_ACTIVE, NAT_COUNTERS};
pub use drops::{DropReason, Drops};
pub use gateway::{FromTunnel, FromZone, Gateway, GatewaySpec, MIN_MTU};
pub use neighbours::Neighbours;
pub use prefix::{Prefix, PrefixError};
pub use services::{Now, DEFAULT_TUNNEL_MTU};
pub use v6::{GatewayV6, ADVERT_INTERVAL_MS, DNS_LIFETIME_SECS, ROUTER_LIFETIME_SECS};
pub use wgconf::{WgConfError, WgConfig};
