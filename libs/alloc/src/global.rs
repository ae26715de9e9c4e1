//! The `GlobalAlloc` implementations: the kernel heap ([`LockedHeap`]), the far heap as
//! an allocator value ([`LockedFarHeap`]) and the router an app image can install as its
//! `#[global_allocator]` ([`SplitHeap`]).
//!
//! This is the one module of the crate allowed `unsafe`, because `GlobalAlloc` is an
//! unsafe trait and the kernel heap writes its free list into the memory it is given
//! (through `linked_list_allocator`). Each block says why it is sound. It owns no policy:
//! what goes where is decided by `FarHeap` and `SplitHeap`'s routing flag. It must never
//! panic or unwind out of an allocator call: failures are null pointers, counted and
//! explained by [`HeapStats`] / [`OomReport`].

#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use linked_list_allocator::Heap;

use crate::far::LockedFarHeap;
use crate::heap::{HeapInitError, HeapStats, OomReport};

/// The least region the kernel heap accepts: room for its own free-list node, whatever
/// the start's alignment.
pub const MIN_HEAP_SIZE: usize = 4 * size_of::<usize>();

struct KernelHeap {
    heap: Heap,
    ready: bool,
    peak_used: usize,
    allocations: u64,
    frees: u64,
    failed_allocations: u64,
    last_failure: Option<OomReport>,
}

impl KernelHeap {
    fn stats(&self) -> HeapStats {
        HeapStats {
            total: self.heap.size(),
            used: self.heap.used(),
            free: self.heap.free(),
            peak_used: self.peak_used,
            allocations: self.allocations,
            frees: self.frees,
            failed_allocations: self.failed_allocations,
        }
    }
}

/// The kernel heap: a first-fit free list (`linked_list_allocator`) over one region
/// given at boot, behind a spin lock, with counters. Usable as `#[global_allocator]`.
pub struct LockedHeap {
    inner: crate::irq_lock::IrqLock<KernelHeap>,
}

impl LockedHeap {
    /// A heap with no memory: every allocation fails until [`LockedHeap::init`].
    pub const fn empty() -> Self {
        LockedHeap {
            inner: crate::irq_lock::IrqLock::new(KernelHeap {
                heap: Heap::empty(),
                ready: false,
                peak_used: 0,
                allocations: 0,
                frees: 0,
                failed_allocations: 0,
                last_failure: None,
            }),
        }
    }

    /// Gives the heap the bytes `[start, start + size)`.
    ///
    /// # Safety
    /// The range must be readable and writable memory that stays mapped for the rest of
    /// the program and that nothing else uses: the heap writes its free list into it.
    pub unsafe fn init(&self, start: usize, size: usize) -> Result<(), HeapInitError> {
        if start.checked_add(size).is_none() {
            return Err(HeapInitError::Overflow { start, size });
        }
        if size < MIN_HEAP_SIZE {
            return Err(HeapInitError::TooSmall { size, min: MIN_HEAP_SIZE });
        }
        let mut inner = self.inner.lock();
        if inner.ready {
            return Err(HeapInitError::AlreadyInitialized);
        }
        // SAFETY: the caller promises the range is ours alone for 'static; its size was
        // checked against the free-list node the heap writes at its start.
        unsafe { inner.heap.init(ptr::with_exposed_provenance_mut(start), size) };
        inner.ready = true;
        Ok(())
    }

    /// Gives the heap a `'static` buffer (a `static` array in the image, leaked memory in
    /// tests).
    pub fn init_from_slice(
        &self,
        memory: &'static mut [MaybeUninit<u8>],
    ) -> Result<(), HeapInitError> {
        // SAFETY: the exclusive 'static borrow is exactly "mapped for the rest of the
        // program and used by nothing else".
        unsafe { self.init(memory.as_mut_ptr().expose_provenance(), memory.len()) }
    }

    /// Allocates `layout`; `None` (counted, with its report kept for
    /// [`LockedHeap::last_failure`]) when no free block fits.
    pub fn allocate(&self, layout: Layout) -> Option<NonNull<u8>> {
        let mut inner = self.inner.lock();
        match inner.heap.allocate_first_fit(layout) {
            Ok(block) => {
                inner.allocations += 1;
                inner.peak_used = inner.peak_used.max(inner.heap.used());
                Some(block)
            }
            Err(()) => {
                inner.failed_allocations += 1;
                inner.last_failure = Some(inner.stats().oom_report(layout));
                None
            }
        }
    }

    /// Returns a block.
    ///
    /// # Safety
    /// `block` came from [`LockedHeap::allocate`] (or `alloc`) on this heap with the same
    /// `layout` and was not freed since.
    pub unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        let mut inner = self.inner.lock();
        // SAFETY: forwarded from this function's contract.
        unsafe { inner.heap.deallocate(block, layout) };
        inner.frees += 1;
    }

    /// The counters.
    pub fn stats(&self) -> HeapStats {
        self.inner.lock().stats()
    }

    /// The report of the most recent failed allocation, for the image's panic path
    /// (`None` if none failed, or if the heap lock is held: the panic path must not wait).
    pub fn last_failure(&self) -> Option<OomReport> {
        self.inner.try_lock()?.last_failure
    }
}

impl Default for LockedHeap {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for LockedHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.try_lock() {
            Some(inner) => f.debug_struct("LockedHeap").field("stats", &inner.stats()).finish(),
            None => f.write_str("LockedHeap { <locked> }"),
        }
    }
}

// SAFETY: blocks come from `linked_list_allocator`'s first-fit list over memory the init
// contract made ours: they are disjoint, at least `layout.size()` long and aligned to
// `layout.align()`; failure is a null pointer, and nothing here unwinds.
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocate(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(block) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with `layout`.
            unsafe { self.deallocate(block, layout) }
        }
    }
}

// SAFETY: `FarHeap` hands out disjoint, aligned address ranges inside the far region and
// never reuses one before it is freed; the image installs it only once the pager backs
// that region (a fault on it is served). Failure is a null pointer; a bad free is
// counted and logged, never a panic.
unsafe impl GlobalAlloc for LockedFarHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.alloc_addr(layout).map_or(ptr::null_mut(), ptr::with_exposed_provenance_mut)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Err(error) = self.free_addr(ptr.addr(), layout) {
            log::error!("{error}");
        }
    }
}

/// The `#[global_allocator]` of an image whose app lives in far memory: the kernel heap
/// for the kernel, the far heap for the app.
///
/// - Allocation goes to the far heap while far routing is on
///   ([`SplitHeap::route_to_far`], switched on by the image when it starts the app) and
///   the far heap is installed and not busy. A nested request made by the far heap's own
///   bookkeeping (its lock is then held) goes to the kernel heap, and so does everything
///   while routing is off (boot, library init). A far heap that is full returns null: the
///   app's out-of-memory is not hidden in the kernel heap.
/// - Deallocation goes by address: a block in the far region to the far heap, any other
///   to the kernel heap, so a block is always returned where it came from whatever the
///   flag says now.
///
/// Kernel code that runs while routing is on and must not use far memory (the fault path,
/// drivers' DMA buffers) does not allocate from the heap at all (`heapless`, frames).
pub struct SplitHeap {
    kernel: LockedHeap,
    far: LockedFarHeap,
    far_routing: AtomicBool,
    /// A `fn() -> bool` (0: none) that must also say yes for a request to go far.
    far_predicate: AtomicUsize,
}

impl SplitHeap {
    /// Both heaps empty, routing off.
    pub const fn new() -> Self {
        SplitHeap {
            kernel: LockedHeap::empty(),
            far: LockedFarHeap::empty(),
            far_routing: AtomicBool::new(false),
            far_predicate: AtomicUsize::new(0),
        }
    }

    /// Adds a condition for routing to far memory, asked on every allocation while
    /// routing is on: the image uses it to keep the kernel's own allocations local (those
    /// made with interrupts off). It must not allocate.
    pub fn set_far_predicate(&self, predicate: fn() -> bool) {
        self.far_predicate.store(predicate as usize, Ordering::Release);
    }

    fn predicate_allows_far(&self) -> bool {
        let raw = self.far_predicate.load(Ordering::Acquire);
        // SAFETY: only ever stored from a `fn() -> bool` in `set_far_predicate`.
        raw == 0 || unsafe { core::mem::transmute::<usize, fn() -> bool>(raw) }()
    }

    /// The kernel heap (to `init` it and read its stats).
    pub fn kernel(&self) -> &LockedHeap {
        &self.kernel
    }

    /// The far heap (to `init` it, read its stats, or allocate from it explicitly).
    pub fn far(&self) -> &LockedFarHeap {
        &self.far
    }

    /// Sends new allocations to the far heap (`true`) or the kernel heap (`false`).
    pub fn route_to_far(&self, on: bool) {
        self.far_routing.store(on, Ordering::Release);
    }

    /// Whether new allocations go to the far heap.
    pub fn routes_to_far(&self) -> bool {
        self.far_routing.load(Ordering::Acquire)
    }
}

impl Default for SplitHeap {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SplitHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitHeap")
            .field("kernel", &self.kernel)
            .field("far", &self.far)
            .field("far_routing", &self.routes_to_far())
            .finish()
    }
}

// SAFETY: every block comes from one of two sound allocators and is returned to the one
// it came from: the far region and the kernel heap's region are disjoint, and `dealloc`
// picks by address.
unsafe impl GlobalAlloc for SplitHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.routes_to_far()
            && self.predicate_allows_far()
            && let Some(result) = self.far.try_alloc_addr(layout)
        {
            return result.map_or(ptr::null_mut(), ptr::with_exposed_provenance_mut);
        }
        // SAFETY: forwarded from GlobalAlloc's contract.
        unsafe { self.kernel.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.far.contains(ptr.addr()) {
            // SAFETY: forwarded; blocks in the far region came from the far heap.
            unsafe { self.far.dealloc(ptr, layout) }
        } else {
            // SAFETY: forwarded; every other block came from the kernel heap.
            unsafe { self.kernel.dealloc(ptr, layout) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked(bytes: usize) -> &'static mut [MaybeUninit<u8>] {
        Box::leak(vec![MaybeUninit::uninit(); bytes].into_boxed_slice())
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    const FAR_BASE: usize = 0x4000_0000_0000;

    #[test]
    fn kernel_heap_counts_and_explains_exhaustion() {
        let heap = LockedHeap::empty();
        assert_eq!(heap.allocate(layout(8, 8)), None, "no memory before init");
        heap.init_from_slice(leaked(64 * 1024)).unwrap();
        assert_eq!(heap.init_from_slice(leaked(1024)), Err(HeapInitError::AlreadyInitialized));
        let total = heap.stats().total;
        assert!(total > 64 * 1024 - 16 && total <= 64 * 1024, "{total}");

        let blocks: Vec<_> = (0..3).map(|_| heap.allocate(layout(10_000, 64)).unwrap()).collect();
        for block in &blocks {
            assert_eq!(block.as_ptr().addr() % 64, 0);
        }
        let full = heap.stats();
        assert!(full.used >= 30_000);
        assert_eq!(heap.allocate(layout(60_000, 8)), None);
        let report = heap.last_failure().unwrap();
        assert_eq!(
            report.to_string(),
            format!(
                "kernel heap exhausted: asked for 60000 bytes (align 8), {} bytes free of {total}",
                full.free
            )
        );
        for block in blocks {
            // SAFETY: allocated above with this layout, freed once.
            unsafe { heap.deallocate(block, layout(10_000, 64)) };
        }
        let stats = heap.stats();
        assert_eq!((stats.used, stats.free), (0, total));
        assert_eq!(stats.peak_used, full.used);
        assert_eq!((stats.allocations, stats.frees, stats.failed_allocations), (3, 3, 2));
        assert_eq!(stats.live_allocations(), 0);
    }

    #[test]
    fn kernel_heap_rejects_bad_regions() {
        let heap = LockedHeap::empty();
        // SAFETY: both calls are refused before the memory is touched.
        unsafe {
            assert_eq!(
                heap.init(0x1000, 8),
                Err(HeapInitError::TooSmall { size: 8, min: MIN_HEAP_SIZE })
            );
            assert_eq!(
                heap.init(usize::MAX - 8, 64),
                Err(HeapInitError::Overflow { start: usize::MAX - 8, size: 64 })
            );
        }
        assert!(
            HeapInitError::TooSmall { size: 8, min: 32 }.to_string().contains("alloc.heap_size")
        );
    }

    #[test]
    fn kernel_heap_serves_real_memory_through_global_alloc() {
        let heap = LockedHeap::empty();
        heap.init_from_slice(leaked(4096)).unwrap();
        let layout = layout(100, 16);
        // SAFETY: a non-zero layout; the block is written within its size and freed once.
        unsafe {
            let block = heap.alloc(layout);
            assert!(!block.is_null());
            block.write_bytes(0xa5, 100);
            assert_eq!(*block.add(99), 0xa5);
            heap.dealloc(block, layout);
        }
        assert_eq!(heap.stats().used, 0);
    }

    #[test]
    fn far_heap_as_an_allocator_value() {
        let far = LockedFarHeap::empty();
        far.init(FAR_BASE, 1 << 20).unwrap();
        // SAFETY: the far heap never touches the memory; the pointers are only compared.
        unsafe {
            let block = far.alloc(layout(5000, 8));
            assert_eq!(block.addr(), FAR_BASE);
            far.dealloc(block, layout(5000, 8));
            far.dealloc(block, layout(5000, 8));
            assert!(far.alloc(layout(1 << 21, 8)).is_null());
        }
        let stats = far.stats().unwrap();
        assert_eq!(
            (stats.allocations, stats.frees, stats.bad_frees, stats.failed_allocations),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn split_heap_routes_allocations_by_flag_and_frees_by_address() {
        let split = SplitHeap::new();
        split.kernel().init_from_slice(leaked(64 * 1024)).unwrap();
        let small = layout(64, 8);
        // SAFETY: blocks are only compared and freed once with their layout.
        unsafe {
            split.route_to_far(true);
            let before_far = split.alloc(small);
            assert!(!split.far().contains(before_far.addr()), "no far heap yet: kernel heap");
            split.far().init(FAR_BASE, 1 << 20).unwrap();

            let far_block = split.alloc(small);
            assert!(split.far().contains(far_block.addr()));
            let nested = split.far().with(|_| split.alloc(small)).unwrap();
            assert!(!split.far().contains(nested.addr()), "far heap busy: kernel heap");
            split.route_to_far(false);
            let kernel_block = split.alloc(small);
            assert!(!split.far().contains(kernel_block.addr()));

            split.dealloc(far_block, small);
            split.dealloc(nested, small);
            split.dealloc(before_far, small);
            split.dealloc(kernel_block, small);
            split.route_to_far(true);
            assert!(split.alloc(layout(2 << 20, 8)).is_null(), "far exhaustion is not hidden");
        }
        let far = split.far().stats().unwrap();
        assert_eq!((far.allocations, far.frees, far.small_objects), (1, 1, 0));
        let kernel = split.kernel().stats();
        assert_eq!((kernel.allocations, kernel.frees, kernel.used), (3, 3, 0));
    }
}
