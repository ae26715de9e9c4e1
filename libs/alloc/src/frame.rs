//! The frame-allocator interface: what the pager, the evictor and the platform ask of
//! whichever physical frame allocator the image chose (`frame_allocator` in
//! `Config.toml`; today only [`crate::BuddyAllocator`]).
//!
//! This module owns the trait, its error values and its counters. It never allocates and
//! holds no state of its own. Physical addresses are plain `u64` byte addresses; a block of
//! order `k` is `2^k` frames of [`FRAME_SIZE`] bytes, aligned to its own size.

use core::fmt;

/// Bytes in one physical frame.
pub const FRAME_SIZE: u64 = 4096;

/// Hands out physical frames in naturally aligned power-of-two blocks.
///
/// Implementations need `&mut self`: the caller puts the allocator behind the lock it
/// wants (a `spin::Mutex` in the image), so the fault path can also use it lock-free from
/// a single owner.
pub trait FrameAllocator {
    /// Allocates `2^order` contiguous frames aligned to their size; returns the physical
    /// address of the first.
    fn alloc_frames(&mut self, order: usize) -> Result<u64, FrameAllocError>;

    /// Returns a block that [`FrameAllocator::alloc_frames`] handed out with the same
    /// `order`. A bad free (double free, wrong order, never allocated) is an error and
    /// changes nothing.
    fn free_frames(&mut self, addr: u64, order: usize) -> Result<(), FrameFreeError>;

    /// Counters: frames free and total, calls, failures.
    fn stats(&self) -> FrameStats;

    /// Allocates one frame.
    fn alloc_frame(&mut self) -> Result<u64, FrameAllocError> {
        self.alloc_frames(0)
    }

    /// Frees one frame allocated with [`FrameAllocator::alloc_frame`].
    fn free_frame(&mut self, addr: u64) -> Result<(), FrameFreeError> {
        self.free_frames(addr, 0)
    }
}

/// Counters of a frame allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FrameStats {
    /// Usable frames the allocator manages (free or allocated).
    pub total_frames: u64,
    /// Frames free now.
    pub free_frames: u64,
    /// Successful allocations (of any order).
    pub allocations: u64,
    /// Successful frees.
    pub frees: u64,
    /// Allocations refused because no free block of the order was left.
    pub failed_allocations: u64,
    /// Frees refused as bad (double free, wrong order, ...).
    pub bad_frees: u64,
    /// The largest order with a free block, if any frame is free.
    pub largest_free_order: Option<usize>,
}

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameAllocError {
    /// No free block of `order` or larger is left.
    OutOfMemory {
        /// The order asked for.
        order: usize,
        /// Frames free when the request failed (fragmented into smaller blocks).
        free_frames: u64,
    },
    /// The order is larger than the allocator's largest block.
    OrderTooLarge {
        /// The order asked for.
        order: usize,
        /// The largest order the allocator hands out.
        max_order: usize,
    },
}

impl fmt::Display for FrameAllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameAllocError::OutOfMemory { order, free_frames } => write!(
                f,
                "out of physical frames: no free block of order {order} ({} KiB); \
                 {free_frames} frames free in smaller blocks; give the image more memory \
                 or lower the pager's local memory",
                (FRAME_SIZE << order) / 1024
            ),
            FrameAllocError::OrderTooLarge { order, max_order } => write!(
                f,
                "frame order {order} is larger than the allocator's maximum {max_order}; \
                 allocate several blocks of order {max_order} instead"
            ),
        }
    }
}

/// Why a free was refused. The allocator's state is unchanged after any of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameFreeError {
    /// The order is larger than the allocator's largest block.
    OrderTooLarge {
        /// The order given.
        order: usize,
        /// The largest order the allocator hands out.
        max_order: usize,
    },
    /// The address is not aligned to the block size of the order.
    Misaligned {
        /// The address given.
        addr: u64,
        /// The order given.
        order: usize,
    },
    /// The address lies outside every range the allocator manages.
    OutOfRange {
        /// The address given.
        addr: u64,
    },
    /// The frame is free already: a double free, or a frame that was never handed out.
    AlreadyFree {
        /// The address given.
        addr: u64,
    },
    /// A block starts here but was allocated with another order.
    WrongOrder {
        /// The address given.
        addr: u64,
        /// The order given.
        order: usize,
        /// The order the block was allocated with.
        allocated_order: usize,
    },
    /// No allocated block starts here: the frame is inside a block, or not usable memory.
    NotAllocated {
        /// The address given.
        addr: u64,
    },
}

impl fmt::Display for FrameFreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameFreeError::OrderTooLarge { order, max_order } => {
                write!(f, "bad frame free: order {order} is larger than the maximum {max_order}")
            }
            FrameFreeError::Misaligned { addr, order } => write!(
                f,
                "bad frame free: {addr:#x} is not aligned to an order-{order} block ({} bytes)",
                FRAME_SIZE << order
            ),
            FrameFreeError::OutOfRange { addr } => write!(
                f,
                "bad frame free: {addr:#x} is outside the memory the frame allocator manages"
            ),
            FrameFreeError::AlreadyFree { addr } => {
                write!(f, "bad frame free: frame {addr:#x} is already free (double free?)")
            }
            FrameFreeError::WrongOrder { addr, order, allocated_order } => write!(
                f,
                "bad frame free: block {addr:#x} was allocated with order {allocated_order}, \
                 freed with order {order}"
            ),
            FrameFreeError::NotAllocated { addr } => write!(
                f,
                "bad frame free: no allocated block starts at {addr:#x} \
                 (inside another block, or not usable memory)"
            ),
        }
    }
}

/// Why a frame allocator could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameInitError {
    /// No usable range holds a whole frame.
    NoUsableMemory,
    /// The bookkeeping slice is shorter than the memory map needs.
    StorageTooSmall {
        /// Words needed (see `BuddyAllocator::storage_words`).
        needed: usize,
        /// Words given.
        given: usize,
    },
    /// The memory map spans more frames than this machine's `usize` can index.
    SpanTooLarge {
        /// The lowest usable address.
        low: u64,
        /// The end of the highest usable range.
        high: u64,
    },
}

impl fmt::Display for FrameInitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameInitError::NoUsableMemory => write!(
                f,
                "frame allocator: the memory map has no usable range holding a whole \
                 {FRAME_SIZE}-byte frame"
            ),
            FrameInitError::StorageTooSmall { needed, given } => write!(
                f,
                "frame allocator: bookkeeping needs {needed} words ({} bytes) but {given} \
                 were given; size it with BuddyAllocator::storage_words",
                needed * 8
            ),
            FrameInitError::SpanTooLarge { low, high } => write!(
                f,
                "frame allocator: usable memory {low:#x}..{high:#x} spans too many frames \
                 to track"
            ),
        }
    }
}
