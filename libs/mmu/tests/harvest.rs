//! Accessed and dirty bits: set by hand as the CPU would, harvested, reported, cleared.

use std::collections::BTreeSet;

use proptest::prelude::*;
use remora_mmu::testing::{Access, RecordingTlb, TableArena, access};
use remora_mmu::{
    AddressSpace, ClearBits, FlushBatch, Flushed, Page, PageTableFlags, PhysAddr, PhysFrame,
    SCAN_PAGES, Size2MiB, VirtAddr,
};

const BASE: u64 = 0x7f00_0000_0000;

fn page(i: u64) -> Page {
    Page::containing_address(VirtAddr::new(BASE + i * 4096))
}

/// `n` pages from `BASE`, each mapped writable to its own frame.
fn mapped(n: u64) -> AddressSpace<TableArena> {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    space
        .map_range(
            Page::range(page(0), page(n)),
            PhysFrame::containing_address(PhysAddr::new(0x10_0000)),
            PageTableFlags::WRITABLE,
        )
        .unwrap();
    space
}

fn bits(set: &BTreeSet<u64>) -> u32 {
    set.iter().fold(0, |acc, i| acc | 1 << i)
}

#[test]
fn fresh_mappings_report_nothing_and_need_no_flush() {
    let space = mapped(32);
    let mut batch: FlushBatch = FlushBatch::new();
    let scan = space.scan(page(0), ClearBits::AccessedAndDirty, &mut batch);
    assert_eq!(scan.present, u32::MAX);
    assert_eq!((scan.accessed, scan.dirty), (0, 0));
    assert_eq!(scan.idle(), u32::MAX);
    assert!(batch.is_empty());
}

#[test]
fn harvest_reports_then_clears() {
    let space = mapped(64);
    access(&space, page(3).start_address(), Access::Read).unwrap();
    access(&space, page(5).start_address() + 17u64, Access::Write).unwrap();
    access(&space, page(40).start_address(), Access::Write).unwrap();

    let mut batch: FlushBatch = FlushBatch::new();
    let mut seen = Vec::new();
    let n = space.harvest(
        Page::range(page(0), page(64)),
        ClearBits::Accessed,
        &mut batch,
        |va, pte| {
            if pte.accessed() || pte.dirty() {
                seen.push((va, pte.accessed(), pte.dirty()));
            }
        },
    );
    assert_eq!(n, 64);
    assert_eq!(
        seen,
        [
            (page(3).start_address(), true, false),
            (page(5).start_address(), true, true),
            (page(40).start_address(), true, true),
        ]
    );
    assert_eq!(
        batch.pages(),
        &[page(3).start_address(), page(5).start_address(), page(40).start_address()]
    );
    let mut tlb = RecordingTlb::new();
    assert_eq!(batch.flush(&mut tlb), Flushed::Pages(3));

    // ACCESSED is gone, DIRTY stays (it was not asked for).
    let again = space.scan(page(0), ClearBits::Nothing, &mut batch);
    assert_eq!(again.accessed, 0);
    assert_eq!(again.dirty, 1 << 5);
    let again = space.scan(page(32), ClearBits::Dirty, &mut batch);
    assert_eq!(again.dirty, 1 << 8);
    assert_eq!(batch.pages(), &[page(40).start_address()]);
    batch.flush(&mut tlb);
    assert_eq!(space.scan(page(32), ClearBits::Nothing, &mut batch).dirty, 0);
}

#[test]
fn harvest_skips_holes_and_far_entries() {
    let mut space = mapped(4);
    space.ensure_tables(Page::range(page(4), page(8))).unwrap();
    space.pte(page(6)).unwrap().claim(9).unwrap();
    let mut batch: FlushBatch = FlushBatch::new();
    let scan = space.scan(page(0), ClearBits::AccessedAndDirty, &mut batch);
    assert_eq!(scan.present, 0b1111);
    assert_eq!(scan.page(6), page(6));
    // The in-flight entry is untouched by the AND.
    assert_eq!(space.pte(page(6)).unwrap().load(), remora_mmu::FarPte::InFlight { tag: 9 });
}

#[test]
fn a_huge_page_fills_its_share_of_a_scan() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let huge: Page<Size2MiB> = Page::from_start_address(VirtAddr::new(0x40_0000)).unwrap();
    space
        .map(
            huge,
            PhysFrame::from_start_address(PhysAddr::new(0x60_0000)).unwrap(),
            PageTableFlags::WRITABLE,
        )
        .unwrap();
    access(&space, VirtAddr::new(0x40_0000), Access::Write).unwrap();
    // A window that starts 8 pages before the huge page.
    let first = Page::containing_address(VirtAddr::new(0x40_0000 - 8 * 4096));
    let mut batch: FlushBatch = FlushBatch::new();
    let scan = space.scan(first, ClearBits::Accessed, &mut batch);
    assert_eq!(scan.present, !0xff);
    assert_eq!(scan.accessed, !0xff);
    assert_eq!(scan.dirty, !0xff);
    assert_eq!(batch.pages(), &[VirtAddr::new(0x40_0000)]);
    batch.flush(&mut RecordingTlb::new());
}

#[test]
fn the_scan_stops_at_the_end_of_the_address_space() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let last: Page = Page::containing_address(VirtAddr::new(0xffff_ffff_ffff_f000));
    space
        .map(last, PhysFrame::containing_address(PhysAddr::new(0x1000)), PageTableFlags::empty())
        .unwrap();
    let first = Page::containing_address(VirtAddr::new(0xffff_ffff_ffff_f000 - 3 * 4096));
    let scan = space.scan(first, ClearBits::Nothing, &mut FlushBatch::<32>::new());
    assert_eq!(scan.present, 1 << 3);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The evictor's loop: the CPU touches random pages; each batch of 32 reports exactly
    /// what was touched since the last scan, clears it, and asks for one flush per batch.
    #[test]
    fn scans_report_exactly_what_the_cpu_did(
        rounds in proptest::collection::vec(
            (
                proptest::collection::btree_set(0..96u64, 0..40),
                proptest::collection::btree_set(0..96u64, 0..20),
            ),
            1..6,
        )
    ) {
        check_scans(rounds)?;
    }
}

type Round = (BTreeSet<u64>, BTreeSet<u64>);

fn check_scans(rounds: Vec<Round>) -> Result<(), TestCaseError> {
    let space = mapped(96);
    let mut tlb = RecordingTlb::new();
    for (reads, writes) in rounds {
        for &i in &reads {
            access(&space, page(i).start_address(), Access::Read).unwrap();
        }
        for &i in &writes {
            access(&space, page(i).start_address(), Access::Write).unwrap();
        }
        for batch_no in 0..3u64 {
            let mut batch: FlushBatch = FlushBatch::new();
            let scan = space.scan(page(batch_no * 32), ClearBits::AccessedAndDirty, &mut batch);
            let window = |set: &BTreeSet<u64>| -> BTreeSet<u64> {
                set.iter().filter(|&&i| i / 32 == batch_no).map(|i| i % 32).collect()
            };
            let touched: BTreeSet<u64> = window(&reads).union(&window(&writes)).copied().collect();
            prop_assert_eq!(scan.present, u32::MAX);
            prop_assert_eq!(scan.accessed, bits(&touched));
            prop_assert_eq!(scan.dirty, bits(&window(&writes)));
            prop_assert_eq!(batch.pages().len(), touched.len());
            tlb.events.clear();
            batch.flush(&mut tlb);
            prop_assert_eq!(tlb.pages().len(), touched.len());
            prop_assert_eq!(tlb.full_flushes(), 0);
        }
        // Everything was cleared.
        for batch_no in 0..3u64 {
            let scan =
                space.scan(page(batch_no * 32), ClearBits::Nothing, &mut FlushBatch::<32>::new());
            prop_assert_eq!((scan.accessed, scan.dirty), (0, 0));
        }
    }
    Ok(())
}

#[test]
fn scan_pages_is_the_evictors_batch() {
    assert_eq!(SCAN_PAGES, 32);
}
