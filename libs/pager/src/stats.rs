//! The pager's counters and latency histograms. Plain numbers, copied out on request;
//! updating them never allocates.

use core::fmt;

/// Linear steps within each power of two.
const STEPS: usize = 32;
const STEP_BITS: u32 = STEPS.trailing_zeros();

/// A histogram of durations in nanoseconds: 64 power-of-two ranges split into 32 linear
/// steps each, so a percentile is exact to within about 3%.
#[derive(Clone)]
pub struct Histogram {
    buckets: [u32; 64 * STEPS],
    count: u64,
    sum: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: [0; 64 * STEPS], count: 0, sum: 0, max: 0 }
    }
}

impl Histogram {
    fn bucket(value: u64) -> usize {
        if value < STEPS as u64 {
            return value as usize;
        }
        let log = 63 - value.leading_zeros(); // >= STEP_BITS
        let step = ((value >> (log - STEP_BITS)) as usize) & (STEPS - 1);
        (log - STEP_BITS + 1) as usize * STEPS + step
    }

    fn lower_bound(bucket: usize) -> u64 {
        if bucket < STEPS {
            return bucket as u64;
        }
        let log = (bucket / STEPS) as u32 + STEP_BITS - 1;
        let step = (bucket % STEPS) as u64;
        (STEPS as u64 + step) << (log - STEP_BITS)
    }

    /// Adds one observation.
    pub fn record(&mut self, ns: u64) {
        let bucket = Self::bucket(ns).min(self.buckets.len() - 1);
        self.buckets[bucket] = self.buckets[bucket].saturating_add(1);
        self.count += 1;
        self.sum = self.sum.saturating_add(ns);
        self.max = self.max.max(ns);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean, or 0 with no observations.
    pub fn mean(&self) -> u64 {
        self.sum.checked_div(self.count).unwrap_or(0)
    }

    /// The largest observation.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which `percent` of the observations fall (the lower bound of its
    /// bucket), or 0 with no observations.
    pub fn percentile(&self, percent: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64 * percent / 100.0) as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (bucket, &n) in self.buckets.iter().enumerate() {
            seen += n as u64;
            if seen >= rank {
                return Self::lower_bound(bucket);
            }
        }
        self.max
    }

    /// The observations made since `earlier` (a snapshot of this histogram). `max` is
    /// the overall maximum.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut d = self.clone();
        for (b, e) in d.buckets.iter_mut().zip(earlier.buckets.iter()) {
            *b = b.saturating_sub(*e);
        }
        d.count = self.count.saturating_sub(earlier.count);
        d.sum = self.sum.saturating_sub(earlier.sum);
        d
    }

    /// Forgets every observation.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} p50={}ns p99={}ns max={}ns",
            self.count,
            self.percentile(50.0),
            self.percentile(99.0),
            self.max
        )
    }
}

/// Everything the pager counts.
#[derive(Clone, Debug, Default)]
pub struct PagerStats {
    /// Faults on never-touched pages, filled with zeros locally.
    pub faults_zero_fill: u64,
    /// Faults that read the page from the memory node.
    pub faults_remote: u64,
    /// Faults on a page whose prefetch was still in flight: waited for it. Each is also a
    /// prefetch hit (a late one).
    pub faults_in_flight: u64,
    /// Faults on a page being written back: waited for the write, then read it.
    pub faults_writing_back: u64,
    /// Faults that found the page already present (a completion raced the fault).
    pub faults_spurious: u64,
    /// Page reads posted (demand and prefetch).
    pub remote_reads: u64,
    /// Page writes posted (write-backs).
    pub remote_writes: u64,
    /// Bytes read from the memory node.
    pub bytes_read: u64,
    /// Bytes written to the memory node.
    pub bytes_written: u64,
    /// Pages evicted clean: unmapped, no I/O.
    pub evicted_clean: u64,
    /// Pages evicted dirty: written back.
    pub evicted_dirty: u64,
    /// Reclaim batches run (by the evictor or in the fault path).
    pub reclaim_batches: u64,
    /// Reclaim batches run in the fault path because no frame was free.
    pub direct_reclaims: u64,
    /// Prefetch reads posted (the policy's, and hints').
    pub prefetch_issued: u64,
    /// Of those, posted for the application's hints.
    pub prefetch_hinted: u64,
    /// Prefetched pages the application used, each counted once: faulted on while in
    /// flight, or found with the accessed bit set (at the next remote fault, or by the
    /// evictor's probe).
    pub prefetch_hits: u64,
    /// Prefetched pages evicted unused.
    pub prefetch_waste: u64,
    /// Demand faults avoided: prefetched pages the application used without faulting at
    /// all (`prefetch_hits - faults_in_flight`). Without the prefetch each would have been
    /// a remote fault.
    pub faults_avoided: u64,
    /// Time from fault to return for faults that read from the node.
    pub fault_latency: Histogram,
    /// Time from posting a read to its completion.
    pub fetch_latency: Histogram,
}

impl PagerStats {
    /// All faults handled.
    pub fn faults(&self) -> u64 {
        self.faults_zero_fill
            + self.faults_remote
            + self.faults_in_flight
            + self.faults_writing_back
            + self.faults_spurious
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_bound_their_values() {
        let mut last = 0;
        for v in (0..200_000u64).chain([1 << 40, u64::MAX / 2, u64::MAX]) {
            let b = Histogram::bucket(v);
            assert!(b >= last, "bucket order at {v}");
            last = b;
            let low = Histogram::lower_bound(b);
            assert!(low <= v, "{v} below its bucket's bound {low}");
            assert!(v - low <= v / 32 + 1, "{v} too far from {low}");
        }
    }

    #[test]
    fn percentiles_and_differences() {
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.percentile(50.0);
        assert!((485_000..=500_000).contains(&p50), "{p50}");
        let earlier = h.clone();
        for _ in 0..1000 {
            h.record(7_000_000);
        }
        let recent = h.since(&earlier);
        assert_eq!(recent.count(), 1000);
        assert!(recent.percentile(50.0) > 6_700_000);
        assert_eq!(recent.mean(), 7_000_000);
    }
}
