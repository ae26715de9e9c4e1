//! Table reclamation (no leaks in the arena) and TLB flush batching.

use remora_mmu::testing::{RecordingTlb, TableArena, TlbEvent};
use remora_mmu::{
    AddressSpace, FlushBatch, Flushed, Page, PageTableFlags, PhysFrame, Size4KiB, VirtAddr,
};

fn page(addr: u64) -> Page<Size4KiB> {
    Page::containing_address(VirtAddr::new(addr))
}

fn frame(n: u64) -> PhysFrame {
    PhysFrame::from_pfn(n)
}

#[test]
fn tables_are_created_once_and_all_come_back() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let addrs = [0x1000, 0x2000, 0x20_0000, 0x4000_0000, 0x80_0000_0000, 0xffff_8000_0000_0000];
    for (i, &a) in addrs.iter().enumerate() {
        space.map(page(a), frame(i as u64), PageTableFlags::WRITABLE).unwrap();
    }
    // root; PDPT for 0 and for 512 GiB and for the upper half; PD for 0 and for 1 GiB
    // (and each of the others); PT for 0, 2 MiB, 1 GiB, ...
    let live = space.memory().live();
    assert_eq!(live, 1 + 3 + 4 + 5);

    let mut batch: FlushBatch = FlushBatch::new();
    let mut tlb = RecordingTlb::new();
    // Freeing with pages still mapped frees nothing.
    assert_eq!(space.free_empty_tables(&mut tlb), 0);
    assert!(tlb.events.is_empty());

    space.unmap(page(0x1000), &mut batch).unwrap();
    batch.flush(&mut tlb);
    assert_eq!(space.free_empty_tables(&mut tlb), 0, "0x2000 shares the table");

    for &a in &addrs[1..] {
        space.unmap(page(a), &mut batch).unwrap();
    }
    batch.flush(&mut tlb);
    tlb.events.clear();
    assert_eq!(space.free_empty_tables(&mut tlb), live - 1);
    // One full flush before the tables went back.
    assert_eq!(tlb.events, [TlbEvent::All]);
    assert_eq!(space.memory().live(), 1);

    // Space is usable again afterwards.
    space.map(page(0x1000), frame(1), PageTableFlags::empty()).unwrap();
    let arena = space.destroy();
    assert_eq!(arena.live(), 0);
    assert_eq!(arena.allocated(), arena.freed());
}

#[test]
fn freeing_many_tables_flushes_before_each_group() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    // 100 page tables under one PD (one page per 2 MiB).
    for i in 0..100 {
        space.map(page(i * 0x20_0000), frame(i), PageTableFlags::empty()).unwrap();
    }
    let mut batch: FlushBatch<4> = FlushBatch::new();
    let mut tlb = RecordingTlb::new();
    for i in 0..100 {
        space.unmap(page(i * 0x20_0000), &mut batch).unwrap();
    }
    assert!(batch.flushes_all());
    assert_eq!(batch.flush(&mut tlb), Flushed::All);
    tlb.events.clear();
    assert_eq!(space.free_empty_tables(&mut tlb), 100 + 1 + 1);
    assert!(tlb.full_flushes() >= 2, "the pending list holds 64 tables");
    assert_eq!(space.memory().live(), 1);
}

#[test]
fn destroy_frees_every_table_even_with_mappings_left() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    space
        .map_range(Page::range(page(0), page(0x40_0000)), frame(0), PageTableFlags::WRITABLE)
        .unwrap();
    space.ensure_tables(Page::range(page(0x7f00_0000_0000), page(0x7f00_0100_0000))).unwrap();
    assert!(space.memory().live() > 5);
    assert_eq!(space.destroy().live(), 0);
}

#[test]
fn a_batch_flushes_pages_one_by_one_up_to_its_threshold() {
    let mut tlb = RecordingTlb::new();
    let mut batch: FlushBatch<3> = FlushBatch::new();
    assert_eq!(batch.flush(&mut tlb), Flushed::Nothing);
    for i in 0..3 {
        batch.add(VirtAddr::new(i * 4096));
    }
    assert!(!batch.flushes_all());
    assert_eq!(batch.flush(&mut tlb), Flushed::Pages(3));
    assert_eq!(tlb.events, [0, 1, 2].map(|i| TlbEvent::Page(VirtAddr::new(i * 4096))));
    assert!(batch.is_empty());

    tlb.events.clear();
    for i in 0..4 {
        batch.add(VirtAddr::new(i * 4096));
    }
    assert!(batch.flushes_all());
    assert!(batch.pages().is_empty());
    assert_eq!(batch.flush(&mut tlb), Flushed::All);
    assert_eq!(tlb.events, [TlbEvent::All]);

    // Reusable after a full flush.
    batch.add(VirtAddr::new(0));
    assert_eq!(batch.flush(&mut tlb), Flushed::Pages(1));
    batch.add_all();
    assert_eq!(batch.flush(&mut tlb), Flushed::All);
}

#[test]
fn unmapping_a_batch_of_32_costs_32_invlpg_and_33_cost_one_full_flush() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    space
        .map_range(Page::range(page(0), page(33 * 4096)), frame(0), PageTableFlags::WRITABLE)
        .unwrap();
    let mut tlb = RecordingTlb::new();
    let mut batch: FlushBatch = FlushBatch::new();
    for i in 0..32 {
        space.unmap(page(i * 4096), &mut batch).unwrap();
    }
    assert_eq!(batch.flush(&mut tlb), Flushed::Pages(32));
    space
        .map_range(Page::range(page(0), page(32 * 4096)), frame(0), PageTableFlags::WRITABLE)
        .unwrap();
    for i in 0..33 {
        space.unmap(page(i * 4096), &mut batch).unwrap();
    }
    assert_eq!(batch.flush(&mut tlb), Flushed::All);
    assert_eq!(tlb.full_flushes(), 1);
    assert_eq!(tlb.pages().len(), 32);
}
