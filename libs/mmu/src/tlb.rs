//! TLB invalidation.
//!
//! Owns: the [`Tlb`] trait (flush one page, flush everything), the [`FlushBatch`] that
//! collects the pages an operation changed and flushes them once ("one TLB flush per
//! batch"), and, on the bare target only, `HardwareTlb` (`invlpg` and a CR3 reload).
//!
//! Must never: execute a privileged instruction outside `target_os = "none"` (host tests
//! would crash); decide on its own which pages need flushing (the page-table operations
//! say so by adding to a batch); forget pages silently (a batch that overflows becomes a
//! full flush, and one dropped with pages still pending is logged as an error).
//!
//! Flushes act on the current CPU. Shooting translations down on other CPUs (IPIs) is the
//! platform's job: it implements [`Tlb`] by sending them.

use x86_64::VirtAddr;

/// The default number of pages above which a batch flushes the whole TLB instead of
/// each page (`mmu.tlb_flush_all_threshold` in `Config.toml`).
pub const DEFAULT_FLUSH_ALL_THRESHOLD: usize = 32;

/// Invalidates cached translations.
pub trait Tlb {
    /// Drops the translation of the page (4 KiB or larger) containing `addr`, and the
    /// paging-structure caches.
    fn flush_page(&mut self, addr: VirtAddr);

    /// Drops every non-global translation.
    fn flush_all(&mut self);
}

/// The CPU's own TLB: `invlpg` for one page, a CR3 reload for all (which keeps GLOBAL
/// translations: pages that are unmapped, reprotected or harvested must not be GLOBAL).
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
#[derive(Debug, Default, Clone, Copy)]
pub struct HardwareTlb;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
impl Tlb for HardwareTlb {
    fn flush_page(&mut self, addr: VirtAddr) {
        x86_64::instructions::tlb::flush(addr);
    }

    fn flush_all(&mut self) {
        x86_64::instructions::tlb::flush_all();
    }
}

/// What [`FlushBatch::flush`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flushed {
    /// The batch was empty.
    Nothing,
    /// This many pages were flushed one by one.
    Pages(usize),
    /// The whole TLB was flushed.
    All,
}

/// Pages whose translations changed, flushed together.
///
/// Holds up to `N` pages; adding one more turns the batch into a single full flush
/// (`N` is the flush-all threshold: the image passes `mmu.tlb_flush_all_threshold`).
#[derive(Debug)]
pub struct FlushBatch<const N: usize = DEFAULT_FLUSH_ALL_THRESHOLD> {
    pages: heapless::Vec<VirtAddr, N>,
    all: bool,
}

impl<const N: usize> FlushBatch<N> {
    /// An empty batch.
    pub const fn new() -> Self {
        const { assert!(N >= 1, "a flush batch holds at least one page") };
        Self { pages: heapless::Vec::new(), all: false }
    }

    /// Records that the translation of the page containing `addr` changed.
    pub fn add(&mut self, addr: VirtAddr) {
        if !self.all && self.pages.push(addr).is_err() {
            self.pages.clear();
            self.all = true;
        }
    }

    /// Asks for a full flush whatever was added.
    pub fn add_all(&mut self) {
        self.pages.clear();
        self.all = true;
    }

    /// Whether nothing needs flushing.
    pub fn is_empty(&self) -> bool {
        !self.all && self.pages.is_empty()
    }

    /// Whether the batch went over its threshold and will flush everything.
    pub fn flushes_all(&self) -> bool {
        self.all
    }

    /// The pages to flush one by one (empty when the batch flushes everything).
    pub fn pages(&self) -> &[VirtAddr] {
        &self.pages
    }

    /// Flushes what was collected and empties the batch.
    pub fn flush<T: Tlb + ?Sized>(&mut self, tlb: &mut T) -> Flushed {
        let done = if self.all {
            tlb.flush_all();
            Flushed::All
        } else if self.pages.is_empty() {
            Flushed::Nothing
        } else {
            for &page in &self.pages {
                tlb.flush_page(page);
            }
            Flushed::Pages(self.pages.len())
        };
        self.pages.clear();
        self.all = false;
        done
    }
}

impl<const N: usize> Default for FlushBatch<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for FlushBatch<N> {
    fn drop(&mut self) {
        if !self.is_empty() {
            log::error!(
                "mmu: a FlushBatch was dropped with {} pending (all: {}): stale TLB entries may remain",
                self.pages.len(),
                self.all
            );
        }
    }
}
