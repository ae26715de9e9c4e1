//! [`FarRegion`]: the far-memory range and its page-table entries.
//!
//! The entries are reached directly (one slice of 512 per 2 MiB of the region), without
//! walking tables or taking the address space's lock: the image links the region's leaf
//! tables once at boot and they are never freed. This module only finds entries; the
//! state changes are the pager's.

use alloc::vec::Vec;

use remora_mmu::{AtomicPte, Entries};

use crate::PAGE_SIZE;

/// The far range `[base, base + pages * 4096)` and its entries.
pub struct FarRegion {
    base: u64,
    pages: u64,
    tables: Vec<&'static Entries>,
}

impl FarRegion {
    /// A region at `base` (2 MiB aligned) of `tables.len() * 512` pages, or fewer if
    /// `pages` is smaller.
    ///
    /// # Panics
    /// If `base` is not 2 MiB aligned or `tables` cover fewer than `pages` pages: both are
    /// the image's set-up mistakes, not run-time input.
    pub fn new(base: u64, pages: u64, tables: Vec<&'static Entries>) -> Self {
        assert!(
            base.is_multiple_of(512 * PAGE_SIZE),
            "far region base {base:#x} is not 2 MiB aligned"
        );
        assert!(
            tables.len() as u64 * 512 >= pages,
            "far region: {} tables for {pages} pages",
            tables.len()
        );
        FarRegion { base, pages, tables }
    }

    /// First address of the region.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Pages in the region.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Bytes in the region.
    pub fn size(&self) -> u64 {
        self.pages * PAGE_SIZE
    }

    /// Whether `addr` lies in the region.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < self.size()
    }

    /// The page index of `addr`, if it lies in the region.
    pub fn page_of(&self, addr: u64) -> Option<u64> {
        self.contains(addr).then(|| (addr - self.base) / PAGE_SIZE)
    }

    /// The first address of page `page`.
    pub fn addr_of(&self, page: u64) -> u64 {
        self.base + page * PAGE_SIZE
    }

    /// The entry of page `page` (< `pages()`).
    pub fn pte(&self, page: u64) -> &'static AtomicPte {
        &self.tables[(page / 512) as usize][(page % 512) as usize]
    }
}
