//! The pager's counters and latency histograms. Plain numbers, copied out on request;
//! updating them never allocates.

use core::fmt;

/// A histogram of durations in nanoseconds: 64 power-of-two ranges split into 8 linear
/// steps each, so a percentile is exact to within 12.5%.
#[derive(Clone)]
pub struct Histogram {
    buckets: [u32; 64 * 8],
    count: u64,
    sum: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: [0; 64 * 8], count: 0, sum: 0, max: 0 }
    }
}

impl Histogram {
    fn bucket(value: u64) -> usize {
        if value < 8 {
            return value as usize;
        }
        let log = 63 - value.leading_zeros() as usize; // >= 3
        let step = ((value >> (log - 3)) & 7) as usize;
        (log - 2) * 8 + step
    }

    fn lower_bound(bucket: usize) -> u64 {
        if bucket < 8 {
            return bucket as u64;
        }
        let log = bucket / 8 + 2;
        let step = (bucket % 8) as u64;
        (8 + step) << (log - 3)
    }

    /// Adds one observation.
    pub fn record(&mut self, ns: u64) {
        self.buckets[Self::bucket(ns)] = self.buckets[Self::bucket(ns)].saturating_add(1);
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
    /// Faults on a page already being read (a prefetch or another fault): waited for it.
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
    /// Prefetch reads posted.
    pub prefetch_issued: u64,
    /// Prefetched pages the application used.
    pub prefetch_hits: u64,
    /// Prefetched pages evicted unused.
    pub prefetch_waste: u64,
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
