//! Zero-copy views over Ethernet frames and small builders for the frames tests and tools craft.
//!
//! Views validate length once (`parse`), so no accessor can index out of bounds afterwards.
//! Nothing here allocates or does I/O: the switch calls this on every frame.

pub mod arp;
mod builder;
pub mod checksum;
mod craft;
pub mod csum;
pub mod dhcp;
pub mod dhcpv6;
mod error;
mod ethernet;
pub mod geneve;
pub mod gso;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv4_ports;
pub mod ipv6;
mod mac;
pub mod tcp;
pub mod ttl;
pub mod tunnel;
pub mod udp;
mod view;
pub mod vlan;
pub mod vxlan;

pub use builder::{arp_request, ethernet_frame, ipv4_udp, FrameSpec};
pub use craft::{
    arp_frame, dhcp_message, dhcpv6_message, dhcpv6_message_len, ipv6_frame, ArpSpec, DhcpSpec,
    DHCP_MESSAGE_MAX,
};
pub use error::PacketError;
pub use ethernet::{
    EthernetHeader, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN,
    HEADER_LEN as ETHERNET_HEADER_LEN,
};
pub use mac::MacAddr;
pub use vlan::{VlanTag, VLAN_TAG_LEN};
