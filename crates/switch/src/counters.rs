//! Per-port counters: a plain struct of atomics the datapath bumps and any thread may read
//! (Firecracker's metrics pattern). Relaxed ordering: each counter is independent.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// Why the switch dropped a frame. Every drop is counted under exactly one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// Shorter than an Ethernet header (or a tag without its EtherType).
    Runt,
    /// Source MAC has the group bit set: never a legal sender.
    MulticastSource,
    /// The frame's VLAN is not carried by the ingress port.
    VlanNotAllowed,
    /// Destination is a reserved 802.1D link-local address and forward-bpdu is off.
    ReservedMulticast,
    /// The destination was learned on the ingress port itself (never hairpin).
    DestinationOnIngress,
    /// The egress device could not take the frame (queue full, too big, device gone).
    TxFailed,
    /// The kernel dropped the frame before the switch could read it (receive ring full).
    RxQueueFull,
    /// Port security: the source MAC is not one the VM port may use (incl. all-zero).
    SpoofedMac,
    /// Port security: an ARP sender MAC or IP that is not the port's.
    SpoofedArp,
    /// Port security: an IPv4/IPv6 source the port may not use (or an unreadable IP header).
    SpoofedIp,
    /// Port security: a Neighbor Advertisement for an address that is not the port's.
    SpoofedNd,
    /// Port security: a DHCP server message (UDP source port 67, or 547 for DHCPv6) from an
    /// untrusted port.
    RogueDhcp,
    /// Port security: an IPv6 Router Advertisement from an untrusted port.
    RogueRa,
    /// Port security: a frame still carrying a VLAN tag behind a priority tag, or an S-tag.
    HiddenTag,
    /// Port security: the port already has its maximum of learned MACs.
    PortMacLimit,
    /// Larger than a tunnel port's underlay carries once encapsulated (50 bytes for VXLAN).
    TooBigForUnderlay,
    /// Received on a mirror's output port, which is reserved for mirroring (as OvS drops it).
    MirrorOutput,
}

impl DropReason {
    pub const ALL: [DropReason; 17] = [
        DropReason::Runt,
        DropReason::MulticastSource,
        DropReason::VlanNotAllowed,
        DropReason::ReservedMulticast,
        DropReason::DestinationOnIngress,
        DropReason::TxFailed,
        DropReason::RxQueueFull,
        DropReason::SpoofedMac,
        DropReason::SpoofedArp,
        DropReason::SpoofedIp,
        DropReason::SpoofedNd,
        DropReason::RogueDhcp,
        DropReason::RogueRa,
        DropReason::HiddenTag,
        DropReason::PortMacLimit,
        DropReason::TooBigForUnderlay,
        DropReason::MirrorOutput,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::Runt => "runt",
            DropReason::MulticastSource => "multicast-source",
            DropReason::VlanNotAllowed => "vlan-not-allowed",
            DropReason::ReservedMulticast => "reserved-multicast",
            DropReason::DestinationOnIngress => "destination-on-ingress",
            DropReason::TxFailed => "tx-failed",
            DropReason::RxQueueFull => "rx-queue-full",
            DropReason::SpoofedMac => "spoofed-mac",
            DropReason::SpoofedArp => "spoofed-arp",
            DropReason::SpoofedIp => "spoofed-ip",
            DropReason::SpoofedNd => "spoofed-nd",
            DropReason::RogueDhcp => "rogue-dhcp",
            DropReason::RogueRa => "rogue-ra",
            DropReason::HiddenTag => "hidden-tag",
            DropReason::PortMacLimit => "port-mac-limit",
            DropReason::TooBigForUnderlay => "too-big-for-underlay",
            DropReason::MirrorOutput => "mirror-output",
        }
    }

    /// Reasons only port security gives.
    pub fn is_port_security(&self) -> bool {
        (DropReason::SpoofedMac as usize..=DropReason::PortMacLimit as usize).contains(&(*self as usize))
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Live counters of one port.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Of `rx_packets`, those the kernel fast path forwarded without the pipeline seeing them
    /// (the datapath folds them in once a tick); the rest went through userspace.
    pub fast_rx_packets: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
}

impl PortCounters {
    pub fn count_rx(&self, bytes: usize) {
        self.rx_packets.fetch_add(1, Relaxed);
        self.rx_bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub fn count_tx(&self, packets: u64, bytes: u64) {
        self.tx_packets.fetch_add(packets, Relaxed);
        self.tx_bytes.fetch_add(bytes, Relaxed);
    }

    /// `packets` (`bytes`) the kernel fast path received and forwarded on this port.
    pub fn count_fast_rx(&self, packets: u64, bytes: u64) {
        self.rx_packets.fetch_add(packets, Relaxed);
        self.rx_bytes.fetch_add(bytes, Relaxed);
        self.fast_rx_packets.fetch_add(packets, Relaxed);
    }

    pub fn count_drop(&self, reason: DropReason, n: u64) {
        self.drops[reason.index()].fetch_add(n, Relaxed);
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Relaxed)
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        // Before rx_packets (which is bumped first): the fast share never exceeds the total.
        let fast_rx_packets = self.fast_rx_packets.load(Relaxed);
        CounterSnapshot {
            fast_rx_packets,
            rx_packets: self.rx_packets.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            drops: DropReason::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), self.drops(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// A copy of a port's counters at one moment, for display and export.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSnapshot {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Of `rx_packets`, those forwarded by the kernel fast path (absent: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fast_rx_packets: u64,
    /// Non-zero drop counters by reason.
    pub drops: std::collections::BTreeMap<String, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl CounterSnapshot {
    /// Frames received that the userspace pipeline decided.
    pub fn slow_rx_packets(&self) -> u64 {
        self.rx_packets.saturating_sub(self.fast_rx_packets)
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ALL` is in declaration order (counters are indexed by it) and the names match serde's.
    #[test]
    fn all_reasons_indexed_and_named() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(
                serde_json::to_value(r).ok().and_then(|v| v.as_str().map(String::from)).as_deref(),
                Some(r.as_str())
            );
        }
    }
}
