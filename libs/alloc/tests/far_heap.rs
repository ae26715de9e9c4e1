//! The far heap under random allocation and free, checked against the list of live
//! objects: no overlap, alignment honoured, large objects page aligned on pages of their
//! own, small objects inside one page, counters consistent, refusals justified, and freed
//! memory reused (freeing everything gives back one free run the size of the region).
//!
//! The region's addresses are not mapped in the test process: a read or write of managed
//! memory would crash the test, so passing also shows the heap never touches it.

use std::alloc::Layout;
use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use remora_alloc::{FarHeap, PAGE_SIZE};

const BASE: usize = 0x5000_0000_0000 + 3 * PAGE_SIZE;
const PAGES: usize = 512;

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize, usize),
    Free(Index),
    FreeThenAllocAgain(Index),
}

fn op() -> impl Strategy<Value = Op> {
    let align = prop::sample::select(vec![1usize, 2, 8, 16, 32, 64, 256, 4096, 16384]);
    let size = prop_oneof![
        6 => 0usize..=2048,
        2 => 2049usize..=40_000,
        1 => 40_000usize..=300_000,
    ];
    prop_oneof![
        5 => (size, align).prop_map(|(size, align)| Op::Alloc(size, align)),
        3 => any::<Index>().prop_map(Op::Free),
        1 => any::<Index>().prop_map(Op::FreeThenAllocAgain),
    ]
}

/// What the test knows of one live object.
#[derive(Clone, Copy, Debug)]
struct Live {
    layout: Layout,
}

/// A small object is one a size class serves. With a power-of-two `small_max` that is
/// any object up to `small_max` whose alignment is at most `small_max` (every power of two
/// up to it is a class).
fn is_small(layout: Layout, small_max: usize) -> bool {
    layout.size() <= small_max && layout.align() <= small_max
}

/// The bytes an object may claim as its own: its bytes, or its whole pages if large.
fn footprint(addr: usize, layout: Layout, small_max: usize) -> (usize, usize) {
    let end = addr + layout.size().max(1);
    if is_small(layout, small_max) { (addr, end) } else { (addr, end.next_multiple_of(PAGE_SIZE)) }
}

fn check_new(
    heap: &FarHeap,
    live: &BTreeMap<usize, Live>,
    addr: usize,
    layout: Layout,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(addr % layout.align(), 0, "alignment {} not honoured", layout.align());
    let small_max = heap.small_max();
    prop_assert!(addr >= BASE && addr + layout.size() <= heap.region().end, "outside the region");
    if is_small(layout, small_max) {
        let last = addr + layout.size().max(1) - 1;
        prop_assert_eq!(addr / PAGE_SIZE, last / PAGE_SIZE, "a small object straddles a page");
    } else {
        prop_assert_eq!(addr % PAGE_SIZE, 0, "a large object is not page aligned");
    }
    let (start, end) = footprint(addr, layout, small_max);
    for (&other, object) in live {
        let (other_start, other_end) = footprint(other, object.layout, small_max);
        let disjoint = end <= other_start || other_end <= start;
        // Small objects may share a page with each other, never with a large one.
        let pages = (start / PAGE_SIZE, end.div_ceil(PAGE_SIZE));
        let other_pages = (other_start / PAGE_SIZE, other_end.div_ceil(PAGE_SIZE));
        let pages_disjoint = (is_small(layout, small_max) && is_small(object.layout, small_max))
            || pages.1 <= other_pages.0
            || other_pages.1 <= pages.0;
        prop_assert!(
            disjoint && pages_disjoint,
            "{:#x} ({:?}) overlaps {:#x} ({:?})",
            addr,
            layout,
            other,
            object.layout
        );
    }
    Ok(())
}

fn check_stats(heap: &FarHeap, live: &BTreeMap<usize, Live>) -> Result<(), TestCaseError> {
    let stats = heap.stats();
    let small_max = heap.small_max();
    let requested: usize = live.values().map(|object| object.layout.size()).sum();
    let small = live.values().filter(|object| is_small(object.layout, small_max)).count();
    let large_pages: usize = live
        .values()
        .filter(|object| !is_small(object.layout, small_max))
        .map(|object| object.layout.size().div_ceil(PAGE_SIZE).max(1))
        .sum();
    prop_assert_eq!(stats.requested_bytes, requested);
    prop_assert_eq!(stats.small_objects, small);
    prop_assert_eq!(stats.large_runs, live.len() - small);
    prop_assert_eq!(stats.large_pages, large_pages);
    prop_assert_eq!(stats.slab_pages + stats.large_pages + stats.free_pages, PAGES);
    prop_assert!(stats.in_use_bytes >= requested);
    prop_assert!(stats.in_use_bytes <= (stats.slab_pages + stats.large_pages) * PAGE_SIZE);
    prop_assert_eq!(stats.classes.iter().map(|class| class.objects).sum::<usize>(), small);
    prop_assert_eq!(stats.classes.iter().map(|class| class.pages).sum::<usize>(), stats.slab_pages);
    // Every slab page holds a live object, except at most one reserve page per class.
    for class in &stats.classes {
        prop_assert!(
            class.pages <= class.objects + 1,
            "class {}: {} pages for {} objects",
            class.object_size,
            class.pages,
            class.objects
        );
    }
    Ok(())
}

fn alloc(
    heap: &mut FarHeap,
    live: &mut BTreeMap<usize, Live>,
    layout: Layout,
) -> Result<Option<usize>, TestCaseError> {
    match heap.alloc(layout) {
        Some(addr) => {
            check_new(heap, live, addr, layout)?;
            live.insert(addr, Live { layout });
            Ok(Some(addr))
        }
        None => {
            let stats = heap.stats();
            if is_small(layout, heap.small_max()) {
                prop_assert_eq!(stats.free_pages, 0, "small object refused with pages free");
            } else if layout.align() <= PAGE_SIZE {
                let pages = layout.size().div_ceil(PAGE_SIZE).max(1);
                prop_assert!(
                    stats.largest_free_run_pages < pages,
                    "{} pages refused, a run of {} is free",
                    pages,
                    stats.largest_free_run_pages
                );
            }
            Ok(None)
        }
    }
}

fn pick(live: &BTreeMap<usize, Live>, index: &Index) -> Option<(usize, Live)> {
    if live.is_empty() {
        return None;
    }
    live.iter().nth(index.index(live.len())).map(|(&addr, &object)| (addr, object))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_alloc_and_free(
        small_max in prop::sample::select(vec![64usize, 256, 2048]),
        ops in prop::collection::vec(op(), 1..250),
    ) {
        let mut heap = FarHeap::with_small_max(BASE, PAGES * PAGE_SIZE, small_max).unwrap();
        let mut live = BTreeMap::new();
        for op in &ops {
            match op {
                Op::Alloc(size, align) => {
                    alloc(&mut heap, &mut live, Layout::from_size_align(*size, *align).unwrap())?;
                }
                Op::Free(index) => {
                    if let Some((addr, object)) = pick(&live, index) {
                        prop_assert_eq!(heap.free(addr, object.layout), Ok(()));
                        live.remove(&addr);
                    }
                }
                Op::FreeThenAllocAgain(index) => {
                    if let Some((addr, object)) = pick(&live, index) {
                        prop_assert_eq!(heap.free(addr, object.layout), Ok(()));
                        live.remove(&addr);
                        let again = alloc(&mut heap, &mut live, object.layout)?;
                        prop_assert!(again.is_some(), "freed room for {:?} was not reused", object.layout);
                    }
                }
            }
            check_stats(&heap, &live)?;
        }
        for (addr, object) in std::mem::take(&mut live) {
            prop_assert_eq!(heap.free(addr, object.layout), Ok(()));
        }
        check_stats(&heap, &live)?;
        let stats = heap.stats();
        prop_assert_eq!((stats.requested_bytes, stats.in_use_bytes, stats.bad_frees), (0, 0, 0));
        prop_assert!(stats.slab_pages <= stats.classes.len(), "more than one reserve slab per class");
        heap.trim();
        let stats = heap.stats();
        prop_assert_eq!((stats.free_pages, stats.free_runs, stats.largest_free_run_pages), (PAGES, 1, PAGES));
        let whole = Layout::from_size_align(PAGES * PAGE_SIZE, 8).unwrap();
        prop_assert_eq!(heap.alloc(whole), Some(BASE), "the region did not coalesce back");
    }
}
