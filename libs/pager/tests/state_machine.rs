//! The pager's page-state machine against a model: whatever order faults, evictions,
//! write-backs, prefetches (direct, hinted, or proposed by a prefetch policy on each
//! remote fault) and completions come in, every read returns the last value written, no
//! page is lost, no frame is mapped twice, and every prefetch ends as exactly one hit or
//! one waste.

mod common;

use std::collections::{HashMap, HashSet};

use common::{BASE, PAGE, access, pager};
use proptest::prelude::*;
use remora_mmu::FarPte;
use remora_pager::{FaultKind, PagerStats, PrefetchOutcome};
use remora_prefetch::{Majority, NoPrefetch, PrefetchPolicy, Sequential};

#[derive(Clone, Debug)]
enum Op {
    Read(u64),
    Write(u64, u64),
    Reclaim(usize),
    Poll,
    Prefetch(u64),
    /// Reads `len` pages from `start`, `stride` apart (wrapping): runs for the policies.
    Walk {
        start: u64,
        stride: i64,
        len: u64,
        write: bool,
    },
    Hint(u64, u64),
}

fn op(pages: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..pages).prop_map(Op::Read),
        4 => (0..pages, any::<u64>()).prop_map(|(p, v)| Op::Write(p, v)),
        1 => (1usize..40).prop_map(Op::Reclaim),
        1 => Just(Op::Poll),
        1 => (0..pages).prop_map(Op::Prefetch),
        2 => (0..pages, prop_oneof![Just(1i64), Just(-1), Just(3), Just(-2)], 1..24u64, any::<bool>())
            .prop_map(|(start, stride, len, write)| Op::Walk { start, stride, len, write }),
        1 => (0..pages, 1..12u64).prop_map(|(p, n)| Op::Hint(p, n)),
    ]
}

fn policy(which: u8, window: u32) -> Box<dyn PrefetchPolicy> {
    match which {
        0 => Box::new(NoPrefetch),
        1 => Box::new(Sequential::new(window)),
        _ => Box::new(Majority::new(window)),
    }
}

/// What holds whatever happened: a hit is either a fault on a prefetch in flight or a use
/// with no fault; no prefetch is both a hit and a waste.
fn check_accounting(s: &PagerStats) {
    assert_eq!(s.faults_avoided + s.faults_in_flight, s.prefetch_hits, "{s:?}");
    assert!(s.prefetch_hits + s.prefetch_waste <= s.prefetch_issued, "{s:?}");
    assert!(s.prefetch_hinted <= s.prefetch_issued, "{s:?}");
}

/// Where in its page a page's test word lives (varies, so offsets are exercised).
fn addr(page: u64) -> u64 {
    BASE + page * PAGE + (page * 88) % (PAGE - 8)
}

fn check_frames_unique(p: &remora_pager::Pager<remora_pager::testing::FakeTransport>, pages: u64) {
    let mut seen = HashSet::new();
    for page in 0..pages {
        if let FarPte::Present(present) = p.region().pte(page).load() {
            assert!(seen.insert(present.addr()), "frame {:?} mapped twice", present.addr());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn reads_return_the_last_write_whatever_the_order(
        frames in 2usize..12,
        capacity in 1usize..6,
        seed in any::<u64>(),
        ops in prop::collection::vec(op(40), 1..300),
        which_policy in 0u8..3,
        window in 1u32..10,
        trace in any::<bool>(),
    ) {
        let pages = 40;
        let mut p = pager(pages, frames, capacity, seed);
        p.set_prefetch_policy(policy(which_policy, window));
        if trace {
            p.enable_trace(16);
        }
        let mut model: HashMap<u64, u64> = HashMap::new();
        for op in &ops {
            match *op {
                Op::Read(page) => {
                    let got = access(&mut p, addr(page), None);
                    prop_assert_eq!(got, *model.get(&page).unwrap_or(&0), "page {}", page);
                }
                Op::Write(page, value) => {
                    access(&mut p, addr(page), Some(value));
                    model.insert(page, value);
                }
                Op::Reclaim(n) => { p.reclaim(n).unwrap(); }
                Op::Poll => { p.poll_completions().unwrap(); }
                Op::Prefetch(page) => { p.prefetch(page); }
                Op::Walk { start, stride, len, write } => {
                    for i in 0..len as i64 {
                        let page = (start as i64 + i * stride).rem_euclid(pages as i64) as u64;
                        if write {
                            let value = page << 32 | i as u64;
                            access(&mut p, addr(page), Some(value));
                            model.insert(page, value);
                        } else {
                            let got = access(&mut p, addr(page), None);
                            prop_assert_eq!(got, *model.get(&page).unwrap_or(&0), "page {}", page);
                        }
                    }
                }
                Op::Hint(page, n) => { p.hint(BASE + page * PAGE + 5, n * PAGE).unwrap(); }
            }
            check_frames_unique(&p, pages);
            check_accounting(p.stats());
        }
        // Everything ends up either in a frame or on the node: read it all back.
        p.drain().unwrap();
        for page in 0..pages {
            prop_assert_eq!(access(&mut p, addr(page), None), *model.get(&page).unwrap_or(&0));
        }
        p.drain().unwrap();
        let in_use = p.resident_pages() + p.free_frames();
        prop_assert_eq!(in_use, frames, "frames leaked");
        // Evict everything: every prefetch has now ended as a hit or a waste.
        for _ in 0..100 {
            if p.resident_pages() == 0 {
                break;
            }
            p.reclaim(64).unwrap();
            p.drain().unwrap();
        }
        prop_assert_eq!(p.resident_pages(), 0);
        let s = p.stats();
        check_accounting(s);
        prop_assert_eq!(s.prefetch_hits + s.prefetch_waste, s.prefetch_issued, "{:?}", s);
        if let Some(t) = p.trace() {
            prop_assert!(t.len() <= 16);
            prop_assert!(t.recorded() >= s.faults_remote);
        }
    }
}

#[test]
fn untouched_pages_are_zero_filled_without_a_fetch() {
    let mut p = pager(16, 4, 4, 1);
    for page in 0..3 {
        assert_eq!(access(&mut p, addr(page), None), 0);
    }
    assert_eq!(p.stats().faults_zero_fill, 3);
    assert_eq!(p.stats().remote_reads, 0);
}

#[test]
fn dirty_pages_are_written_back_and_read_again() {
    // 2 frames, 10 pages written: most get evicted dirty and come back from the node.
    let mut p = pager(10, 2, 2, 7);
    for page in 0..10 {
        access(&mut p, addr(page), Some(page * 1000 + 1));
    }
    for page in 0..10 {
        assert_eq!(access(&mut p, addr(page), None), page * 1000 + 1);
    }
    let s = p.stats();
    assert!(s.evicted_dirty >= 8, "{s:?}");
    assert!(s.remote_writes >= 8 && s.faults_remote >= 8, "{s:?}");
    assert!(s.direct_reclaims > 0, "no frame was free, so reclaim ran in the fault path");
}

#[test]
fn clean_pages_are_evicted_without_io() {
    let mut p = pager(8, 8, 4, 3);
    for page in 0..8 {
        access(&mut p, addr(page), None);
    }
    // The hand's first turn clears the accessed bits (second chance), its second evicts.
    let report = p.reclaim(8).unwrap();
    assert_eq!(report.accessed, 8);
    assert_eq!(report.evicted_clean, 8);
    assert_eq!(p.stats().remote_writes, 0);
    assert_eq!(p.free_frames(), 8);
}

#[test]
fn a_fault_on_a_page_being_written_back_waits_for_the_write() {
    let mut p = pager(4, 4, 4, 5);
    access(&mut p, addr(0), Some(42));
    let report = p.reclaim(4).unwrap();
    assert_eq!(report.evicted_dirty, 1);
    assert!(matches!(p.region().pte(0).load(), FarPte::WritingBack { .. }));
    p.transport_mut().delay_polls = 3;
    assert_eq!(access(&mut p, addr(0), None), 42);
    assert_eq!(p.stats().faults_writing_back, 1);
}

#[test]
fn prefetched_pages_count_hits_and_waste() {
    let mut p = pager(8, 8, 8, 9);
    for page in 0..4 {
        access(&mut p, addr(page), Some(page + 1));
    }
    while p.reclaim(8).unwrap().evicted() > 0 || p.resident_pages() > 0 {
        p.poll_completions().unwrap();
    }
    p.drain().unwrap();
    assert_eq!(p.prefetch(0), PrefetchOutcome::Issued);
    assert_eq!(p.prefetch(1), PrefetchOutcome::Issued);
    assert_eq!(p.prefetch(6), PrefetchOutcome::NotRemote, "never-touched pages are not fetched");
    p.drain().unwrap();
    // Page 0 is used, page 1 is not.
    assert_eq!(access(&mut p, addr(0), None), 1);
    assert_eq!(p.stats().faults(), 4, "the prefetched page took no fault");
    p.reclaim(8).unwrap();
    p.reclaim(8).unwrap();
    assert_eq!(p.stats().prefetch_hits, 1);
    assert_eq!(p.stats().prefetch_waste, 1);
}

#[test]
fn a_fault_on_a_prefetch_in_flight_waits_for_it() {
    let mut p = pager(8, 8, 8, 11);
    access(&mut p, addr(3), Some(9));
    p.reclaim(8).unwrap();
    p.reclaim(8).unwrap();
    p.drain().unwrap();
    assert_eq!(p.prefetch(3), PrefetchOutcome::Issued);
    assert_eq!(access(&mut p, addr(3), None), 9);
    assert_eq!(p.stats().faults_in_flight, 1);
    assert_eq!(p.stats().remote_reads, 1, "the fault did not issue a second read");
}

#[test]
fn faults_outside_the_region_are_not_ours() {
    let mut p = pager(8, 2, 2, 1);
    assert!(p.handle_fault(BASE - 1).is_err());
    assert!(p.handle_fault(BASE + 8 * PAGE).is_err());
    assert_eq!(p.handle_fault(BASE).unwrap(), FaultKind::ZeroFill);
}
