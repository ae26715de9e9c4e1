//! Remora's page tables: map, unmap, protect, translate, accessed/dirty harvest, TLB
//! invalidation, and the encoding of far pages in non-present entries.
//!
//! What this crate owns, module by module (each module's docs say what it must never do):
//! - [`entry`]: the bits of one entry. Present entries through the `x86_64` crate's
//!   types; far-page states ([`FarPte`]) in entries whose PRESENT bit is clear;
//!   [`AtomicPte`], through which the pager claims a page (compare-and-swap to in flight)
//!   and the evictor harvests ACCESSED and DIRTY.
//! - [`table`]: [`PhysMemory`], how tables are reached in physical memory (a direct map
//!   in the kernel, a heap arena on the host), and the crate's only `unsafe` block.
//! - [`space`]: [`AddressSpace`], the 4-level tree: 4 KiB and 2 MiB mappings, empty
//!   table reclamation, harvest and the evictor's 32-page [`Scan`].
//! - [`tlb`]: [`Tlb`] and [`FlushBatch`] ("one TLB flush per batch"); `HardwareTlb`
//!   (`invlpg`, CR3 reload) exists only when built for `target_os = "none"`.
//! - [`testing`]: host stand-ins for the hardware (tables on the heap, a recording TLB,
//!   a simulated CPU access). Not for the image.
//!
//! This crate decides nothing: which page to evict, fetch or prefetch is the pager's,
//! evictor's and prefetcher's. It never reads configuration: the flush-all threshold
//! arrives as `FlushBatch`'s const parameter from the image's glue.
//!
//! ```
//! use remora_mmu::testing::{RecordingTlb, TableArena};
//! use remora_mmu::{AddressSpace, FlushBatch, Page, PageTableFlags, PhysAddr, PhysFrame, VirtAddr};
//!
//! let mut space = AddressSpace::new(TableArena::new()).unwrap();
//! let page: Page = Page::containing_address(VirtAddr::new(0x4000_0000));
//! let frame = PhysFrame::containing_address(PhysAddr::new(0x20_0000));
//! space.map(page, frame, PageTableFlags::WRITABLE).unwrap();
//! assert_eq!(space.translate(VirtAddr::new(0x4000_0123)).unwrap().phys, PhysAddr::new(0x20_0123));
//!
//! let mut batch: FlushBatch = FlushBatch::new();
//! let gone = space.unmap(page, &mut batch).unwrap();
//! assert_eq!(gone.frame, frame);
//! batch.flush(&mut RecordingTlb::new());
//! ```

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod entry;
pub mod space;
pub mod table;
pub mod testing;
pub mod tlb;

pub use entry::{AtomicPte, Claimed, ClearBits, FarPte, InvalidPte, PresentPte};
pub use space::{
    AddressSpace, Fault, Granule, LeafSize, MapError, SCAN_PAGES, Scan, Translation, Unmapped,
};
pub use table::{Entries, PhysMemory, static_entries};
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use tlb::HardwareTlb;
pub use tlb::{DEFAULT_FLUSH_ALL_THRESHOLD, FlushBatch, Flushed, Tlb};

pub use x86_64::structures::paging::{
    Page, PageSize, PageTable, PageTableFlags, PhysFrame, Size2MiB, Size4KiB, page::PageRange,
    page_table::PageTableEntry,
};
pub use x86_64::{PhysAddr, VirtAddr};
