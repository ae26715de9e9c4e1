//! 2 MiB pages: mapping, translating inside them, and what they refuse.

use remora_mmu::testing::{Access, RecordingTlb, TableArena, access};
use remora_mmu::{
    AddressSpace, FlushBatch, Granule, MapError, Page, PageTableFlags, PhysAddr, PhysFrame,
    Size2MiB, Size4KiB, VirtAddr,
};

const MIB2: u64 = 2 << 20;

fn big(addr: u64) -> Page<Size2MiB> {
    Page::from_start_address(VirtAddr::new(addr)).unwrap()
}

fn big_frame(addr: u64) -> PhysFrame<Size2MiB> {
    PhysFrame::from_start_address(PhysAddr::new(addr)).unwrap()
}

fn small(addr: u64) -> Page<Size4KiB> {
    Page::containing_address(VirtAddr::new(addr))
}

#[test]
fn a_2mib_page_translates_every_offset() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    space.map(big(0x4000_0000), big_frame(0x8000_0000), PageTableFlags::WRITABLE).unwrap();
    // Root, PDPT and PD: no page table for a 2 MiB page.
    assert_eq!(space.memory().live(), 3);
    for offset in [0, 1, 0xfff, 0x1000, 0x12_3456, MIB2 - 1] {
        let t = space.translate(VirtAddr::new(0x4000_0000 + offset)).unwrap();
        assert_eq!(t.phys, PhysAddr::new(0x8000_0000 + offset));
        assert_eq!(t.granule, Granule::Page2MiB);
        assert!(t.flags().contains(PageTableFlags::HUGE_PAGE | PageTableFlags::WRITABLE));
    }
    assert!(space.translate(VirtAddr::new(0x4000_0000 + MIB2)).is_none());
    assert_eq!(
        access(&space, VirtAddr::new(0x4000_0000 + 0x5555), Access::Write),
        Ok(PhysAddr::new(0x8000_5555))
    );
}

#[test]
fn small_pages_inside_a_huge_page_are_refused() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    space.map(big(0x20_0000), big_frame(0x40_0000), PageTableFlags::WRITABLE).unwrap();
    let inside = small(0x20_0000 + 0x3000);
    let frame = PhysFrame::containing_address(PhysAddr::new(0x1000));
    let at = inside.start_address();
    assert_eq!(
        space.map(inside, frame, PageTableFlags::WRITABLE),
        Err(MapError::HugePageInTheWay { at })
    );
    let mut batch: FlushBatch = FlushBatch::new();
    assert_eq!(space.unmap(inside, &mut batch), Err(MapError::HugePageInTheWay { at }));
    assert_eq!(space.pte(inside).unwrap_err(), MapError::HugePageInTheWay { at });
    assert_eq!(
        space.ensure_tables(Page::range(inside, inside + 1)),
        Err(MapError::HugePageInTheWay { at })
    );
    assert_eq!(
        space.protect_range(Page::range(inside, inside + 1), PageTableFlags::empty(), &mut batch),
        Err(MapError::HugePageInTheWay { at: VirtAddr::new(0x20_0000) })
    );
    assert_eq!(
        space.map(big(0x20_0000), big_frame(0), PageTableFlags::empty()),
        Err(MapError::AlreadyMapped { at: VirtAddr::new(0x20_0000) })
    );
    assert!(batch.is_empty());
}

#[test]
fn a_huge_page_cannot_replace_a_table_until_it_is_freed() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let mut batch: FlushBatch = FlushBatch::new();
    let mut tlb = RecordingTlb::new();
    let p = small(0x60_0000 + 0x1000);
    space
        .map(p, PhysFrame::containing_address(PhysAddr::new(0x9000)), PageTableFlags::empty())
        .unwrap();
    let at = VirtAddr::new(0x60_0000);
    assert_eq!(
        space.map(big(0x60_0000), big_frame(0), PageTableFlags::empty()),
        Err(MapError::TableInTheWay { at })
    );
    assert_eq!(space.unmap(big(0x60_0000), &mut batch), Err(MapError::TableInTheWay { at }));

    space.unmap(p, &mut batch).unwrap();
    batch.flush(&mut tlb);
    assert_eq!(space.free_empty_tables(&mut tlb), 3);
    space.map(big(0x60_0000), big_frame(0), PageTableFlags::empty()).unwrap();
}

#[test]
fn unmap_and_protect_a_huge_page() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let mut batch: FlushBatch = FlushBatch::new();
    let page = big(0xffff_8000_0020_0000);
    space.map(page, big_frame(0x1_0000_0000), PageTableFlags::WRITABLE).unwrap();
    access(&space, page.start_address() + 0x1234u64, Access::Write).unwrap();

    let old = space.protect(page, PageTableFlags::NO_EXECUTE, &mut batch).unwrap();
    assert!(old.contains(PageTableFlags::WRITABLE | PageTableFlags::HUGE_PAGE));
    let now = space.translate(page.start_address()).unwrap().flags();
    assert!(
        now.contains(
            PageTableFlags::HUGE_PAGE | PageTableFlags::NO_EXECUTE | PageTableFlags::DIRTY
        )
    );
    assert!(!now.contains(PageTableFlags::WRITABLE));

    let gone = space.unmap(page, &mut batch).unwrap();
    assert_eq!(gone.frame, big_frame(0x1_0000_0000));
    assert!(gone.dirty() && gone.accessed());
    assert_eq!(batch.pages(), &[page.start_address(), page.start_address()]);
    assert!(space.translate(page.start_address()).is_none());
    batch.flush(&mut RecordingTlb::new());
}

#[test]
fn map_range_of_huge_pages() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let start = big(0x3fe0_0000); // crosses a 1 GiB boundary after one page
    space
        .map_range(
            Page::range(start, start + 3),
            big_frame(0x20_0000_0000),
            PageTableFlags::WRITABLE,
        )
        .unwrap();
    for i in 0..3u64 {
        let t = space.translate(VirtAddr::new(0x3fe0_0000 + i * MIB2 + 7)).unwrap();
        assert_eq!(t.phys, PhysAddr::new(0x20_0000_0000 + i * MIB2 + 7));
        assert_eq!(t.granule, Granule::Page2MiB);
    }
    // root + 1 PDPT + 2 PDs
    assert_eq!(space.memory().live(), 4);
}
