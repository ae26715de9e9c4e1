//! [`FaultTrace`]: a fixed ring of the far pages the pager saw the application reach, for
//! replaying through prefetch policies on the host (`remora-prefetch`'s replay).
//!
//! What is recorded, at each fault that reads its page from the memory node: the
//! prefetched pages found used since the previous one (in the order they were issued),
//! then the faulting page. That is what the prefetch policy is told, and, whatever policy
//! ran, the page stream a pager without prefetching would have faulted on (accesses to
//! pages already local are invisible to any pager). Recording is off unless the image
//! turns it on; once on it never allocates: the ring keeps the newest entries.

use alloc::vec;
use alloc::vec::Vec;

/// The newest `capacity` recorded pages.
pub struct FaultTrace {
    pages: Vec<u64>,
    /// Next slot written.
    next: usize,
    /// Pages ever recorded (those beyond the capacity were overwritten).
    recorded: u64,
}

impl FaultTrace {
    /// A ring of `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        FaultTrace { pages: vec![0; capacity.max(1)], next: 0, recorded: 0 }
    }

    pub(crate) fn record(&mut self, page: u64) {
        self.pages[self.next] = page;
        self.next = (self.next + 1) % self.pages.len();
        self.recorded += 1;
    }

    /// Pages ever recorded.
    pub fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Pages kept (the newest ones).
    pub fn len(&self) -> usize {
        self.recorded.min(self.pages.len() as u64) as usize
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.recorded == 0
    }

    /// Copies the kept pages `from..` (0 = the oldest kept) into `out`, oldest first;
    /// returns how many were copied.
    pub fn copy_out(&self, from: usize, out: &mut [u64]) -> usize {
        let len = self.len();
        let oldest = if len < self.pages.len() { 0 } else { self.next };
        let n = len.saturating_sub(from).min(out.len());
        for (i, slot) in out[..n].iter_mut().enumerate() {
            *slot = self.pages[(oldest + from + i) % self.pages.len()];
        }
        n
    }

    /// Forgets everything recorded.
    pub fn clear(&mut self) {
        self.next = 0;
        self.recorded = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_in_order() {
        let mut t = FaultTrace::new(4);
        let mut out = [0; 8];
        assert_eq!(t.copy_out(0, &mut out), 0);
        for p in 1..=3 {
            t.record(p);
        }
        assert_eq!(t.copy_out(0, &mut out), 3);
        assert_eq!(&out[..3], &[1, 2, 3]);
        for p in 4..=6 {
            t.record(p);
        }
        assert_eq!((t.len(), t.recorded()), (4, 6));
        assert_eq!(t.copy_out(0, &mut out), 4);
        assert_eq!(&out[..4], &[3, 4, 5, 6]);
        assert_eq!(t.copy_out(1, &mut out[..2]), 2);
        assert_eq!(&out[..2], &[4, 5]);
        assert_eq!(t.copy_out(4, &mut out), 0);
        t.clear();
        assert!(t.is_empty());
    }
}
