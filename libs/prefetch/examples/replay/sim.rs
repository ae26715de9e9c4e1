//! Trace replay: runs a fault trace through a prefetch policy over the real pager, on the
//! host (`remora_pager::testing`: heap frames, an in-memory memory node), with the
//! evictor's CLOCK keeping free frames between its watermarks as its thread does in the
//! image. Shared by the `replay` example (the command-line tool) and the replay test.
//!
//! A trace is a list of far page numbers, the pages an application reached that were not
//! local (see `remora_pager::FaultTrace`). Every page of the region starts remote, as if
//! the working set had been written and evicted; each trace entry is one read access.
//! Completions are delivered after each access (a link much faster than the
//! application), so a prefetch either arrives in time or was not issued.

#![allow(dead_code, reason = "the example and the test each use part of it")]

use std::fmt::Write as _;

use remora_evictor::{Clock, Step, Watermarks, replenish_step};
use remora_mmu::{FarPte, PageTableFlags, Tlb, VirtAddr};
use remora_pager::testing::{BASE, FakeTransport, HeapFrames, PAGE, access, leaked_tables};
use remora_pager::{FarRegion, Pager, PagerStats};
use remora_prefetch::{Majority, NoPrefetch, PrefetchPolicy, Sequential};

/// A trace: its name (the file it came from) and its pages.
#[derive(Clone, Debug)]
pub struct Trace {
    pub name: String,
    pub pages: Vec<u64>,
}

/// Reads a trace: whitespace-separated decimal page numbers; `#` starts a comment. A
/// console log works too: if any line starts with `trace:`, only those lines are read
/// (what membench prints with `trace=` on the command line).
pub fn parse(name: &str, text: &str) -> Result<Trace, String> {
    let console = text.lines().any(|l| l.starts_with("trace:"));
    let mut pages = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = match (console, line.strip_prefix("trace:")) {
            (true, Some(rest)) => rest,
            (true, None) => continue,
            (false, _) => line,
        };
        let line = line.split('#').next().unwrap_or_default();
        for word in line.split_whitespace() {
            let page = word.parse::<u64>().map_err(|_| {
                format!("{name}:{}: `{word}` is not a page number (decimal)", n + 1)
            })?;
            pages.push(page);
        }
    }
    if pages.is_empty() {
        return Err(format!("{name}: no pages in the trace"));
    }
    Ok(Trace { name: name.to_string(), pages })
}

/// The simulated machine.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// Local frames.
    pub local_pages: usize,
    /// Requests the transport takes at once (rmem.queue_depth).
    pub queue_depth: usize,
    /// The policies' largest window (prefetch.max_window).
    pub max_window: u32,
    /// Percent of frames: below this many free the evictor starts (evictor.low_watermark).
    pub low_watermark: u32,
    /// Percent of frames: the evictor stops at this many free (evictor.high_watermark).
    pub high_watermark: u32,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            local_pages: 64,
            queue_depth: 32,
            max_window: 8,
            low_watermark: 4,
            high_watermark: 8,
        }
    }
}

/// The general policies, in table order.
pub fn policies(max_window: u32) -> Vec<Box<dyn PrefetchPolicy>> {
    vec![
        Box::new(NoPrefetch),
        Box::new(Sequential::new(max_window)),
        Box::new(Majority::new(max_window)),
    ]
}

/// What one replay came to.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub policy: &'static str,
    pub accesses: u64,
    /// Faults that read their own page from the node.
    pub demand_faults: u64,
    /// Pages read from the node (demand and prefetch).
    pub pages_fetched: u64,
    /// Prefetched pages used.
    pub hits: u64,
    /// Prefetched pages evicted unused (at the end everything is evicted, so every
    /// prefetch is a hit or a waste).
    pub waste: u64,
    /// Page payload moved over the link, both ways.
    pub wire_bytes: u64,
    pub stats: PagerStats,
}

struct NoTlb;

impl Tlb for NoTlb {
    fn flush_page(&mut self, _addr: VirtAddr) {}
    fn flush_all(&mut self) {}
}

fn now() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static T: AtomicU64 = AtomicU64::new(0);
    T.fetch_add(100, Ordering::Relaxed)
}

/// Replays `pages` through `policy`.
pub fn replay(pages: &[u64], policy: Box<dyn PrefetchPolicy>, setup: &Setup) -> Outcome {
    let region_pages = (pages.iter().max().copied().unwrap_or(0) + 1).next_multiple_of(512);
    let frames = setup.local_pages.max(2);
    let mut pager = Pager::new(
        FarRegion::new(BASE, region_pages, leaked_tables((region_pages / 512) as usize)),
        &HeapFrames::new(frames),
        FakeTransport::new(region_pages * PAGE, setup.queue_depth.max(1), 0x5eed),
        Box::new(Clock::new()),
        Box::new(NoTlb),
        now,
        PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE,
    );
    for page in 0..region_pages {
        let _ = pager.region().pte(page).compare_exchange(FarPte::Untouched, FarPte::Remote);
    }
    let name = policy.name();
    pager.set_prefetch_policy(policy);
    let marks = Watermarks::from_percent(frames, setup.low_watermark, setup.high_watermark);
    for &page in pages {
        access(&mut pager, BASE + page * PAGE, None);
        pager.poll_completions().expect("the fake node does not fail");
        // The evictor thread: woken below the low watermark, works up to the high one.
        if marks.below_low(pager.free_frames()) {
            while let Ok(Step::Progress) = replenish_step(&mut pager, &marks, 32) {}
        }
    }
    // Evict everything: every prefetch ends as a hit or a waste.
    for _ in 0..1000 {
        if pager.resident_pages() == 0 {
            break;
        }
        pager.reclaim(64).expect("reclaim");
        pager.drain().expect("drain");
    }
    let stats = pager.stats().clone();
    Outcome {
        policy: name,
        accesses: pages.len() as u64,
        demand_faults: stats.faults_remote + stats.faults_writing_back,
        pages_fetched: stats.remote_reads,
        hits: stats.prefetch_hits,
        waste: stats.prefetch_waste,
        wire_bytes: stats.bytes_read + stats.bytes_written,
        stats,
    }
}

/// Replays `trace` through every general policy.
pub fn replay_all(trace: &Trace, setup: &Setup) -> Vec<Outcome> {
    policies(setup.max_window).into_iter().map(|p| replay(&trace.pages, p, setup)).collect()
}

/// The table: one row per trace and policy.
pub fn table(rows: &[(String, Vec<Outcome>)]) -> String {
    let mut out = String::new();
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        out,
        "{:<width$}  {:>8}  {:<10}  {:>13}  {:>13}  {:>8}  {:>8}  {:>12}",
        "trace",
        "accesses",
        "policy",
        "demand faults",
        "pages fetched",
        "hits",
        "waste",
        "wire bytes"
    );
    for (name, outcomes) in rows {
        for o in outcomes {
            let _ = writeln!(
                out,
                "{:<width$}  {:>8}  {:<10}  {:>13}  {:>13}  {:>8}  {:>8}  {:>12}",
                name,
                o.accesses,
                o.policy,
                o.demand_faults,
                o.pages_fetched,
                o.hits,
                o.waste,
                o.wire_bytes
            );
        }
    }
    out
}
