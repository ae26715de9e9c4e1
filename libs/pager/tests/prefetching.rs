//! Prefetching driven by a policy: when the pager asks it, what it tells it, how it
//! issues what the policy proposes, how hits, waste and avoided faults are counted, hints,
//! and the trace.

mod common;

use std::sync::{Arc, Mutex};

use common::{BASE, PAGE, access, pager};
use remora_mmu::FarPte;
use remora_pager::Pager;
use remora_pager::testing::FakeTransport;
use remora_prefetch::{Candidates, FaultInfo, Hint, NoPrefetch, PrefetchPolicy, Sequential};

/// What a scripted policy saw: `(page, hits_since_last, used)` per fault, and hints.
#[derive(Default)]
struct Seen {
    faults: Vec<(u64, u32, Vec<u64>)>,
    hints: Vec<Hint>,
}

/// Proposes `page + d` for each `d` of `offsets` and records what it is told.
struct Scripted {
    offsets: Vec<i64>,
    seen: Arc<Mutex<Seen>>,
}

impl PrefetchPolicy for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn on_fault(&mut self, fault: &FaultInfo<'_>, out: &mut Candidates) {
        self.seen.lock().unwrap().faults.push((
            fault.page,
            fault.hits_since_last,
            fault.used.to_vec(),
        ));
        for d in &self.offsets {
            out.push((fault.page as i64 + d) as u64);
        }
    }

    fn on_hint(&mut self, hint: &Hint) {
        self.seen.lock().unwrap().hints.push(*hint);
    }
}

fn scripted(p: &mut Pager<FakeTransport>, offsets: &[i64]) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    p.set_prefetch_policy(Box::new(Scripted { offsets: offsets.to_vec(), seen: seen.clone() }));
    seen
}

/// Marks every page remote, as if the working set had been written and evicted.
fn all_remote(p: &Pager<FakeTransport>) {
    for page in 0..p.region().pages() {
        p.region().pte(page).compare_exchange(FarPte::Untouched, FarPte::Remote).unwrap();
    }
}

fn addr(page: u64) -> u64 {
    BASE + page * PAGE + 8
}

#[test]
fn a_remote_fault_asks_the_policy_and_issues_its_pages() {
    let mut p = pager(64, 16, 8, 1);
    all_remote(&p);
    let seen = scripted(&mut p, &[1, 2, -1, 100]);
    access(&mut p, addr(10), None);
    p.drain().unwrap();
    let s = p.stats();
    assert_eq!(s.faults_remote, 1);
    assert_eq!(s.prefetch_issued, 3, "page 110 is outside the region: skipped");
    assert_eq!(s.remote_reads, 4);
    for page in [9, 11, 12] {
        assert!(p.region().pte(page).load().is_present(), "page {page}");
    }
    assert_eq!(seen.lock().unwrap().faults, [(10, 0, vec![])]);
    assert_eq!(p.prefetch_policy_name(), "scripted");
}

#[test]
fn zero_fill_and_in_flight_faults_do_not_ask_the_policy() {
    let mut p = pager(64, 16, 8, 2);
    let seen = scripted(&mut p, &[1]);
    access(&mut p, addr(3), Some(7));
    assert!(seen.lock().unwrap().faults.is_empty());
    assert_eq!(p.stats().prefetch_issued, 0);
}

#[test]
fn used_prefetches_are_hits_reported_at_the_next_fault_in_issue_order() {
    let mut p = pager(64, 32, 16, 3);
    all_remote(&p);
    let seen = scripted(&mut p, &[3, 1, 2]);
    access(&mut p, addr(20), None); // prefetches 23, 21, 22
    p.drain().unwrap();
    access(&mut p, addr(21), None);
    access(&mut p, addr(23), None);
    assert_eq!(p.stats().faults(), 1, "prefetched pages take no fault");
    access(&mut p, addr(40), None);
    let s = p.stats();
    assert_eq!((s.prefetch_hits, s.faults_avoided, s.faults_in_flight), (2, 2, 0));
    assert_eq!(seen.lock().unwrap().faults[1], (40, 2, vec![23, 21]));
    // 22 is still unused; reported once used, never twice.
    p.drain().unwrap();
    access(&mut p, addr(22), None);
    access(&mut p, addr(50), None);
    assert_eq!(seen.lock().unwrap().faults[2], (50, 1, vec![22]));
    assert_eq!(p.stats().prefetch_hits, 3);
}

#[test]
fn a_fault_on_a_prefetch_in_flight_is_a_late_hit() {
    let mut p = pager(64, 32, 16, 4);
    all_remote(&p);
    let seen = scripted(&mut p, &[]);
    assert_eq!(p.prefetch(5), remora_pager::PrefetchOutcome::Issued);
    access(&mut p, addr(5), None);
    let s = p.stats().clone();
    assert_eq!((s.faults_in_flight, s.prefetch_hits, s.faults_avoided), (1, 1, 0));
    assert_eq!(s.remote_reads, 1);
    // The policy hears of it at the next remote fault.
    access(&mut p, addr(30), None);
    assert_eq!(seen.lock().unwrap().faults, [(30, 1, vec![5])]);
    // And it is neither counted again by the evictor nor called waste.
    for _ in 0..4 {
        p.reclaim(64).unwrap();
        p.drain().unwrap();
    }
    let s = p.stats();
    assert_eq!((s.prefetch_hits, s.prefetch_waste), (1, 0));
}

#[test]
fn hits_found_by_the_evictor_reach_the_policy_too_and_unused_pages_are_waste() {
    let mut p = pager(64, 32, 16, 5);
    all_remote(&p);
    let seen = scripted(&mut p, &[1, 2]);
    access(&mut p, addr(0), None); // prefetches 1, 2
    p.drain().unwrap();
    access(&mut p, addr(1), None);
    // The evictor's hand passes 0 (accessed), finds 1 accessed (a hit, no fault taken)
    // and evicts 2, unused: waste.
    p.reclaim(1).unwrap();
    let s = p.stats().clone();
    assert_eq!((s.prefetch_hits, s.faults_avoided, s.prefetch_waste), (1, 1, 1));
    access(&mut p, addr(9), None);
    assert_eq!(seen.lock().unwrap().faults[1], (9, 1, vec![1]));
    assert_eq!(p.stats().prefetch_hits, 1, "not counted twice");
}

#[test]
fn issuing_stops_when_the_queue_is_full() {
    // Room for the demand read and one more.
    let mut p = pager(64, 32, 2, 6);
    all_remote(&p);
    scripted(&mut p, &[1, 2, 3, 4]);
    access(&mut p, addr(10), None);
    assert_eq!(p.stats().prefetch_issued, 1);
}

#[test]
fn issuing_stops_when_no_frame_is_free_and_never_reclaims() {
    let mut p = pager(64, 3, 8, 7);
    all_remote(&p);
    scripted(&mut p, &[1, 2, 3, 4]);
    access(&mut p, addr(10), None);
    let s = p.stats();
    assert_eq!(s.prefetch_issued, 2, "the demand read took one of three frames");
    assert_eq!(s.reclaim_batches, 0);
}

#[test]
fn pages_that_are_not_remote_are_skipped_not_a_stop() {
    let mut p = pager(64, 32, 16, 8);
    all_remote(&p);
    access(&mut p, addr(11), None); // resident now
    scripted(&mut p, &[1, 2]);
    access(&mut p, addr(10), None);
    p.drain().unwrap();
    assert_eq!(p.stats().prefetch_issued, 1);
    assert!(p.region().pte(12).load().is_present());
}

#[test]
fn a_sequential_walk_with_readahead_takes_a_fraction_of_the_faults() {
    let walk = |policy: Option<Box<dyn PrefetchPolicy>>| {
        let mut p = pager(4096, 256, 32, 9);
        all_remote(&p);
        if let Some(policy) = policy {
            p.set_prefetch_policy(policy);
        }
        for page in 0..2048 {
            access(&mut p, addr(page), None);
            p.poll_completions().unwrap();
        }
        // One more fault, far away, reports the last hits.
        access(&mut p, addr(4000), None);
        p.stats().clone()
    };
    let none = walk(Some(Box::new(NoPrefetch)));
    let seq = walk(Some(Box::new(Sequential::new(8))));
    assert_eq!(none.faults_remote, 2049);
    assert!(seq.faults_remote < 2048 / 6, "{seq:?}");
    assert_eq!(seq.faults_remote + seq.prefetch_hits, 2049, "{seq:?}");
    assert_eq!(seq.faults_avoided + seq.faults_in_flight, seq.prefetch_hits);
}

#[test]
fn a_hint_reads_the_remote_pages_of_its_range_in_order() {
    let mut p = pager(64, 32, 4, 10);
    all_remote(&p);
    access(&mut p, addr(21), None);
    let seen = scripted(&mut p, &[]);
    // Pages 20..=26 (from the middle of 20 to the middle of 26); 21 is local. The queue
    // holds 4: an announced page waits for room, like a fault would.
    let issued = p.hint(BASE + 20 * PAGE + 100, 6 * PAGE).unwrap();
    assert_eq!(issued, 6);
    assert_eq!(p.stats().prefetch_hinted, 6);
    assert_eq!(seen.lock().unwrap().hints, [Hint { first_page: 20, pages: 7, region_pages: 64 }]);
    p.drain().unwrap();
    for page in [20, 22, 23, 24, 25, 26] {
        assert!(p.region().pte(page).load().is_present(), "page {page}");
    }
    assert_eq!(p.region().pte(27).load(), FarPte::Remote);
    // Outside the region, or empty: nothing.
    assert_eq!(p.hint(BASE - 2 * PAGE, PAGE).unwrap(), 0);
    assert_eq!(p.hint(BASE + 64 * PAGE, PAGE).unwrap(), 0);
    assert_eq!(p.hint(BASE, 0).unwrap(), 0);
    // A hinted page used is a hit like any prefetch.
    access(&mut p, addr(22), None);
    access(&mut p, addr(40), None);
    assert_eq!(p.stats().prefetch_hits, 1);
}

#[test]
fn the_trace_records_used_prefetches_then_each_remote_fault() {
    let mut p = pager(64, 32, 16, 11);
    all_remote(&p);
    p.enable_trace(8);
    scripted(&mut p, &[1, 2]);
    access(&mut p, addr(3), Some(1)); // prefetches 4 and 5
    p.drain().unwrap();
    access(&mut p, addr(4), None);
    access(&mut p, addr(5), None);
    access(&mut p, addr(30), None);
    let t = p.trace().unwrap();
    let mut out = [0; 8];
    let n = t.copy_out(0, &mut out);
    assert_eq!(&out[..n], &[3, 4, 5, 30]);
}
