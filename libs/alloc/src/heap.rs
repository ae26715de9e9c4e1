//! The kernel heap's counters and its out-of-memory report.
//!
//! The heap itself ([`crate::LockedHeap`]) lives in `global`, the one module allowed
//! `unsafe`; this module owns what can be said about it without touching memory: the
//! [`HeapStats`] snapshot and the [`OomReport`] the image prints from its panic path when
//! an allocation fails ("kernel heap exhausted: asked for N bytes (align A), M bytes free
//! of T"). It never allocates: the report formats straight into the caller's writer, so
//! it works when the heap is exhausted.

use core::alloc::Layout;
use core::fmt;

/// A snapshot of the kernel heap's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HeapStats {
    /// Bytes the heap manages.
    pub total: usize,
    /// Bytes handed out now (as the heap rounds them: at least two words each).
    pub used: usize,
    /// Bytes not handed out (possibly fragmented).
    pub free: usize,
    /// The highest `used` seen.
    pub peak_used: usize,
    /// Successful allocations since init.
    pub allocations: u64,
    /// Deallocations since init.
    pub frees: u64,
    /// Allocations refused for lack of memory.
    pub failed_allocations: u64,
}

impl HeapStats {
    /// Allocations not yet freed.
    pub fn live_allocations(&self) -> u64 {
        self.allocations.saturating_sub(self.frees)
    }

    /// The report for a request of `layout` that this heap could not serve.
    pub fn oom_report(&self, layout: Layout) -> OomReport {
        OomReport { size: layout.size(), align: layout.align(), free: self.free, total: self.total }
    }
}

/// Why an allocation failed, printable without allocating:
/// `kernel heap exhausted: asked for N bytes (align A), M bytes free of T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OomReport {
    /// Bytes asked for.
    pub size: usize,
    /// Alignment asked for.
    pub align: usize,
    /// Bytes free when the request failed.
    pub free: usize,
    /// Bytes the heap manages.
    pub total: usize,
}

impl fmt::Display for OomReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel heap exhausted: asked for {} bytes (align {}), {} bytes free of {}",
            self.size, self.align, self.free, self.total
        )
    }
}

/// Why the kernel heap could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapInitError {
    /// `init` was called twice.
    AlreadyInitialized,
    /// The region cannot hold even the heap's own bookkeeping.
    TooSmall {
        /// Bytes given.
        size: usize,
        /// The least the heap accepts.
        min: usize,
    },
    /// `start + size` wraps around the address space.
    Overflow {
        /// The start given.
        start: usize,
        /// The size given.
        size: usize,
    },
}

impl fmt::Display for HeapInitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeapInitError::AlreadyInitialized => {
                write!(f, "kernel heap: already initialized; call init once, at boot")
            }
            HeapInitError::TooSmall { size, min } => write!(
                f,
                "kernel heap: a region of {size} bytes is too small (at least {min}); \
                 raise alloc.heap_size"
            ),
            HeapInitError::Overflow { start, size } => write!(
                f,
                "kernel heap: region {start:#x} + {size:#x} wraps around the address space"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_report_reads_as_documented() {
        let stats = HeapStats {
            total: 16 << 20,
            free: 4096,
            used: (16 << 20) - 4096,
            ..HeapStats::default()
        };
        let report = stats.oom_report(Layout::from_size_align(65536, 64).unwrap());
        assert_eq!(
            report.to_string(),
            "kernel heap exhausted: asked for 65536 bytes (align 64), 4096 bytes free of 16777216"
        );
    }

    #[test]
    fn live_allocations_never_underflow() {
        let stats = HeapStats { allocations: 3, frees: 5, ..HeapStats::default() };
        assert_eq!(stats.live_allocations(), 0);
        let stats = HeapStats { allocations: 7, frees: 5, ..HeapStats::default() };
        assert_eq!(stats.live_allocations(), 2);
    }
}
