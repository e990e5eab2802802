//! Per-egress-port queues for one receive batch, flushed with one `send_batch` per port, so
//! sending is batched like receiving. Frames are never copied: each queued copy is described by
//! its index in the receive batch and its encapsulation, and the tag bytes live here. The
//! frame's offload header (partial checksum, GSO) travels with it, its offsets moved by a push
//! or pop.

use std::io::IoSlice;

use netdev::{Netdev, NetdevError, RxBatch, TxFrame};
use switch::{egress_parts, DropReason, Encap, PortCounters};

#[derive(Clone, Copy, Debug)]
pub struct TxItem {
    pub frame: u16,
    pub ingress_tagged: bool,
    pub encap: Encap,
}

/// Reusable scratch space; after warm-up a flush allocates nothing.
#[derive(Default)]
pub struct TxScratch {
    queues: Vec<Vec<TxItem>>,
    /// Slots whose queue is non-empty, in first-queued order: reset and flush visit only these,
    /// so per-batch work does not grow with the number of ports.
    touched: Vec<usize>,
    tags: Vec<[u8; 4]>,
    lens: Vec<usize>,
    iov: Vec<IoSlice<'static>>,
    ranges: Vec<(usize, usize)>,
    frames: Vec<TxFrame<'static>>,
}

/// Empties a Vec and hands back its allocation for elements of another lifetime. The standard
/// library collects a `map` over `into_iter` in place when the layouts match, so no new
/// allocation happens; the closure never runs because the Vec is empty.
fn recycle<'a, 'b>(mut v: Vec<TxFrame<'a>>) -> Vec<TxFrame<'b>> {
    v.clear();
    v.into_iter().map(|_| -> TxFrame<'b> { unreachable!("vector was cleared") }).collect()
}

fn recycle_iov<'a, 'b>(mut v: Vec<IoSlice<'a>>) -> Vec<IoSlice<'b>> {
    v.clear();
    v.into_iter().map(|_| -> IoSlice<'b> { unreachable!("vector was cleared") }).collect()
}

/// Bytes the egress encapsulation adds (+4, tag pushed) or removes (−4, popped) after the MACs,
/// so the offload header's offsets can follow.
fn tag_delta(ingress_tagged: bool, encap: Encap) -> i32 {
    packet::vlan::retag_delta(ingress_tagged, encap.is_tagged())
}

impl TxScratch {
    /// Makes sure there is one (empty) queue per port slot. Only queues used by the previous
    /// batch need emptying; growing happens once per topology size.
    pub fn reset(&mut self, slots: usize) {
        for &s in &self.touched {
            if let Some(q) = self.queues.get_mut(s) {
                q.clear();
            }
        }
        self.touched.clear();
        if self.queues.len() < slots {
            self.queues.resize_with(slots, Vec::new);
        }
    }

    /// Queues one copy for `slot` (ignored if `slot` has no queue: never sized by `reset`).
    #[inline]
    pub fn push(&mut self, slot: usize, item: TxItem) {
        let Some(q) = self.queues.get_mut(slot) else { return };
        if q.is_empty() {
            self.touched.push(slot);
        }
        q.push(item);
    }

    /// Number of slots with queued copies.
    pub fn touched_len(&self) -> usize {
        self.touched.len()
    }

    /// The `i`-th slot with queued copies (`i < touched_len()`).
    pub fn touched_slot(&self, i: usize) -> usize {
        self.touched[i]
    }

    /// Sends what is queued for `slot` on `dev`. Counts tx and tx-failed drops on `counters`.
    pub fn flush(
        &mut self,
        slot: usize,
        rx: &RxBatch,
        dev: &mut dyn Netdev,
        counters: &PortCounters,
    ) -> Result<(), NetdevError> {
        let Some(items) = self.queues.get(slot) else { return Ok(()) };
        if items.is_empty() {
            return Ok(());
        }
        self.tags.clear();
        self.tags.extend(items.iter().map(|it| it.encap.tag_bytes()));
        self.lens.clear();
        self.ranges.clear();
        let mut iov: Vec<IoSlice<'_>> = recycle_iov(std::mem::take(&mut self.iov));
        for (it, tag) in items.iter().zip(self.tags.iter()) {
            let frame = rx.frame(usize::from(it.frame));
            let (parts, n) = egress_parts(frame, it.ingress_tagged, it.encap, tag);
            let start = iov.len();
            let mut len = 0;
            for p in &parts[..n] {
                len += p.len();
                iov.push(IoSlice::new(p));
            }
            self.lens.push(len);
            self.ranges.push((start, iov.len()));
        }
        let mut frames: Vec<TxFrame<'_>> = recycle(std::mem::take(&mut self.frames));
        frames.extend(self.ranges.iter().zip(items.iter()).map(|(&(a, b), it)| TxFrame {
            vnet: rx.vnet(usize::from(it.frame)).shifted(tag_delta(it.ingress_tagged, it.encap)),
            parts: &iov[a..b],
        }));
        let result = dev.transmit(&frames);
        let sent = *result.as_ref().unwrap_or(&0);
        let bytes: usize = self.lens[..sent.min(self.lens.len())].iter().sum();
        counters.count_tx(sent as u64, bytes as u64);
        let failed = items.len().saturating_sub(sent);
        // Of the frames not sent, those the device refused as too big have their own reason.
        let too_big = (dev.take_oversize_drops() as usize).min(failed);
        if too_big > 0 {
            counters.count_drop(DropReason::TooBigForUnderlay, too_big as u64);
        }
        if failed > too_big {
            counters.count_drop(DropReason::TxFailed, (failed - too_big) as u64);
        }
        self.frames = recycle(frames);
        self.iov = recycle_iov(iov);
        result.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(frame: u16) -> TxItem {
        TxItem { frame, ingress_tagged: false, encap: Encap::Untagged }
    }

    #[test]
    fn only_touched_slots_are_visited_and_reset() {
        let mut tx = TxScratch::default();
        tx.reset(1000);
        tx.push(7, item(0));
        tx.push(3, item(1));
        tx.push(7, item(2));
        tx.push(5000, item(3)); // no queue for it: ignored, no panic
        let touched: Vec<usize> = (0..tx.touched_len()).map(|i| tx.touched_slot(i)).collect();
        assert_eq!(touched, vec![7, 3], "first-queued order, each slot once");
        assert_eq!(tx.queues[7].len(), 2);
        tx.reset(1000);
        assert_eq!(tx.touched_len(), 0);
        assert!(tx.queues.iter().all(|q| q.is_empty()));
    }
}
