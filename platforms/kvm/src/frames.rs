//! Where the platform gets physical frames after boot (page tables, DMA buffers): from
//! the frame allocator the image installs. Owns only the two function pointers; before
//! [`set_frame_source`], every request fails.

use core::sync::atomic::{AtomicUsize, Ordering};

static ALLOC: AtomicUsize = AtomicUsize::new(0);
static FREE: AtomicUsize = AtomicUsize::new(0);

/// Installs the frame allocator: `alloc(order)` gives `2^order` contiguous, aligned
/// frames (their physical address), `free(phys, order)` gives them back.
pub fn set_frame_source(alloc: fn(usize) -> Option<u64>, free: fn(u64, usize)) {
    ALLOC.store(alloc as usize, Ordering::Release);
    FREE.store(free as usize, Ordering::Release);
}

/// `2^order` contiguous frames, or `None` (also before a source is installed).
pub fn alloc_frames(order: usize) -> Option<u64> {
    let raw = ALLOC.load(Ordering::Acquire);
    if raw == 0 {
        return None;
    }
    // SAFETY: only ever stored from a `fn(usize) -> Option<u64>` in `set_frame_source`.
    let alloc = unsafe { core::mem::transmute::<usize, fn(usize) -> Option<u64>>(raw) };
    alloc(order)
}

/// Gives back frames from [`alloc_frames`].
pub fn free_frames(phys: u64, order: usize) {
    let raw = FREE.load(Ordering::Acquire);
    if raw != 0 {
        // SAFETY: only ever stored from a `fn(u64, usize)` in `set_frame_source`.
        let free = unsafe { core::mem::transmute::<usize, fn(u64, usize)>(raw) };
        free(phys, order);
    }
}
