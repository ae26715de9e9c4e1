//! The pager built on `remora_pager::testing`, with the evictor's CLOCK.

#![allow(dead_code)]

use remora_mmu::PageTableFlags;
use remora_mmu::testing::RecordingTlb;
use remora_pager::testing::{FakeTransport, HeapFrames, leaked_tables};
use remora_pager::{FarRegion, Pager};

pub use remora_pager::testing::{BASE, PAGE, access};

pub fn now() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static T: AtomicU64 = AtomicU64::new(0);
    T.fetch_add(100, Ordering::Relaxed)
}

/// A pager over `pages` far pages and `frames` local frames.
pub fn pager(pages: u64, frames: usize, capacity: usize, seed: u64) -> Pager<FakeTransport> {
    let tables = leaked_tables(pages.div_ceil(512) as usize);
    let region = FarRegion::new(BASE, pages, tables);
    let memory = HeapFrames::new(frames);
    Pager::new(
        region,
        &memory,
        FakeTransport::new(pages * PAGE, capacity, seed),
        Box::new(remora_evictor::Clock::new()),
        Box::new(RecordingTlb::new()),
        now,
        PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE,
    )
}
