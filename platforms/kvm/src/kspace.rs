//! The kernel's address space at run time, through the `remora-mmu` library: page tables
//! reached through the direct map, new tables from the frame source the image installs
//! (`frames.rs`), and the virtual ranges the platform reserves for run-time mappings.
//!
//! Owns the one `AddressSpace` of the kernel and its lock (held with interrupts off).
//! Decides nothing about what is mapped where beyond the reserved ranges.

use core::ops::Range;

use remora_mmu::{AddressSpace, FlushBatch, PageTable, PhysAddr, PhysFrame, PhysMemory};
use spin::Mutex;
use x86_64::instructions::interrupts;

use crate::paging::phys_to_virt;

/// Kernel thread stacks (each with an unmapped guard page below it).
pub const KERNEL_STACKS: Range<u64> = 0xffff_a000_0000_0000..0xffff_a080_0000_0000;
/// Free for the image's own run-time mappings (device windows, tests).
pub const KERNEL_MAPPINGS: Range<u64> = 0xffff_b000_0000_0000..0xffff_b080_0000_0000;

/// Page tables reached through the direct map.
pub struct DirectMap;

// SAFETY: every frame handed to this memory is RAM covered by the direct map at a fixed
// offset, so `table_ptr` is valid and aligned for a table for as long as the frame is a
// table; tables come zeroed from `alloc_table`; distinct frames do not overlap.
unsafe impl PhysMemory for DirectMap {
    fn table_ptr(&self, table: PhysFrame) -> *mut PageTable {
        phys_to_virt(table.start_address().as_u64()) as *mut PageTable
    }

    fn alloc_table(&mut self) -> Option<PhysFrame> {
        let phys = crate::frames::alloc_frames(0)?;
        // SAFETY: a frame just handed to us by the frame allocator, direct mapped.
        unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, 4096) };
        Some(PhysFrame::containing_address(PhysAddr::new(phys)))
    }

    fn free_table(&mut self, table: PhysFrame) {
        crate::frames::free_frames(table.start_address().as_u64(), 0);
    }
}

/// The kernel's address space type.
pub type KernelSpace = AddressSpace<DirectMap>;
/// A batch of pages to invalidate, flushed all at once above 32 pages.
pub type KernelFlushBatch = FlushBatch<32>;

static SPACE: Mutex<Option<KernelSpace>> = Mutex::new(None);

/// Takes over the active page tables. Runs once, after `paging::init`.
pub(crate) fn init() {
    let root = PhysFrame::containing_address(PhysAddr::new(crate::paging::root_table()));
    // SAFETY: `root` is the active, well-formed table tree built by `paging::init`, whose
    // tables are RAM under the direct map; from now on only this space changes it.
    let space = unsafe { AddressSpace::from_root(DirectMap, root) };
    *SPACE.lock() = Some(space);
}

/// Runs `f` on the kernel's address space, with interrupts off.
pub fn with_kernel_space<R>(f: impl FnOnce(&mut KernelSpace) -> R) -> R {
    interrupts::without_interrupts(|| {
        let mut guard = SPACE.lock();
        let space = guard.as_mut().expect("kspace::init runs during boot");
        f(space)
    })
}

/// Invalidates the pages in `batch` on this CPU.
pub fn flush(batch: &mut KernelFlushBatch) {
    #[cfg(target_os = "none")]
    batch.flush(&mut remora_mmu::HardwareTlb);
    // Host builds of the platform (workspace-wide clippy) never run it.
    #[cfg(not(target_os = "none"))]
    let _ = batch;
}
