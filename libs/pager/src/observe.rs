//! The running kernel's pager counters, for applications and reports: the image installs
//! a source once the pager is up; anyone may read a snapshot. Owns only that hook.

use spin::Once;

use crate::stats::PagerStats;

static SOURCE: Once<fn() -> Option<PagerStats>> = Once::new();

/// Installs where snapshots come from (the image's glue, which holds the pager's lock).
pub fn set_stats_source(source: fn() -> Option<PagerStats>) {
    SOURCE.call_once(|| source);
}

/// A snapshot of the pager's counters, or `None` in an image without a pager.
pub fn current_stats() -> Option<PagerStats> {
    SOURCE.get().and_then(|source| source())
}
