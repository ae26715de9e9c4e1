//! Remote paging: the far-memory region, the local frame cache and the page-fault path.
//!
//! Far memory is one fixed virtual range; page `i` of it is byte `i * 4096` of the memory
//! node's region, so no lookup table is needed. A page's state lives in its page-table
//! entry ([`remora_mmu::FarPte`]), never in a separate swap cache:
//!
//! ```text
//!  Untouched --fault: zero-fill locally--------------------------> Present
//!  Remote ----fault or prefetch: claim, post read--> InFlight ----> Present (on completion)
//!  Present ---evict clean: no I/O-------------------------------------> Remote
//!  Present ---evict dirty: post write--> WritingBack --on completion--> Remote
//! ```
//!
//! A fault on an `InFlight` page waits for that fetch; a fault on a `WritingBack` page
//! waits for the write to finish before anything reads the page from the node, so the
//! newest contents are always either in a frame or on the node.
//!
//! | module | owns | must never |
//! |---|---|---|
//! | [`region`] | the far range and direct access to its entries | change an entry |
//! | `frames` | the local frames: which page each holds, the free pool; the crate's only `unsafe` | decide which frame to evict |
//! | [`pager`] | the state machine: faults, completions, eviction mechanics, prefetch issue and hit/waste accounting | block (it polls), allocate on the fault path, touch far memory itself |
//! | [`policy`] | the [`VictimPolicy`] interface the evictor implements | hold pager state |
//! | [`stats`] | counters and latency histograms | allocate |
//! | [`trace`] | the optional record of the pages reached, for replay on the host | allocate after it is enabled |
//! | [`testing`] | host stand-ins: heap frames, a fake transport, a CPU (tests and trace replay) | be used by the image |
//! | [`observe`] | the hooks through which applications read the running pager's counters and trace | reach the pager itself |
//!
//! Which pages a fault prefetches is decided by a [`remora_prefetch::PrefetchPolicy`]
//! the image installs; the pager issues them and counts what became of them.
//!
//! The pager holds no lock: the image keeps it behind one (interrupts off), which the
//! fault handler and the evictor thread both take. It never reads configuration.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod frames;
pub mod observe;
pub mod pager;
pub mod policy;
pub mod region;
pub mod stats;
pub mod testing;
pub mod trace;

pub use frames::{FrameId, FrameMemory};
pub use pager::{FaultKind, HINT_SPAN, Pager, PagerError, PrefetchOutcome, ReclaimReport};
pub use policy::{MAX_BATCH, Probe, VictimPolicy};
pub use region::FarRegion;
pub use stats::{Histogram, PagerStats};
pub use trace::FaultTrace;

/// Bytes in a page.
pub const PAGE_SIZE: u64 = 4096;
