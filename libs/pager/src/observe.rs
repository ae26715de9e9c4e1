//! The running kernel's pager counters and fault trace, for applications and reports: the
//! image installs the sources once the pager is up; anyone may read a snapshot. Owns only
//! those hooks.

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

/// A piece of the recorded trace ([`read_trace`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceChunk {
    /// Pages copied into the caller's buffer.
    pub copied: usize,
    /// Pages kept in the recording (the newest ones).
    pub kept: usize,
    /// Pages ever recorded.
    pub recorded: u64,
}

/// Copies recorded pages `from..` into a buffer: see [`read_trace`].
pub type TraceSource = fn(usize, &mut [u64]) -> Option<TraceChunk>;

static TRACE: Once<TraceSource> = Once::new();

/// Installs where the recorded trace is read from (the image's glue, which holds the
/// pager's lock only while copying into memory of its own).
pub fn set_trace_source(source: TraceSource) {
    TRACE.call_once(|| source);
}

/// Copies the recorded pages `from..` (0 = the oldest kept) into `out`, oldest first
/// ([`crate::FaultTrace`]), or `None` if the image is not recording.
pub fn read_trace(from: usize, out: &mut [u64]) -> Option<TraceChunk> {
    TRACE.get().and_then(|source| source(from, out))
}
