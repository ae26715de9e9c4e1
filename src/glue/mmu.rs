//! Page tables at run time: the platform (the kernel address space, DMA buffers) takes its
//! frames from the frame allocator.

use remora_alloc::FRAMES;
use remora_kvm::BootInfo;

fn alloc_frames(order: usize) -> Option<u64> {
    FRAMES.alloc(order).ok()
}

fn free_frames(phys: u64, order: usize) {
    if let Err(e) = FRAMES.free(phys, order) {
        log::error!("mmu: freeing frames at {phys:#x} (order {order}): {e}");
    }
}

pub fn init(_boot: &'static BootInfo) {
    remora_kvm::frames::set_frame_source(alloc_frames, free_frames);
}
