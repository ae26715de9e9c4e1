//! Map, translate, protect and unmap against a model (a HashMap), on the heap arena.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use proptest::prelude::*;
use remora_mmu::testing::{RecordingTlb, TableArena};
use remora_mmu::{
    AddressSpace, FlushBatch, MapError, Page, PageTableFlags, PhysAddr, PhysFrame, Size4KiB,
    VirtAddr,
};

/// Bases chosen to share tables, cross table boundaries and sit at both ends of both
/// canonical halves.
const BASES: [u64; 5] = [
    0,
    0x0000_0000_001f_f000 - 0x10 * 4096, // runs across a 2 MiB boundary
    0x0000_7fff_ffff_f000 - 0x40 * 4096, // top of the lower half
    0xffff_8000_0000_0000,               // bottom of the upper half
    0xffff_ffff_ffff_f000 - 0x40 * 4096, // top of the upper half
];

fn page(base: usize, offset: u64) -> Page {
    Page::containing_address(VirtAddr::new(BASES[base] + offset * 4096))
}

fn frame(n: u64) -> PhysFrame {
    PhysFrame::containing_address(PhysAddr::new(0x1_0000_0000 + n * 4096))
}

const PERMISSIONS: [PageTableFlags; 4] = [
    PageTableFlags::empty(),
    PageTableFlags::WRITABLE,
    PageTableFlags::WRITABLE.union(PageTableFlags::NO_EXECUTE),
    PageTableFlags::USER_ACCESSIBLE.union(PageTableFlags::BIT_9),
];

#[derive(Clone, Debug)]
enum Op {
    Map { base: usize, offset: u64, frame: u64, perm: usize },
    MapRange { base: usize, offset: u64, len: u64, frame: u64, perm: usize },
    Unmap { base: usize, offset: u64 },
    Protect { base: usize, offset: u64, perm: usize },
    Translate { base: usize, offset: u64, byte: u64 },
    FreeTables,
}

fn op() -> impl Strategy<Value = Op> {
    let at = (0..BASES.len(), 0..64u64);
    prop_oneof![
        4 => (at.clone(), 0..1024u64, 0..4usize)
            .prop_map(|((base, offset), frame, perm)| Op::Map { base, offset, frame, perm }),
        1 => (at.clone(), 1..8u64, 0..1024u64, 0..4usize).prop_map(
            |((base, offset), len, frame, perm)| {
                let offset = offset.min(64 - len);
                Op::MapRange { base, offset, len, frame, perm }
            }
        ),
        3 => at.clone().prop_map(|(base, offset)| Op::Unmap { base, offset }),
        2 => (at.clone(), 0..4usize)
            .prop_map(|((base, offset), perm)| Op::Protect { base, offset, perm }),
        3 => (at, 0..4096u64)
            .prop_map(|((base, offset), byte)| Op::Translate { base, offset, byte }),
        1 => Just(Op::FreeTables),
    ]
}

fn flags(perm: usize) -> PageTableFlags {
    PERMISSIONS[perm] | PageTableFlags::PRESENT
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn matches_a_hashmap(ops in proptest::collection::vec(op(), 1..120)) {
        check_against_model(ops)?;
    }
}

fn check_against_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let mut model: HashMap<u64, (PhysFrame, PageTableFlags)> = HashMap::new();
    let mut batch: FlushBatch<8> = FlushBatch::new();
    let mut tlb = RecordingTlb::new();

    for op in ops {
        match op {
            Op::Map { base, offset, frame: f, perm } => {
                let p = page(base, offset);
                let got = space.map(p, frame(f), PERMISSIONS[perm]);
                match model.entry(p.start_address().as_u64()) {
                    Entry::Occupied(_) => {
                        prop_assert_eq!(
                            got,
                            Err(MapError::AlreadyMapped { at: p.start_address() })
                        );
                    }
                    Entry::Vacant(slot) => {
                        prop_assert_eq!(got, Ok(()));
                        slot.insert((frame(f), flags(perm)));
                    }
                }
            }
            Op::MapRange { base, offset, len, frame: f, perm } => {
                let range = Page::range(page(base, offset), page(base, offset + len));
                let got = space.map_range(range, frame(f), PERMISSIONS[perm]);
                let clash = (0..len)
                    .find(|i| model.contains_key(&page(base, offset + i).start_address().as_u64()));
                match clash {
                    Some(i) => prop_assert_eq!(
                        got,
                        Err(MapError::AlreadyMapped { at: page(base, offset + i).start_address() })
                    ),
                    None => {
                        prop_assert_eq!(got, Ok(()));
                        for i in 0..len {
                            model.insert(
                                page(base, offset + i).start_address().as_u64(),
                                (frame(f + i), flags(perm)),
                            );
                        }
                    }
                }
            }
            Op::Unmap { base, offset } => {
                let p = page(base, offset);
                let got = space.unmap(p, &mut batch);
                match model.remove(&p.start_address().as_u64()) {
                    Some((f, fl)) => {
                        let got = got.unwrap();
                        prop_assert_eq!(got.frame, f);
                        prop_assert_eq!(got.flags, fl);
                        prop_assert!(
                            batch.flushes_all() || batch.pages().contains(&p.start_address())
                        );
                    }
                    None => {
                        prop_assert_eq!(got, Err(MapError::NotMapped { at: p.start_address() }))
                    }
                }
            }
            Op::Protect { base, offset, perm } => {
                let p = page(base, offset);
                let got = space.protect(p, PERMISSIONS[perm], &mut batch);
                match model.get_mut(&p.start_address().as_u64()) {
                    Some((_, fl)) => {
                        prop_assert_eq!(got, Ok(*fl));
                        *fl = flags(perm);
                    }
                    None => {
                        prop_assert_eq!(got, Err(MapError::NotMapped { at: p.start_address() }))
                    }
                }
            }
            Op::Translate { base, offset, byte } => {
                let addr = page(base, offset).start_address() + byte;
                let got = space.translate(addr);
                match model.get(&page(base, offset).start_address().as_u64()) {
                    Some((f, fl)) => {
                        let t = got.unwrap();
                        prop_assert_eq!(t.phys, f.start_address() + byte);
                        prop_assert_eq!(t.flags(), *fl);
                    }
                    None => prop_assert!(got.is_none()),
                }
            }
            Op::FreeTables => {
                space.free_empty_tables(&mut tlb);
            }
        }
        batch.flush(&mut tlb);
    }

    // Everything the model holds translates; then unmapping all of it and freeing
    // tables leaves only the root, and destroying the space leaves nothing.
    for (&va, &(f, fl)) in &model {
        let t = space.translate(VirtAddr::new(va)).unwrap();
        prop_assert_eq!(t.phys, f.start_address());
        prop_assert_eq!(t.flags(), fl);
    }
    for &va in model.keys() {
        space.unmap(Page::<Size4KiB>::containing_address(VirtAddr::new(va)), &mut batch).unwrap();
        batch.flush(&mut tlb);
    }
    space.free_empty_tables(&mut tlb);
    prop_assert_eq!(space.memory().live(), 1);
    let arena = space.destroy();
    prop_assert_eq!(arena.live(), 0);
    Ok(())
}

#[test]
fn map_range_is_all_or_nothing() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let start = 0x20_0000 - 4 * 4096;
    let p = |i: u64| Page::containing_address(VirtAddr::new(start + i * 4096));
    space.map(p(6), frame(99), PageTableFlags::WRITABLE).unwrap();
    assert_eq!(
        space.map_range(Page::range(p(0), p(8)), frame(0), PageTableFlags::WRITABLE),
        Err(MapError::AlreadyMapped { at: p(6).start_address() })
    );
    for i in (0..8).filter(|&i| i != 6) {
        assert!(space.translate(p(i).start_address()).is_none(), "page {i}");
    }
    space.map_range(Page::range(p(0), p(6)), frame(0), PageTableFlags::WRITABLE).unwrap();
    for i in 0..6 {
        assert_eq!(space.translate(p(i).start_address()).unwrap().phys, frame(i).start_address());
    }
}

#[test]
fn map_range_out_of_tables_maps_nothing() {
    // Root plus one table per level covers one 2 MiB span; the range needs two.
    let mut space = AddressSpace::new(TableArena::with_limit(4)).unwrap();
    let p = |i: u64| Page::containing_address(VirtAddr::new(0x20_0000 - 2 * 4096 + i * 4096));
    assert_eq!(
        space.map_range(Page::range(p(0), p(4)), frame(0), PageTableFlags::WRITABLE),
        Err(MapError::OutOfTables)
    );
    for i in 0..4 {
        assert!(space.translate(p(i).start_address()).is_none());
    }
    assert_eq!(space.free_empty_tables(&mut RecordingTlb::new()), 3);
    assert_eq!(space.memory().live(), 1);
}

#[test]
fn frames_past_the_physical_space_are_refused() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let last = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new((1 << 52) - 4096));
    let p = |i: u64| Page::containing_address(VirtAddr::new(i * 4096));
    assert_eq!(
        space.map_range(Page::range(p(0), p(2)), last, PageTableFlags::WRITABLE),
        Err(MapError::FrameOutOfRange)
    );
    space.map_range(Page::range(p(0), p(1)), last, PageTableFlags::WRITABLE).unwrap();
}

#[test]
fn out_of_tables_is_an_error_not_a_panic() {
    assert!(AddressSpace::new(TableArena::with_limit(0)).is_err());
    let mut space = AddressSpace::new(TableArena::with_limit(2)).unwrap();
    let err = space
        .map(Page::containing_address(VirtAddr::new(0)), frame(0), PageTableFlags::WRITABLE)
        .unwrap_err();
    assert_eq!(err, MapError::OutOfTables);
    assert!(err.to_string().contains("page tables"));
}

#[test]
fn flags_that_belong_to_the_crate_are_refused() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let p = Page::containing_address(VirtAddr::new(0));
    for bad in [PageTableFlags::HUGE_PAGE, PageTableFlags::from_bits_retain(1 << 20)] {
        assert_eq!(space.map(p, frame(0), bad), Err(MapError::InvalidFlags { flags: bad }));
    }
}

#[test]
fn protect_keeps_accessed_and_dirty_and_reports_the_change() {
    use remora_mmu::testing::{Access, access};
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let p = Page::containing_address(VirtAddr::new(0x1234_5000));
    space.map(p, frame(7), PageTableFlags::WRITABLE).unwrap();
    access(&space, p.start_address(), Access::Write).unwrap();

    let mut batch: FlushBatch = FlushBatch::new();
    let before = space.protect(p, PageTableFlags::NO_EXECUTE, &mut batch).unwrap();
    assert!(before.contains(PageTableFlags::WRITABLE | PageTableFlags::DIRTY));
    assert_eq!(batch.pages(), &[p.start_address()]);
    let now = space.translate(p.start_address()).unwrap().flags();
    assert_eq!(
        now,
        PageTableFlags::PRESENT
            | PageTableFlags::NO_EXECUTE
            | PageTableFlags::ACCESSED
            | PageTableFlags::DIRTY
    );
    // Now read-only: the CPU refuses writes.
    assert!(access(&space, p.start_address(), Access::Write).is_err());
    assert!(access(&space, p.start_address(), Access::Read).is_ok());

    // The same protection again changes nothing and needs no flush.
    batch.flush(&mut RecordingTlb::new());
    space.protect(p, PageTableFlags::NO_EXECUTE, &mut batch).unwrap();
    assert!(batch.is_empty());
}

#[test]
fn protect_range_changes_mapped_pages_only() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let p = |i: u64| Page::containing_address(VirtAddr::new(0x40_0000 + i * 4096));
    for i in [0, 2, 3, 9] {
        space.map(p(i), frame(i), PageTableFlags::WRITABLE).unwrap();
    }
    let mut batch: FlushBatch = FlushBatch::new();
    let changed =
        space.protect_range(Page::range(p(0), p(8)), PageTableFlags::empty(), &mut batch).unwrap();
    assert_eq!(changed, 3);
    assert_eq!(batch.pages().len(), 3);
    for i in [0, 2, 3] {
        assert!(
            !space
                .translate(p(i).start_address())
                .unwrap()
                .flags()
                .contains(PageTableFlags::WRITABLE)
        );
    }
    assert!(
        space.translate(p(9).start_address()).unwrap().flags().contains(PageTableFlags::WRITABLE)
    );
    batch.flush(&mut RecordingTlb::new());
}
