//! Page tables at run time: the kernel address space (held by the platform, built on
//! `remora-mmu`) takes its new tables from the frame allocator.

use remora_alloc::FRAMES;
use remora_kvm::BootInfo;

fn alloc_table_frame() -> Option<u64> {
    FRAMES.alloc(0).ok()
}

fn free_table_frame(phys: u64) {
    if let Err(e) = FRAMES.free(phys, 0) {
        log::error!("mmu: freeing page-table frame {phys:#x}: {e}");
    }
}

pub fn init(_boot: &'static BootInfo) {
    remora_kvm::kspace::set_frame_source(alloc_table_frame, free_table_frame);
}
