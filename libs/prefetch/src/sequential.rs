//! `sequential`: Linux's VMA-based swap readahead (`swap_vma_readahead`), with the far
//! region as the one VMA.
//!
//! State: the previous access, the previous window.
//! - Window: `hits + 2` rounded up to a power of two, at most `max_window` (8 by
//!   default), never below half of the previous window; with no hits and a fault that is
//!   not next to the previous access, 1 (nothing is prefetched).
//! - Placement, the window counting the faulting page `f`: after an access to `f - 1`,
//!   forward `[f, f + win)`; after `f + 1`, backward `(f - win, f]`; otherwise centred
//!   `[f - (win - 1) / 2, ... + win)`. Clipped to the region; `f` itself is already being
//!   read. Forward windows are proposed nearest first, backward ones nearest first
//!   (descending), centred ones in ascending order, as Linux reads them.
//!
//! "The previous access" is what Linux records: its readahead address moves on every
//! swap-in, including a minor fault that finds a prefetched page in the swap cache (a
//! hit). Here hits take no fault, so the pager reports them at the next fault
//! ([`FaultInfo::used`]); a used prefetched page next to the fault counts as the previous
//! access, as it would have in Linux when the application walked onto it.

use crate::{Candidates, FaultInfo, MAX_CANDIDATES, PrefetchPolicy, grown_window, push_range};

/// Linux VMA-based swap readahead. See the module docs.
#[derive(Clone, Debug)]
pub struct Sequential {
    max_window: u32,
    previous: Option<u64>,
    window: u32,
}

impl Sequential {
    /// A policy whose window spans at most `max_window` pages (the faulting page
    /// included), clamped to `1..=MAX_CANDIDATES + 1`.
    pub fn new(max_window: u32) -> Self {
        Sequential {
            max_window: max_window.clamp(1, MAX_CANDIDATES as u32 + 1),
            previous: None,
            window: 0,
        }
    }

    /// The window of the last fault (0 before any).
    pub fn window(&self) -> u32 {
        self.window
    }
}

impl PrefetchPolicy for Sequential {
    fn name(&self) -> &'static str {
        "sequential"
    }

    fn on_fault(&mut self, fault: &FaultInfo<'_>, out: &mut Candidates) {
        let f = fault.page;
        let accessed =
            |p: Option<u64>| p.is_some_and(|p| self.previous == Some(p) || fault.used.contains(&p));
        let after_lower = accessed(f.checked_sub(1));
        let after_upper = accessed(f.checked_add(1));

        let mut window = if fault.hits_since_last == 0 {
            if after_lower || after_upper { 2 } else { 1 }
        } else {
            grown_window(fault.hits_since_last)
        };
        window = window.min(self.max_window).max(self.window / 2);
        self.window = window;
        self.previous = Some(f);
        if window <= 1 {
            return;
        }

        let win = window as u64;
        if after_lower {
            push_range(out, f as i64, win, fault.region_pages, f);
        } else if after_upper {
            for k in 1..win {
                let Some(page) = f.checked_sub(k) else { break };
                if !out.push(page) {
                    break;
                }
            }
        } else {
            let start = f as i64 - (win as i64 - 1) / 2;
            push_range(out, start, win, fault.region_pages, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing;

    const REGION: u64 = 1000;

    fn fault(policy: &mut Sequential, page: u64, used: &[u64]) -> Vec<u64> {
        testing::fault(policy, REGION, page, used)
    }

    fn walk(policy: &mut Sequential, accesses: impl IntoIterator<Item = u64>) -> Vec<u64> {
        testing::walk(policy, REGION, accesses)
    }

    #[test]
    fn a_first_fault_and_a_lone_fault_read_one_page() {
        let mut s = Sequential::new(8);
        assert_eq!(fault(&mut s, 100, &[]), Vec::<u64>::new());
        assert_eq!(s.window(), 1);
        assert_eq!(fault(&mut s, 300, &[]), Vec::<u64>::new());
    }

    #[test]
    fn the_next_page_opens_a_forward_window_of_two() {
        let mut s = Sequential::new(8);
        fault(&mut s, 100, &[]);
        assert_eq!(fault(&mut s, 101, &[]), [102]);
        assert_eq!(s.window(), 2);
    }

    #[test]
    fn hits_grow_the_window_to_the_cap() {
        let mut s = Sequential::new(8);
        fault(&mut s, 100, &[]);
        fault(&mut s, 101, &[]); // proposes 102
        // 102 used: 1 hit -> 4, forward from 103 (102 was the previous access).
        assert_eq!(fault(&mut s, 103, &[102]), [104, 105, 106]);
        // 3 hits -> 5 -> 8.
        assert_eq!(fault(&mut s, 107, &[104, 105, 106]), [108, 109, 110, 111, 112, 113, 114]);
        assert_eq!(s.window(), 8);
        // 7 hits -> 9 -> 16, capped at 8.
        let used: Vec<u64> = (108..=114).collect();
        assert_eq!(fault(&mut s, 115, &used).len(), 7);
        assert_eq!(s.window(), 8);
    }

    #[test]
    fn a_sequential_walk_faults_once_per_window() {
        let mut s = Sequential::new(8);
        let faults = walk(&mut s, 0..800);
        // Start-up: 0, 1, 3, 7, then one fault per 8 pages.
        assert_eq!(&faults[..5], &[0, 1, 3, 7, 15]);
        assert!(faults.len() <= 800 / 8 + 4, "{} faults", faults.len());
    }

    #[test]
    fn a_reverse_walk_reads_backwards() {
        let mut s = Sequential::new(8);
        fault(&mut s, 500, &[]);
        assert_eq!(fault(&mut s, 499, &[]), [498]);
        assert_eq!(fault(&mut s, 497, &[498]), [496, 495, 494]);
        let faults = walk(&mut Sequential::new(8), (0..800).rev());
        assert!(faults.len() <= 800 / 8 + 4, "{} faults", faults.len());
    }

    #[test]
    fn the_window_never_shrinks_below_half_and_centres_on_a_jump() {
        let mut s = Sequential::new(8);
        let faults = walk(&mut s, 0..64);
        assert!(s.window() == 8, "{faults:?}");
        // A jump with no hits: window 8 / 2 = 4, centred at f - 1: [299, 303).
        assert_eq!(fault(&mut s, 300, &[]), [299, 301, 302]);
        assert_eq!(s.window(), 4);
        assert_eq!(fault(&mut s, 600, &[]), [601]);
        assert_eq!(s.window(), 2);
        assert_eq!(fault(&mut s, 900, &[]), Vec::<u64>::new());
        assert_eq!(s.window(), 1);
    }

    #[test]
    fn windows_are_clipped_to_the_region() {
        // Forward from 997 with a window of 8: [997, 1005) clipped to the region.
        let mut s = Sequential::new(8);
        fault(&mut s, 990, &[]);
        assert_eq!(fault(&mut s, 991, &[]), [992]);
        assert_eq!(fault(&mut s, 993, &[992]), [994, 995, 996]);
        assert_eq!(fault(&mut s, 997, &[994, 995, 996]), [998, 999]);
        // Backward at the bottom.
        let mut s = Sequential::new(8);
        fault(&mut s, 10, &[]);
        assert_eq!(fault(&mut s, 9, &[]), [8]);
        assert_eq!(fault(&mut s, 7, &[8]), [6, 5, 4]);
        assert_eq!(fault(&mut s, 3, &[6, 5, 4]), [2, 1, 0]);
        // Centred at the bottom.
        let mut s = Sequential::new(8);
        walk(&mut s, 0..64);
        assert_eq!(fault(&mut s, 0, &[]), [1, 2]);
    }

    #[test]
    fn strides_and_random_faults_get_no_readahead() {
        let faults = walk(&mut Sequential::new(8), (0..300).map(|i| i * 3));
        assert_eq!(faults.len(), 300, "a stride of 3 never hits");
        let mut s = Sequential::new(8);
        let faults = walk(&mut s, testing::random(300, REGION, 12345));
        assert!(faults.len() > 250, "{} faults", faults.len());
        assert!(s.window() <= 2, "window {}", s.window());
    }
}
