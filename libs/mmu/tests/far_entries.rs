//! The encoding of far pages in non-present entries, and the pager's compare-and-swap
//! transitions on them.

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use remora_mmu::entry::{PAYLOAD_BITS, PAYLOAD_SHIFT};
use remora_mmu::testing::{Access, RecordingTlb, TableArena, access};
use remora_mmu::{
    AddressSpace, AtomicPte, Claimed, ClearBits, FarPte, Fault, FlushBatch, MapError, Page,
    PageTableFlags, PhysAddr, PhysFrame, PresentPte, Size4KiB, VirtAddr,
};

fn frame_strategy() -> impl Strategy<Value = PhysFrame<Size4KiB>> {
    (0..1u64 << 40).prop_map(PhysFrame::from_pfn)
}

fn far_state() -> impl Strategy<Value = FarPte> {
    prop_oneof![
        Just(FarPte::Untouched),
        Just(FarPte::Remote),
        any::<u32>().prop_map(|tag| FarPte::InFlight { tag }),
        Just(FarPte::InFlight { tag: 0 }),
        Just(FarPte::InFlight { tag: u32::MAX }),
        frame_strategy().prop_map(|frame| FarPte::WritingBack { frame }),
        Just(FarPte::WritingBack { frame: PhysFrame::from_pfn((1 << 40) - 1) }),
        Just(FarPte::WritingBack { frame: PhysFrame::from_pfn(0) }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn far_states_round_trip_and_never_look_present(state in far_state()) {
        let raw = state.encode();
        prop_assert_eq!(FarPte::decode(raw), state);
        prop_assert_eq!(raw & 1, 0, "PRESENT must be clear");
        prop_assert!(!state.is_present());
        prop_assert_eq!(raw == 0, state == FarPte::Untouched, "only Untouched is zero");
        prop_assert!(PresentPte::from_raw(raw).is_none());
        // Payload stays inside its field; ACCESSED and DIRTY positions stay clear.
        prop_assert_eq!(raw & !((((1u64 << PAYLOAD_BITS) - 1) << PAYLOAD_SHIFT) | 0b1110), 0);
    }

    #[test]
    fn decode_is_total_and_exact(raw in any::<u64>()) {
        let state = FarPte::decode(raw);
        prop_assert_eq!(state.encode(), raw);
        prop_assert_eq!(state.is_present(), raw & 1 == 1);
    }

    #[test]
    fn present_entries_round_trip(pfn in 0..1u64 << 40, flags in any::<u64>()) {
        let flags = PageTableFlags::from_bits_truncate(flags);
        let frame = PhysFrame::from_pfn(pfn);
        let pte = PresentPte::new(frame, flags);
        prop_assert_eq!(pte.addr(), frame.start_address());
        prop_assert!(pte.flags().contains(PageTableFlags::PRESENT));
        prop_assert!(!pte.flags().contains(PageTableFlags::HUGE_PAGE));
        prop_assert_eq!(FarPte::decode(pte.raw()), FarPte::Present(pte));
        prop_assert_eq!(pte.entry().addr(), frame.start_address());
    }

    #[test]
    fn claim_succeeds_only_from_untouched_or_remote(state in far_state(), tag in any::<u32>()) {
        let entry = AtomicPte::new(state);
        let got = entry.claim(tag);
        match state {
            FarPte::Untouched => prop_assert_eq!(got, Ok(Claimed::Untouched)),
            FarPte::Remote => prop_assert_eq!(got, Ok(Claimed::Remote)),
            other => {
                prop_assert_eq!(got, Err(other));
                prop_assert_eq!(entry.load(), other);
                return Ok(());
            }
        }
        prop_assert_eq!(entry.load(), FarPte::InFlight { tag });
        // A fault on a page already in flight sees the fetcher's tag.
        prop_assert_eq!(entry.claim(tag.wrapping_add(1)), Err(FarPte::InFlight { tag }));
    }
}

#[test]
fn invalid_encodings_are_not_claimable() {
    let bad = FarPte::decode(0b1000); // state 4
    assert!(matches!(bad, FarPte::Invalid(_)));
    assert_eq!(AtomicPte::new(bad).claim(1), Err(bad));
}

#[test]
fn compare_exchange_fails_when_the_cpu_set_a_bit() {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let page: Page = Page::containing_address(VirtAddr::new(0x5000));
    space.ensure_tables(Page::range(page, page + 1)).unwrap();
    let entry = space.pte(page).unwrap();
    let clean = PresentPte::new(PhysFrame::from_pfn(42), PageTableFlags::WRITABLE);
    entry.compare_exchange(FarPte::Untouched, FarPte::Present(clean)).unwrap();
    // The evictor loaded `clean`; then the CPU writes and sets ACCESSED and DIRTY.
    access(&space, page.start_address(), Access::Write).unwrap();
    let Err(FarPte::Present(now)) = entry.compare_exchange(FarPte::Present(clean), FarPte::Remote)
    else {
        panic!("evicting with a stale value must fail rather than lose the dirty bit");
    };
    assert!(now.dirty() && now.accessed());
    entry.compare_exchange(FarPte::Present(now), FarPte::Remote).unwrap();
    assert_eq!(entry.load(), FarPte::Remote);
}

#[test]
fn harvest_on_far_entries_changes_nothing() {
    for state in [
        FarPte::Untouched,
        FarPte::Remote,
        FarPte::InFlight { tag: u32::MAX },
        FarPte::WritingBack { frame: PhysFrame::from_pfn((1 << 40) - 1) },
    ] {
        let entry = AtomicPte::new(state);
        assert_eq!(entry.harvest(ClearBits::AccessedAndDirty), None);
        assert_eq!(entry.load(), state);
    }
}

#[test]
fn exactly_one_of_many_racing_faults_claims_the_page() {
    for round in 0..200 {
        let entry = AtomicPte::new(if round % 2 == 0 { FarPte::Remote } else { FarPte::Untouched });
        let winners = AtomicUsize::new(0);
        let saw_in_flight = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for tag in 0..4u32 {
                let (entry, winners, saw) = (&entry, &winners, &saw_in_flight);
                s.spawn(move || match entry.claim(tag) {
                    Ok(_) => {
                        winners.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(FarPte::InFlight { .. }) => {
                        saw.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(other) => panic!("unexpected {other:?}"),
                });
            }
        });
        assert_eq!(winners.into_inner(), 1);
        assert_eq!(saw_in_flight.into_inner(), 3);
    }
}

/// A far page's whole life, as the pager and evictor drive it through its entry.
#[test]
fn a_far_page_from_untouched_to_remote_and_back() {
    let far = Page::<Size4KiB>::range(
        Page::containing_address(VirtAddr::new(0x1000_0000_0000)),
        Page::containing_address(VirtAddr::new(0x1000_0010_0000)),
    );
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    let page = far.start + 5;
    assert_eq!(space.pte(page).unwrap_err(), MapError::NoTable { at: page.start_address() });
    space.ensure_tables(far).unwrap();
    let tables = space.memory().live();

    let entry = space.pte(page).unwrap();
    assert_eq!(entry.load(), FarPte::Untouched);
    // The CPU faults on it and the entry says so.
    assert_eq!(
        access(&space, page.start_address(), Access::Read),
        Err(Fault::NotPresent { level: 1, entry: FarPte::Untouched })
    );
    // Fault: claim. A second fault sees the fetch in flight.
    assert_eq!(entry.claim(7), Ok(Claimed::Untouched));
    assert_eq!(
        access(&space, page.start_address(), Access::Write),
        Err(Fault::NotPresent { level: 1, entry: FarPte::InFlight { tag: 7 } })
    );
    assert_eq!(entry.claim(8), Err(FarPte::InFlight { tag: 7 }));
    // Zero-filled frame ready: map it.
    let frame = PhysFrame::from_pfn(0x777);
    let mapped = PresentPte::new(frame, PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE);
    entry.compare_exchange(FarPte::InFlight { tag: 7 }, FarPte::Present(mapped)).unwrap();
    assert_eq!(
        access(&space, page.start_address() + 8u64, Access::Write),
        Ok(PhysAddr::new(0x777_008))
    );
    // Evictor: harvest, write back from the frame, then remote.
    let mut batch: FlushBatch = FlushBatch::new();
    let scan = space.scan(far.start, ClearBits::AccessedAndDirty, &mut batch);
    assert_eq!((scan.present, scan.accessed, scan.dirty), (1 << 5, 1 << 5, 1 << 5));
    let mut tlb = RecordingTlb::new();
    batch.flush(&mut tlb);
    assert_eq!(tlb.pages(), [page.start_address()]);
    let clean = match entry.load() {
        FarPte::Present(pte) => pte,
        other => panic!("{other:?}"),
    };
    assert!(!clean.accessed() && !clean.dirty());
    entry.compare_exchange(FarPte::Present(clean), FarPte::WritingBack { frame }).unwrap();
    batch.add(page.start_address());
    batch.flush(&mut tlb);
    // A fault during the write-back finds the frame; here the write finishes first.
    assert_eq!(entry.claim(9), Err(FarPte::WritingBack { frame }));
    entry.compare_exchange(FarPte::WritingBack { frame }, FarPte::Remote).unwrap();
    // Next fault: fetch.
    assert_eq!(entry.claim(10), Ok(Claimed::Remote));

    // Far states keep their tables alive; map() will not overwrite them.
    assert_eq!(space.free_empty_tables(&mut tlb), 0);
    assert_eq!(space.memory().live(), tables);
    assert_eq!(
        space.map(page, frame, PageTableFlags::WRITABLE),
        Err(MapError::FarState { at: page.start_address(), state: FarPte::InFlight { tag: 10 } })
    );
    assert_eq!(
        space.unmap(page, &mut batch),
        Err(MapError::FarState { at: page.start_address(), state: FarPte::InFlight { tag: 10 } })
    );
    assert!(space.translate(page.start_address()).is_none());
}
