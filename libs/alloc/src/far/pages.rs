//! Free runs of far pages: which page numbers of the far region nobody holds.
//!
//! Owns two indexes of the same free runs: by start (to merge a freed run with the free
//! runs either side of it) and by (length, start) (to find the smallest run that fits in
//! `O(log n)`, lowest address first among equals). Knows page numbers only, never
//! addresses, and never touches far memory.

use alloc::collections::{BTreeMap, BTreeSet};

/// The free page runs of a region of `pages` pages.
#[derive(Debug)]
pub(crate) struct PageRuns {
    /// The absolute page number of page 0 (alignment is absolute).
    origin: usize,
    by_start: BTreeMap<usize, usize>,
    by_len: BTreeSet<(usize, usize)>,
    free_pages: usize,
}

impl PageRuns {
    /// All of `[0, pages)` free, as one run; page 0 is absolute page `origin`.
    pub(crate) fn new(pages: usize, origin: usize) -> Self {
        let mut runs =
            PageRuns { origin, by_start: BTreeMap::new(), by_len: BTreeSet::new(), free_pages: 0 };
        if pages > 0 {
            runs.insert(0, pages);
        }
        runs
    }

    /// Takes `pages` pages whose first absolute page number is a multiple of `align` (a
    /// power of two): the smallest free run that fits, cut from its low end.
    pub(crate) fn alloc(&mut self, pages: usize, align: usize) -> Option<usize> {
        let (len, start, at) = self.by_len.range((pages, 0)..).find_map(|&(len, start)| {
            let absolute = (self.origin + start).checked_next_multiple_of(align)?;
            let at = absolute - self.origin;
            (at.checked_add(pages)? <= start + len).then_some((len, start, at))
        })?;
        self.remove(start, len);
        if at > start {
            self.insert(start, at - start);
        }
        let end = at + pages;
        if end < start + len {
            self.insert(end, start + len - end);
        }
        Some(at)
    }

    /// Returns `[start, start + pages)`, which the caller took with [`PageRuns::alloc`],
    /// merging it with free neighbours.
    pub(crate) fn free(&mut self, start: usize, pages: usize) {
        let mut start = start;
        let mut len = pages;
        if let Some((&before, &before_len)) = self.by_start.range(..start).next_back()
            && before + before_len == start
        {
            self.remove(before, before_len);
            start = before;
            len += before_len;
        }
        if let Some(&after_len) = self.by_start.get(&(start + len)) {
            self.remove(start + len, after_len);
            len += after_len;
        }
        self.insert(start, len);
    }

    /// Pages free.
    pub(crate) fn free_pages(&self) -> usize {
        self.free_pages
    }

    /// Number of free runs.
    pub(crate) fn runs(&self) -> usize {
        self.by_start.len()
    }

    /// Pages in the longest free run.
    pub(crate) fn largest(&self) -> usize {
        self.by_len.last().map_or(0, |&(len, _)| len)
    }

    fn insert(&mut self, start: usize, len: usize) {
        self.by_start.insert(start, len);
        self.by_len.insert((len, start));
        self.free_pages += len;
    }

    fn remove(&mut self, start: usize, len: usize) {
        self.by_start.remove(&start);
        self.by_len.remove(&(len, start));
        self.free_pages -= len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_then_merge_on_free() {
        let mut runs = PageRuns::new(100, 0);
        let a = runs.alloc(10, 1).unwrap();
        let b = runs.alloc(5, 1).unwrap();
        let c = runs.alloc(20, 1).unwrap();
        assert_eq!((a, b, c), (0, 10, 15));
        runs.free(b, 5);
        assert_eq!(runs.runs(), 2);
        // A 3-page request takes the 5-page hole, not the 65-page tail.
        assert_eq!(runs.alloc(3, 1), Some(10));
        runs.free(10, 3);
        runs.free(a, 10);
        assert_eq!(
            (runs.runs(), runs.largest(), runs.free_pages()),
            (2, 65, 80),
            "0..15 and 35..100"
        );
        runs.free(c, 20);
        assert_eq!((runs.runs(), runs.largest(), runs.free_pages()), (1, 100, 100));
    }

    #[test]
    fn aligned_runs_leave_the_head_free() {
        let mut runs = PageRuns::new(64, 0);
        assert_eq!(runs.alloc(1, 1), Some(0));
        assert_eq!(runs.alloc(4, 16), Some(16));
        assert_eq!(runs.free_pages(), 59);
        assert_eq!(runs.alloc(1, 1), Some(1), "the head 1..16 is still free");
        assert_eq!(runs.alloc(48, 16), None, "only 44 pages remain above 20");
        assert_eq!(runs.alloc(44, 1), Some(20));
    }

    #[test]
    fn alignment_counts_from_the_absolute_page_number() {
        let mut runs = PageRuns::new(64, 3);
        assert_eq!(runs.alloc(2, 8), Some(5), "absolute page 8");
    }
}
