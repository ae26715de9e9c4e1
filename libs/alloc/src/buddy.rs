//! The buddy frame allocator: physical frames in naturally aligned blocks of `2^order`
//! frames, order `0..=MAX_ORDER`, split on allocation and coalesced with their buddy on
//! free.
//!
//! # Where the bookkeeping lives
//! Nothing is stored in the free frames themselves (the host tests have no physical
//! memory, and the pager must be able to hand a frame to a device without our links in
//! it). All state lives in one `&mut [u64]` the caller provides, sized by
//! [`BuddyAllocator::storage_words`], and in a fixed-size struct:
//!
//! - per order `k`, a *free tree*: a hierarchical bitmap (see `bittree`) with one bit per
//!   aligned block of `2^k` frames, set when that block is free and whole at order `k`.
//!   The lowest free block of an order is found by walking one word per level, so an
//!   allocation costs `O(MAX_ORDER * log64(frames))`;
//! - per order `k`, an *allocated map*: one bit per block, set while a block of exactly
//!   order `k` starting there is handed out. It is what turns a double free, a free with
//!   the wrong order or a free of a frame never handed out into an error value;
//! - per order, the number of free blocks, so the search skips empty orders in `O(1)`.
//!
//! Together that is about four bits per frame: 128 KiB of bookkeeping per GiB of managed
//! memory. In the image, the platform carves these words out of usable memory before
//! handing the rest of the map over (the span only shrinks, so sizing the storage from the
//! whole map is enough).
//!
//! The managed span starts at the lowest usable frame rounded down to a `2^MAX_ORDER`
//! boundary, so block alignment is physical alignment. Frames between usable ranges are
//! never free and never coalesce with anything. The bookkeeping grows with the span, not
//! with the usable total: a map with a usable range far above the others (a hole of
//! terabytes) should be given to two allocators.
//!
//! # What this module must never do
//! Read or write a managed frame, allocate from a heap, or panic on a caller's mistake:
//! bad frees come back as [`FrameFreeError`] and leave the state unchanged.

use core::fmt;
use core::ops::Range;

use crate::bittree::BitTree;
use crate::frame::{
    FRAME_SIZE, FrameAllocError, FrameAllocator, FrameFreeError, FrameInitError, FrameStats,
};

/// The default largest block: `2^10` frames (4 MiB).
pub const DEFAULT_MAX_ORDER: usize = 10;

/// The largest `MAX_ORDER` a [`BuddyAllocator`] accepts: `2^20` frames (4 GiB).
pub const MAX_SUPPORTED_ORDER: usize = 20;

const ORDER_SLOTS: usize = MAX_SUPPORTED_ORDER + 1;

/// A plain bitmap in the storage slice.
#[derive(Clone, Copy, Debug, Default)]
struct FlatBitmap {
    offset: usize,
}

impl FlatBitmap {
    fn test(self, words: &[u64], index: usize) -> bool {
        words[self.offset + index / 64] & (1 << (index % 64)) != 0
    }

    fn set(self, words: &mut [u64], index: usize) {
        words[self.offset + index / 64] |= 1 << (index % 64);
    }

    fn clear(self, words: &mut [u64], index: usize) {
        words[self.offset + index / 64] &= !(1 << (index % 64));
    }
}

/// Where each order's trees sit in the storage slice.
struct StorageLayout {
    free: [BitTree; ORDER_SLOTS],
    allocated: [FlatBitmap; ORDER_SLOTS],
    words: usize,
}

/// The frames the bitmaps cover.
#[derive(Clone, Copy)]
struct Span {
    base_frame: u64,
    frames: usize,
}

/// A buddy allocator over the frames of a memory map, with its bookkeeping in `'a`
/// storage. See the module docs for the layout.
pub struct BuddyAllocator<'a, const MAX_ORDER: usize = DEFAULT_MAX_ORDER> {
    words: &'a mut [u64],
    span: Span,
    free: [BitTree; ORDER_SLOTS],
    allocated: [FlatBitmap; ORDER_SLOTS],
    free_blocks: [u64; ORDER_SLOTS],
    total_frames: u64,
    free_frames: u64,
    allocations: u64,
    frees: u64,
    failed_allocations: u64,
    bad_frees: u64,
}

impl<'a, const MAX_ORDER: usize> BuddyAllocator<'a, MAX_ORDER> {
    const ORDER_IS_SUPPORTED: () = assert!(
        MAX_ORDER <= MAX_SUPPORTED_ORDER,
        "BuddyAllocator: MAX_ORDER must be at most MAX_SUPPORTED_ORDER (20)"
    );

    /// Words of storage [`BuddyAllocator::new`] needs for this memory map.
    pub fn storage_words(usable: &[Range<u64>]) -> Result<usize, FrameInitError> {
        let span = Self::span_of(usable)?;
        Self::layout(span).map(|layout| layout.words)
    }

    /// Takes over the usable byte ranges of a memory map (any order, unaligned, possibly
    /// overlapping each other: each is trimmed inward to whole frames and their union is
    /// managed). `storage` holds all bookkeeping; it is zeroed here and must be at least
    /// [`BuddyAllocator::storage_words`] long. It must not lie in a usable range.
    pub fn new(usable: &[Range<u64>], storage: &'a mut [u64]) -> Result<Self, FrameInitError> {
        let () = Self::ORDER_IS_SUPPORTED;
        let span = Self::span_of(usable)?;
        let layout = Self::layout(span)?;
        if storage.len() < layout.words {
            return Err(FrameInitError::StorageTooSmall {
                needed: layout.words,
                given: storage.len(),
            });
        }
        let words = &mut storage[..layout.words];
        words.fill(0);
        let mut allocator = BuddyAllocator {
            words,
            span,
            free: layout.free,
            allocated: layout.allocated,
            free_blocks: [0; ORDER_SLOTS],
            total_frames: 0,
            free_frames: 0,
            allocations: 0,
            frees: 0,
            failed_allocations: 0,
            bad_frees: 0,
        };
        allocator.mark_usable(usable);
        allocator.merge_buddies();
        for order in 0..=MAX_ORDER {
            let tree = allocator.free[order];
            tree.rebuild_summaries(allocator.words);
            let blocks: u64 = allocator.words[tree.leaf_words()]
                .iter()
                .map(|word| u64::from(word.count_ones()))
                .sum();
            allocator.free_blocks[order] = blocks;
            allocator.free_frames += blocks << order;
        }
        allocator.total_frames = allocator.free_frames;
        Ok(allocator)
    }

    /// Allocates `2^order` frames aligned to their size (the lowest-addressed free block
    /// of the smallest order that fits, split down as needed).
    pub fn alloc(&mut self, order: usize) -> Result<u64, FrameAllocError> {
        if order > MAX_ORDER {
            return Err(FrameAllocError::OrderTooLarge { order, max_order: MAX_ORDER });
        }
        let found = (order..=MAX_ORDER)
            .find(|&k| self.free_blocks[k] > 0)
            .and_then(|k| self.free[k].first(self.words).map(|index| (k, index)));
        let Some((mut k, mut index)) = found else {
            self.failed_allocations += 1;
            return Err(FrameAllocError::OutOfMemory { order, free_frames: self.free_frames });
        };
        self.take_free(k, index);
        while k > order {
            k -= 1;
            index *= 2;
            self.put_free(k, index + 1);
        }
        self.allocated[order].set(self.words, index);
        self.free_frames -= 1 << order;
        self.allocations += 1;
        Ok(self.addr_of(index << order))
    }

    /// Frees a block [`BuddyAllocator::alloc`] returned for the same `order`, merging it
    /// with its buddy as far up as both halves are free.
    pub fn free(&mut self, addr: u64, order: usize) -> Result<(), FrameFreeError> {
        let frame = match self.check_free(addr, order) {
            Ok(frame) => frame,
            Err(error) => {
                self.bad_frees += 1;
                return Err(error);
            }
        };
        let mut index = frame >> order;
        self.allocated[order].clear(self.words, index);
        let mut k = order;
        while k < MAX_ORDER {
            let buddy = index ^ 1;
            if !self.free[k].test(self.words, buddy) {
                break;
            }
            self.take_free(k, buddy);
            index /= 2;
            k += 1;
        }
        self.put_free(k, index);
        self.free_frames += 1 << order;
        self.frees += 1;
        Ok(())
    }

    /// Free blocks of exactly `order` (0 for an order above `MAX_ORDER`).
    pub fn free_blocks(&self, order: usize) -> u64 {
        if order > MAX_ORDER { 0 } else { self.free_blocks[order] }
    }

    /// Whether the frame holding `addr` is free (inside a free block of some order).
    pub fn is_frame_free(&self, addr: u64) -> bool {
        self.frame_index(addr).is_some_and(|frame| self.frame_is_free(frame))
    }

    /// The physical bytes the bitmaps cover: the usable ranges, widened to `2^MAX_ORDER`
    /// frame boundaries.
    pub fn managed_range(&self) -> Range<u64> {
        let start = self.span.base_frame * FRAME_SIZE;
        start..start + self.span.frames as u64 * FRAME_SIZE
    }

    /// The counters.
    pub fn stats(&self) -> FrameStats {
        FrameStats {
            total_frames: self.total_frames,
            free_frames: self.free_frames,
            allocations: self.allocations,
            frees: self.frees,
            failed_allocations: self.failed_allocations,
            bad_frees: self.bad_frees,
            largest_free_order: (0..=MAX_ORDER).rev().find(|&k| self.free_blocks[k] > 0),
        }
    }

    fn span_of(usable: &[Range<u64>]) -> Result<Span, FrameInitError> {
        let mut low = u64::MAX;
        let mut high = 0;
        for (start, end) in usable.iter().filter_map(trim_to_frames) {
            low = low.min(start);
            high = high.max(end);
        }
        if low >= high {
            return Err(FrameInitError::NoUsableMemory);
        }
        let block = 1u64 << MAX_ORDER;
        let base_frame = low & !(block - 1);
        let too_large =
            FrameInitError::SpanTooLarge { low: low * FRAME_SIZE, high: high * FRAME_SIZE };
        let frames = (high - base_frame).div_ceil(block) * block;
        // Every byte address of the span must be representable.
        (base_frame + frames).checked_mul(FRAME_SIZE).ok_or(too_large)?;
        let frames = usize::try_from(frames).map_err(|_| too_large)?;
        Ok(Span { base_frame, frames })
    }

    fn layout(span: Span) -> Result<StorageLayout, FrameInitError> {
        let mut layout = StorageLayout {
            free: [BitTree::default(); ORDER_SLOTS],
            allocated: [FlatBitmap::default(); ORDER_SLOTS],
            words: 0,
        };
        let too_large = FrameInitError::SpanTooLarge {
            low: span.base_frame * FRAME_SIZE,
            high: (span.base_frame + span.frames as u64) * FRAME_SIZE,
        };
        for order in 0..=MAX_ORDER {
            let blocks = span.frames >> order;
            BitTree::words_for(blocks).ok_or(too_large)?;
            layout.free[order] = BitTree::new(blocks, layout.words);
            layout.words = layout.free[order].end();
            layout.allocated[order] = FlatBitmap { offset: layout.words };
            layout.words += blocks.div_ceil(64);
        }
        Ok(layout)
    }

    /// Sets the order-0 bit of every usable frame (a union: overlaps are harmless).
    fn mark_usable(&mut self, usable: &[Range<u64>]) {
        let leaves = self.free[0].leaf_words().start;
        for (start, end) in usable.iter().filter_map(trim_to_frames) {
            let from = (start - self.span.base_frame) as usize;
            let to = (end - self.span.base_frame) as usize;
            set_bit_range(&mut self.words[leaves..], from, to);
        }
    }

    /// Turns every pair of free buddies at order `k` into one free block at `k + 1`,
    /// from order 0 up, so the initial state is fully coalesced.
    fn merge_buddies(&mut self) {
        const EVEN_BITS: u64 = 0x5555_5555_5555_5555;
        for order in 0..MAX_ORDER {
            let parents = self.free[order + 1].leaf_words().start;
            for (i, at) in self.free[order].leaf_words().enumerate() {
                let word = self.words[at];
                let pairs = word & (word >> 1) & EVEN_BITS;
                if pairs == 0 {
                    continue;
                }
                self.words[at] = word & !(pairs | pairs << 1);
                let mut rest = pairs;
                while rest != 0 {
                    let parent = i * 32 + rest.trailing_zeros() as usize / 2;
                    rest &= rest - 1;
                    self.words[parents + parent / 64] |= 1 << (parent % 64);
                }
            }
        }
    }

    fn check_free(&self, addr: u64, order: usize) -> Result<usize, FrameFreeError> {
        if order > MAX_ORDER {
            return Err(FrameFreeError::OrderTooLarge { order, max_order: MAX_ORDER });
        }
        if !addr.is_multiple_of(FRAME_SIZE << order) {
            return Err(FrameFreeError::Misaligned { addr, order });
        }
        let frame = self.frame_index(addr).ok_or(FrameFreeError::OutOfRange { addr })?;
        if self.allocated[order].test(self.words, frame >> order) {
            return Ok(frame);
        }
        if self.frame_is_free(frame) {
            return Err(FrameFreeError::AlreadyFree { addr });
        }
        let allocated_order = (0..=MAX_ORDER)
            .find(|&k| frame % (1 << k) == 0 && self.allocated[k].test(self.words, frame >> k));
        Err(match allocated_order {
            Some(allocated_order) => FrameFreeError::WrongOrder { addr, order, allocated_order },
            None => FrameFreeError::NotAllocated { addr },
        })
    }

    fn frame_is_free(&self, frame: usize) -> bool {
        (0..=MAX_ORDER).any(|k| self.free[k].test(self.words, frame >> k))
    }

    fn frame_index(&self, addr: u64) -> Option<usize> {
        let frame = (addr / FRAME_SIZE).checked_sub(self.span.base_frame)?;
        usize::try_from(frame).ok().filter(|&frame| frame < self.span.frames)
    }

    fn addr_of(&self, frame: usize) -> u64 {
        (self.span.base_frame + frame as u64) * FRAME_SIZE
    }

    fn take_free(&mut self, order: usize, index: usize) {
        self.free[order].clear(self.words, index);
        self.free_blocks[order] -= 1;
    }

    fn put_free(&mut self, order: usize, index: usize) {
        self.free[order].set(self.words, index);
        self.free_blocks[order] += 1;
    }
}

impl<const MAX_ORDER: usize> FrameAllocator for BuddyAllocator<'_, MAX_ORDER> {
    fn alloc_frames(&mut self, order: usize) -> Result<u64, FrameAllocError> {
        self.alloc(order)
    }

    fn free_frames(&mut self, addr: u64, order: usize) -> Result<(), FrameFreeError> {
        self.free(addr, order)
    }

    fn stats(&self) -> FrameStats {
        BuddyAllocator::stats(self)
    }
}

impl<const MAX_ORDER: usize> fmt::Debug for BuddyAllocator<'_, MAX_ORDER> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = self.managed_range();
        f.debug_struct("BuddyAllocator")
            .field("max_order", &MAX_ORDER)
            .field("managed", &format_args!("{:#x}..{:#x}", range.start, range.end))
            .field("stats", &self.stats())
            .finish()
    }
}

/// A usable byte range trimmed inward to whole frames, as frame numbers `[start, end)`.
fn trim_to_frames(range: &Range<u64>) -> Option<(u64, u64)> {
    let start = range.start.div_ceil(FRAME_SIZE);
    let end = range.end / FRAME_SIZE;
    (start < end).then_some((start, end))
}

/// Sets bits `[from, to)` of a bitmap.
fn set_bit_range(words: &mut [u64], from: usize, to: usize) {
    let mut bit = from;
    while bit < to {
        let offset = bit % 64;
        let count = (64 - offset).min(to - bit);
        let mask = if count == 64 { u64::MAX } else { ((1u64 << count) - 1) << offset };
        words[bit / 64] |= mask;
        bit += count;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::single_range_in_vec_init, reason = "a memory map with one usable range")]

    use super::*;

    const MIB: u64 = 1 << 20;

    fn storage_for<const M: usize>(usable: &[Range<u64>]) -> Vec<u64> {
        vec![u64::MAX; BuddyAllocator::<M>::storage_words(usable).unwrap()]
    }

    #[test]
    fn trims_unaligned_ranges_to_whole_frames() {
        let usable = [0x1234..0x5678, 0x10_0000..0x10_0fff];
        let mut words = storage_for::<4>(&usable);
        let buddy = BuddyAllocator::<4>::new(&usable, &mut words).unwrap();
        // 0x2000..0x5000: three frames; the second range holds no whole frame.
        assert_eq!(buddy.stats().total_frames, 3);
        assert!(buddy.is_frame_free(0x2000));
        assert!(buddy.is_frame_free(0x4fff));
        assert!(!buddy.is_frame_free(0x1000));
        assert!(!buddy.is_frame_free(0x5000));
        assert_eq!(buddy.free_blocks(0), 1, "frame 0x4000");
        assert_eq!(buddy.free_blocks(1), 1, "frames 0x2000..0x4000");
    }

    #[test]
    fn overlapping_and_unsorted_ranges_are_a_union() {
        let usable = [MIB..2 * MIB, 0..MIB + 4096, MIB / 2..MIB];
        let mut words = storage_for::<10>(&usable);
        let buddy = BuddyAllocator::<10>::new(&usable, &mut words).unwrap();
        assert_eq!(buddy.stats().total_frames, 512);
        assert_eq!(buddy.free_blocks(9), 1, "0..2M is one order-9 block");
        assert_eq!(buddy.stats().largest_free_order, Some(9));
    }

    #[test]
    fn allocation_splits_and_free_coalesces() {
        let usable = [0..4 * MIB];
        let mut words = storage_for::<10>(&usable);
        let mut buddy = BuddyAllocator::<10>::new(&usable, &mut words).unwrap();
        assert_eq!(buddy.free_blocks(10), 1);
        let frame = buddy.alloc(0).unwrap();
        assert_eq!(frame, 0);
        for order in 0..10 {
            assert_eq!(buddy.free_blocks(order), 1, "one buddy left at order {order}");
        }
        assert_eq!(buddy.alloc(3).unwrap(), 8 * 4096, "the lowest order-3 block");
        buddy.free(frame, 0).unwrap();
        buddy.free(8 * 4096, 3).unwrap();
        assert_eq!(buddy.free_blocks(10), 1);
        assert_eq!(buddy.stats().free_frames, 1024);
    }

    #[test]
    fn bad_frees_are_errors_and_change_nothing() {
        let usable = [0..MIB, 2 * MIB..3 * MIB];
        let mut words = storage_for::<4>(&usable);
        let mut buddy = BuddyAllocator::<4>::new(&usable, &mut words).unwrap();
        let block = buddy.alloc(2).unwrap();
        let before = buddy.stats();
        assert_eq!(
            buddy.free(block, 5),
            Err(FrameFreeError::OrderTooLarge { order: 5, max_order: 4 })
        );
        assert_eq!(
            buddy.free(block + 1, 0),
            Err(FrameFreeError::Misaligned { addr: block + 1, order: 0 })
        );
        assert_eq!(
            buddy.free(block + 4096, 2),
            Err(FrameFreeError::Misaligned { addr: block + 4096, order: 2 })
        );
        assert_eq!(
            buddy.free(block, 1),
            Err(FrameFreeError::WrongOrder { addr: block, order: 1, allocated_order: 2 })
        );
        assert_eq!(
            buddy.free(block + 4096, 0),
            Err(FrameFreeError::NotAllocated { addr: block + 4096 })
        );
        assert_eq!(
            buddy.free(MIB + 4096, 0),
            Err(FrameFreeError::NotAllocated { addr: MIB + 4096 }),
            "a hole in the map"
        );
        assert_eq!(buddy.free(4 * MIB, 0), Err(FrameFreeError::OutOfRange { addr: 4 * MIB }));
        assert_eq!(
            buddy.free(2 * MIB, 0),
            Err(FrameFreeError::AlreadyFree { addr: 2 * MIB }),
            "never allocated"
        );
        let after = buddy.stats();
        assert_eq!(after.bad_frees, 8);
        assert_eq!(FrameStats { bad_frees: before.bad_frees, ..after }, before);
        buddy.free(block, 2).unwrap();
        assert_eq!(
            buddy.free(block, 2),
            Err(FrameFreeError::AlreadyFree { addr: block }),
            "double free"
        );
    }

    #[test]
    fn exhaustion_is_counted_and_explained() {
        let usable = [0..8 * 4096];
        let mut words = storage_for::<3>(&usable);
        let mut buddy = BuddyAllocator::<3>::new(&usable, &mut words).unwrap();
        assert_eq!(buddy.alloc(4), Err(FrameAllocError::OrderTooLarge { order: 4, max_order: 3 }));
        let frames: Vec<u64> = (0..8).map(|_| buddy.alloc(0).unwrap()).collect();
        let error = buddy.alloc(0).unwrap_err();
        assert_eq!(error, FrameAllocError::OutOfMemory { order: 0, free_frames: 0 });
        assert!(error.to_string().contains("no free block of order 0 (4 KiB)"), "{error}");
        buddy.free(frames[1], 0).unwrap();
        assert_eq!(buddy.alloc(1), Err(FrameAllocError::OutOfMemory { order: 1, free_frames: 1 }));
        let stats = buddy.stats();
        assert_eq!((stats.failed_allocations, stats.allocations, stats.frees), (2, 8, 1));
    }

    #[test]
    fn init_errors_name_the_problem() {
        assert_eq!(
            BuddyAllocator::<10>::storage_words(&[0x1001..0x1fff]),
            Err(FrameInitError::NoUsableMemory)
        );
        let usable = [0..MIB];
        let needed = BuddyAllocator::<10>::storage_words(&usable).unwrap();
        let mut words = vec![0; needed - 1];
        let error = BuddyAllocator::<10>::new(&usable, &mut words).unwrap_err();
        assert_eq!(error, FrameInitError::StorageTooSmall { needed, given: needed - 1 });
        assert!(error.to_string().contains("storage_words"));
    }

    #[test]
    fn a_span_past_the_address_space_is_refused() {
        let usable = [u64::MAX - 3 * MIB..u64::MAX];
        assert!(matches!(
            BuddyAllocator::<10>::storage_words(&usable),
            Err(FrameInitError::SpanTooLarge { .. })
        ));
    }

    #[test]
    fn blocks_are_physically_aligned_when_memory_starts_unaligned() {
        // Usable memory starts at 3 frames: order-2 blocks must still be 16 KiB aligned.
        let usable = [3 * 4096..64 * 4096];
        let mut words = storage_for::<4>(&usable);
        let mut buddy = BuddyAllocator::<4>::new(&usable, &mut words).unwrap();
        assert_eq!(buddy.managed_range(), 0..64 * 4096);
        let block = buddy.alloc(2).unwrap();
        assert_eq!(block % (4 * 4096), 0);
        assert!(block >= 3 * 4096);
    }
}
