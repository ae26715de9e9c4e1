//! Remora's memory allocators: physical frames, the kernel heap, and the far heap the
//! application keeps its data in.
//!
//! | module | owns | must never |
//! |---|---|---|
//! | [`frame`] | the [`FrameAllocator`] interface, its errors and counters | hold state |
//! | `buddy` | [`BuddyAllocator`]: frames in power-of-two blocks, bookkeeping in caller-provided words | touch a frame, use a heap, panic on a bad free |
//! | `heap` | the kernel heap's [`HeapStats`] and out-of-memory [`OomReport`] | allocate (it reports exhaustion) |
//! | `far` | [`FarHeap`]: addresses of the far region, size classes and page runs, metadata in the kernel heap | read or write far memory |
//! | `irq_lock` | [`IrqLock`]: spin lock held inside a critical section (interrupts off) | be held across a wait |
//! | `locked_frames` | [`LockedFrames`]: the kernel's shared frame allocator behind a lock | allocate without it being installed |
//! | `global` | the `GlobalAlloc` impls: [`LockedHeap`], [`LockedFarHeap`], [`SplitHeap`]; the crate's only `unsafe` | decide policy, unwind |
//!
//! Nothing here reads the configuration: the image's glue passes `alloc.heap_size` and
//! `alloc.far_small_max` in at init (see `Config.toml`). Everything is testable on the host.
//!
//! The frame allocator and the kernel heap need no heap; the far heap's bookkeeping uses
//! `alloc` collections, i.e. the kernel heap.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod bittree;
mod buddy;
mod far;
pub mod frame;
mod global;
mod heap;
mod irq_lock;
mod locked_frames;

pub use buddy::{BuddyAllocator, DEFAULT_MAX_ORDER, MAX_SUPPORTED_ORDER};
pub use far::{
    DEFAULT_SMALL_MAX, FarClassStats, FarFreeError, FarHeap, FarHeapError, FarHeapStats,
    LockedFarHeap, PAGE_SIZE,
};
pub use frame::{
    FRAME_SIZE, FrameAllocError, FrameAllocator, FrameFreeError, FrameInitError, FrameStats,
};
pub use global::{LockedHeap, MIN_HEAP_SIZE, SplitHeap};
pub use heap::{HeapInitError, HeapStats, OomReport};
pub use irq_lock::{IrqLock, IrqLockGuard};
pub use locked_frames::LockedFrames;

/// The kernel's frame allocator, installed by the image at boot.
pub static FRAMES: LockedFrames = LockedFrames::empty();

/// The kernel's heap: every `Box`, `Vec` and `String` of the kernel and the app. It is the
/// image's `#[global_allocator]` with the `global-allocator` feature (images turn it on;
/// host tests do not). Until the pager turns on routing to far memory, everything comes
/// from the kernel heap.
#[cfg_attr(feature = "global-allocator", global_allocator)]
pub static HEAP: SplitHeap = SplitHeap::new();
