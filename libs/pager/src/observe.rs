//! The running kernel's pager counters, for applications and reports: the image installs
//! a source once the pager is up; anyone may read a snapshot. Owns only that hook.

use spin::Once;

use crate::stats::{Histogram, PagerStats};

static SOURCE: Once<fn() -> Option<PagerStats>> = Once::new();
static PROBE: Once<fn(usize) -> Option<Histogram>> = Once::new();

/// Installs where snapshots come from (the image's glue, which holds the pager's lock).
pub fn set_stats_source(source: fn() -> Option<PagerStats>) {
    SOURCE.call_once(|| source);
}

/// A snapshot of the pager's counters, or `None` in an image without a pager.
pub fn current_stats() -> Option<PagerStats> {
    SOURCE.get().and_then(|source| source())
}

/// Installs how a round-trip probe is run (the image's glue, under the pager's lock).
pub fn set_probe(probe: fn(usize) -> Option<Histogram>) {
    PROBE.call_once(|| probe);
}

/// The raw round trip of `samples` single-page reads ([`crate::Pager::probe_round_trips`]),
/// or `None` in an image without a pager (or if the probe failed).
pub fn probe_round_trips(samples: usize) -> Option<Histogram> {
    PROBE.get().and_then(|probe| probe(samples))
}
