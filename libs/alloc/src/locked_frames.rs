//! [`LockedFrames`]: the kernel's one frame allocator, shared by everything that needs
//! physical frames (page tables, thread stacks, the pager's frame cache, DMA buffers),
//! installed by the image at boot. Owns the lock; the policy is the buddy allocator's.

use crate::buddy::BuddyAllocator;
use crate::frame::{FrameAllocError, FrameAllocator, FrameFreeError, FrameStats};

/// A frame allocator behind a spin lock, empty until [`LockedFrames::install`].
pub struct LockedFrames {
    inner: crate::irq_lock::IrqLock<Option<BuddyAllocator<'static>>>,
}

impl LockedFrames {
    /// No frames: every allocation fails with [`FrameAllocError::OutOfMemory`] until
    /// [`LockedFrames::install`].
    pub const fn empty() -> Self {
        LockedFrames { inner: crate::irq_lock::IrqLock::new(None) }
    }

    /// Hands the allocator over; a second call replaces the first.
    pub fn install(&self, allocator: BuddyAllocator<'static>) {
        *self.inner.lock() = Some(allocator);
    }

    /// Whether an allocator is installed.
    pub fn is_ready(&self) -> bool {
        self.inner.lock().is_some()
    }

    /// A block of `2^order` frames, aligned to its size; its physical address.
    pub fn alloc(&self, order: usize) -> Result<u64, FrameAllocError> {
        match self.inner.lock().as_mut() {
            Some(buddy) => buddy.alloc_frames(order),
            None => Err(FrameAllocError::OutOfMemory { order, free_frames: 0 }),
        }
    }

    /// Returns a block from [`LockedFrames::alloc`].
    pub fn free(&self, addr: u64, order: usize) -> Result<(), FrameFreeError> {
        match self.inner.lock().as_mut() {
            Some(buddy) => buddy.free_frames(addr, order),
            None => Err(FrameFreeError::NotAllocated { addr }),
        }
    }

    /// Counters, or all zero before install.
    pub fn stats(&self) -> FrameStats {
        self.inner.lock().as_ref().map(|b| b.stats()).unwrap_or_default()
    }
}

impl Default for LockedFrames {
    fn default() -> Self {
        Self::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fails_then_installed_serves_and_frees() {
        let frames = LockedFrames::empty();
        assert!(frames.alloc(0).is_err());
        let usable = [0x10_0000u64..0x30_0000, 0x30_0000..0x50_0000];
        let words = BuddyAllocator::<'static, { crate::DEFAULT_MAX_ORDER }>::storage_words(&usable)
            .unwrap();
        let storage: &'static mut [u64] = Box::leak(vec![0u64; words].into_boxed_slice());
        frames.install(BuddyAllocator::new(&usable, storage).unwrap());
        let before = frames.stats().free_frames;
        let a = frames.alloc(2).unwrap();
        assert_eq!(a % (4 * 4096), 0);
        assert_eq!(frames.stats().free_frames, before - 4);
        frames.free(a, 2).unwrap();
        assert_eq!(frames.stats().free_frames, before);
        assert!(frames.free(a, 2).is_err(), "a double free must be refused");
    }
}
