//! Where the platform gets physical frames after boot (page tables, DMA buffers): from
//! the frame allocator the image installs. Owns only the two function pointers; before
//! [`set_frame_source`], every request fails.

use crate::fn_cell::FnCell;

static ALLOC: FnCell<fn(usize) -> Option<u64>> = FnCell::empty();
static FREE: FnCell<fn(u64, usize)> = FnCell::empty();

/// Installs the frame allocator: `alloc(order)` gives `2^order` contiguous, aligned
/// frames (their physical address), `free(phys, order)` gives them back.
pub fn set_frame_source(alloc: fn(usize) -> Option<u64>, free: fn(u64, usize)) {
    ALLOC.set(alloc);
    FREE.set(free);
}

/// `2^order` contiguous frames, or `None` (also before a source is installed).
pub fn alloc_frames(order: usize) -> Option<u64> {
    ALLOC.get()?(order)
}

/// Gives back frames from [`alloc_frames`].
pub fn free_frames(phys: u64, order: usize) {
    if let Some(free) = FREE.get() {
        free(phys, order);
    }
}
