//! The far heap: the application's allocator for the far-memory region
//! `[base, base + size)`.
//!
//! # What it owns
//! Which addresses of the far region are handed out, and nothing else. Every byte of its
//! bookkeeping lives in the ordinary kernel heap (`alloc` collections): slab bitmaps keyed
//! by page, large runs keyed by page, free page runs. Small objects (up to `small_max`,
//! 2 KiB by default) come from size classes; a class's objects share single-page slabs,
//! so an object never straddles a page and one fault fetches it whole. Larger objects get
//! page-aligned runs of whole pages of their own. Freed runs are merged with their free
//! neighbours and reused (smallest run that fits); a class keeps at most one empty slab
//! page (so alternating alloc/free of one object does not churn pages) and
//! [`FarHeap::trim`] returns it.
//!
//! # What it must never do
//! Read or write the memory it manages. Touching a far page costs a remote fetch (and,
//! before the pager is up, a fault nobody can serve), so allocating and freeing only do
//! arithmetic on addresses. Zeroing, if wanted, is the caller's business (never-touched
//! far pages read as zero anyway). It never panics on a bad free: those come back as
//! [`FarFreeError`] and change nothing.
//!
//! # How the application uses it
//! - Explicitly: the app keeps its data (Redis values, list nodes) in far memory through
//!   [`LockedFarHeap::alloc_addr`] / [`LockedFarHeap::free_addr`], or through its
//!   `GlobalAlloc` impl called as a value (`FAR.alloc(layout)`), e.g. behind its own box
//!   type, while `Box`/`Vec` keep using the kernel heap.
//! - As the image's `#[global_allocator]`: only through [`crate::SplitHeap`], never
//!   `LockedFarHeap` alone: the far heap's own bookkeeping allocates from the global
//!   allocator, and `SplitHeap` sends those nested requests (and everything before the
//!   app starts) to the kernel heap.

mod classes;
mod pages;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::alloc::Layout;
use core::fmt;
use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering};

use classes::{GRANULE, SizeClasses};
use pages::PageRuns;

/// Bytes in one far page.
pub const PAGE_SIZE: usize = 4096;

/// The default largest small object (`alloc.far_small_max`).
pub const DEFAULT_SMALL_MAX: usize = 2048;

/// Slot bitmap words of a slab: enough for 4096 / 16 = 256 objects.
const SLAB_WORDS: usize = PAGE_SIZE / GRANULE / 64;

/// One slab page: which of its slots are handed out. Kept small (40 bytes): there is one
/// per far page of small objects, in local memory.
#[derive(Debug)]
struct Slab {
    used: [u64; SLAB_WORDS],
    /// Index of the size class (at most 25 classes: 16-byte steps to 128, four per
    /// doubling to 2048).
    class: u8,
    /// Slots handed out (at most 256).
    live: u16,
}

const _: () = assert!(size_of::<Slab>() <= 40);

impl Slab {
    fn is_used(&self, slot: usize) -> bool {
        self.used[slot / 64] & (1 << (slot % 64)) != 0
    }

    /// The lowest free slot below `per_page`.
    fn take_slot(&mut self, per_page: usize) -> Option<usize> {
        let (word, bits) = self.used.iter().enumerate().find(|(_, bits)| **bits != u64::MAX)?;
        let slot = word * 64 + bits.trailing_ones() as usize;
        if slot >= per_page {
            return None;
        }
        self.used[word] |= 1 << (slot % 64);
        self.live += 1;
        Some(slot)
    }

    fn release_slot(&mut self, slot: usize) {
        self.used[slot / 64] &= !(1 << (slot % 64));
        self.live -= 1;
    }
}

/// Per-class bookkeeping.
#[derive(Debug, Default)]
struct ClassState {
    /// Slab pages of this class with at least one free slot.
    partial: BTreeSet<usize>,
    pages: usize,
    objects: usize,
}

/// A large object: `pages` whole pages from its first page.
#[derive(Clone, Copy, Debug)]
struct LargeRun {
    pages: usize,
    size: usize,
}

/// Allocator of the far-memory region. See the module docs.
#[derive(Debug)]
pub struct FarHeap {
    base: usize,
    pages: usize,
    classes: SizeClasses,
    class_state: Vec<ClassState>,
    slabs: BTreeMap<usize, Slab>,
    large: BTreeMap<usize, LargeRun>,
    runs: PageRuns,
    requested_bytes: usize,
    in_use_bytes: usize,
    large_pages: usize,
    allocations: u64,
    frees: u64,
    failed_allocations: u64,
    bad_frees: u64,
}

impl FarHeap {
    /// A far heap over `[base, base + size)` with the default small-object limit. `base`
    /// must be page aligned; a partial last page is left unused.
    pub fn new(base: usize, size: usize) -> Result<Self, FarHeapError> {
        Self::with_small_max(base, size, DEFAULT_SMALL_MAX)
    }

    /// A far heap whose small objects go up to `small_max` bytes (a multiple of 16 from 16
    /// to 2048; `alloc.far_small_max`). Larger objects get whole pages.
    pub fn with_small_max(
        base: usize,
        size: usize,
        small_max: usize,
    ) -> Result<Self, FarHeapError> {
        if !base.is_multiple_of(PAGE_SIZE) {
            return Err(FarHeapError::UnalignedBase { base });
        }
        if base.checked_add(size).is_none() {
            return Err(FarHeapError::Overflow { base, size });
        }
        let pages = size / PAGE_SIZE;
        if pages == 0 {
            return Err(FarHeapError::TooSmall { size });
        }
        if !small_max.is_multiple_of(GRANULE) || !(GRANULE..=PAGE_SIZE / 2).contains(&small_max) {
            return Err(FarHeapError::BadSmallMax { small_max });
        }
        let classes = SizeClasses::up_to(small_max);
        let class_state = (0..classes.len()).map(|_| ClassState::default()).collect();
        Ok(FarHeap {
            base,
            pages,
            classes,
            class_state,
            slabs: BTreeMap::new(),
            large: BTreeMap::new(),
            runs: PageRuns::new(pages, base / PAGE_SIZE),
            requested_bytes: 0,
            in_use_bytes: 0,
            large_pages: 0,
            allocations: 0,
            frees: 0,
            failed_allocations: 0,
            bad_frees: 0,
        })
    }

    /// The addresses this heap hands out.
    pub fn region(&self) -> Range<usize> {
        self.base..self.base + self.pages * PAGE_SIZE
    }

    /// The largest object served from a size class.
    pub fn small_max(&self) -> usize {
        self.classes.largest()
    }

    /// Finds room for `layout` and returns its address; `None` when the region has no room
    /// left. Never touches the memory.
    pub fn alloc(&mut self, layout: Layout) -> Option<usize> {
        let addr = match self.classes.index_for(layout) {
            Some(class) => self.alloc_small(class, layout.size()),
            None => self.alloc_large(layout),
        };
        match addr {
            Some(_) => self.allocations += 1,
            None => self.failed_allocations += 1,
        }
        addr
    }

    /// Gives back what [`FarHeap::alloc`] returned for the same `layout`. A bad free is an
    /// error and changes nothing but the `bad_frees` counter.
    pub fn free(&mut self, addr: usize, layout: Layout) -> Result<(), FarFreeError> {
        let result = self.free_checked(addr, layout);
        match result {
            Ok(()) => self.frees += 1,
            Err(_) => self.bad_frees += 1,
        }
        result
    }

    /// Returns the empty slab pages classes keep in reserve; how many pages that freed.
    pub fn trim(&mut self) -> usize {
        let mut released = 0;
        for class in 0..self.class_state.len() {
            let empty: Vec<usize> = self.class_state[class]
                .partial
                .iter()
                .copied()
                .filter(|page| self.slabs.get(page).is_some_and(|slab| slab.live == 0))
                .collect();
            for page in empty {
                self.release_slab(class, page);
                released += 1;
            }
        }
        released
    }

    /// The counters, with a line per size class.
    pub fn stats(&self) -> FarHeapStats {
        let classes = self
            .class_state
            .iter()
            .enumerate()
            .map(|(index, state)| {
                let class = self.classes.get(index);
                FarClassStats {
                    object_size: class.size,
                    objects_per_page: class.per_page,
                    pages: state.pages,
                    objects: state.objects,
                }
            })
            .collect();
        FarHeapStats {
            region_bytes: self.pages * PAGE_SIZE,
            requested_bytes: self.requested_bytes,
            in_use_bytes: self.in_use_bytes,
            small_objects: self.class_state.iter().map(|state| state.objects).sum(),
            slab_pages: self.slabs.len(),
            large_runs: self.large.len(),
            large_pages: self.large_pages,
            free_pages: self.runs.free_pages(),
            free_runs: self.runs.runs(),
            largest_free_run_pages: self.runs.largest(),
            allocations: self.allocations,
            frees: self.frees,
            failed_allocations: self.failed_allocations,
            bad_frees: self.bad_frees,
            classes,
        }
    }

    fn alloc_small(&mut self, class: usize, size: usize) -> Option<usize> {
        let info = self.classes.get(class);
        let page = match self.class_state[class].partial.first() {
            Some(&page) => page,
            None => {
                let page = self.runs.alloc(1, 1)?;
                self.slabs
                    .insert(page, Slab { class: class as u8, live: 0, used: [0; SLAB_WORDS] });
                let state = &mut self.class_state[class];
                state.partial.insert(page);
                state.pages += 1;
                page
            }
        };
        let slab = self.slabs.get_mut(&page)?;
        let slot = slab.take_slot(info.per_page)?;
        let state = &mut self.class_state[class];
        if usize::from(slab.live) == info.per_page {
            state.partial.remove(&page);
        }
        state.objects += 1;
        self.requested_bytes += size;
        self.in_use_bytes += info.size;
        Some(self.base + page * PAGE_SIZE + slot * info.size)
    }

    fn alloc_large(&mut self, layout: Layout) -> Option<usize> {
        let pages = pages_for(layout.size());
        let align = (layout.align() / PAGE_SIZE).max(1);
        let page = self.runs.alloc(pages, align)?;
        self.large.insert(page, LargeRun { pages, size: layout.size() });
        self.large_pages += pages;
        self.requested_bytes += layout.size();
        self.in_use_bytes += pages * PAGE_SIZE;
        Some(self.base + page * PAGE_SIZE)
    }

    fn free_checked(&mut self, addr: usize, layout: Layout) -> Result<(), FarFreeError> {
        let region = self.region();
        if !region.contains(&addr) {
            return Err(FarFreeError::OutsideRegion { addr, start: region.start, end: region.end });
        }
        let offset = addr - self.base;
        let page = offset / PAGE_SIZE;
        if self.slabs.contains_key(&page) {
            return self.free_small(addr, page, offset % PAGE_SIZE, layout);
        }
        if offset.is_multiple_of(PAGE_SIZE) && self.large.contains_key(&page) {
            return self.free_large(addr, page, layout);
        }
        if let Some((&start, run)) = self.large.range(..=page).next_back()
            && page < start + run.pages
        {
            return Err(FarFreeError::InteriorPointer {
                addr,
                object: self.base + start * PAGE_SIZE,
            });
        }
        Err(FarFreeError::NotAllocated { addr })
    }

    fn free_small(
        &mut self,
        addr: usize,
        page: usize,
        in_page: usize,
        layout: Layout,
    ) -> Result<(), FarFreeError> {
        let Some(slab) = self.slabs.get_mut(&page) else {
            return Err(FarFreeError::NotAllocated { addr });
        };
        let class = usize::from(slab.class);
        let info = self.classes.get(class);
        let slot = in_page / info.size;
        if slot >= info.per_page || !slab.is_used(slot) {
            return Err(if in_page.is_multiple_of(info.size) {
                FarFreeError::AlreadyFree { addr }
            } else {
                FarFreeError::NotAllocated { addr }
            });
        }
        if !in_page.is_multiple_of(info.size) {
            return Err(FarFreeError::InteriorPointer { addr, object: addr - in_page % info.size });
        }
        if self.classes.index_for(layout) != Some(class) {
            return Err(FarFreeError::LayoutMismatch {
                addr,
                size: layout.size(),
                align: layout.align(),
                object_size: info.size,
            });
        }
        slab.release_slot(slot);
        let live = usize::from(slab.live);
        let state = &mut self.class_state[class];
        state.objects -= 1;
        if live + 1 == info.per_page {
            state.partial.insert(page);
        }
        // Keep one empty slab per class as a reserve; release any other.
        if live == 0 && state.partial.len() > 1 {
            self.release_slab(class, page);
        }
        self.requested_bytes = self.requested_bytes.saturating_sub(layout.size());
        self.in_use_bytes -= info.size;
        Ok(())
    }

    fn free_large(&mut self, addr: usize, page: usize, layout: Layout) -> Result<(), FarFreeError> {
        let Some(&run) = self.large.get(&page) else {
            return Err(FarFreeError::NotAllocated { addr });
        };
        if self.classes.index_for(layout).is_some() || pages_for(layout.size()) != run.pages {
            return Err(FarFreeError::LayoutMismatch {
                addr,
                size: layout.size(),
                align: layout.align(),
                object_size: run.pages * PAGE_SIZE,
            });
        }
        self.large.remove(&page);
        self.runs.free(page, run.pages);
        self.large_pages -= run.pages;
        self.requested_bytes = self.requested_bytes.saturating_sub(run.size);
        self.in_use_bytes -= run.pages * PAGE_SIZE;
        Ok(())
    }

    fn release_slab(&mut self, class: usize, page: usize) {
        let state = &mut self.class_state[class];
        state.partial.remove(&page);
        state.pages -= 1;
        self.slabs.remove(&page);
        self.runs.free(page, 1);
    }
}

/// Whole pages for a large object of `size` bytes (at least one).
fn pages_for(size: usize) -> usize {
    size.div_ceil(PAGE_SIZE).max(1)
}

/// A snapshot of the far heap's counters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FarHeapStats {
    /// Bytes of the region (whole pages).
    pub region_bytes: usize,
    /// Sum of the live objects' requested sizes.
    pub requested_bytes: usize,
    /// Bytes held by live objects: their class size, or their whole pages.
    pub in_use_bytes: usize,
    /// Live small objects.
    pub small_objects: usize,
    /// Pages held by slabs (including each class's empty reserve).
    pub slab_pages: usize,
    /// Live large objects.
    pub large_runs: usize,
    /// Pages held by large objects.
    pub large_pages: usize,
    /// Pages nobody holds. `slab_pages + large_pages + free_pages` is the region.
    pub free_pages: usize,
    /// Free runs the free pages form.
    pub free_runs: usize,
    /// Pages in the longest free run: the largest object that fits now.
    pub largest_free_run_pages: usize,
    /// Successful allocations.
    pub allocations: u64,
    /// Successful frees.
    pub frees: u64,
    /// Allocations refused for lack of room.
    pub failed_allocations: u64,
    /// Frees refused as bad.
    pub bad_frees: u64,
    /// One line per size class, smallest first.
    pub classes: Vec<FarClassStats>,
}

/// The far heap's use of one size class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FarClassStats {
    /// Bytes per object.
    pub object_size: usize,
    /// Objects per slab page.
    pub objects_per_page: usize,
    /// Slab pages of this class.
    pub pages: usize,
    /// Live objects of this class.
    pub objects: usize,
}

/// Why a far heap could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FarHeapError {
    /// The region does not start on a page boundary.
    UnalignedBase {
        /// The base given.
        base: usize,
    },
    /// The region holds no whole page.
    TooSmall {
        /// The size given.
        size: usize,
    },
    /// `base + size` wraps around the address space.
    Overflow {
        /// The base given.
        base: usize,
        /// The size given.
        size: usize,
    },
    /// `small_max` is not a multiple of 16 between 16 and 2048.
    BadSmallMax {
        /// The value given.
        small_max: usize,
    },
    /// A [`LockedFarHeap`] was initialized twice.
    AlreadyInitialized,
}

impl fmt::Display for FarHeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FarHeapError::UnalignedBase { base } => {
                write!(f, "far heap: region base {base:#x} is not {PAGE_SIZE}-byte aligned")
            }
            FarHeapError::TooSmall { size } => {
                write!(f, "far heap: a region of {size} bytes holds no whole {PAGE_SIZE}-byte page")
            }
            FarHeapError::Overflow { base, size } => {
                write!(f, "far heap: region {base:#x} + {size:#x} wraps around the address space")
            }
            FarHeapError::BadSmallMax { small_max } => write!(
                f,
                "far heap: far_small_max = {small_max} must be a multiple of {GRANULE} from \
                 {GRANULE} to {}",
                PAGE_SIZE / 2
            ),
            FarHeapError::AlreadyInitialized => {
                write!(f, "far heap: already initialized; install it once, at boot")
            }
        }
    }
}

/// Why a far free was refused. Nothing changed but the `bad_frees` counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FarFreeError {
    /// No far heap is installed in the [`LockedFarHeap`].
    NoFarHeap {
        /// The address given.
        addr: usize,
    },
    /// The address is not in the far region.
    OutsideRegion {
        /// The address given.
        addr: usize,
        /// Start of the region.
        start: usize,
        /// End of the region.
        end: usize,
    },
    /// Nothing was allocated at this address.
    NotAllocated {
        /// The address given.
        addr: usize,
    },
    /// The address points inside a live object instead of at its start.
    InteriorPointer {
        /// The address given.
        addr: usize,
        /// Where the object starts.
        object: usize,
    },
    /// No live object starts here, but one could: freed already (double free), or never
    /// handed out.
    AlreadyFree {
        /// The address given.
        addr: usize,
    },
    /// The layout given does not match the object's size class or page count.
    LayoutMismatch {
        /// The address given.
        addr: usize,
        /// The size given.
        size: usize,
        /// The alignment given.
        align: usize,
        /// Bytes the object holds (class size or whole pages).
        object_size: usize,
    },
}

impl fmt::Display for FarFreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FarFreeError::NoFarHeap { addr } => {
                write!(f, "bad far free of {addr:#x}: no far heap is installed")
            }
            FarFreeError::OutsideRegion { addr, start, end } => {
                write!(f, "bad far free: {addr:#x} is outside the far region {start:#x}..{end:#x}")
            }
            FarFreeError::NotAllocated { addr } => {
                write!(f, "bad far free: nothing is allocated at {addr:#x}")
            }
            FarFreeError::InteriorPointer { addr, object } => write!(
                f,
                "bad far free: {addr:#x} points inside the object at {object:#x}; free its start"
            ),
            FarFreeError::AlreadyFree { addr } => {
                write!(f, "bad far free: the slot at {addr:#x} is already free (double free?)")
            }
            FarFreeError::LayoutMismatch { addr, size, align, object_size } => write!(
                f,
                "bad far free: {addr:#x} freed as {size} bytes (align {align}) but holds an \
                 object of {object_size} bytes; free with the layout it was allocated with"
            ),
        }
    }
}

/// A [`FarHeap`] behind a spin lock, installable in a `static`, implementing
/// `GlobalAlloc` (in `global`) so an app can call it like any allocator.
pub struct LockedFarHeap {
    heap: crate::irq_lock::IrqLock<Option<FarHeap>>,
    start: AtomicUsize,
    end: AtomicUsize,
}

impl LockedFarHeap {
    /// No far heap yet: every allocation fails until [`LockedFarHeap::init`].
    pub const fn empty() -> Self {
        LockedFarHeap {
            heap: crate::irq_lock::IrqLock::new(None),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
        }
    }

    /// Installs a far heap over `[base, base + size)` with the default classes.
    pub fn init(&self, base: usize, size: usize) -> Result<(), FarHeapError> {
        self.install(FarHeap::new(base, size)?)
    }

    /// Installs a far heap built by the caller (e.g. with `far_small_max` from the config).
    pub fn install(&self, heap: FarHeap) -> Result<(), FarHeapError> {
        let mut slot = self.heap.lock();
        if slot.is_some() {
            return Err(FarHeapError::AlreadyInitialized);
        }
        let region = heap.region();
        self.start.store(region.start, Ordering::Release);
        self.end.store(region.end, Ordering::Release);
        *slot = Some(heap);
        Ok(())
    }

    /// [`FarHeap::alloc`] under the lock; `None` also before init.
    pub fn alloc_addr(&self, layout: Layout) -> Option<usize> {
        self.heap.lock().as_mut()?.alloc(layout)
    }

    /// [`FarHeap::free`] under the lock.
    pub fn free_addr(&self, addr: usize, layout: Layout) -> Result<(), FarFreeError> {
        match self.heap.lock().as_mut() {
            Some(heap) => heap.free(addr, layout),
            None => Err(FarFreeError::NoFarHeap { addr }),
        }
    }

    /// [`FarHeap::alloc`] if a far heap is installed and its lock is free right now;
    /// `None` if not (the lock is held by a nested call from the far heap's own
    /// bookkeeping, or by another thread), so the caller serves the request elsewhere.
    pub(crate) fn try_alloc_addr(&self, layout: Layout) -> Option<Option<usize>> {
        let mut heap = self.heap.try_lock()?;
        Some(heap.as_mut()?.alloc(layout))
    }

    /// Whether `addr` is in the installed far region (lock-free).
    pub fn contains(&self, addr: usize) -> bool {
        (self.start.load(Ordering::Acquire)..self.end.load(Ordering::Acquire)).contains(&addr)
    }

    /// The counters; `None` before init.
    pub fn stats(&self) -> Option<FarHeapStats> {
        self.heap.lock().as_ref().map(FarHeap::stats)
    }

    /// Runs `f` on the far heap under the lock; `None` before init.
    pub fn with<R>(&self, f: impl FnOnce(&mut FarHeap) -> R) -> Option<R> {
        self.heap.lock().as_mut().map(f)
    }
}

impl Default for LockedFarHeap {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for LockedFarHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = self.start.load(Ordering::Relaxed);
        let end = self.end.load(Ordering::Relaxed);
        f.debug_struct("LockedFarHeap")
            .field("region", &format_args!("{start:#x}..{end:#x}"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: usize = 0x4000_0000_0000;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn small_objects_of_a_class_share_a_page() {
        let mut heap = FarHeap::new(BASE, 1 << 20).unwrap();
        let a = heap.alloc(layout(24, 8)).unwrap();
        let b = heap.alloc(layout(32, 8)).unwrap();
        let c = heap.alloc(layout(100, 8)).unwrap();
        assert_eq!((a, b), (BASE, BASE + 32), "24 and 32 bytes are both class 32");
        assert_eq!(c, BASE + PAGE_SIZE, "class 112 has its own page");
        let stats = heap.stats();
        assert_eq!((stats.slab_pages, stats.small_objects, stats.requested_bytes), (2, 3, 156));
        assert_eq!(stats.in_use_bytes, 32 + 32 + 112);
        let class_32 = stats.classes.iter().find(|class| class.object_size == 32).unwrap();
        assert_eq!((class_32.pages, class_32.objects, class_32.objects_per_page), (1, 2, 128));
    }

    #[test]
    fn large_objects_take_whole_pages() {
        let mut heap = FarHeap::new(BASE, 1 << 20).unwrap();
        let small = heap.alloc(layout(16, 16)).unwrap();
        let large = heap.alloc(layout(2049, 8)).unwrap();
        let huge = heap.alloc(layout(3 * PAGE_SIZE + 1, 8)).unwrap();
        assert_eq!(small, BASE);
        assert_eq!(large, BASE + PAGE_SIZE);
        assert_eq!(huge, BASE + 2 * PAGE_SIZE);
        let next = heap.alloc(layout(16, 16)).unwrap();
        assert_eq!(next, BASE + 16, "small objects never land in a large object's pages");
        let stats = heap.stats();
        assert_eq!((stats.large_runs, stats.large_pages, stats.slab_pages), (2, 5, 1));
        assert_eq!(stats.free_pages + stats.large_pages + stats.slab_pages, 256);
    }

    #[test]
    fn page_alignment_above_a_page_is_absolute() {
        let base = BASE + PAGE_SIZE;
        let mut heap = FarHeap::new(base, 1 << 20).unwrap();
        let addr = heap.alloc(layout(100, 4 * PAGE_SIZE)).unwrap();
        assert_eq!(addr % (4 * PAGE_SIZE), 0);
        assert_eq!(addr, BASE + 4 * PAGE_SIZE);
        heap.free(addr, layout(100, 4 * PAGE_SIZE)).unwrap();
        assert_eq!(heap.stats().free_pages, 256);
    }

    #[test]
    fn bad_frees_are_reported_and_change_nothing() {
        let mut heap = FarHeap::new(BASE, 1 << 20).unwrap();
        let small = heap.alloc(layout(48, 16)).unwrap();
        let large = heap.alloc(layout(10_000, 8)).unwrap();
        let before = heap.stats();
        let end = BASE + (1 << 20);
        assert_eq!(
            heap.free(BASE - 1, layout(8, 8)),
            Err(FarFreeError::OutsideRegion { addr: BASE - 1, start: BASE, end })
        );
        assert_eq!(
            heap.free(end, layout(8, 8)),
            Err(FarFreeError::OutsideRegion { addr: end, start: BASE, end })
        );
        assert_eq!(
            heap.free(small + 8, layout(48, 16)),
            Err(FarFreeError::InteriorPointer { addr: small + 8, object: small })
        );
        assert_eq!(
            heap.free(small + 48, layout(48, 16)),
            Err(FarFreeError::AlreadyFree { addr: small + 48 }),
            "a slot never handed out"
        );
        assert_eq!(
            heap.free(small, layout(64, 16)),
            Err(FarFreeError::LayoutMismatch { addr: small, size: 64, align: 16, object_size: 48 })
        );
        assert_eq!(
            heap.free(large, layout(20_000, 8)),
            Err(FarFreeError::LayoutMismatch {
                addr: large,
                size: 20_000,
                align: 8,
                object_size: 3 * PAGE_SIZE
            })
        );
        assert_eq!(
            heap.free(large + PAGE_SIZE, layout(10_000, 8)),
            Err(FarFreeError::InteriorPointer { addr: large + PAGE_SIZE, object: large })
        );
        assert_eq!(
            heap.free(BASE + 100 * PAGE_SIZE, layout(10_000, 8)),
            Err(FarFreeError::NotAllocated { addr: BASE + 100 * PAGE_SIZE })
        );
        let after = heap.stats();
        assert_eq!(after.bad_frees, 8);
        assert_eq!(FarHeapStats { bad_frees: 0, ..after }, before);

        heap.free(small, layout(48, 16)).unwrap();
        heap.free(large, layout(10_000, 8)).unwrap();
        assert_eq!(
            heap.free(small, layout(48, 16)),
            Err(FarFreeError::AlreadyFree { addr: small })
        );
        assert_eq!(
            heap.free(large, layout(10_000, 8)),
            Err(FarFreeError::NotAllocated { addr: large })
        );
        let message = heap.free(small + 8, layout(48, 16)).unwrap_err().to_string();
        assert!(message.starts_with("bad far free"), "{message}");
    }

    #[test]
    fn a_class_keeps_one_empty_slab_until_trimmed() {
        let mut heap = FarHeap::new(BASE, 1 << 20).unwrap();
        let object = layout(2048, 8);
        let objects: Vec<usize> = (0..6).map(|_| heap.alloc(object).unwrap()).collect();
        assert_eq!(heap.stats().slab_pages, 3);
        for &addr in &objects {
            heap.free(addr, object).unwrap();
        }
        let stats = heap.stats();
        assert_eq!((stats.slab_pages, stats.small_objects, stats.in_use_bytes), (1, 0, 0));
        // Alternating alloc/free reuses the reserve page instead of taking a new one.
        let again = heap.alloc(object).unwrap();
        assert_eq!(heap.stats().slab_pages, 1);
        heap.free(again, object).unwrap();
        assert_eq!(heap.trim(), 1);
        let stats = heap.stats();
        assert_eq!((stats.slab_pages, stats.free_pages, stats.free_runs), (0, 256, 1));
    }

    #[test]
    fn exhaustion_fails_cleanly_and_freed_runs_are_reused() {
        let mut heap = FarHeap::new(BASE, 16 * PAGE_SIZE).unwrap();
        let half = layout(8 * PAGE_SIZE, 8);
        let a = heap.alloc(half).unwrap();
        let b = heap.alloc(half).unwrap();
        assert_eq!(heap.alloc(layout(16, 8)), None);
        assert_eq!(heap.alloc(half), None);
        assert_eq!(heap.stats().failed_allocations, 2);
        heap.free(a, half).unwrap();
        heap.free(b, half).unwrap();
        let whole = layout(16 * PAGE_SIZE, 8);
        assert_eq!(heap.alloc(whole), Some(BASE), "the two halves merged");
    }

    #[test]
    fn setup_errors_name_the_problem() {
        assert_eq!(
            FarHeap::new(BASE + 8, 1 << 20).unwrap_err(),
            FarHeapError::UnalignedBase { base: BASE + 8 }
        );
        assert_eq!(
            FarHeap::new(BASE, PAGE_SIZE - 1).unwrap_err(),
            FarHeapError::TooSmall { size: PAGE_SIZE - 1 }
        );
        assert_eq!(
            FarHeap::new(usize::MAX & !(PAGE_SIZE - 1), 2 * PAGE_SIZE).unwrap_err(),
            FarHeapError::Overflow { base: usize::MAX & !(PAGE_SIZE - 1), size: 2 * PAGE_SIZE }
        );
        for small_max in [0, 8, 100, 4096] {
            assert_eq!(
                FarHeap::with_small_max(BASE, 1 << 20, small_max).unwrap_err(),
                FarHeapError::BadSmallMax { small_max }
            );
        }
        let heap = FarHeap::with_small_max(BASE, (1 << 20) + 100, 512).unwrap();
        assert_eq!(heap.region(), BASE..BASE + (1 << 20));
        assert_eq!(heap.small_max(), 512);
    }

    #[test]
    fn locked_far_heap_needs_init_once() {
        let far = LockedFarHeap::empty();
        assert_eq!(far.alloc_addr(layout(8, 8)), None);
        assert_eq!(far.free_addr(BASE, layout(8, 8)), Err(FarFreeError::NoFarHeap { addr: BASE }));
        assert!(!far.contains(BASE));
        far.init(BASE, 1 << 20).unwrap();
        assert_eq!(far.init(BASE, 1 << 20), Err(FarHeapError::AlreadyInitialized));
        assert!(far.contains(BASE) && !far.contains(BASE + (1 << 20)));
        let addr = far.alloc_addr(layout(8, 8)).unwrap();
        assert_eq!(far.stats().unwrap().small_objects, 1);
        far.free_addr(addr, layout(8, 8)).unwrap();
        assert_eq!(far.with(|heap| heap.stats().small_objects), Some(0));
    }
}
