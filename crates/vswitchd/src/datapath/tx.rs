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
    pub queues: Vec<Vec<TxItem>>,
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
    match (ingress_tagged, encap) {
        (false, Encap::Tagged(_)) => 4,
        (true, Encap::Untagged) => -4,
        _ => 0,
    }
}

impl TxScratch {
    /// Makes sure there is one (empty) queue per port slot.
    pub fn reset(&mut self, slots: usize) {
        if self.queues.len() < slots {
            self.queues.resize_with(slots, Vec::new);
        }
        for q in &mut self.queues[..slots] {
            q.clear();
        }
    }

    /// Sends what is queued for `slot` on `dev`. Counts tx and tx-failed drops on `counters`.
    pub fn flush(
        &mut self,
        slot: usize,
        rx: &RxBatch,
        dev: &mut dyn Netdev,
        counters: &PortCounters,
    ) -> Result<(), NetdevError> {
        let items = &self.queues[slot];
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
        if failed > 0 {
            counters.count_drop(DropReason::TxFailed, failed as u64);
        }
        self.frames = recycle(frames);
        self.iov = recycle_iov(iov);
        result.map(|_| ())
    }
}
