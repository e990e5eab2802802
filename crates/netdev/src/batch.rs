//! Receive buffers for a batch of frames, allocated once per batch and reused for every receive so
//! the hot path never allocates.

use std::sync::Arc;

use crate::ring::RingMem;
use crate::vnet::{VnetHdr, VNET_HDR_LEN};

/// Bytes kept free before each received frame, so a VLAN tag the kernel stripped can be put back
/// in place by moving only the 12 MAC-address bytes, never the payload.
pub const HEADROOM: usize = 4;

/// Largest frame a slot holds. AF_PACKET on veth delivers GSO super-frames of up to 64 KiB, plus
/// room for link-layer headers.
pub const MAX_FRAME: usize = 65536 + 64;

/// Where a frame starts in its slot: the virtio-net header is received into the first
/// `VNET_HDR_LEN` bytes, then `HEADROOM` bytes stay free for a re-inserted tag.
pub(crate) const FRAME_AT: usize = VNET_HDR_LEN + HEADROOM;

/// What the kernel writes per received frame: virtio-net header, then the frame.
pub(crate) const RX_AREA: usize = VNET_HDR_LEN + MAX_FRAME;

/// Size of one slot: header, headroom and the largest frame.
pub(crate) const SLOT: usize = FRAME_AT + MAX_FRAME;

/// Length of the two MAC addresses that precede the EtherType / VLAN tag.
const MACS_LEN: usize = 12;

/// Where a held frame lives.
#[derive(Clone, Copy, Debug)]
struct Loc {
    /// Offset into `buf`, or into the ring mapping when `ring` is set.
    off: usize,
    len: usize,
    ring: bool,
}

/// `capacity` preallocated frame slots filled by [`crate::Netdev::recv_batch`].
///
/// A received frame lives in one of the batch's own slots, or — for ports with a receive ring —
/// in place in the ring shared with the kernel, held until the batch is cleared or refilled
/// (so frames must be forwarded before the next receive, which is how the datapath works
/// anyway). Frames are numbered `0..len()` in arrival order; a frame the backend skipped
/// (truncated, our own echo) leaves no gap in that numbering.
pub struct RxBatch {
    /// `capacity * SLOT` bytes. Zero-initialised: `calloc` maps pages lazily, so an unused
    /// 64 KiB slot costs no physical memory until a super-frame arrives.
    buf: Vec<u8>,
    /// Location of each held frame; `capacity` entries, first `len` valid. Invariant: an own
    /// frame lies within one slot of `buf`; a ring frame lies within one ring slot listed in
    /// `held`, of the mapping in `ring`.
    frames: Vec<Loc>,
    /// Offload metadata of each held frame (checksum/GSO state from the kernel).
    vnet: Vec<VnetHdr>,
    len: usize,
    /// The ring that `held` slots belong to (kept mapped while we hold any).
    ring: Option<Arc<RingMem>>,
    /// Header offsets of the ring slots we hold; handed back to the kernel on clear/drop.
    held: Vec<usize>,
}

impl Drop for RxBatch {
    fn drop(&mut self) {
        self.release_ring();
    }
}

impl RxBatch {
    /// Allocates `capacity` slots of `HEADROOM + MAX_FRAME` bytes each (~64 KiB per slot).
    pub fn new(capacity: usize) -> Self {
        RxBatch {
            buf: vec![0; capacity.saturating_mul(SLOT)],
            frames: vec![Loc { off: 0, len: 0, ring: false }; capacity],
            vnet: vec![VnetHdr::default(); capacity],
            len: 0,
            ring: None,
            held: Vec::with_capacity(capacity),
        }
    }

    /// Number of slots, i.e. the most frames one receive call can return.
    pub fn capacity(&self) -> usize {
        self.frames.len()
    }

    /// Frames held since the last receive.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no frames are held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frame `i` as received (VLAN tag re-inserted if the kernel had stripped it).
    ///
    /// # Panics
    /// If `i >= self.len()`: that is a bug in the caller, not bad input.
    pub fn frame(&self, i: usize) -> &[u8] {
        assert!(i < self.len, "frame {i} out of range (len {})", self.len);
        let Loc { off, len, ring } = self.frames[i];
        if !ring {
            return &self.buf[off..off + len];
        }
        // SAFETY: ring frames lie in slots listed in `held`, which the kernel leaves alone until
        // we release them (only on `&mut self`); `&self` here rules out a live `frame_mut`.
        self.ring.as_ref().and_then(|r| unsafe { r.bytes(off, len) }).unwrap_or(&[])
    }

    /// Offload metadata of frame `i` (all zero for a plain, complete frame); offsets already
    /// account for a re-inserted VLAN tag.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn vnet(&self, i: usize) -> VnetHdr {
        assert!(i < self.len, "frame {i} out of range (len {})", self.len);
        self.vnet[i]
    }

    /// Mutable frame `i`, e.g. to rewrite a VLAN tag in place before forwarding.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn frame_mut(&mut self, i: usize) -> &mut [u8] {
        assert!(i < self.len, "frame {i} out of range (len {})", self.len);
        let Loc { off, len, ring } = self.frames[i];
        if !ring {
            return &mut self.buf[off..off + len];
        }
        // SAFETY: as in `frame`; `&mut self` makes this the only reference into the batch's
        // frames, and distinct frames never share bytes.
        self.ring.as_ref().and_then(|r| unsafe { r.bytes_mut(off, len) }).unwrap_or(&mut [])
    }

    /// Forgets all held frames (the slots stay allocated; ring slots go back to the kernel).
    pub fn clear(&mut self) {
        self.release_ring();
        self.len = 0;
    }

    fn release_ring(&mut self) {
        if let Some(r) = &self.ring {
            for &off in &self.held {
                r.release(off);
            }
        }
        self.held.clear();
    }

    /// Prepares to take frames from `ring`: releases what is held and remembers the mapping.
    pub(crate) fn begin_ring(&mut self, ring: &Arc<RingMem>) {
        self.clear();
        if !self.ring.as_ref().is_some_and(|r| Arc::ptr_eq(r, ring)) {
            self.ring = Some(ring.clone());
        }
    }

    /// Records the ring slot with header at `slot_off` as frame `out`: `area_off`/`len` locate
    /// its virtio-net header plus frame in the mapping. A stripped VLAN tag is re-inserted in
    /// place (in the slot). Requires a prior [`RxBatch::begin_ring`] with the same `ring`; on
    /// false nothing is recorded and the caller still owns the slot.
    pub(crate) fn set_ring_frame(
        &mut self,
        out: usize,
        ring: &Arc<RingMem>,
        slot_off: usize,
        area_off: usize,
        len: usize,
        vlan: Option<(u16, u16)>,
    ) -> bool {
        if out >= self.capacity() || !self.ring.as_ref().is_some_and(|r| Arc::ptr_eq(r, ring)) {
            return false;
        }
        // SAFETY: the slot is ours (status "user", taken by the caller, not yet released) and
        // no reference into it exists yet.
        let Some(area) = (unsafe { ring.bytes_mut(area_off, len) }) else { return false };
        let Some((at, flen, vnet)) = place(area, vlan) else { return false };
        self.held.push(slot_off);
        self.frames[out] = Loc { off: area_off + at, len: flen, ring: true };
        self.vnet[out] = vnet;
        true
    }

    /// Pointers to each slot's receive area (`RX_AREA` bytes: virtio-net header then frame), for
    /// iovecs that point into all slots at once. They are derived from one borrow of the buffer,
    /// so they stay valid together until the batch is next touched through `&mut self`.
    pub(crate) fn rx_area_ptrs(&mut self) -> impl Iterator<Item = *mut u8> + '_ {
        let base = self.buf.as_mut_ptr();
        // wrapping_add never leaves the allocation here: slot < capacity, so
        // slot * SLOT + HEADROOM < buf.len().
        (0..self.frames.len()).map(move |slot| base.wrapping_add(slot * SLOT + HEADROOM))
    }

    /// The `RX_AREA`-byte receive area of slot `slot`: the kernel writes the virtio-net header
    /// and right after it the frame.
    pub(crate) fn rx_area(&mut self, slot: usize) -> Option<&mut [u8]> {
        let start = slot.checked_mul(SLOT)?.checked_add(HEADROOM)?;
        self.buf.get_mut(start..start + RX_AREA)
    }

    /// Records that output frame `out` is what was received into slot `slot` (`len` bytes:
    /// virtio-net header plus frame), re-inserting a stripped VLAN tag `(tpid, tci)` in place when
    /// given. `out <= slot` lets the backend skip frames without copying. Returns false (and
    /// records nothing) on out-of-range input or a message too short for its header.
    pub(crate) fn set_frame(
        &mut self,
        out: usize,
        slot: usize,
        len: usize,
        vlan: Option<(u16, u16)>,
    ) -> bool {
        if out >= self.capacity() || slot >= self.capacity() || !(VNET_HDR_LEN..=RX_AREA).contains(&len) {
            return false;
        }
        let start = slot * SLOT + HEADROOM;
        let Some((at, flen, vnet)) = place(&mut self.buf[start..start + len], vlan) else { return false };
        self.frames[out] = Loc { off: start + at, len: flen, ring: false };
        self.vnet[out] = vnet;
        true
    }

    /// Appends a plain frame (no offloads) that `write` puts into the next free slot: it gets
    /// `MAX_FRAME` bytes and returns the frame's length (`None`: nothing to add). For backends
    /// outside this crate that make frames instead of receiving them (the VPN gateway port).
    /// False when the batch is full or `write` added nothing.
    pub fn push_with(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        let n = self.len;
        let Some(area) = self.rx_area(n) else { return false };
        area[..VNET_HDR_LEN].fill(0);
        let Some(len) = write(&mut area[VNET_HDR_LEN..]).filter(|l| *l <= MAX_FRAME) else { return false };
        if !self.set_frame(n, n, VNET_HDR_LEN + len, None) {
            return false;
        }
        self.len = n + 1;
        true
    }

    /// Sets how many frames are held; clamped to the capacity.
    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len.min(self.capacity());
    }
}

/// `area` is what the kernel wrote: a virtio-net header, then the frame. Re-inserts a stripped
/// VLAN tag `(tpid, tci)` in place by moving the 12 MAC bytes 4 bytes back (over the tail of the
/// header, already parsed). Returns where the frame starts in `area`, its length and its offload
/// header (offsets moved past an inserted tag); None if `area` is shorter than a header.
fn place(area: &mut [u8], vlan: Option<(u16, u16)>) -> Option<(usize, usize, VnetHdr)> {
    let hdr: &[u8; VNET_HDR_LEN] = area.get(..VNET_HDR_LEN)?.try_into().ok()?;
    let mut vnet = VnetHdr::from_bytes(hdr);
    let mut off = VNET_HDR_LEN;
    let mut len = area.len() - VNET_HDR_LEN;
    if let Some((tpid, tci)) = vlan {
        // A frame shorter than two MACs cannot have carried a tag; leave it as is.
        if len >= MACS_LEN {
            let new_off = off - HEADROOM;
            area.copy_within(off..off + MACS_LEN, new_off);
            let tag = &mut area[new_off + MACS_LEN..new_off + MACS_LEN + HEADROOM];
            tag[..2].copy_from_slice(&tpid.to_be_bytes());
            tag[2..].copy_from_slice(&tci.to_be_bytes());
            off = new_off;
            len += HEADROOM;
            vnet = vnet.shifted(HEADROOM as i32);
        }
    }
    Some((off, len, vnet))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes what the kernel would: a plain virtio-net header, then `data`. Returns the length
    /// the kernel would report.
    fn fill(b: &mut RxBatch, slot: usize, data: &[u8]) -> usize {
        let area = b.rx_area(slot).unwrap();
        area[..VNET_HDR_LEN].fill(0);
        area[VNET_HDR_LEN..VNET_HDR_LEN + data.len()].copy_from_slice(data);
        VNET_HDR_LEN + data.len()
    }

    #[test]
    fn new_batch_is_empty_with_capacity() {
        let b = RxBatch::new(4);
        assert_eq!(b.capacity(), 4);
        assert_eq!(b.len(), 0);
        assert!(b.is_empty());
        let z = RxBatch::new(0);
        assert_eq!(z.capacity(), 0);
    }

    #[test]
    fn untagged_frame_round_trips() {
        let mut b = RxBatch::new(2);
        let f: Vec<u8> = (0..60u8).collect();
        let n = fill(&mut b, 1, &f);
        assert!(b.set_frame(0, 1, n, None));
        b.set_len(1);
        assert_eq!(b.frame(0), &f[..]);
        b.frame_mut(0)[0] = 0xff;
        assert_eq!(b.frame(0)[0], 0xff);
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn vlan_tag_is_reinserted_after_macs() {
        let mut b = RxBatch::new(1);
        let mut f = vec![0xaa; 6];
        f.extend([0xbb; 6]);
        f.extend([0x08, 0x00, 1, 2, 3]);
        let n = fill(&mut b, 0, &f);
        assert!(b.set_frame(0, 0, n, Some((0x8100, (3 << 13) | 10))));
        b.set_len(1);
        let got = b.frame(0);
        assert_eq!(got.len(), f.len() + 4);
        assert_eq!(&got[..12], &f[..12]);
        assert_eq!(&got[12..16], &[0x81, 0x00, 0x60, 0x0a]);
        assert_eq!(&got[16..], &f[12..]);
    }

    #[test]
    fn priority_tag_with_zero_tci_is_reinserted() {
        let mut b = RxBatch::new(1);
        let n = fill(&mut b, 0, &[1; 14]);
        assert!(b.set_frame(0, 0, n, Some((0x88a8, 0))));
        b.set_len(1);
        assert_eq!(&b.frame(0)[12..16], &[0x88, 0xa8, 0, 0]);
    }

    #[test]
    fn runt_frames_are_kept_and_never_tagged() {
        let mut b = RxBatch::new(1);
        let n = fill(&mut b, 0, &[7; 5]);
        assert!(b.set_frame(0, 0, n, Some((0x8100, 1))));
        b.set_len(1);
        assert_eq!(b.frame(0), &[7; 5]);
    }

    #[test]
    fn max_frame_with_tag_fits_in_slot() {
        let mut b = RxBatch::new(2);
        assert!(b.set_frame(1, 1, RX_AREA, Some((0x8100, 5))));
        b.set_len(2);
        assert_eq!(b.frame(1).len(), MAX_FRAME + HEADROOM);
    }

    #[test]
    fn pushed_frames_append_until_full() {
        let mut b = RxBatch::new(2);
        assert!(b.push_with(|buf| {
            buf[..3].copy_from_slice(&[1, 2, 3]);
            Some(3)
        }));
        assert!(!b.push_with(|_| None), "nothing written, nothing added");
        assert!(b.push_with(|buf| {
            buf[0] = 9;
            Some(1)
        }));
        assert!(!b.push_with(|_| Some(1)), "full");
        assert_eq!((b.len(), b.frame(0), b.frame(1)), (2, &[1u8, 2, 3][..], &[9u8][..]));
        assert_eq!(b.vnet(0), VnetHdr::default());
        b.clear();
        assert!(!b.push_with(|_| Some(MAX_FRAME + 1)), "longer than a slot");
        assert!(b.is_empty());
    }

    #[test]
    fn out_of_range_helpers_refuse() {
        let mut b = RxBatch::new(1);
        assert!(!b.set_frame(1, 0, 10, None));
        assert!(!b.set_frame(0, 1, 10, None));
        assert!(!b.set_frame(0, 0, RX_AREA + 1, None));
        assert!(!b.set_frame(0, 0, VNET_HDR_LEN - 1, None), "shorter than its header");
        assert!(b.rx_area(1).is_none());
        assert_eq!(b.rx_area_ptrs().count(), 1);
        b.set_len(5);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn offload_offsets_follow_a_reinserted_tag() {
        let mut b = RxBatch::new(1);
        let hdr =
            VnetHdr { flags: 1, gso_type: 1, hdr_len: 66, gso_size: 1448, csum_start: 34, csum_offset: 16 };
        let area = b.rx_area(0).unwrap();
        area[..VNET_HDR_LEN].copy_from_slice(&hdr.to_bytes());
        area[VNET_HDR_LEN..VNET_HDR_LEN + 60].fill(9);
        assert!(b.set_frame(0, 0, VNET_HDR_LEN + 60, Some((0x8100, 10))));
        b.set_len(1);
        assert_eq!(b.vnet(0), hdr.shifted(4));
        assert_eq!(b.frame(0).len(), 64);
        assert_eq!(&b.frame(0)[..12], &[9; 12]);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn frame_past_len_panics() {
        let b = RxBatch::new(1);
        let _ = b.frame(0);
    }
}
