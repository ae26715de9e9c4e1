//! Tests of the memory libraries in the running kernel: frames, the heap, page tables.

use alloc::boxed::Box;
use alloc::vec::Vec;

use remora_alloc::{FRAME_SIZE, FRAMES, HEAP};
use remora_kvm::format::Size;
use remora_kvm::paging::phys_to_virt;
use remora_kvm::{BootInfo, println};

/// Allocates frame blocks of every order up to 6, fills them through the direct map,
/// checks the contents, frees them, and checks that the allocator is back where it was.
pub fn frames(_: &'static BootInfo) -> Result<(), &'static str> {
    let before = FRAMES.stats();
    let mut blocks = Vec::new();
    for order in 0..=6usize {
        for copy in 0..4u64 {
            let phys = FRAMES.alloc(order).map_err(|_| "a frame allocation failed")?;
            if phys % (FRAME_SIZE << order) != 0 {
                return Err("a block is not aligned to its size");
            }
            let words = (FRAME_SIZE << order) as usize / 8;
            let ptr = phys_to_virt(phys) as *mut u64;
            for i in 0..words {
                // SAFETY: the block was just allocated to us and is direct mapped.
                unsafe { ptr.add(i).write(phys ^ i as u64 ^ copy) };
            }
            blocks.push((phys, order, copy));
        }
    }
    for &(phys, order, copy) in &blocks {
        let ptr = phys_to_virt(phys) as *const u64;
        for i in 0..(FRAME_SIZE << order) as usize / 8 {
            // SAFETY: still ours, written above.
            if unsafe { ptr.add(i).read() } != phys ^ i as u64 ^ copy {
                return Err("a block's contents changed: two blocks overlap");
            }
        }
    }
    let during = FRAMES.stats();
    for &(phys, order, _) in &blocks {
        FRAMES.free(phys, order).map_err(|_| "freeing a block failed")?;
    }
    if FRAMES.free(blocks[0].0, blocks[0].1).is_ok() {
        return Err("a double free was accepted");
    }
    let after = FRAMES.stats();
    println!(
        "frames: {} free before, {} while holding {} blocks, {} after",
        before.free_frames,
        during.free_frames,
        blocks.len(),
        after.free_frames
    );
    if after.free_frames != before.free_frames
        || after.largest_free_order != before.largest_free_order
    {
        return Err("freeing everything did not restore the allocator");
    }
    Ok(())
}

/// Allocates 64 KiB boxes up to `limit=` MiB (default 8), checks them, frees them, and
/// checks the heap is back to where it was.
pub fn heap(boot: &'static BootInfo) -> Result<(), &'static str> {
    let limit_mib: usize = boot.cmdline.get("limit").and_then(|v| v.parse().ok()).unwrap_or(8);
    let before = HEAP.kernel().stats();
    let mut boxes: Vec<Box<[u8; 65536]>> = Vec::new();
    while boxes.len() * 65536 < limit_mib << 20 {
        let fill = boxes.len() as u8;
        boxes.push(Box::new([fill; 65536]));
    }
    if boxes.iter().enumerate().any(|(i, b)| b.iter().any(|&x| x != i as u8)) {
        return Err("a heap block's contents changed");
    }
    let during = HEAP.kernel().stats();
    println!(
        "heap: {} boxes; used {} of {}, peak {}",
        boxes.len(),
        Size(during.used as u64),
        Size(during.total as u64),
        Size(during.peak_used as u64)
    );
    drop(boxes);
    let after = HEAP.kernel().stats();
    println!("heap after freeing: used {}", Size(after.used as u64));
    if after.used != before.used {
        return Err("freeing every box did not return the heap to its earlier use");
    }
    Ok(())
}

/// Asks for more than the whole heap: the image must panic with the heap's report.
pub fn out_of_memory(_: &'static BootInfo) -> Result<(), &'static str> {
    let total = HEAP.kernel().stats().total;
    let v: Vec<u8> = Vec::with_capacity(total + 1);
    println!("allocated {} bytes from a heap of {total}", v.capacity());
    Err("an allocation larger than the heap succeeded")
}

/// Maps a fresh frame at run time, uses it through the new address, unmaps it.
pub fn mmu(_: &'static BootInfo) -> Result<(), &'static str> {
    use remora_kvm::kspace::{self, KERNEL_MAPPINGS, KernelFlushBatch};
    use remora_mmu::{MapError, Page, PageTableFlags, PhysAddr, PhysFrame, Size4KiB, VirtAddr};

    let phys = FRAMES.alloc(0).map_err(|_| "no frame")?;
    let va = KERNEL_MAPPINGS.start + 0x1234_5000;
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
    let frame = PhysFrame::containing_address(PhysAddr::new(phys));
    let flags = PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    kspace::with_kernel_space(|s| s.map(page, frame, flags)).map_err(|_| "map failed")?;
    // SAFETY: the page was just mapped to a frame we own.
    unsafe { (va as *mut u64).add(3).write_volatile(0x5eed_f00d) };
    // SAFETY: the same frame through the direct map.
    let seen = unsafe { (phys_to_virt(phys) as *const u64).add(3).read_volatile() };
    if seen != 0x5eed_f00d {
        return Err("a write through the new mapping is not in the frame");
    }
    let translated = kspace::with_kernel_space(|s| s.translate(VirtAddr::new(va + 0x18)));
    if translated.map(|t| t.phys.as_u64()) != Some(phys + 0x18) {
        return Err("translate does not give the mapped frame");
    }
    match kspace::with_kernel_space(|s| s.map(page, frame, flags)) {
        Err(MapError::AlreadyMapped { .. }) => {}
        _ => return Err("mapping a mapped page was not refused"),
    }
    let mut batch = KernelFlushBatch::new();
    let unmapped =
        kspace::with_kernel_space(|s| s.unmap(page, &mut batch)).map_err(|_| "unmap failed")?;
    kspace::flush(&mut batch);
    if !unmapped.flags.contains(PageTableFlags::DIRTY) {
        return Err("the written page was not dirty");
    }
    if kspace::with_kernel_space(|s| s.translate(VirtAddr::new(va))).is_some() {
        return Err("the page is still mapped after unmap");
    }
    FRAMES.free(phys, 0).map_err(|_| "free failed")?;
    println!("mmu: mapped, used, found dirty and unmapped {va:#x} -> {phys:#x}");
    Ok(())
}
