//! Tunnel ports (Open vSwitch's Interface `type=vxlan` and `type=geneve`): Ethernet frames to
//! and from a remote host inside UDP, one shared socket per (local address, UDP port),
//! demultiplexed by (remote address, VNI).

mod config;
mod endpoint;
mod port;
mod underlay;

pub use config::{max_inner_frame, underlay_mtu_problem, Outer, TunnelConfig, TunnelProto, DEFAULT_TTL};
pub use endpoint::{Endpoint, EndpointKey, TunnelEndpoints};
pub use port::TunnelPort;
pub use underlay::{probe, Path};
