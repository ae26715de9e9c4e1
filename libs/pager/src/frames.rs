//! The local frame cache: every frame the pager may map, which far page each one holds,
//! and the pool of free ones.
//!
//! This module owns the crate's only `unsafe` code: lending a frame to the transport as a
//! [`LocalBuf`] and zeroing a frame. Both are sound because a frame is either free (only
//! the pool knows it), lent (the transport holds the `LocalBuf`), or mapped at exactly one
//! far page (only the application reaches it, through that mapping, and the pager unmaps
//! and flushes it before taking it back). It never decides which frame to evict.

#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::ptr::NonNull;

use remora_rmem::LocalBuf;

use crate::PAGE_SIZE;

/// A frame's index in the cache.
pub type FrameId = u32;

/// Marks a frame that holds no page.
const NO_PAGE: u64 = u64::MAX;

/// Where the frames of the cache are, as the kernel sees them.
///
/// # Safety
/// Implementors promise that each `(virt, phys)` pair returned by `frame` is one distinct
/// page of RAM, valid for reads and writes at `virt` for the life of the pager, used by
/// nothing but the pager (and, while mapped, the application through the far region).
pub unsafe trait FrameMemory {
    /// Frames in the cache.
    fn frames(&self) -> usize;
    /// The CPU address and physical address of frame `index` (< `frames()`).
    fn frame(&self, index: usize) -> (NonNull<u8>, u64);
}

#[derive(Clone, Copy)]
struct Slot {
    virt: NonNull<u8>,
    phys: u64,
    /// The far page it holds (mapped, being read into, or being written from).
    page: u64,
    /// Whether a prefetch filled it, and what became of that.
    mark: PrefetchMark,
}

/// What the pager knows of a frame's prefetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrefetchMark {
    /// Not filled by a prefetch, or its use is fully accounted for.
    None,
    /// Filled by a prefetch and not seen used: waste if evicted like this.
    Pending,
    /// Seen used (a hit, counted) and not yet reported to the prefetch policy.
    Used,
}

// SAFETY: a slot only describes memory; who may touch it is governed by the pager's
// state machine (see the module docs), not by which thread holds the cache.
unsafe impl Send for Slot {}

/// The frames and their owners.
pub(crate) struct FrameCache {
    slots: Vec<Slot>,
    free: Vec<FrameId>,
}

impl FrameCache {
    pub(crate) fn new(memory: &dyn FrameMemory) -> Self {
        let slots: Vec<Slot> = (0..memory.frames())
            .map(|i| {
                let (virt, phys) = memory.frame(i);
                Slot { virt, phys, page: NO_PAGE, mark: PrefetchMark::None }
            })
            .collect();
        let free = (0..slots.len() as FrameId).rev().collect();
        FrameCache { slots, free }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn free_count(&self) -> usize {
        self.free.len()
    }

    pub(crate) fn take_free(&mut self) -> Option<FrameId> {
        self.free.pop()
    }

    /// Returns `frame` to the pool; it holds no page any more.
    pub(crate) fn release(&mut self, frame: FrameId) {
        let slot = &mut self.slots[frame as usize];
        slot.page = NO_PAGE;
        slot.mark = PrefetchMark::None;
        self.free.push(frame);
    }

    pub(crate) fn phys(&self, frame: FrameId) -> u64 {
        self.slots[frame as usize].phys
    }

    pub(crate) fn page(&self, frame: FrameId) -> Option<u64> {
        let page = self.slots[frame as usize].page;
        (page != NO_PAGE).then_some(page)
    }

    pub(crate) fn set_page(&mut self, frame: FrameId, page: u64, prefetched: bool) {
        let slot = &mut self.slots[frame as usize];
        slot.page = page;
        slot.mark = if prefetched { PrefetchMark::Pending } else { PrefetchMark::None };
    }

    pub(crate) fn mark(&self, frame: FrameId) -> PrefetchMark {
        self.slots[frame as usize].mark
    }

    pub(crate) fn set_mark(&mut self, frame: FrameId, mark: PrefetchMark) {
        self.slots[frame as usize].mark = mark;
    }

    /// The frame whose physical address is `phys`.
    pub(crate) fn find(&self, phys: u64) -> Option<FrameId> {
        self.slots.iter().position(|s| s.phys == phys).map(|i| i as FrameId)
    }

    /// Fills a frame the pager owns (free or claimed for a zero-fill) with zeros.
    pub(crate) fn zero(&mut self, frame: FrameId) {
        let slot = self.slots[frame as usize];
        // SAFETY: the frame is not mapped and not lent (the caller took it from the pool
        // and has not mapped or posted it), so nothing else touches it; `FrameMemory`
        // guarantees `virt` is valid for a page.
        unsafe { core::ptr::write_bytes(slot.virt.as_ptr(), 0, PAGE_SIZE as usize) };
    }

    /// Lends `frame` to the transport.
    ///
    /// The caller must own the frame exclusively until the `LocalBuf` comes back: it is
    /// free-and-claimed (for a read) or unmapped and flushed (for a write-back).
    pub(crate) fn lend(&self, frame: FrameId) -> LocalBuf {
        let slot = self.slots[frame as usize];
        // SAFETY: see the caller's obligation above and `FrameMemory`'s contract.
        unsafe { LocalBuf::new(slot.virt, slot.phys, PAGE_SIZE as usize) }
    }

    /// The CPU address of `frame` (for tests that play the CPU).
    pub(crate) fn virt(&self, frame: FrameId) -> NonNull<u8> {
        self.slots[frame as usize].virt
    }
}
