//! Prefetch policies: which pages the pager reads beside the one that faulted.
//!
//! On every fault that reads its page from the memory node, the pager posts that read and
//! then asks its policy ([`PrefetchPolicy::on_fault`]) for more. It tells the policy the
//! fault and which of the pages it prefetched earlier were used since the previous such
//! fault: prefetched pages are mapped with the accessed bit clear, so a set bit means the
//! application touched one (a fault on a prefetch still in flight counts too). The policy
//! answers with [`Candidates`], pages in priority order; the pager issues them
//! asynchronously, skips those that are not remote (never touched, already local or
//! moving), and stops at the first that finds no free frame or a full transport queue.
//!
//! An application that knows what it is about to touch says so with [`hint`]; the pager
//! then reads that range's remote pages in order, and tells its policy
//! ([`PrefetchPolicy::on_hint`]).
//!
//! | item | owns | must never |
//! |---|---|---|
//! | [`PrefetchPolicy`], [`FaultInfo`], [`Candidates`] | the interface the pager calls | reach the pager |
//! | [`NoPrefetch`] | the `none` policy | |
//! | [`Sequential`] | Linux's VMA-based swap readahead (`sequential`) | |
//! | [`Majority`] | Leap's majority trend detection (`majority`) | |
//! | [`hint`] | the application's hint call, routed to whatever the image installed | hold pager state |
//!
//! Policies are pure state machines over page numbers: no `unsafe`, no allocation, no
//! configuration (the image's glue passes `max_window` in). The image chooses one with
//! `prefetch.policy`; an application crate may provide its own (`provides =
//! ["prefetch.policy"]` in its `Config.toml`).

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod hint;
mod majority;
mod sequential;

pub use hint::{hint, set_hint_handler};
pub use majority::{HISTORY, Majority};
pub use sequential::Sequential;

/// Most pages one call may propose.
pub const MAX_CANDIDATES: usize = 32;

/// Most used pages the pager lists in [`FaultInfo::used`] (it counts all of them in
/// [`FaultInfo::hits_since_last`]).
pub const MAX_USED: usize = 64;

/// What the pager tells its policy about a fault that reads from the memory node.
#[derive(Clone, Copy, Debug)]
pub struct FaultInfo<'a> {
    /// The faulting page: its index in the far region.
    pub page: u64,
    /// The faulting address.
    pub addr: u64,
    /// Pages in the far region; candidates at or beyond it are not read.
    pub region_pages: u64,
    /// Prefetched pages that were used since the previous call (prefetch hits): found
    /// accessed, or faulted on while their read was in flight.
    pub hits_since_last: u32,
    /// Those pages, in the order they were issued, as far as the pager still remembers
    /// them (it keeps the last [`MAX_USED`] prefetches): may be shorter than
    /// `hits_since_last`.
    pub used: &'a [u64],
}

/// An application's announcement that it is about to touch a range of far memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The first page of the range (clipped to the region).
    pub first_page: u64,
    /// Pages in the range (at least 1).
    pub pages: u64,
    /// Pages in the far region.
    pub region_pages: u64,
}

/// Pages to prefetch, in priority order, at most [`MAX_CANDIDATES`]. Fixed capacity: the
/// fault path does not allocate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidates {
    pages: heapless::Vec<u64, MAX_CANDIDATES>,
}

impl Candidates {
    /// An empty list.
    pub const fn new() -> Self {
        Candidates { pages: heapless::Vec::new() }
    }

    /// Appends `page`; returns `false` (and adds nothing) when the list is full.
    pub fn push(&mut self, page: u64) -> bool {
        self.pages.push(page).is_ok()
    }

    /// The pages, highest priority first.
    pub fn as_slice(&self) -> &[u64] {
        &self.pages
    }

    /// Pages in the list.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Whether no more pages fit.
    pub fn is_full(&self) -> bool {
        self.pages.is_full()
    }

    /// Empties the list.
    pub fn clear(&mut self) {
        self.pages.clear();
    }
}

/// A prefetch policy: told about each fault that goes to the memory node, it proposes the
/// pages to read with it.
pub trait PrefetchPolicy: Send {
    /// A short name for reports (the member name in `prefetch.policy`).
    fn name(&self) -> &'static str;

    /// A fault is reading `fault.page` from the node; append to `out` (empty on entry)
    /// the pages to prefetch, most wanted first. Pages outside the region or not remote
    /// are skipped by the pager; issuing stops at the first that cannot be issued for
    /// want of a frame or of queue space.
    fn on_fault(&mut self, fault: &FaultInfo<'_>, out: &mut Candidates);

    /// The application announced `hint`; the pager is reading its remote pages itself.
    /// A policy may learn from it. Does nothing by default.
    fn on_hint(&mut self, hint: &Hint) {
        let _ = hint;
    }
}

/// `none`: prefetches nothing (only the application's hints are read ahead).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPrefetch;

impl PrefetchPolicy for NoPrefetch {
    fn name(&self) -> &'static str {
        "none"
    }

    fn on_fault(&mut self, _fault: &FaultInfo<'_>, _out: &mut Candidates) {}
}

/// The window both general policies start from: `hits + 2` rounded up to a power of two.
fn grown_window(hits: u32) -> u32 {
    hits.saturating_add(2).checked_next_power_of_two().unwrap_or(1 << 31)
}

/// Appends the pages of `[start, start + len)` inside `[0, region_pages)` except `skip`,
/// in ascending order, until `out` is full.
fn push_range(out: &mut Candidates, start: i64, len: u64, region_pages: u64, skip: u64) {
    for i in 0..len as i64 {
        let page = start + i;
        if page < 0 || page as u64 == skip {
            continue;
        }
        if page as u64 >= region_pages || !out.push(page as u64) {
            break;
        }
    }
}

/// Host helpers for the policies' tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashSet;

    use super::*;

    /// One fault at `page` with `used` reported as hits; returns the proposal.
    pub fn fault(
        policy: &mut dyn PrefetchPolicy,
        region_pages: u64,
        page: u64,
        used: &[u64],
    ) -> Vec<u64> {
        let mut out = Candidates::new();
        let info = FaultInfo {
            page,
            addr: page << 12,
            region_pages,
            hits_since_last: used.len() as u32,
            used,
        };
        policy.on_fault(&info, &mut out);
        out.as_slice().to_vec()
    }

    /// Walks `accesses` the way the pager would with unlimited memory: a proposed page is
    /// read, and using it is a hit, reported at the next fault in the order the pages were
    /// proposed; any other page faults. Returns the faulting pages.
    pub fn walk(
        policy: &mut dyn PrefetchPolicy,
        region_pages: u64,
        accesses: impl IntoIterator<Item = u64>,
    ) -> Vec<u64> {
        let mut fetched = HashSet::new();
        let mut proposed: Vec<u64> = Vec::new();
        let mut touched = HashSet::new();
        let mut faults = Vec::new();
        for page in accesses {
            if fetched.contains(&page) {
                touched.insert(page);
                continue;
            }
            faults.push(page);
            fetched.insert(page);
            let used: Vec<u64> = proposed.iter().copied().filter(|p| touched.contains(p)).collect();
            proposed.retain(|p| !touched.contains(p));
            touched.clear();
            for p in fault(policy, region_pages, page, &used) {
                if fetched.insert(p) {
                    proposed.push(p);
                }
            }
        }
        faults
    }

    /// `n` pseudo-random pages below `region_pages`.
    pub fn random(n: usize, region_pages: u64, seed: u64) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % region_pages
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_stop_at_capacity() {
        let mut c = Candidates::new();
        for p in 0..MAX_CANDIDATES as u64 {
            assert!(c.push(p));
        }
        assert!(c.is_full());
        assert!(!c.push(99));
        assert_eq!(c.len(), MAX_CANDIDATES);
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn none_proposes_nothing() {
        let mut c = Candidates::new();
        let used = [4, 5];
        let fault = FaultInfo {
            page: 6,
            addr: 6 << 12,
            region_pages: 100,
            hits_since_last: 2,
            used: &used,
        };
        NoPrefetch.on_fault(&fault, &mut c);
        assert!(c.is_empty());
        assert_eq!(NoPrefetch.name(), "none");
    }

    #[test]
    fn windows_grow_in_powers_of_two() {
        assert_eq!([0, 1, 2, 3, 6, 7].map(grown_window), [2, 4, 4, 8, 8, 16]);
        assert_eq!(grown_window(u32::MAX), 1 << 31);
    }

    #[test]
    fn ranges_are_clipped_to_the_region() {
        let mut c = Candidates::new();
        push_range(&mut c, -2, 5, 100, 0);
        assert_eq!(c.as_slice(), &[1, 2]);
        c.clear();
        push_range(&mut c, 97, 6, 100, 98);
        assert_eq!(c.as_slice(), &[97, 99]);
    }
}
