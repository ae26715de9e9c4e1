//! Reaching page tables in physical memory.
//!
//! Owns: the [`PhysMemory`] trait through which the kernel (a direct map: physical
//! address plus an offset) or a host test (an arena of boxed tables) supplies, allocates
//! and frees page tables; and the one place in this crate that turns a table's physical
//! frame into a reference (`entries`). That is the crate's only `unsafe` block.
//!
//! Must never: hand out `&mut PageTable` (the CPU writes ACCESSED and DIRTY into tables
//! concurrently, so every access goes through [`AtomicPte`]); let a view outlive the
//! borrow of the memory it came from (freeing a table needs `&mut`, which ends every
//! view); reach any frame that is not a page table.

use x86_64::structures::paging::{PageTable, PhysFrame};

use crate::entry::AtomicPte;

/// Number of entries in one page table.
pub const ENTRIES: usize = 512;

/// The 512 entries of one table, each accessed atomically.
pub type Entries = [AtomicPte; ENTRIES];

/// Access to the physical memory that holds page tables.
///
/// The kernel implements it with its direct map and its frame allocator; host tests use
/// [`TableArena`](crate::testing::TableArena).
///
/// ```no_run
/// use remora_mmu::{PageTable, PhysFrame, PhysMemory};
/// # struct FrameAllocator;
/// # impl FrameAllocator {
/// #     fn alloc(&self) -> Option<PhysFrame> { None }
/// #     fn free(&self, _: PhysFrame) {}
/// # }
/// struct DirectMap {
///     offset: u64,
///     frames: &'static FrameAllocator,
/// }
///
/// // SAFETY: every frame is mapped at `offset + phys` for the kernel's lifetime, and
/// // frames come zeroed from `alloc_table`.
/// unsafe impl PhysMemory for DirectMap {
///     fn table_ptr(&self, table: PhysFrame) -> *mut PageTable {
///         (self.offset + table.start_address().as_u64()) as *mut PageTable
///     }
///     fn alloc_table(&mut self) -> Option<PhysFrame> {
///         let frame = self.frames.alloc()?;
///         // SAFETY: the frame is ours now and the direct map covers it.
///         unsafe { self.table_ptr(frame).write_bytes(0, 1) };
///         Some(frame)
///     }
///     fn free_table(&mut self, table: PhysFrame) {
///         self.frames.free(table)
///     }
/// }
/// ```
///
/// # Safety
///
/// Implementors promise, for every `table` that is the root of an
/// [`AddressSpace`](crate::AddressSpace), is reachable from such a root, or was returned by
/// `alloc_table` and not yet passed to `free_table`:
/// - `table_ptr(table)` is non-null, 4096-byte aligned, valid for reads and writes of one
///   `PageTable`, and stays so until `free_table(table)` is called or `self` is dropped;
/// - distinct tables give non-overlapping memory;
/// - nothing else reads or writes that memory through non-atomic Rust references while
///   this crate may use it (the CPU's page walker may);
/// - `alloc_table` returns a table whose 512 entries are zero.
#[allow(unsafe_code)]
pub unsafe trait PhysMemory {
    /// Where `table` can be read and written.
    fn table_ptr(&self, table: PhysFrame) -> *mut PageTable;

    /// A new zeroed table, or `None` when memory for tables is exhausted.
    fn alloc_table(&mut self) -> Option<PhysFrame>;

    /// Gives back a table that no entry points to any more. The caller has already
    /// flushed any translation caches that might still walk it.
    fn free_table(&mut self, table: PhysFrame);
}

/// The entries of `table`, borrowed for as long as `mem` is.
#[allow(unsafe_code)] // the crate's only unsafe block
pub(crate) fn entries<M: PhysMemory + ?Sized>(mem: &M, table: PhysFrame) -> &Entries {
    let ptr = mem.table_ptr(table);
    debug_assert!(
        !ptr.is_null() && ptr.is_aligned(),
        "PhysMemory::table_ptr gave {ptr:p} for {table:?}"
    );
    // SAFETY: `PhysMemory` is an unsafe trait whose implementor promises that `ptr` is
    // non-null, aligned and valid for one `PageTable` for as long as the table is live,
    // and the table cannot be freed while this shared borrow of `mem` lasts (freeing
    // takes `&mut M`). `PageTable` is `repr(C)` over 512 `repr(transparent)` `u64`s and
    // `AtomicPte` is `repr(transparent)` over `AtomicU64`, which has the size and
    // alignment of `u64` (asserted below), so the memory is a valid `[AtomicPte; 512]`.
    // Every access through the result is atomic, so concurrent writes by the CPU's page
    // walker or by other views of the same table are not data races.
    unsafe { &*ptr.cast::<Entries>() }
}

const _: () = assert!(size_of::<PageTable>() == size_of::<Entries>());
const _: () = assert!(align_of::<PageTable>() >= align_of::<Entries>());
const _: () = assert!(size_of::<PageTable>() == 4096);

/// The entries of the leaf table `table`, for the rest of the kernel's life.
///
/// This is how the pager reaches the entries of its far region without walking tables
/// or holding the address space's lock: far-page states keep their tables from ever
/// being freed.
///
/// # Safety
/// `table` must be a table of an address space over `mem` that is never freed while the
/// kernel runs (no `free_empty_tables` may remove it, the space is never destroyed), and
/// `mem` must keep it mapped for `'static`.
#[allow(unsafe_code)]
pub unsafe fn static_entries<M: PhysMemory + ?Sized>(
    mem: &M,
    table: PhysFrame,
) -> &'static Entries {
    let ptr = mem.table_ptr(table);
    // SAFETY: as in `entries`, and the caller promises the table lives for 'static.
    unsafe { &*ptr.cast::<Entries>() }
}
