//! Memory at boot: the kernel heap (`alloc.heap_size`, carved from the largest free
//! range) and the buddy frame allocator over everything else, whose bookkeeping is
//! carved out the same way. Both live in `remora_alloc` (`HEAP`, `FRAMES`).

use core::ops::Range;

use remora_alloc::{BuddyAllocator, DEFAULT_MAX_ORDER, FRAME_SIZE, FRAMES, HEAP};
use remora_kvm::BootInfo;
use remora_kvm::format::Size;
use remora_kvm::paging::phys_to_virt;

use crate::config;

type Ranges = heapless::Vec<Range<u64>, { remora_kvm::MAX_FREE_RANGES + 2 }>;

/// Takes `size` bytes, page aligned, from the end of the largest range that has room.
fn carve(ranges: &mut Ranges, size: u64) -> Option<u64> {
    let size = size.div_ceil(FRAME_SIZE) * FRAME_SIZE;
    let range =
        ranges.iter_mut().filter(|r| r.end - r.start >= size).max_by_key(|r| r.end - r.start)?;
    range.end -= size;
    Some(range.end)
}

pub fn init(boot: &'static BootInfo) {
    let mut ranges: Ranges = boot.free_memory.iter().cloned().collect();
    let largest = ranges.iter().map(|r| r.end - r.start).max().unwrap_or(0);
    let heap_size = config::alloc::HEAP_SIZE as u64;
    let Some(heap) = carve(&mut ranges, heap_size) else {
        remora_kvm::early_panic(
            "alloc.heap_size does not fit in the largest free memory range: lower it or give the guest more memory",
        );
    };
    // SAFETY: the range was free RAM (BootInfo::free_memory), is now taken out of what
    // the frame allocator will manage, and is reached through the direct map.
    if let Err(e) = unsafe { HEAP.kernel().init(phys_to_virt(heap) as usize, heap_size as usize) } {
        log::error!("kernel heap: {e:?}");
        remora_kvm::early_panic("the kernel heap could not be set up");
    }

    let words = match BuddyAllocator::<'static, DEFAULT_MAX_ORDER>::storage_words(&ranges) {
        Ok(words) => words,
        Err(e) => {
            log::error!("frame allocator: {e:?}");
            remora_kvm::early_panic("no memory left for the frame allocator");
        }
    };
    let Some(storage) = carve(&mut ranges, (words * 8) as u64) else {
        remora_kvm::early_panic("no room for the frame allocator's bookkeeping");
    };
    // SAFETY: as for the heap: free RAM, taken out of the managed ranges, direct mapped,
    // and handed out once for the life of the kernel.
    let storage: &'static mut [u64] =
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(storage) as *mut u64, words) };
    ranges.retain(|r| r.end > r.start);
    match BuddyAllocator::new(&ranges, storage) {
        Ok(buddy) => FRAMES.install(buddy),
        Err(e) => {
            log::error!("frame allocator: {e:?}");
            remora_kvm::early_panic("the frame allocator could not be set up");
        }
    }
    let frames = FRAMES.stats();
    log::info!(
        "alloc: kernel heap {} (largest free range was {}), {} frames ({}) free for allocation",
        Size(heap_size),
        Size(largest),
        frames.free_frames,
        Size(frames.free_frames * FRAME_SIZE)
    );
}
