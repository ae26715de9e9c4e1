//! `majority`: Leap's majority trend detection (Maruf and Chowdhury, ATC'20), as DiLOS
//! runs it.
//!
//! - History: a ring of the last [`HISTORY`] `(delta, page)` pairs, `delta = page -
//!   previous page`, over the pages the application reached in far memory: the used
//!   prefetched pages the pager reports ([`FaultInfo::used`]), then the faulting page. (In
//!   Leap and DiLOS a hit also passes through the swap-in path and is logged there.) The
//!   pager cannot tell in which order the used pages were touched; they are logged
//!   farthest from the fault first, as an application walking towards the fault would
//!   have touched them (a reverse walk over an ascending cluster would otherwise look
//!   like a forward one).
//! - Trend: over the last `w = 8` deltas, the Boyer-Moore majority vote picks a
//!   candidate; it is a trend if it occurs more than `w / 2` times among them. Otherwise
//!   `w` doubles (16, then 32) and the vote is run again. A window longer than the
//!   history so far is not tried, and a delta of 0 (the same page twice) is no trend.
//! - Window: `hits + 2` rounded up to a power of two, at least 4, at most `max_window`
//!   (8 by default), never below half of the previous window.
//! - With a trend `d`: prefetch `f + k * d` for `k = 1 ..= win`, stopping at the region's
//!   edge. Without one: the aligned cluster of `win` pages around the fault, like Linux's
//!   cluster readahead (`[f - f % win, ... + win)`, without `f`).

use crate::{
    Candidates, FaultInfo, MAX_CANDIDATES, MAX_USED, PrefetchPolicy, grown_window, push_range,
};

/// Deltas kept in the history.
pub const HISTORY: usize = 32;

/// The first window of the majority vote; it doubles up to [`HISTORY`].
const FIRST_VOTE: usize = 8;

/// Leap's majority trend. See the module docs.
#[derive(Clone, Debug)]
pub struct Majority {
    max_window: u32,
    /// Ring of deltas; `head` is the next slot written.
    deltas: [i64; HISTORY],
    head: usize,
    filled: usize,
    last_page: Option<u64>,
    window: u32,
    trend: Option<i64>,
}

impl Majority {
    /// A policy that prefetches at most `max_window` pages per fault (clamped to
    /// `1..=MAX_CANDIDATES`).
    pub fn new(max_window: u32) -> Self {
        Majority {
            max_window: max_window.clamp(1, MAX_CANDIDATES as u32),
            deltas: [0; HISTORY],
            head: 0,
            filled: 0,
            last_page: None,
            window: 0,
            trend: None,
        }
    }

    /// The window of the last fault (0 before any).
    pub fn window(&self) -> u32 {
        self.window
    }

    /// The trend found at the last fault, if any.
    pub fn trend(&self) -> Option<i64> {
        self.trend
    }

    fn record(&mut self, page: u64) {
        if let Some(last) = self.last_page {
            self.deltas[self.head] = page.wrapping_sub(last) as i64;
            self.head = (self.head + 1) % HISTORY;
            self.filled = (self.filled + 1).min(HISTORY);
        }
        self.last_page = Some(page);
    }

    /// The `i`-th most recent delta (0 = newest).
    fn delta(&self, i: usize) -> i64 {
        self.deltas[(self.head + HISTORY - 1 - i) % HISTORY]
    }

    fn find_trend(&self) -> Option<i64> {
        let mut w = FIRST_VOTE;
        while w <= self.filled {
            // Boyer-Moore: a majority, if there is one, survives the pairing-off.
            let (mut candidate, mut count) = (self.delta(0), 0usize);
            for i in 0..w {
                let d = self.delta(i);
                if count == 0 {
                    candidate = d;
                    count = 1;
                } else if d == candidate {
                    count += 1;
                } else {
                    count -= 1;
                }
            }
            let occurrences = (0..w).filter(|&i| self.delta(i) == candidate).count();
            if occurrences > w / 2 {
                return (candidate != 0).then_some(candidate);
            }
            w *= 2;
        }
        None
    }
}

impl PrefetchPolicy for Majority {
    fn name(&self) -> &'static str {
        "majority"
    }

    fn on_fault(&mut self, fault: &FaultInfo<'_>, out: &mut Candidates) {
        let f = fault.page;
        let mut used: heapless::Vec<u64, MAX_USED> = heapless::Vec::new();
        let newest = fault.used.len().saturating_sub(MAX_USED);
        let _ = used.extend_from_slice(&fault.used[newest..]);
        used.sort_unstable_by_key(|&p| core::cmp::Reverse(p.abs_diff(f)));
        for &page in &used {
            self.record(page);
        }
        self.record(f);
        self.trend = self.find_trend();

        let window =
            grown_window(fault.hits_since_last).max(4).min(self.max_window).max(self.window / 2);
        self.window = window;
        let win = window as u64;

        match self.trend {
            Some(d) => {
                for k in 1..=win as i64 {
                    let page = (f as i64).saturating_add(k.saturating_mul(d));
                    if page < 0 || page as u64 >= fault.region_pages || !out.push(page as u64) {
                        break;
                    }
                }
            }
            None => push_range(out, (f - f % win) as i64, win, fault.region_pages, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing;

    const REGION: u64 = 100_000;

    fn fault(policy: &mut Majority, page: u64, used: &[u64]) -> Vec<u64> {
        testing::fault(policy, REGION, page, used)
    }

    fn walk(policy: &mut Majority, accesses: impl IntoIterator<Item = u64>) -> Vec<u64> {
        testing::walk(policy, REGION, accesses)
    }

    #[test]
    fn without_a_trend_it_reads_the_aligned_cluster() {
        let mut m = Majority::new(8);
        assert_eq!(fault(&mut m, 1001, &[]), [1000, 1002, 1003]);
        assert_eq!(m.window(), 4);
        assert_eq!(m.trend(), None);
    }

    #[test]
    fn eight_deltas_with_a_majority_make_a_trend() {
        let mut m = Majority::new(8);
        // Deltas 7 7 7 7 472 400 400: seven deltas, too few to vote.
        for p in [0, 7, 14, 21, 28, 500, 900, 1300] {
            fault(&mut m, p, &[]);
        }
        assert_eq!(m.trend(), None);
        // 7 7 7 7 472 400 400 7: five sevens of eight, a trend.
        fault(&mut m, 1307, &[]);
        assert_eq!(m.trend(), Some(7));
        assert_eq!(fault(&mut m, 1314, &[]), (1..=4).map(|k| 1314 + 7 * k).collect::<Vec<_>>());
    }

    #[test]
    fn noise_hides_a_trend_until_it_is_the_majority_again() {
        let mut m = Majority::new(8);
        // 12 deltas of 3, then 8 deltas alternating 100 / -97 (no majority of 8).
        let mut page = 10_000u64;
        fault(&mut m, page, &[]);
        for _ in 0..12 {
            page += 3;
            fault(&mut m, page, &[]);
        }
        for i in 0..8 {
            page = if i % 2 == 0 { page + 100 } else { page - 97 };
            fault(&mut m, page, &[]);
        }
        // Last 8: noise only; last 16: 8 threes, not more than half; 20 deltas so far, so
        // a vote over 32 is not tried.
        assert_eq!(m.trend(), None);
        // Four more threes: last 16 = 4 noise(100) + 4 noise(-97) ... = 8 threes of 16.
        for _ in 0..4 {
            page += 3;
            fault(&mut m, page, &[]);
        }
        // Last 8: four threes; last 16: eight threes; 24 deltas: 32 not tried.
        assert_eq!(m.trend(), None);
        page += 3;
        fault(&mut m, page, &[]);
        // Last 8: five threes: a trend.
        assert_eq!(m.trend(), Some(3));
    }

    #[test]
    fn sixteen_deltas_vote_when_eight_do_not() {
        let mut m = Majority::new(8);
        let mut page = 50_000u64;
        fault(&mut m, page, &[]);
        for _ in 0..10 {
            page += 2;
            fault(&mut m, page, &[]);
        }
        // Six noisy deltas: the last 8 hold 2 twos; the last 16 hold 10 twos.
        for step in [1000, 17, 555, 31, 4000, 9] {
            page += step;
            fault(&mut m, page, &[]);
        }
        assert_eq!(m.trend(), Some(2));
    }

    #[test]
    fn a_sequential_walk_learns_plus_one_and_hits_grow_the_window() {
        let mut m = Majority::new(8);
        let faults = walk(&mut m, 0..4000);
        assert_eq!(m.trend(), Some(1));
        assert_eq!(m.window(), 8);
        assert!(faults.len() <= 4000 / 9 + 16, "{} faults", faults.len());
    }

    #[test]
    fn a_reverse_walk_learns_minus_one() {
        let mut m = Majority::new(8);
        let faults = walk(&mut m, (0..4000).rev());
        assert_eq!(m.trend(), Some(-1));
        assert!(faults.len() <= 4000 / 9 + 40, "{} faults", faults.len());
        // At the bottom of the region the trend stops at page 0.
        let mut out = Candidates::new();
        let info = FaultInfo {
            page: 2,
            addr: 0x2000,
            region_pages: REGION,
            hits_since_last: 8,
            used: &[],
        };
        m.on_fault(&info, &mut out);
        assert_eq!(out.as_slice(), &[1, 0]);
    }

    #[test]
    fn a_strided_walk_learns_the_stride() {
        let mut m = Majority::new(8);
        let faults = walk(&mut m, (0..3000).map(|i| i * 5));
        assert_eq!(m.trend(), Some(5));
        assert!(faults.len() <= 3000 / 9 + 16, "{} faults", faults.len());
        // With the trend, the window follows the stride (no hits: half of 8).
        assert_eq!(fault(&mut m, 20_000, &[]), (1..=4).map(|k| 20_000 + 5 * k).collect::<Vec<_>>());
    }

    #[test]
    fn random_faults_find_no_trend_and_keep_the_smallest_window() {
        let mut m = Majority::new(8);
        let faults = walk(&mut m, testing::random(2000, REGION, 88172645463325252));
        assert!(faults.len() > 1900, "{} faults", faults.len());
        assert_eq!(m.trend(), None);
        assert_eq!(m.window(), 4);
    }

    #[test]
    fn the_window_halves_at_most_and_respects_the_cap() {
        let mut m = Majority::new(8);
        walk(&mut m, 0..200);
        assert_eq!(m.window(), 8);
        fault(&mut m, 70_001, &[]);
        assert_eq!(m.window(), 4, "no hits: back to 4 (half of 8)");
        let mut small = Majority::new(2);
        assert_eq!(fault(&mut small, 7, &[]), [6]);
        assert_eq!(small.window(), 2);
    }

    #[test]
    fn the_region_edge_stops_a_forward_trend() {
        let mut m = Majority::new(8);
        walk(&mut m, 0..200);
        let mut out = Candidates::new();
        let info = FaultInfo {
            page: REGION - 3,
            addr: 0,
            region_pages: REGION,
            hits_since_last: 7,
            used: &[
                REGION - 10,
                REGION - 9,
                REGION - 8,
                REGION - 7,
                REGION - 6,
                REGION - 5,
                REGION - 4,
            ],
        };
        m.on_fault(&info, &mut out);
        assert_eq!(out.as_slice(), &[REGION - 2, REGION - 1]);
    }
}
