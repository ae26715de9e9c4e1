//! Redis's own prefetch policy (issue #10): the application knows what it is about to
//! touch, and tells the pager directly.
//!
//! - A command that reads a whole string (GET, GETSET, APPEND's old value...): once the
//!   value's length header is local (the lookup just read it), every page of the value is
//!   read at once, instead of faulting page by page as the reply is copied out.
//! - LRANGE (and LINDEX, LPOP/RPOP with a count): the list nodes that hold the requested
//!   range are read ahead of the reply loop, node by node in reply order.
//! - Every other fault goes to the general policy the image configuration names as the
//!   fallback (`redis.prefetch_fallback`); the image installs that one in the pager.
//!
//! It hangs on the server's [`Observer`] hook: the command code is not rewritten around it.
//! It owns its counters; the reads themselves are the pager's (`remora_prefetch::hint`).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::observer::Observer;

const PAGE: usize = 4096;

static STRINGS: AtomicU64 = AtomicU64::new(0);
static LIST_RANGES: AtomicU64 = AtomicU64::new(0);
static READS_ISSUED: AtomicU64 = AtomicU64::new(0);

/// What the policy has done so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrefetchStats {
    /// String values it fetched whole.
    pub strings: u64,
    /// LRANGE-style reads whose nodes it fetched ahead.
    pub list_ranges: u64,
    /// Page reads it issued.
    pub reads_issued: u64,
}

/// The counters.
pub fn stats() -> PrefetchStats {
    PrefetchStats {
        strings: STRINGS.load(Ordering::Relaxed),
        list_ranges: LIST_RANGES.load(Ordering::Relaxed),
        reads_issued: READS_ISSUED.load(Ordering::Relaxed),
    }
}

/// Whether `[addr, addr + len)` reaches beyond the page `addr` is in: only then is there
/// anything to fetch ahead (the first page is local: it was just read).
fn spans_pages(addr: usize, len: usize) -> bool {
    addr % PAGE + len > PAGE
}

/// The policy, as the server's observer.
#[derive(Debug, Default)]
pub struct RedisPrefetcher;

impl Observer for RedisPrefetcher {
    fn on_string(&mut self, addr: usize, len: usize) {
        if spans_pages(addr, len) {
            STRINGS.fetch_add(1, Ordering::Relaxed);
            let issued = remora_prefetch::hint(addr, len);
            READS_ISSUED.fetch_add(issued as u64, Ordering::Relaxed);
        }
    }

    fn on_list_range(&mut self, nodes: &mut dyn Iterator<Item = (usize, usize)>) {
        let mut issued = 0;
        let mut any = false;
        for (addr, len) in nodes {
            any = true;
            issued += remora_prefetch::hint(addr, len);
        }
        if any {
            LIST_RANGES.fetch_add(1, Ordering::Relaxed);
            READS_ISSUED.fetch_add(issued as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_values_beyond_their_first_page_are_fetched_ahead() {
        assert!(!spans_pages(0x1000, 100));
        assert!(!spans_pages(0x1f00, 0x100));
        assert!(spans_pages(0x1f00, 0x101));
        assert!(spans_pages(0x1000, 4097));
    }
}
