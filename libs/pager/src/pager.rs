//! The pager's state machine: the fault path, completions, the mechanics of eviction and
//! of prefetching.
//!
//! Everything here runs under the image's pager lock with interrupts off, and waits by
//! polling the transport (a fault cannot sleep: it may have interrupted anything). It
//! never allocates after set-up ([`Pager::new`], [`Pager::set_prefetch_policy`],
//! [`Pager::enable_trace`]) and never touches far memory itself.
//!
//! Request tags carry the page and the frame: `frame << 32 | page`.
//!
//! Prefetching: a fault that reads its page from the node posts that read, then asks the
//! prefetch policy for more and posts those ([`Pager::prefetch`]) until one finds no free
//! frame or a full queue, and only then waits. Prefetched pages are mapped with the
//! accessed bit clear. The pager remembers its last [`MAX_USED`] prefetches; at the next
//! remote fault it reports to the policy those that were used. Each prefetched frame is
//! accounted for exactly once: a *hit* when the application uses it (a fault on it while
//! in flight, or its accessed bit seen at the next remote fault or by the evictor's
//! probe), *waste* when it is evicted unused.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;

use remora_mmu::{
    AtomicPte, Claimed, ClearBits, FarPte, FlushBatch, PageTableFlags, PhysAddr, PhysFrame,
    PresentPte, Tlb, VirtAddr,
};
use remora_prefetch::{Candidates, FaultInfo, Hint, MAX_USED, PrefetchPolicy};
use remora_rmem::{Completion, Direction, PostError, Transport, TransportError};

use crate::PAGE_SIZE;
use crate::frames::{FrameCache, FrameId, FrameMemory, PrefetchMark};
use crate::policy::{MAX_BATCH, Probe, VictimPolicy};
use crate::region::FarRegion;
use crate::stats::PagerStats;
use crate::trace::FaultTrace;

/// Most pages one [`Pager::hint`] looks at (4 MiB): a hint is handled with interrupts off.
pub const HINT_SPAN: u64 = 1024;

/// What kind of fault a fault was, by what the pager found in the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Never touched: filled with zeros locally.
    ZeroFill,
    /// Read from the memory node.
    Remote,
    /// Already being read (by a prefetch): waited for it.
    InFlight,
    /// Being written back: waited for the write, then read it.
    WritingBack,
    /// Already present when looked at.
    Spurious,
}

/// Why the pager could not resolve a fault or finish a request. Each one ends the image:
/// the application's memory can no longer be trusted to be there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PagerError {
    /// The address is not in the far region: not a far-memory fault.
    NotFarMemory {
        /// The faulting address.
        addr: u64,
    },
    /// A read or write of a page failed for good.
    Transport {
        /// The page's address.
        page_addr: u64,
        /// Read or write.
        direction: Direction,
        /// What the transport said (boxed: errors are rare, results are returned on every
        /// fault).
        error: Box<TransportError>,
    },
    /// The transport refused a request it should have taken (the region on the node is
    /// smaller than the far region, or a configuration mismatch).
    Refused {
        /// The page's address.
        page_addr: u64,
        /// Why.
        error: PostError,
    },
    /// No frame is free and none can be reclaimed: every frame is busy.
    OutOfFrames {
        /// Frames in the cache.
        frames: usize,
    },
    /// A far page's entry holds bits that are none of the pager's states.
    CorruptEntry {
        /// The page's address.
        page_addr: u64,
        /// The entry.
        raw: u64,
    },
}

impl fmt::Display for PagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PagerError::NotFarMemory { addr } => {
                write!(f, "address {addr:#x} is not in the far-memory region")
            }
            PagerError::Transport { page_addr, direction, error } => {
                let what = match direction {
                    Direction::Read => "reading",
                    Direction::Write => "writing back",
                };
                write!(f, "far memory lost while {what} page {page_addr:#x}: {error}")
            }
            PagerError::Refused { page_addr, error } => {
                write!(f, "the far-memory transport refused page {page_addr:#x}: {error}")
            }
            PagerError::OutOfFrames { frames } => write!(
                f,
                "local memory exhausted: all {frames} frames are busy with reads or \
                 write-backs and none can be reclaimed; raise pager.local_memory or lower \
                 rmem.queue_depth"
            ),
            PagerError::CorruptEntry { page_addr, raw } => {
                write!(f, "the page-table entry of far page {page_addr:#x} is corrupt: {raw:#018x}")
            }
        }
    }
}

/// What one reclaim batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReclaimReport {
    /// Frames probed whose page had been accessed (given a second chance).
    pub accessed: usize,
    /// Pages unmapped with no I/O; their frames are free now.
    pub evicted_clean: usize,
    /// Pages unmapped and posted for write-back; their frames free on completion.
    pub evicted_dirty: usize,
}

impl ReclaimReport {
    /// Pages taken from the application in this batch.
    pub fn evicted(&self) -> usize {
        self.evicted_clean + self.evicted_dirty
    }
}

/// What a prefetch request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefetchOutcome {
    /// A read is posted.
    Issued,
    /// The page is not remote (never touched, local, or already moving): nothing to do.
    NotRemote,
    /// The page lies outside the region.
    OutOfRegion,
    /// No frame is free: stop prefetching (prefetches never reclaim).
    NoFrame,
    /// The transport's queue is full: stop prefetching.
    QueueFull,
}

/// The far-memory pager. See the crate docs for the page states.
pub struct Pager<T: Transport> {
    region: FarRegion,
    frames: FrameCache,
    transport: T,
    policy: Box<dyn VictimPolicy>,
    tlb: Box<dyn Tlb + Send>,
    clock: fn() -> u64,
    map_flags: PageTableFlags,
    stats: PagerStats,
    /// When each frame's read was posted.
    posted_at: Vec<u64>,
    /// Write-backs posted and not completed: frames that will be free soon.
    writebacks_in_flight: usize,
    /// Which pages to prefetch on a remote fault (none: only hints are read ahead).
    prefetcher: Option<Box<dyn PrefetchPolicy>>,
    /// The last prefetches `(page, frame)`, oldest first, whose use the policy has not
    /// been told of.
    recent: heapless::Deque<(u64, FrameId), MAX_USED>,
    /// Prefetch hits counted since the policy was last called.
    hits_unreported: u32,
    /// The pages reached, recorded for replay (off unless enabled).
    trace: Option<FaultTrace>,
}

/// The tag of [`Pager::probe_round_trips`]' reads (no page has this many pages).
const PROBE_TAG: u64 = u64::MAX;

fn tag(page: u64, frame: FrameId) -> u64 {
    (frame as u64) << 32 | page
}

fn untag(tag: u64) -> (u64, FrameId) {
    (tag & 0xffff_ffff, (tag >> 32) as FrameId)
}

impl<T: Transport> Pager<T> {
    /// A pager for `region`, caching its pages in the frames of `memory`, reaching the node
    /// through `transport`, evicting with `policy`. `map_flags` are the flags of a mapped
    /// far page (WRITABLE, NO_EXECUTE where supported; never GLOBAL); `clock` gives
    /// nanoseconds.
    ///
    /// # Panics
    /// If the region has more than 2^32 pages or the cache more than 2^32 frames (the tags
    /// carry both in 32 bits): a set-up mistake of the image.
    pub fn new(
        region: FarRegion,
        memory: &dyn FrameMemory,
        transport: T,
        policy: Box<dyn VictimPolicy>,
        tlb: Box<dyn Tlb + Send>,
        clock: fn() -> u64,
        map_flags: PageTableFlags,
    ) -> Self {
        assert!(
            region.pages() <= u32::MAX as u64,
            "far region of {} pages is too large",
            region.pages()
        );
        let frames = FrameCache::new(memory);
        let posted_at = vec![0; frames.len()];
        Pager {
            region,
            frames,
            transport,
            policy,
            tlb,
            clock,
            map_flags: map_flags - PageTableFlags::GLOBAL - PageTableFlags::HUGE_PAGE,
            stats: PagerStats::default(),
            posted_at,
            writebacks_in_flight: 0,
            prefetcher: None,
            recent: heapless::Deque::new(),
            hits_unreported: 0,
            trace: None,
        }
    }

    /// Installs the prefetch policy (at set-up; without one only hints are read ahead).
    pub fn set_prefetch_policy(&mut self, policy: Box<dyn PrefetchPolicy>) {
        self.prefetcher = Some(policy);
    }

    /// The prefetch policy's name (`none` without one).
    pub fn prefetch_policy_name(&self) -> &'static str {
        self.prefetcher.as_ref().map_or("none", |p| p.name())
    }

    /// Starts recording the pages reached ([`FaultTrace`]) in a ring of `capacity`
    /// entries (allocated now), forgetting any earlier recording.
    pub fn enable_trace(&mut self, capacity: usize) {
        self.trace = Some(FaultTrace::new(capacity));
    }

    /// The recording, if enabled.
    pub fn trace(&self) -> Option<&FaultTrace> {
        self.trace.as_ref()
    }

    /// The recording, to clear it.
    pub fn trace_mut(&mut self) -> Option<&mut FaultTrace> {
        self.trace.as_mut()
    }

    /// The far region.
    pub fn region(&self) -> &FarRegion {
        &self.region
    }

    /// Counters and histograms.
    pub fn stats(&self) -> &PagerStats {
        &self.stats
    }

    /// Forgets the latency histograms (to measure a phase on its own).
    pub fn clear_histograms(&mut self) {
        self.stats.fault_latency.clear();
        self.stats.fetch_latency.clear();
    }

    /// The transport (for its counters).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, to adjust it (tests, and the image's diagnostics).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Frames in the local cache.
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// Frames free now.
    pub fn free_frames(&self) -> usize {
        self.frames.free_count()
    }

    /// Frames free now plus those that write-backs in flight will free.
    pub fn frames_soon_free(&self) -> usize {
        self.frames.free_count() + self.writebacks_in_flight
    }

    /// The victim policy's name.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// Resolves a fault at `addr`: on return the page is mapped (the faulting instruction
    /// can be retried). Waits by polling the transport.
    pub fn handle_fault(&mut self, addr: u64) -> Result<FaultKind, PagerError> {
        let page = self.region.page_of(addr).ok_or(PagerError::NotFarMemory { addr })?;
        let started = (self.clock)();
        let pte = self.region.pte(page);
        let mut kind = None;
        loop {
            match pte.load() {
                FarPte::Present(_) => break,
                FarPte::Untouched | FarPte::Remote => {
                    let frame = self.take_frame()?;
                    // Taking a frame may have run completions and reclaim: claim only now.
                    match pte.claim(frame) {
                        Ok(Claimed::Untouched) => {
                            self.frames.zero(frame);
                            self.frames.set_page(frame, page, false);
                            self.map(page, frame)?;
                            kind.get_or_insert(FaultKind::ZeroFill);
                            break;
                        }
                        Ok(Claimed::Remote) => {
                            self.post_read(page, frame, false)?;
                            kind.get_or_insert(FaultKind::Remote);
                            // The demand read is on its way: prefetch while it travels.
                            self.prefetch_after_fault(page, addr);
                            self.wait_until_present(page)?;
                            break;
                        }
                        Err(_) => self.frames.release(frame),
                    }
                }
                FarPte::InFlight { tag } => {
                    if kind.is_none() {
                        self.late_hit(page, tag);
                    }
                    kind.get_or_insert(FaultKind::InFlight);
                    self.wait_until_present(page)?;
                }
                FarPte::WritingBack { .. } => {
                    kind.get_or_insert(FaultKind::WritingBack);
                    while matches!(pte.load(), FarPte::WritingBack { .. }) {
                        self.poll_once()?;
                    }
                }
                FarPte::Invalid(bad) => {
                    return Err(PagerError::CorruptEntry {
                        page_addr: self.region.addr_of(page),
                        raw: bad.raw(),
                    });
                }
            }
        }
        let kind = kind.unwrap_or(FaultKind::Spurious);
        match kind {
            FaultKind::ZeroFill => self.stats.faults_zero_fill += 1,
            FaultKind::Remote => self.stats.faults_remote += 1,
            FaultKind::InFlight => self.stats.faults_in_flight += 1,
            FaultKind::WritingBack => self.stats.faults_writing_back += 1,
            FaultKind::Spurious => self.stats.faults_spurious += 1,
        }
        if matches!(kind, FaultKind::Remote | FaultKind::WritingBack) {
            self.stats.fault_latency.record((self.clock)() - started);
        }
        Ok(kind)
    }

    /// Posts a read of `page` (if it is remote) into a free frame, without waiting. Never
    /// reclaims and never waits for queue space.
    pub fn prefetch(&mut self, page: u64) -> PrefetchOutcome {
        if page >= self.region.pages() {
            return PrefetchOutcome::OutOfRegion;
        }
        let pte = self.region.pte(page);
        if pte.load() != FarPte::Remote {
            return PrefetchOutcome::NotRemote;
        }
        if self.transport.is_full() {
            return PrefetchOutcome::QueueFull;
        }
        let Some(frame) = self.frames.take_free() else {
            return PrefetchOutcome::NoFrame;
        };
        match pte.claim(frame) {
            Ok(Claimed::Remote) => {}
            Ok(Claimed::Untouched) => {
                // Cannot happen (it was remote and we hold the lock); undo.
                let _ = pte.compare_exchange(FarPte::InFlight { tag: frame }, FarPte::Untouched);
                self.frames.release(frame);
                return PrefetchOutcome::NotRemote;
            }
            Err(_) => {
                self.frames.release(frame);
                return PrefetchOutcome::NotRemote;
            }
        }
        match self.post_read(page, frame, true) {
            Ok(()) => {
                self.stats.prefetch_issued += 1;
                if self.recent.is_full() {
                    self.recent.pop_front();
                }
                let _ = self.recent.push_back((page, frame));
                PrefetchOutcome::Issued
            }
            Err(_) => PrefetchOutcome::QueueFull,
        }
    }

    /// The application is about to touch `[addr, addr + len)`: posts reads of the range's
    /// remote pages in order (at most [`HINT_SPAN`] pages, and at most a quarter of the
    /// local frames). An announced page is as good as a faulting one: when no frame is
    /// free it reclaims like a fault would, and when the queue is full it waits for room.
    /// Returns the reads posted; an error is the transport's (the node is gone).
    pub fn hint(&mut self, addr: u64, len: u64) -> Result<usize, PagerError> {
        let base = self.region.base();
        let start = addr.max(base);
        let end = addr.saturating_add(len).min(base + self.region.size());
        if start >= end {
            return Ok(0);
        }
        let first = (start - base) / PAGE_SIZE;
        let cap = (self.frames.len() as u64 / 4).max(1);
        let pages = ((end - 1 - base) / PAGE_SIZE - first + 1).min(HINT_SPAN).min(cap);
        let region_pages = self.region.pages();
        if let Some(policy) = self.prefetcher.as_mut() {
            policy.on_hint(&Hint { first_page: first, pages, region_pages });
        }
        let mut issued = 0;
        for page in first..first + pages {
            loop {
                match self.prefetch(page) {
                    PrefetchOutcome::Issued => {
                        issued += 1;
                        break;
                    }
                    PrefetchOutcome::NotRemote | PrefetchOutcome::OutOfRegion => break,
                    PrefetchOutcome::QueueFull => self.poll_once()?,
                    PrefetchOutcome::NoFrame => {
                        let frame = self.take_frame()?;
                        self.frames.release(frame);
                    }
                }
            }
        }
        self.stats.prefetch_hinted += issued as u64;
        Ok(issued)
    }

    /// Prefetches `pages` in order, skipping those that are not remote, until one finds
    /// no frame or no queue space. Returns the reads posted.
    fn issue_prefetches(&mut self, pages: impl IntoIterator<Item = u64>) -> usize {
        let mut issued = 0;
        for page in pages {
            match self.prefetch(page) {
                PrefetchOutcome::Issued => issued += 1,
                PrefetchOutcome::NotRemote | PrefetchOutcome::OutOfRegion => {}
                PrefetchOutcome::NoFrame | PrefetchOutcome::QueueFull => break,
            }
        }
        issued
    }

    /// A remote fault on `page` has posted its read: learns which recent prefetches were
    /// used, records the trace, asks the policy and issues what it proposes.
    fn prefetch_after_fault(&mut self, page: u64, addr: u64) {
        let mut used: heapless::Vec<u64, MAX_USED> = heapless::Vec::new();
        self.collect_used(&mut used);
        if let Some(trace) = self.trace.as_mut() {
            for &p in &used {
                trace.record(p);
            }
            trace.record(page);
        }
        let hits_since_last = core::mem::take(&mut self.hits_unreported);
        let Some(policy) = self.prefetcher.as_mut() else { return };
        let fault = FaultInfo {
            page,
            addr,
            region_pages: self.region.pages(),
            hits_since_last,
            used: &used,
        };
        let mut candidates = Candidates::new();
        policy.on_fault(&fault, &mut candidates);
        self.issue_prefetches(candidates.as_slice().iter().copied());
    }

    /// Goes through the recent prefetches, oldest first: those used since the last look
    /// (accessed now, or found used in between) go to `used`, and each newly found one is
    /// a hit that took no fault; those not used yet stay; the rest (evicted, their frame
    /// reused) are dropped.
    fn collect_used(&mut self, used: &mut heapless::Vec<u64, MAX_USED>) {
        for _ in 0..self.recent.len() {
            let Some((page, frame)) = self.recent.pop_front() else { break };
            if self.frames.page(frame) != Some(page) {
                continue;
            }
            match self.frames.mark(frame) {
                PrefetchMark::None => {}
                PrefetchMark::Used => {
                    self.frames.set_mark(frame, PrefetchMark::None);
                    let _ = used.push(page);
                }
                PrefetchMark::Pending => match self.region.pte(page).load() {
                    FarPte::Present(present) if present.accessed() => {
                        self.frames.set_mark(frame, PrefetchMark::None);
                        self.stats.prefetch_hits += 1;
                        self.stats.faults_avoided += 1;
                        self.hits_unreported = self.hits_unreported.saturating_add(1);
                        let _ = used.push(page);
                    }
                    _ => {
                        let _ = self.recent.push_back((page, frame));
                    }
                },
            }
        }
    }

    /// A fault found `page` in flight with tag `frame`: if a prefetch is reading it, that
    /// prefetch is used (a late hit).
    fn late_hit(&mut self, page: u64, frame: u32) {
        if self.frames.page(frame) == Some(page) && self.frames.mark(frame) == PrefetchMark::Pending
        {
            self.frames.set_mark(frame, PrefetchMark::Used);
            self.stats.prefetch_hits += 1;
            self.hits_unreported = self.hits_unreported.saturating_add(1);
        }
    }

    /// Measures the raw round trip of the transport: `samples` reads of one remote page
    /// each, with nothing else of ours in flight, into a free frame that is never mapped.
    /// Returns the histogram of round trips in nanoseconds (empty if no page is remote or
    /// no frame is free). The page's state is not changed.
    pub fn probe_round_trips(
        &mut self,
        samples: usize,
    ) -> Result<crate::stats::Histogram, PagerError> {
        let mut histogram = crate::stats::Histogram::default();
        self.drain()?;
        let remote = |p: &u64| self.region.pte(*p).load() == FarPte::Remote;
        let Some(first) = (0..self.region.pages()).find(remote) else {
            return Ok(histogram);
        };
        let Some(frame) = self.frames.take_free() else { return Ok(histogram) };
        // Spread over the region, as faults are: a different remote page each time.
        let mut page = first;
        for sample in 0..samples as u64 {
            let pages = self.region.pages();
            let candidate = (first + sample.wrapping_mul(7919)) % pages;
            if self.region.pte(candidate).load() == FarPte::Remote {
                page = candidate;
            }
            let buf = self.frames.lend(frame);
            let started = (self.clock)();
            if let Err(rejected) = self.transport.post_read(page * PAGE_SIZE, buf, PROBE_TAG) {
                let _ = rejected.buf.into_raw();
                self.frames.release(frame);
                return Err(PagerError::Refused {
                    page_addr: self.region.addr_of(page),
                    error: rejected.error,
                });
            }
            loop {
                let Some(c) = self.transport.poll() else { continue };
                if c.tag != PROBE_TAG {
                    self.complete(c)?;
                    continue;
                }
                histogram.record((self.clock)() - started);
                let _ = c.buf.into_raw();
                if let Err(error) = c.status {
                    self.frames.release(frame);
                    return Err(PagerError::Transport {
                        page_addr: self.region.addr_of(page),
                        direction: Direction::Read,
                        error: Box::new(error),
                    });
                }
                break;
            }
        }
        self.frames.release(frame);
        Ok(histogram)
    }

    /// Handles every completion that is ready; returns how many.
    pub fn poll_completions(&mut self) -> Result<usize, PagerError> {
        let mut n = 0;
        while let Some(c) = self.transport.poll() {
            self.complete(c)?;
            n += 1;
        }
        Ok(n)
    }

    /// Polls until no request is in flight.
    pub fn drain(&mut self) -> Result<(), PagerError> {
        while self.transport.in_flight() > 0 {
            self.poll_once()?;
        }
        Ok(())
    }

    /// Runs one reclaim batch of up to `want` victims (at most [`MAX_BATCH`]) with the
    /// victim policy: probes clear accessed bits, idle pages are unmapped (clean ones freed
    /// at once, dirty ones posted for write-back), and one TLB flush covers the batch.
    pub fn reclaim(&mut self, want: usize) -> Result<ReclaimReport, PagerError> {
        let want = want.clamp(1, MAX_BATCH);
        self.stats.reclaim_batches += 1;
        let mut report = ReclaimReport::default();
        let mut batch: FlushBatch<MAX_BATCH> = FlushBatch::new();
        let mut victims: heapless::Vec<u32, MAX_BATCH> = heapless::Vec::new();
        {
            let Pager { region, frames, policy, stats, hits_unreported, .. } = self;
            let frame_count = frames.len();
            let mut probe = |frame: u32| -> Probe {
                let Some(page) = frames.page(frame) else { return Probe::NotResident };
                match region.pte(page).harvest(ClearBits::Accessed) {
                    Some(pte) if pte.accessed() => {
                        batch.add(VirtAddr::new(region.addr_of(page)));
                        report.accessed += 1;
                        if frames.mark(frame) == PrefetchMark::Pending {
                            // Used with no fault; the policy hears of it at the next one.
                            frames.set_mark(frame, PrefetchMark::Used);
                            stats.prefetch_hits += 1;
                            stats.faults_avoided += 1;
                            *hits_unreported = hits_unreported.saturating_add(1);
                        }
                        Probe::Accessed
                    }
                    Some(_) => Probe::Idle,
                    None => Probe::NotResident,
                }
            };
            policy.select(frame_count, want, &mut probe, &mut victims);
        }

        let mut room = self.transport.capacity().saturating_sub(self.transport.in_flight());
        let mut clean: heapless::Vec<FrameId, MAX_BATCH> = heapless::Vec::new();
        let mut dirty: heapless::Vec<FrameId, MAX_BATCH> = heapless::Vec::new();
        for &frame in &victims {
            let Some(page) = self.frames.page(frame) else { continue };
            let pte = self.region.pte(page);
            let current = pte.load();
            let FarPte::Present(present) = current else { continue };
            if present.accessed() {
                continue;
            }
            let phys = PhysFrame::containing_address(present.addr());
            if present.dirty() && room == 0 {
                continue; // no queue space to write it back now
            }
            let next =
                if present.dirty() { FarPte::WritingBack { frame: phys } } else { FarPte::Remote };
            if pte.compare_exchange(current, next).is_err() {
                continue;
            }
            if present.dirty() {
                room -= 1;
                let _ = dirty.push(frame);
            } else {
                let _ = clean.push(frame);
            }
            batch.add(VirtAddr::new(self.region.addr_of(page)));
            if self.frames.mark(frame) == PrefetchMark::Pending {
                self.stats.prefetch_waste += 1;
            }
        }
        // One flush for the whole batch: no frame is reused or copied out before it.
        batch.flush(&mut *self.tlb);

        for &frame in &clean {
            self.frames.release(frame);
        }
        for &frame in &dirty {
            let page = self.frames.page(frame).expect("a dirty victim holds its page");
            let buf = self.frames.lend(frame);
            match self.transport.post_write(page * PAGE_SIZE, buf, tag(page, frame)) {
                Ok(()) => {
                    self.stats.remote_writes += 1;
                    self.stats.bytes_written += PAGE_SIZE;
                    self.writebacks_in_flight += 1;
                }
                Err(rejected) => {
                    let _ = rejected.buf.into_raw();
                    return Err(PagerError::Refused {
                        page_addr: self.region.addr_of(page),
                        error: rejected.error,
                    });
                }
            }
        }
        report.evicted_clean = clean.len();
        report.evicted_dirty = dirty.len();
        self.stats.evicted_clean += clean.len() as u64;
        self.stats.evicted_dirty += dirty.len() as u64;
        Ok(report)
    }

    /// A free frame: from the pool; else, if write-backs are finishing, the first frame
    /// one of them frees; else by reclaiming a batch in place (direct reclaim).
    fn take_frame(&mut self) -> Result<FrameId, PagerError> {
        let mut fruitless = 0;
        loop {
            if let Some(frame) = self.frames.take_free() {
                return Ok(frame);
            }
            if self.writebacks_in_flight > 0 {
                self.poll_once()?;
                continue;
            }
            self.stats.direct_reclaims += 1;
            let report = self.reclaim(MAX_BATCH)?;
            if report.evicted() > 0 || report.accessed > 0 {
                fruitless = 0;
            } else if self.transport.in_flight() > 0 {
                // Only reads in flight: once they land, their pages can be reclaimed.
                self.poll_once()?;
            } else {
                fruitless += 1;
                if fruitless >= 3 {
                    return Err(PagerError::OutOfFrames { frames: self.frames.len() });
                }
            }
        }
    }

    /// Lends `frame` to the transport for a read of `page`; waits for queue space.
    fn post_read(&mut self, page: u64, frame: FrameId, prefetched: bool) -> Result<(), PagerError> {
        self.frames.set_page(frame, page, prefetched);
        let mut buf = self.frames.lend(frame);
        loop {
            match self.transport.post_read(page * PAGE_SIZE, buf, tag(page, frame)) {
                Ok(()) => break,
                Err(rejected) if matches!(rejected.error, PostError::QueueFull { .. }) => {
                    buf = rejected.buf;
                    self.poll_once()?;
                }
                Err(rejected) => {
                    let _ = rejected.buf.into_raw();
                    let pte = self.region.pte(page);
                    let _ = pte.compare_exchange(FarPte::InFlight { tag: frame }, FarPte::Remote);
                    self.frames.release(frame);
                    return Err(PagerError::Refused {
                        page_addr: self.region.addr_of(page),
                        error: rejected.error,
                    });
                }
            }
        }
        self.posted_at[frame as usize] = (self.clock)();
        self.stats.remote_reads += 1;
        self.stats.bytes_read += PAGE_SIZE;
        Ok(())
    }

    fn wait_until_present(&mut self, page: u64) -> Result<(), PagerError> {
        let pte = self.region.pte(page);
        while matches!(pte.load(), FarPte::InFlight { .. }) {
            self.poll_once()?;
        }
        Ok(())
    }

    /// Handles at most one completion.
    fn poll_once(&mut self) -> Result<(), PagerError> {
        match self.transport.poll() {
            Some(c) => self.complete(c),
            // No `pause` here: under QEMU's TCG it leaves the translated-code loop and
            // costs about 25 us a time, which tripled the fault latency.
            None => Ok(()),
        }
    }

    fn complete(&mut self, completion: Completion) -> Result<(), PagerError> {
        let (page, frame) = untag(completion.tag);
        // The frame is the pager's again (mapped below, or freed).
        let _ = completion.buf.into_raw();
        if let Err(error) = completion.status {
            return Err(PagerError::Transport {
                page_addr: self.region.addr_of(page),
                direction: completion.direction,
                error: Box::new(error),
            });
        }
        match completion.direction {
            Direction::Read => {
                self.stats.fetch_latency.record((self.clock)() - self.posted_at[frame as usize]);
                self.map(page, frame)
            }
            Direction::Write => {
                self.writebacks_in_flight -= 1;
                let pte = self.region.pte(page);
                let phys = PhysFrame::containing_address(PhysAddr::new(self.frames.phys(frame)));
                expect_transition(
                    pte,
                    FarPte::WritingBack { frame: phys },
                    FarPte::Remote,
                    self.region.addr_of(page),
                )?;
                self.frames.release(frame);
                Ok(())
            }
        }
    }

    /// Maps a claimed page (`InFlight { tag: frame }`) to its frame. The accessed bit
    /// starts clear: the CPU sets it when the faulting access is retried, and a prefetched
    /// page shows whether it was used.
    fn map(&mut self, page: u64, frame: FrameId) -> Result<(), PagerError> {
        let pte = self.region.pte(page);
        let phys = PhysFrame::containing_address(PhysAddr::new(self.frames.phys(frame)));
        let present = FarPte::Present(PresentPte::new(phys, self.map_flags));
        expect_transition(pte, FarPte::InFlight { tag: frame }, present, self.region.addr_of(page))
    }

    /// The CPU address of the frame mapped at physical `phys` (for tests that play the
    /// CPU, and for diagnostics).
    pub fn frame_ptr(&self, phys: u64) -> Option<NonNull<u8>> {
        self.frames.find(phys).map(|f| self.frames.virt(f))
    }

    /// Pages mapped now (frames that are neither free nor lent).
    pub fn resident_pages(&self) -> usize {
        (0..self.frames.len() as FrameId)
            .filter(|&f| {
                self.frames.page(f).is_some_and(|p| self.region.pte(p).load().is_present())
            })
            .count()
    }
}

fn expect_transition(
    pte: &AtomicPte,
    from: FarPte,
    to: FarPte,
    page_addr: u64,
) -> Result<(), PagerError> {
    pte.compare_exchange(from, to)
        .map_err(|found| PagerError::CorruptEntry { page_addr, raw: found.encode() })
}
