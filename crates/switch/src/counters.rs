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
}

impl DropReason {
    pub const ALL: [DropReason; 7] = [
        DropReason::Runt,
        DropReason::MulticastSource,
        DropReason::VlanNotAllowed,
        DropReason::ReservedMulticast,
        DropReason::DestinationOnIngress,
        DropReason::TxFailed,
        DropReason::RxQueueFull,
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
        }
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

    pub fn count_drop(&self, reason: DropReason, n: u64) {
        self.drops[reason.index()].fetch_add(n, Relaxed);
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Relaxed)
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
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
    /// Non-zero drop counters by reason.
    pub drops: std::collections::BTreeMap<String, u64>,
}

impl CounterSnapshot {
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }
}
